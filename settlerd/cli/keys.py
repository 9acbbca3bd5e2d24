"""`settlerd keys init|show`: a desk's secret key files, and what its counterparty needs from it.

``keys init DIR`` writes the three secrets a desk trades with, as files a configuration names (bare names
with $CREDENTIALS_DIRECTORY=DIR, or absolute paths), each created mode 0600 and never overwritten:

- ``node-key``: the secp256k1 key signing offers, acceptances and MQTT messages (64 hex characters);
- ``bitcoin-seed``: the Bitcoin adapter's HD seed (64 hex characters, 32 bytes);
- ``evm-key``: the EVM adapter's account key (``0x`` and 64 hex characters).

No secret is ever printed. ``keys show --config PATH`` prints, as TOML a counterparty pastes into its own
configuration, this node's id and public node key, with each chain's funding address as comments.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from settlerd import adapters, config
from settlerd.chains import adapter_settings
from settlerd.config.credentials import CredentialError, read_secret

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
KEY_BYTES = 32  # secp256k1 keys, and a 256-bit HD seed: BIP32's recommended size
SECRET_MODE = 0o600  # settlerd refuses secret files other users can read
DIR_MODE = 0o700


def _node_key() -> str:
    from settlerd.engine import NodeKey

    while True:  # one 256-bit string in ~2^128 is not a valid secp256k1 key
        text = secrets.token_hex(KEY_BYTES)
        try:
            NodeKey.from_hex(text)
            return text
        except ValueError:
            continue


# File name -> how its secret is made. The names are those of config/desk-*.toml and regtest/localnet.py.
KEY_FILES: dict[str, Callable[[], str]] = {
    "node-key": _node_key,
    "bitcoin-seed": lambda: secrets.token_hex(KEY_BYTES),
    "evm-key": lambda: "0x" + _node_key(),
}


def cmd_keys_init(args: argparse.Namespace) -> int:
    directory: Path = args.dir
    taken = [name for name in KEY_FILES if (directory / name).exists()]
    if taken:
        print(
            f"settlerd: {directory} already holds {', '.join(taken)}: not overwriting a key (funds or a "
            "counterparty's trust may depend on it); choose another directory",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    try:
        directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        for name, make in KEY_FILES.items():
            # O_EXCL: a file that appeared since the check above is still never replaced.
            fd = os.open(directory / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, SECRET_MODE)
            with os.fdopen(fd, "w") as fh:
                fh.write(make() + "\n")
            os.chmod(directory / name, SECRET_MODE)  # whatever the umask
    except OSError as exc:
        print(f"settlerd: cannot write keys into {directory}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    print(f"wrote {', '.join(KEY_FILES)} to {directory} (mode 0600)")
    print(f"next: CREDENTIALS_DIRECTORY={directory} settlerd keys show --config PATH")
    return EXIT_OK


def _funding_addresses(settings: config.Settings) -> list[str]:
    lines = []
    for name, chain in settings.chains.items():
        info = adapters.find(chain.adapter)
        model: Any = info.settings
        try:
            chain_settings = model.from_mapping(adapter_settings(settings, name))
            address = chain_settings.funding_address() if hasattr(chain_settings, "funding_address") else None
        except (CredentialError, adapters.AdapterConfigError, ValueError) as exc:
            address = f"unknown ({exc})"
        lines.append(f"# {name} ({chain.adapter}) funding address: {address or 'not offered by the adapter'}")
    return lines


def cmd_keys_show(args: argparse.Namespace, load: Callable[[Path], config.Settings | int]) -> int:
    from settlerd.engine import NodeKey

    settings = load(args.config)
    if isinstance(settings, int):
        return settings
    if settings.engine.node_key_file is None:
        print(
            f"settlerd: {args.config}: engine.node_key_file is not set; see `settlerd keys init`",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        key = NodeKey.from_hex(read_secret("engine.node_key_file", settings.engine.node_key_file))
    except (CredentialError, ValueError) as exc:
        print(f"settlerd: engine.node_key_file: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    print(f"# {settings.node_id}: for the [counterparties] of a desk trading with it")
    print(f'[counterparties."{settings.node_id}"]')
    print(f'node_key = "{key.public_hex}"')
    for line in _funding_addresses(settings):
        print(line)
    return EXIT_OK


def add_keys_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    load: Callable[[Path], config.Settings | int],
) -> None:
    keys = sub.add_parser("keys", help="a desk's key files").add_subparsers(dest="sub", required=True)
    init = keys.add_parser("init", help="write a new node key, Bitcoin seed and EVM key into DIR (mode 0600)")
    init.add_argument("dir", type=Path, metavar="DIR")
    init.set_defaults(func=cmd_keys_init)
    show = keys.add_parser(
        "show", help="print the node id, public node key (TOML for [counterparties]) and funding addresses"
    )
    show.add_argument("--config", "-c", type=Path, required=True, metavar="PATH", help="TOML configuration")
    show.set_defaults(func=lambda args: cmd_keys_show(args, load))
