"""A local network for settlerd: a regtest Bitcoin node, anvil, and N settlerd daemon processes.

    async with localnet(["desk-a", "desk-b"]) as net:
        a, b = net.daemons
        swap_id = await net.trade(a, b, give=btc(10_000_000), get=eth(10**18))
        await net.wait_status(a, swap_id, "completed")

The Bitcoin node is the real bitcoind when it is on PATH, else the kernel node (regtest/kernelnode); anvil
comes from regtest/node_modules. Both listen on free ports in temporary directories, unless
SETTLERD_TEST_BITCOIN_RPC_URL and SETTLERD_TEST_EVM_RPC_URL name nodes already running (tests/fixtures).
Each daemon is a real `python -m settlerd run --config ...` process with its own SQLite store, wallet seed,
EVM key, node key and API port; its secrets live in its own directory, handed over through
$CREDENTIALS_DIRECTORY as systemd's `LoadCredential=` would. Every daemon trusts the others as
counterparties and accepts the admin token `ADMIN_TOKEN`. Both chains are mined in the background at a
steady cadence that matches the block interval the daemons convert deadlines with. Everything is stopped on
exit, also on failure; the temporary directory (configs, logs, databases) is kept when the block failed, or
when SETTLERD_KEEP_TMP is set.

The tests in tests/e2e and `make demo` (regtest/demo.py) run on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any

import aiohttp
import aiomqtt
from eth_account import Account
from settlerd_evm.artifact import load_artifact
from settlerd_evm.deploy import deploy_contract
from web3 import AsyncHTTPProvider, AsyncWeb3

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script (regtest/demo.py): the chain fixtures live under tests/
    sys.path.insert(0, str(ROOT))

from settlerd.engine import NodeKey  # noqa: E402
from tests.fixtures.anvil import Anvil, run_anvil  # noqa: E402
from tests.fixtures.bitcoin_node import BitcoinNode, start_node  # noqa: E402

# The bearer token every daemon of a local network accepts with scope admin. Local chains only.
ADMIN_TOKEN = "localnet-admin-token"
# One Bitcoin block per second, and the daemons told so: a timer-driven miner, so the daemons count blocks
# as "steady" arrivals (within 10 %) instead of a proof-of-work chain's random ones, whose bounds at 1e-6
# would not fit a minutes-long test swap. A 30-minute leg is ~2,000 blocks, and confirmations arrive within
# seconds.
BTC_BLOCK_INTERVAL_S = 1.0
# anvil also mines one block per transaction; this cadence brings the confirmations after it.
EVM_BLOCK_INTERVAL_S = 1.0
# Two blocks is enough to exercise the finality logic and keeps a swap well under a minute.
FINALITY_DEPTH = 2
BTC_FUNDING_SATS = 5 * 100_000_000  # less than one early regtest coinbase (50 BTC)
EVM_FUNDING_WEI = 100 * 10**18
TOKEN_FUNDING_UNITS = 10**12
START_TIMEOUT_S = 60.0  # a daemon's start: imports, migrations, scanners catching up on a loaded machine
STOP_TIMEOUT_S = 20.0  # a graceful stop drains the API and the publisher first
FUNDING_TIMEOUT_S = 60.0
DEFAULT_WAIT_S = 120.0  # a swap settles in well under a minute here; leave room for a busy machine
POLL_S = 0.25
LOG_TAIL_LINES = 40
MQTT_HOST, MQTT_PORT = "127.0.0.1", 1883
# The broker sends retained messages right after SUBSCRIBE; this long without one means all were seen.
RETAINED_QUIET_S = 0.5

CONFIG_TEMPLATE = Template(
    """\
# Written by regtest/localnet.py: one daemon of a local network. Secrets are credential names, read from
# $$CREDENTIALS_DIRECTORY ($secrets_dir).
node_id = "$node_id"

[store]
url = "sqlite:///$db"

[api]
host = "127.0.0.1"
port = $api_port

[[api.tokens]]
name = "localnet-admin"
scope = "admin"
sha256 = "$admin_sha256"

[log]
level = "info"

[mqtt]
enabled = true
host = "127.0.0.1"
port = 1883

