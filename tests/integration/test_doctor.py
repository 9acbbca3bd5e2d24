"""`settlerd doctor` as an operator runs it: the real CLI in a subprocess against the regtest Bitcoin node,
anvil with the HTLC contract and a test token, Mosquitto on 127.0.0.1:1883 and a SQLite store.

One configuration passes every check; each failure case then breaks one thing and expects exit 1 with
exactly one FAIL line, naming the setting to fix.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from settlerd_bitcoin import BitcoinAdapter, BitcoinSettings
from settlerd_evm.artifact import load_artifact
from settlerd_evm.deploy import deploy_contract
from web3 import AsyncHTTPProvider, AsyncWeb3

from settlerd.store import Store
from tests.fixtures.anvil import Anvil
from tests.fixtures.bitcoin_node import BitcoinNode, free_port

REPO = Path(__file__).resolve().parents[2]
SEED = "11" * 32
DESK_KEY_INDEX = 1  # anvil dev account used as the desk's EVM account
# Every network check is bounded at 5 s and they run concurrently; a hung doctor fails here instead.
RUN_TIMEOUT_S = 60


@dataclass
class Desk:
    """What the all-green configuration points at."""

    node: BitcoinNode
    anvil: Anvil
    contract: str
    token: str
    store: Path


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(config: dict[str, Any]) -> str:
    """A TOML document from nested dicts (tables) and scalars; lists of tables for `[[api.tokens]]`."""
    lines: list[str] = []

    def table(prefix: str, body: dict[str, Any]) -> None:
        scalars = {k: v for k, v in body.items() if not isinstance(v, (dict, list))}
        if prefix:
            lines.append(f"[{prefix}]")
        lines.extend(
            f'"{k}" = {toml_value(v)}' if ":" in k else f"{k} = {toml_value(v)}" for k, v in scalars.items()
        )
        for key, value in body.items():
            name = f"{prefix}.{key}" if prefix else key
            if isinstance(value, dict):
                table(name, value)
            elif isinstance(value, list):
                for item in value:
                    lines.append(f"[[{name}]]")
                    lines.extend(f"{k} = {toml_value(v)}" for k, v in item.items())

    table("", config)
    return "\n".join(lines) + "\n"


def green_config(desk: Desk) -> dict[str, Any]:
    return {
        "node_id": "desk-a",
        "store": {"url": f"sqlite:///{desk.store}"},
        "api": {"tokens": [{"name": "ops", "scope": "admin", "sha256": hashlib.sha256(b"t").hexdigest()}]},
        "mqtt": {"host": "127.0.0.1", "port": 1883},
        "risk": {"max_in_flight": {f"evm:{desk.token}": 10**18}},
        "chains": {
            "btc": {
                "adapter": "bitcoin",
                "network": "regtest",
                "rpc_url": desk.node.rpc_url,
                "rpc_user": desk.node.rpc_user,
                "rpc_password": desk.node.rpc_password,
                "seed": SEED,
            },
            "evm": {
                "adapter": "evm",
                "rpc_url": desk.anvil.rpc_url,
                "contract": desk.contract,
                "private_key": desk.anvil.keys[DESK_KEY_INDEX],
                "chain_id": desk.anvil.chain_id,
            },
        },
    }


def doctor(tmp_path: Path, config: dict[str, Any]) -> tuple[int, list[str]]:
    path = tmp_path / "settlerd.toml"
    path.write_text(render(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SETTLERD_")}
    proc = subprocess.run(
        [sys.executable, "-m", "settlerd", "doctor", "--config", str(path)],
        capture_output=True, text=True, timeout=RUN_TIMEOUT_S, cwd=REPO, env=env,
    )  # fmt: skip
    print(proc.stdout, proc.stderr)
    return proc.returncode, proc.stdout.splitlines()


async def deploy_token(anvil: Anvil, owner: str) -> str:
    """A TestToken with a balance for ``owner``."""
    w3 = AsyncWeb3(AsyncHTTPProvider(anvil.rpc_url))
    art = load_artifact("test/TestTokens.json")["TestToken"]
    deployer = Account.from_key(anvil.keys[0])

    async def send(tx: dict[str, Any]) -> Any:
        tx = {
            "from": deployer.address, "gas": 3_000_000, "chainId": anvil.chain_id,
            "nonce": await w3.eth.get_transaction_count(deployer.address, "pending"),
            "maxFeePerGas": 10**11, "maxPriorityFeePerGas": 10**9, **tx,
        }  # fmt: skip
        signed = deployer.sign_transaction(tx)
        return await w3.eth.wait_for_transaction_receipt(
            await w3.eth.send_raw_transaction(signed.raw_transaction)
        )

    try:
        receipt = await send({"data": art["bytecode"]})
        token = w3.eth.contract(address=receipt["contractAddress"], abi=art["abi"])
        await send({"to": token.address, "data": token.encode_abi("mint", [owner, 10**15])})
        return str(token.address)
    finally:
        await w3.provider.disconnect()


async def fund_wallet(node: BitcoinNode, store_path: Path) -> None:
    """The state a running daemon leaves: a migrated store whose scanner saw 1 BTC reach the wallet."""
    store = await Store.open(str(store_path))
    try:
        birthday = int(await node.rpc("getblockcount")) + 1
        settings = BitcoinSettings.from_mapping(
            {"name": "btc", "rpc_url": node.rpc_url, "rpc_user": node.rpc_user,
             "rpc_password": node.rpc_password, "network": "regtest", "seed": SEED,
             "birthday_height": birthday}
        )  # fmt: skip
        adapter = BitcoinAdapter(settings, store)
        await adapter.scanner.load()
        await node.fund(await adapter.receive_address(), 100_000_000)
        await node.mine(1)
        await adapter.scanner.sync()
        await adapter.close()
    finally:
        await store.close()


@pytest.fixture(scope="module")
async def desk(bitcoin_node: BitcoinNode, anvil: Anvil, tmp_path_factory: pytest.TempPathFactory) -> Desk:
    contract = await deploy_contract(anvil.rpc_url, anvil.keys[0])
    token = await deploy_token(anvil, Account.from_key(anvil.keys[DESK_KEY_INDEX]).address)
    store = tmp_path_factory.mktemp("doctor") / "settlerd.sqlite3"
    await fund_wallet(bitcoin_node, store)
    return Desk(bitcoin_node, anvil, contract, token, store)


def test_all_green(desk: Desk, tmp_path: Path) -> None:
    code, lines = doctor(tmp_path, green_config(desk))
    checks, summary = lines[:-1], lines[-1]
    names = [line.split()[1].rstrip(":") for line in checks]
    assert names == [
        "store.open", "store.schema", "store.write", "store.durability",
        "btc.settings", "btc.node", "btc.network", "btc.sync", "btc.version", "btc.fees", "btc.wallet",
        "evm.settings", "evm.node", "evm.chain_id", "evm.sync", "evm.version", "evm.contract", "evm.balance",
        f"evm.balance[{desk.token}]",
        "mqtt", "api.tokens",
    ]  # fmt: skip
    assert all(line.startswith("ok ") for line in checks), checks
    assert code == 0
    assert summary == f"{len(checks)} checks: 0 failed, 0 warnings"
    by_name = dict(zip(names, checks, strict=True))
    assert "1.00000000 BTC spendable" in by_name["btc.wallet"]
    # A regtest node has no fee history: bitcoind's answer carries "errors", and the floor is paid.
    assert by_name["btc.fees"].endswith(
        "no estimate on regtest (Insufficient data or no feerate found); "
        "transactions pay the floor of 1.0 sat/vB"
    )
    assert "journal_mode=wal, synchronous=FULL" in by_name["store.durability"]
    assert f"{10**15} base units" in by_name[f"evm.balance[{desk.token}]"]
    output = "\n".join(lines)
    for secret in (
        desk.node.rpc_password,
        desk.anvil.keys[DESK_KEY_INDEX],
        desk.anvil.keys[DESK_KEY_INDEX][2:],
    ):
        assert secret not in output


def _set(config: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    *tables, key = path.split(".")
    target = config
    for table in tables:
        target = target[table]
    target[key] = value
    return config


FAILURES = {
    # case: (setting changed, new value (a callable of the desk), check that fails, text in its line)
    "wrong bitcoin network": ("chains.btc.network", lambda d: "testnet", "btc.network", "chains.btc.network"),
    "wrong rpc password": ("chains.btc.rpc_password", lambda d: "wrong", "btc.node", "chains.btc.rpc_user"),
    "unreachable node": (
        "chains.btc.rpc_url", lambda d: f"http://127.0.0.1:{free_port()}", "btc.node", "chains.btc.rpc_url",
    ),
    "no contract code": (
        "chains.evm.contract", lambda d: Account.from_key(d.anvil.keys[2]).address, "evm.contract",
        "chains.evm.contract",
    ),
    "broker not listening": ("mqtt.port", lambda d: free_port(), "mqtt", "mqtt.port"),
    "unwritable store": (
        "store.url", lambda d: "sqlite:////proc/settlerd.sqlite3", "store.open", "store.url",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(FAILURES))
def test_one_failure(desk: Desk, tmp_path: Path, case: str) -> None:
    setting, value, check, names = FAILURES[case]
    code, lines = doctor(tmp_path, _set(green_config(desk), setting, value(desk)))
    failed = [line for line in lines if line.startswith("FAIL")]
    assert len(failed) == 1, lines
    assert failed[0].startswith(f"FAIL  {check}: ")
    assert "-> fix: " in failed[0] and names in failed[0].split("-> fix: ")[1]
    assert code == 1


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers: a hung node, the case a timeout exists for."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield int(server.getsockname()[1])


def test_hung_node_is_a_fail_line(desk: Desk, tmp_path: Path, silent_port: int) -> None:
    config = _set(green_config(desk), "chains.evm.rpc_url", f"http://127.0.0.1:{silent_port}")
    code, lines = doctor(tmp_path, config)
    failed = [line for line in lines if line.startswith("FAIL")]
    assert failed == [
        f"FAIL  evm.node: cannot use the node at http://127.0.0.1:{silent_port}: no answer within 5 s "
        "-> fix: start the node or fix chains.evm.rpc_url"
    ]
    assert code == 1


def test_bad_config_exits_2(tmp_path: Path) -> None:
    code, _ = doctor(tmp_path, {"node_id": "desk a"})
    assert code == 2
