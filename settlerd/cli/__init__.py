"""The `settlerd` command line.

Exit codes: 0 success; 1 a runtime failure (a component could not start, an audit found tampering);
2 bad usage or an invalid configuration. Errors are one line on stderr saying what is wrong and where.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from settlerd import __version__, adapters, config, logs
from settlerd.cli.keys import add_keys_commands
from settlerd.cli.swap import add_swap_commands
from settlerd.cli.verify import add_verify_command
from settlerd.doctor import add_doctor_command

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def _fail(message: str, code: int = EXIT_FAILURE) -> int:
    print(f"settlerd: {message}", file=sys.stderr)
    return code


def _load(path: Path) -> config.Settings | int:
    try:
        return config.load(path)
    except config.ConfigError as exc:
        for problem in exc.problems:
            print(f"{exc.source}: {problem}", file=sys.stderr)
        return EXIT_USAGE


def cmd_version(args: argparse.Namespace) -> int:
    print(f"settlerd {__version__}")
    return EXIT_OK


def cmd_config_check(args: argparse.Namespace) -> int:
    settings = _load(args.config)
    if isinstance(settings, int):
        return settings
    chains = ", ".join(f"{name} ({chain.adapter})" for name, chain in settings.chains.items()) or "none"
    print(f"{args.config}: ok (node {settings.node_id}, store {settings.store.url}, chains: {chains})")
    return EXIT_OK


def cmd_config_reference(args: argparse.Namespace) -> int:
    from settlerd.config.reference import render

    print(render(), end="")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from settlerd import daemon
    from settlerd.api.streams import fit_descriptors

    settings = _load(args.config)
    if isinstance(settings, int):
        return settings
    problem = fit_descriptors(settings.api)
    if problem is not None:
        print(f"{args.config}: {problem}", file=sys.stderr)
        return EXIT_USAGE
    control = logs.setup_logging(settings.log.level)

    def on_sighup() -> None:
        # logrotate moved the file, or the operator changed log.level: no swap is interrupted.
        control.reopen()
        try:
            control.reload(config.load(args.config).log.level)
        except config.ConfigError as exc:
            logging.getLogger("settlerd").error("SIGHUP: configuration not reloaded: %s", exc)

    try:
        asyncio.run(daemon.run(settings, on_sighup=on_sighup))
    except daemon.StartupError as exc:
        return _fail(f"cannot start: {exc}", EXIT_USAGE if exc.bad_config else EXIT_FAILURE)
    except daemon.StoreFailed as exc:
        return _fail(f"stopped: {exc}")
    return EXIT_OK


async def _audit_verify(settings: config.Settings) -> int:
    from settlerd.audit import verify_events
    from settlerd.store import Store, StoreError

    try:
        store = await Store.open(settings.store.url)
    except StoreError as exc:
        return _fail(f"store: {exc}")
    try:
        report = await verify_events(store)
    finally:
        await store.close()
    if report.ok:
        print(f"event log intact: {report.checked} events verified")
        return EXIT_OK
    return _fail(f"event log tampered: event {report.first_bad_seq}: {report.reason}")


def cmd_audit_verify(args: argparse.Namespace) -> int:
    settings = _load(args.config)
    if isinstance(settings, int):
        return settings
    return asyncio.run(_audit_verify(settings))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="settlerd", description="Settle OTC trades with cross-chain HTLCs.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--config", "-c", type=Path, required=True, metavar="PATH", help="TOML configuration")
        return p

    sub.add_parser("version", help="print the version").set_defaults(func=cmd_version)
    with_config(sub.add_parser("run", help="run the daemon")).set_defaults(func=cmd_run)

    cfg = sub.add_parser("config", help="configuration tools").add_subparsers(dest="sub", required=True)
    with_config(cfg.add_parser("check", help="validate a configuration file")).set_defaults(
        func=cmd_config_check
    )
    cfg.add_parser("reference", help="print the configuration reference (Markdown)").set_defaults(
        func=cmd_config_reference
    )

    audit = sub.add_parser("audit", help="audit tools").add_subparsers(dest="sub", required=True)
    with_config(audit.add_parser("verify", help="verify the hash-chained event log")).set_defaults(
        func=cmd_audit_verify
    )
    add_swap_commands(sub)
    add_keys_commands(sub, _load)
    add_doctor_command(sub, _load)
    add_verify_command(sub)
    for info in adapters.discover().values():
        if info.cli is not None:
            info.cli(sub)  # an adapter's own commands, e.g. `settlerd contract deploy` from the EVM one
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