[policy]
# config/regtest.toml's policy: swaps of an hour, safety distances in minutes.
leg1_duration = "60m"
leg2_duration = "30m"
leg1_claim_margin = "15m"
min_leg2_duration = "10m"
min_leg2_window = "5m"
min_time_to_reveal = "2m"
claim_urgent_window = "5m"

[engine]
tick = "1s"
node_key_file = "node-key"

[chains.bitcoin]
adapter = "bitcoin"
finality_depth = $finality
rpc_url = "$btc_rpc_url"
rpc_user = "$btc_rpc_user"
rpc_password_file = "bitcoin-rpc-password"
network = "regtest"
seed_file = "bitcoin-seed"
birthday_height = $btc_birthday
block_interval = $btc_block_interval
# Local chain mined on a timer: never set "steady" for a real chain.
block_arrivals = "steady"
poll_interval = 0.5

[chains.evm]
adapter = "evm"
finality_depth = $finality
rpc_url = "$evm_rpc_url"
contract = "$htlc"
private_key_file = "evm-key"
chain_id = $chain_id
poll_interval_s = 0.5
# anvil mines every second: a block stamped past a timelock follows within seconds, not Ethereum's minute.
block_lag_s = 5
start_block = $evm_start_block
"""
)


class LocalnetError(RuntimeError):
    """The local network could not do what was asked; the message says what and where to look."""


class ApiFailure(LocalnetError):
    def __init__(self, daemon: str, method: str, path: str, status: int, body: Any) -> None:
        super().__init__(f"{daemon}: {method} {path} answered {status}: {body}")
        self.status = status
        self.body = body


@dataclass
class Daemon:
    """One settlerd process and everything it owns on disk."""

    name: str  # short, for messages ("desk-a")
    node_id: str  # unique per run: MQTT topics on the shared broker must not collide
    home: Path
    api_port: int
    node_key_hex: str = field(repr=False)
    evm_key: str = field(repr=False)
    process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def config(self) -> Path:
        return self.home / "settlerd.toml"

    @property
    def secrets(self) -> Path:
        return self.home / "secrets"

    @property
    def db(self) -> Path:
        return self.home / "settlerd.sqlite3"

    @property
    def log(self) -> Path:
        return self.home / "settlerd.log"

    @property
    def node_pubkey(self) -> str:
        return NodeKey.from_hex(self.node_key_hex).public_hex

    @property
    def evm_address(self) -> str:
        return str(Account.from_key(self.evm_key).address)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SETTLERD_")}
        env["CREDENTIALS_DIRECTORY"] = str(self.secrets)
        return env

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def btc(sats: int) -> dict[str, str]:
    return {"chain": "bitcoin", "asset": "BTC", "amount": str(sats)}


def eth(wei: int) -> dict[str, str]:
    return {"chain": "evm", "asset": "ETH", "amount": str(wei)}


def erc20(token: str, units: int) -> dict[str, str]:
    return {"chain": "evm", "asset": token, "amount": str(units)}


def _write_secret(directory: Path, name: str, text: str) -> None:
    path = directory / name
    path.write_text(text + "\n")
    path.chmod(0o600)  # settlerd refuses secrets every user can read


class Localnet:
    """The running chains and daemons, with the helpers tests and the demo drive them through."""

    def __init__(self, base: Path, btc_node: BitcoinNode, anvil: Anvil) -> None:
        self.base = base
        self.btc = btc_node
        self.anvil = anvil
        self.w3 = AsyncWeb3(AsyncHTTPProvider(anvil.rpc_url))
        self.htlc = ""
        self.token = ""  # the test ERC-20's address, when deployed
        self.daemons: list[Daemon] = []
        self.keep = False  # keep the temporary directory even after a clean exit
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        self._funder = Account.from_key(anvil.keys[0])
        self._evm_lock = asyncio.Lock()  # one nonce sequence for the dev key
        self._btc_lock = asyncio.Lock()  # the faucet's coin selection is not concurrency-safe
        self._miners: list[asyncio.Task[None]] = []

    # --- chains ---

    async def _evm_send(self, tx: dict[str, Any]) -> Any:
        async with self._evm_lock:
            tx = {
                "from": self._funder.address,
                "nonce": await self.w3.eth.get_transaction_count(self._funder.address, "pending"),
                "chainId": self.anvil.chain_id,
                "gas": 3_000_000,
                "maxFeePerGas": 100 * 10**9,
                "maxPriorityFeePerGas": 10**9,
                **tx,
            }
            signed = self._funder.sign_transaction(tx)
            txid = await self.w3.eth.send_raw_transaction(signed.raw_transaction)
            receipt = await self.w3.eth.wait_for_transaction_receipt(txid)
        if receipt["status"] != 1:
            raise LocalnetError(f"anvil: transaction {txid.hex()} reverted; see {self.anvil.workdir}")
        return receipt

    async def deploy(self, *, token: bool) -> None:
        self.htlc = await deploy_contract(self.anvil.rpc_url, self.anvil.keys[0])
        if token:
            art = load_artifact("test/TestTokens.json")["TestToken"]
            receipt = await self._evm_send({"data": art["bytecode"]})
            self.token = str(receipt["contractAddress"])

    async def token_balance(self, address: str) -> int:
        data = self._token().encode_abi("balanceOf", [address])
        raw = await self.w3.eth.call({"to": self.token, "data": data})
        return int.from_bytes(bytes(raw)[:32], "big")

    def _token(self) -> Any:
        if not self.token:
            raise LocalnetError("no test ERC-20 on this network: start it with localnet(..., token=True)")
        abi = load_artifact("test/TestTokens.json")["TestToken"]["abi"]
        return self.w3.eth.contract(address=AsyncWeb3.to_checksum_address(self.token), abi=abi)

    async def eth_balance(self, address: str) -> int:
        return int(await self.w3.eth.get_balance(AsyncWeb3.to_checksum_address(address)))

    async def heights(self) -> tuple[int, int]:
        """(Bitcoin tip, EVM tip)."""
        return int(await self.btc.rpc("getblockcount")), int(await self.w3.eth.block_number)

    def start_miners(self) -> None:
        """Mine both chains at their configured cadence until the network stops."""
        if self._miners:
            return

        async def mine_btc() -> None:
            while True:
                async with self._btc_lock:
                    await self.btc.mine(1)
                await asyncio.sleep(BTC_BLOCK_INTERVAL_S)

        async def mine_evm() -> None:
            while True:
                await self.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
                await asyncio.sleep(EVM_BLOCK_INTERVAL_S)

        self._miners = [
            asyncio.create_task(mine_btc(), name="localnet-btc-miner"),
            asyncio.create_task(mine_evm(), name="localnet-evm-miner"),
        ]

    async def stop_miners(self) -> None:
        """Stop the background miners (start_miners resumes them), for a test that mines block by block."""
        await self._stop_miners()

    async def mine_btc(self, blocks: int) -> None:
        """Mine ``blocks`` Bitcoin blocks now, in turn with the background miner."""
        if blocks > 0:
            async with self._btc_lock:  # two generatetoaddress calls at once would race
                await self.btc.mine(blocks)

    async def _stop_miners(self) -> None:
        for task in self._miners:
            task.cancel()
        for task in self._miners:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._miners = []

    def _check_miners(self) -> None:
        for task in self._miners:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise LocalnetError(f"{task.get_name()} stopped: {task.exception()}")

    # --- daemons ---

    def _new_daemon(self, name: str) -> Daemon:
        from tests.fixtures.bitcoin_node import free_port

        home = self.base / name
        home.mkdir(mode=0o700)
        return Daemon(
            name=name,
            node_id=f"{name}-{secrets.token_hex(3)}",
            home=home,
            api_port=free_port(),
            node_key_hex=secrets.token_hex(32),
            evm_key="0x" + secrets.token_hex(32),
        )

    async def add_daemons(self, names: Iterable[str]) -> list[Daemon]:
        """Configure, start and fund one daemon per name; each trusts every daemon of the network."""
        new = [self._new_daemon(name) for name in names]
        self.daemons.extend(new)
        btc_height, evm_height = await self.heights()
        for daemon in new:
            self._write_config(daemon, btc_height, evm_height)
        for daemon in self.daemons:  # earlier daemons learn the new counterparties on their next restart
            self._write_counterparties(daemon)
        await asyncio.gather(*(self._fund_evm(d) for d in new))
        await asyncio.gather(*(self.start(d) for d in new))
        await asyncio.gather(*(self._fund_btc(d) for d in new))
        return new

    def _write_config(self, daemon: Daemon, btc_height: int, evm_height: int) -> None:
        daemon.secrets.mkdir(mode=0o700)
        _write_secret(daemon.secrets, "node-key", daemon.node_key_hex)
        _write_secret(daemon.secrets, "bitcoin-seed", secrets.token_hex(32))
        _write_secret(daemon.secrets, "bitcoin-rpc-password", self.btc.rpc_password)
        _write_secret(daemon.secrets, "evm-key", daemon.evm_key)
        daemon.config.write_text(
            CONFIG_TEMPLATE.substitute(
                secrets_dir=daemon.secrets,
                node_id=daemon.node_id,
                db=daemon.db,
                api_port=daemon.api_port,
                admin_sha256=hashlib.sha256(ADMIN_TOKEN.encode()).hexdigest(),
                finality=FINALITY_DEPTH,
                btc_rpc_url=self.btc.rpc_url,
                btc_rpc_user=self.btc.rpc_user,
                btc_birthday=btc_height,
                btc_block_interval=BTC_BLOCK_INTERVAL_S,
                evm_rpc_url=self.anvil.rpc_url,
                htlc=self.htlc,
                chain_id=self.anvil.chain_id,
                evm_start_block=evm_height,
            )
        )

    def _write_counterparties(self, daemon: Daemon) -> None:
        text = daemon.config.read_text().split("\n# counterparties\n")[0]
        tables = "".join(
            f'\n[counterparties."{other.node_id}"]\nnode_key = "{other.node_pubkey}"\n'
            for other in self.daemons
            if other is not daemon
        )
        daemon.config.write_text(text + "\n# counterparties\n" + tables)

    async def _fund_evm(self, daemon: Daemon) -> None:
        await self._evm_send({"to": daemon.evm_address, "value": EVM_FUNDING_WEI, "gas": 21_000})
        if self.token:
            data = self._token().encode_abi("mint", [daemon.evm_address, TOKEN_FUNDING_UNITS])
            await self._evm_send({"to": self.token, "data": data})

    async def _fund_btc(self, daemon: Daemon) -> None:
        await self.fund_btc(daemon, BTC_FUNDING_SATS)

    async def fund_btc(self, daemon: Daemon, sats: int, outputs: int = 1) -> None:
        """Pay the daemon's own receive address ``outputs`` coins of ``sats`` each from the miner's
        coinbases; wait until it can spend them. Several coins let a daemon fund locks back to back,
        before the change of the previous one confirms."""
        wallet = (await self.wallets(daemon))["bitcoin"]
        wanted = int(wallet["spendable"]) + outputs * sats
        async with self._btc_lock:
            for _ in range(outputs):
                await self.btc.fund(wallet["address"], sats)
            await self.btc.mine(1)
        deadline = time.monotonic() + FUNDING_TIMEOUT_S
        while int((await self.wallets(daemon))["bitcoin"]["spendable"]) < wanted:
            self._check_running(daemon)
            if time.monotonic() > deadline:
                raise LocalnetError(
                    f"{daemon.name}: {outputs} x {sats} sat paid to {wallet['address']} not spendable "
                    f"after {FUNDING_TIMEOUT_S:.0f}s; log {daemon.log}:\n{daemon.log_tail()}"
                )
            await asyncio.sleep(POLL_S)

    async def start(self, daemon: Daemon) -> None:
        """Start (or restart) the daemon's process and wait until its API says it is ready."""
        if daemon.running:
            raise LocalnetError(f"{daemon.name} is already running (pid {daemon.process.pid})")  # type: ignore[union-attr]
        with daemon.log.open("ab") as log:
            daemon.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "settlerd", "run", "--config", str(daemon.config),
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=asyncio.subprocess.STDOUT,
                env=daemon.env(), cwd=daemon.home, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            self._check_running(daemon)
            with contextlib.suppress(aiohttp.ClientError, ApiFailure):
                if (await self.api(daemon, "GET", "/v1/ready"))["ready"]:
                    return
            if time.monotonic() > deadline:
                raise LocalnetError(
                    f"{daemon.name} not ready after {START_TIMEOUT_S:.0f}s; log {daemon.log}:\n"
                    + daemon.log_tail()
                )
            await asyncio.sleep(POLL_S)

    def _check_running(self, daemon: Daemon) -> None:
        if not daemon.running:
            code = daemon.process.returncode if daemon.process else None
            raise LocalnetError(
                f"{daemon.name} is not running (exit code {code}); log {daemon.log}:\n{daemon.log_tail()}"
            )

    async def kill(self, daemon: Daemon) -> None:
        """SIGKILL, as a crash or the OOM killer would: no clean shutdown, nothing flushed."""
        if daemon.process is None:
            return
        if daemon.process.returncode is None:
            daemon.process.send_signal(signal.SIGKILL)
        await daemon.process.wait()

    async def stop(self, daemon: Daemon) -> int | None:
        """SIGTERM and wait for a clean exit (killed if it takes longer than STOP_TIMEOUT_S)."""
        proc = daemon.process
        if proc is None:
            return None
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        return proc.returncode

    async def restart(self, daemon: Daemon) -> None:
        if daemon.running:
            await self.stop(daemon)
        await self.start(daemon)

    # --- the HTTP API ---

    async def api(self, daemon: Daemon, method: str, path: str, body: Any = None) -> Any:
        """One call with the admin token; the JSON answer, or ApiFailure for any non-2xx status."""
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        async with self._http.request(method, daemon.url + path, json=body, headers=headers) as response:
            answer = await response.json(content_type=None)
            if response.status >= 300:
                raise ApiFailure(daemon.name, method, path, response.status, answer)
            return answer

    async def wallets(self, daemon: Daemon) -> dict[str, dict[str, str]]:
        answer: dict[str, dict[str, str]] = (await self.api(daemon, "GET", "/v1/wallets"))["wallets"]
        return answer

    async def trade(
        self, initiator: Daemon, participant: Daemon, give: Mapping[str, str], get: Mapping[str, str]
    ) -> str:
        """Trade capture, three calls: offer (initiator), acceptance (participant), registration."""
        offer = await self.api(
            initiator,
            "POST",
            "/v1/swaps",
            {"counterparty": participant.node_id, "give": dict(give), "get": dict(get)},
        )
        acceptance = await self.api(participant, "POST", "/v1/offers/accept", offer)
        swap_id = str(offer["swap_id"])
        await self.api(initiator, "POST", f"/v1/swaps/{swap_id}/acceptance", acceptance)
        return swap_id

    async def swap(self, daemon: Daemon, swap_id: str) -> dict[str, Any]:
        document: dict[str, Any] = await self.api(daemon, "GET", f"/v1/swaps/{swap_id}")
        return document

    async def timeline(self, daemon: Daemon, swap_id: str) -> list[dict[str, Any]]:
        """Every event of the swap, oldest first, following the pages."""
        events: list[dict[str, Any]] = []
        after = 0
        while True:
            page = await self.api(daemon, "GET", f"/v1/swaps/{swap_id}/events?after={after}&limit=200")
            events.extend(page["events"])
            if not page["events"] or page.get("next_after") is None:
                return events
            after = page["next_after"]

    async def wait_status(
        self,
        daemon: Daemon,
        swap_id: str,
        *statuses: str,
        timeout: float = DEFAULT_WAIT_S,  # noqa: ASYNC109 (the failure carries the timeline)
    ) -> dict[str, Any]:
        """The swap's status document once its status is one of ``statuses``.

        Fails early when the swap ends in another terminal status, and on timeout; either way the
        message carries the swap's timeline and the daemon's log tail.
        """
        deadline = time.monotonic() + timeout
        while True:
            self._check_running(daemon)
            self._check_miners()
            document = await self.swap(daemon, swap_id)
            if document["status"] in statuses:
                return document
            if document["terminal"] or time.monotonic() > deadline:
                timeline = [(e["kind"], e["status"]) for e in await self.timeline(daemon, swap_id)]
                why = "ended" if document["terminal"] else f"still after {timeout:.0f}s"
                raise LocalnetError(
                    f"{daemon.name}: swap {swap_id} {why} {document['status']!r}, wanted {statuses}; "
                    f"timeline {timeline}; log {daemon.log}:\n{daemon.log_tail()}"
                )
            await asyncio.sleep(POLL_S)

    # --- the command line ---

    async def audit_verify(self, daemon: Daemon) -> tuple[int, str]:
        """`settlerd audit verify` on the daemon's store: (exit code, output)."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "settlerd", "audit", "verify", "--config", str(daemon.config),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=daemon.env(),
            cwd=daemon.home,
        )  # fmt: skip
        out, _ = await proc.communicate()
        assert proc.returncode is not None
        return proc.returncode, out.decode(errors="replace")

    # --- shutdown ---

    async def _clear_retained(self) -> None:
        """Empty the retained topics our daemons left on the shared broker (status documents, online flag):
        their node ids are never used again, so they would only pile up."""
        if not self.daemons:
            return
        topics: set[str] = set()
        try:
            async with aiomqtt.Client(
                MQTT_HOST, MQTT_PORT, identifier=f"localnet-{secrets.token_hex(4)}"
            ) as mqtt:
                for daemon in self.daemons:
                    await mqtt.subscribe(f"settlerd/v1/{daemon.node_id}/#", qos=1)
                messages = aiter(mqtt.messages)
                with contextlib.suppress(TimeoutError):
                    while True:
                        async with asyncio.timeout(RETAINED_QUIET_S):
                            message = await anext(messages)
                        if message.retain and message.payload:
                            topics.add(message.topic.value)
                for topic in sorted(topics):
                    await mqtt.publish(topic, b"", qos=1, retain=True)
        except aiomqtt.MqttError as exc:
            sys.stderr.write(f"localnet: retained messages left on the broker ({exc})\n")

    async def close(self) -> None:
        """Stop every daemon (gracefully, then by force), the miners and the HTTP clients."""
        await asyncio.gather(*(self.stop(d) for d in self.daemons), return_exceptions=True)
        for daemon in self.daemons:  # a stop that failed above must still not leave a process behind
            await self.kill(daemon)
        await self._stop_miners()
        await self._clear_retained()
        await self._http.close()
        await self.w3.provider.disconnect()


@contextlib.asynccontextmanager
async def localnet(
    names: Iterable[str] = ("desk-a", "desk-b"), *, token: bool = False
) -> AsyncIterator[Localnet]:
    """Chains, contracts and one funded daemon per name, mining in the background; all stopped on exit."""
    base = Path(tempfile.mkdtemp(prefix="settlerd-localnet-"))
    failed = True
    net: Localnet | None = None
    try:
        async with contextlib.AsyncExitStack() as stack:
            node = await start_node(base)
            stack.push_async_callback(node.stop)
            anvil = stack.enter_context(run_anvil())
            net = Localnet(base, node, anvil)
            stack.push_async_callback(net.close)
            await net.btc.mine(101)  # mature coinbases for the faucet
            await net.deploy(token=token)
            net.start_miners()
            await net.add_daemons(names)
            yield net
            failed = False
    finally:
        keep = failed or (net is not None and net.keep) or bool(os.environ.get("SETTLERD_KEEP_TMP"))
        if keep:
            sys.stderr.write(f"\nlocalnet: configs, logs and databases kept in {base}\n")
        else:
            shutil.rmtree(base, ignore_errors=True)


def describe(net: Localnet) -> str:
    """A few lines for a human: where everything listens."""
    lines = [
        f"Bitcoin ({net.btc.kind}, regtest): {net.btc.rpc_url}",
        f"EVM (anvil, chain id {net.anvil.chain_id}): {net.anvil.rpc_url}, HTLC contract {net.htlc}",
    ]
    if net.token:
        lines.append(f"test ERC-20: {net.token}")
    lines += [f"{d.name}: node {d.node_id}, API {d.url}, home {d.home}" for d in net.daemons]
    return "\n".join(lines)


__all__ = [
    "ADMIN_TOKEN",
    "ApiFailure",
    "Daemon",
    "Localnet",
    "LocalnetError",
    "btc",
    "describe",
    "erc20",
    "eth",
    "localnet",
]
