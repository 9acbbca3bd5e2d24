"""Throughput and scale: the daemon's own cost beside the floors of the parts it is built on.

Run from the repository root: ``make bench`` (or ``.venv/bin/python bench/scale.py``). Not a test: it
prints one table and writes the same figures as JSON to ``bench/results/``. ``BENCH_MAX_SWAPS`` caps
the live-swap curve (default 100,000) for a quick run.

What each row measures:
- floors: a durable SQLite commit (raw sqlite3, WAL, synchronous FULL), one node-key signature, and one
  JSON-RPC round trip to the local regtest node and to anvil;
- capture: daemon CPU per offer and per acceptance (two desks in this process on in-memory fake chains,
  so the chains cost nothing), and offers per second, at concurrency 1, 10 and 50;
- the live-swap curve: N accepted swaps, each waiting for leg 1, made by cloning one captured swap's
  rows under new ids and hashlocks (the clones' event hashes are not re-chained: restore does not
  check them, ``settlerd audit verify`` would); for each N the restart to ready (restore), a tick, the
  longest the event loop waited during either (a 1 ms probe), a swap list page of 200, memory per swap,
  and the Bitcoin scanner's CPU and bytes written per block with N HTLCs watched;
- status latency: an event committed (and the engine's wakeup set) to its arrival on an SSE stream.
Every loop is bounded by its own count.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import json
import os
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "regtest"))  # the local chains' helpers
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
from aiohttp import web
from settlerd_bitcoin.htlc import Htlc
from settlerd_bitcoin.keys import KeyChain
from settlerd_bitcoin.scanner import Scanner
from settlerd_bitcoin.wallet import Wallet

from settlerd.adapters import HtlcTerms
from settlerd.api.app import make_app
from settlerd.api.swaps import status_document
from settlerd.engine import Capture, CaptureSettings, Engine, LegRequest, NodeKey, OfferRequest
from settlerd.store import Store
from settlerd.swap import Policy
from settlerd.testing import FakeChain, FakeChainAdapter
from tests.fixtures.anvil import run_anvil
from tests.fixtures.bitcoin_node import start_node
from tests.integration.api.conftest import TOKENS, make_settings

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
MAX_SWAPS = int(os.environ.get("BENCH_MAX_SWAPS", "100000"))
CURVE = [n for n in (10, 100, 1_000, 10_000, 100_000) if n <= MAX_SWAPS]
CONCURRENCY = (1, 10, 50)
REQUESTS = 100  # offers (and acceptances) per concurrency level
SAMPLES = 200  # floor samples
LIST_SAMPLES = 50
LATENCY_SAMPLES = 50
BLOCK_TXS = 200  # transactions in each synthetic block the scanner reads
POLICY = Policy(
    leg1_claim_margin=timedelta(minutes=15),
    min_leg2_duration=timedelta(minutes=10),
    min_leg2_window=timedelta(minutes=5),
    min_time_to_reveal=timedelta(minutes=2),
    claim_urgent_window=timedelta(minutes=5),
)


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class LagProbe:
    """The longest the event loop kept a 1 ms sleeper waiting past its time."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + 0.001
            await asyncio.sleep(0.001)
            self.worst = max(self.worst, loop.time() - due)

    async def __aenter__(self) -> LagProbe:
        self._task = asyncio.create_task(self._run(), name="lag-probe")
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


# floors


def sqlite_commit_floor(workdir: Path) -> float:
    db = sqlite3.connect(workdir / "floor.sqlite3", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
    times = []
    for i in range(SAMPLES):
        started = time.perf_counter()
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO t (body) VALUES (?)", (f"row {i}" * 20,))
        db.execute("COMMIT")
        times.append(time.perf_counter() - started)
    db.close()
    return statistics.median(times)


def signature_floor() -> float:
    key = NodeKey(secrets.token_bytes(32))
    document = {"swap_id": "x" * 32, "terms": {"amount": "1"}}
    started = time.perf_counter()
    for _ in range(SAMPLES):
        key.sign(document)
    return (time.perf_counter() - started) / SAMPLES


async def rpc_floor(call: Callable[[], Awaitable[object]]) -> float:
    await call()
    times = []
    for _ in range(SAMPLES):
        started = time.perf_counter()
        await call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


async def node_floors(workdir: Path) -> dict[str, float]:
    floors: dict[str, float] = {}
    node = await start_node(workdir)
    try:
        floors["bitcoind_rpc_ms"] = ms(await rpc_floor(lambda: node.rpc("getblockcount")))
    finally:
        await node.stop()
    with run_anvil() as anvil:
        async with aiohttp.ClientSession() as session:

            async def block_number() -> object:
                body = {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}
                async with session.post(anvil.rpc_url, json=body) as reply:
                    return await reply.json()

            floors["anvil_rpc_ms"] = ms(await rpc_floor(block_number))
    return floors


# desks on fake chains


class Desk:
    def __init__(self, name: str, store: Store, engine: Engine, capture: Capture) -> None:
        self.name, self.store, self.engine, self.capture = name, store, engine, capture


def fake_chains() -> dict[str, FakeChain]:
    interval = timedelta(seconds=30)
    return {
        "eth": FakeChain("eth", native_asset="ETH", block_interval=interval),
        "usd": FakeChain("usd", native_asset="GAS", tokens=["USD"], block_interval=interval),
    }


async def open_desk(name: str, db: Path, chains: dict[str, FakeChain], clock: Callable[[], datetime]) -> Desk:
    store = await Store.open(str(db))
    adapters = {}
    for chain_name, chain in chains.items():
        account = chain.account(f"{name}/{chain_name}")
        for asset in chain.assets:
            chain.fund(account, asset, 10**30)
        adapters[chain_name] = FakeChainAdapter(chain, account, store, finality_depth=2)
    for adapter in adapters.values():
        await adapter.start()
    engine = Engine(store, adapters, clock=clock)
    settings = CaptureSettings(
        node_id=name,
        leg1_duration=timedelta(minutes=60),
        leg2_duration=timedelta(minutes=30),
        policy=POLICY,
        finality_depth={"eth": 2, "usd": 2},
        counterparty_keys={},
        allow_unknown_counterparties=True,
    )
    return Desk(name, store, engine, Capture(engine, NodeKey(secrets.token_bytes(32)), settings))


def offer_to(b: Desk) -> OfferRequest:
    return OfferRequest(b.name, LegRequest("eth", "ETH", 10**17), LegRequest("usd", "USD", 5_000))


async def concurrently(count: int, concurrency: int, job: Callable[[int], Awaitable[Any]]) -> list[Any]:
    results: list[Any] = [None] * count
    queue = iter(range(count))

    async def worker() -> None:
        for i in queue:
            results[i] = await job(i)

    async with asyncio.TaskGroup() as tasks:
        for _ in range(concurrency):
            tasks.create_task(worker())
    return results


async def capture_figures(workdir: Path) -> list[dict[str, Any]]:
    chains = fake_chains()
    now = chains["eth"].genesis_time
    rows = []
    for concurrency in CONCURRENCY:
        a = await open_desk("desk-a", workdir / f"a{concurrency}.sqlite3", chains, lambda: now)
        b = await open_desk("desk-b", workdir / f"b{concurrency}.sqlite3", chains, lambda: now)
        cpu, wall = time.process_time(), time.perf_counter()
        offers = await concurrently(
            REQUESTS, concurrency, lambda _, a=a, b=b: a.capture.create_offer(offer_to(b))
        )
        offer_cpu, offer_wall = time.process_time() - cpu, time.perf_counter() - wall
        cpu = time.process_time()
        await concurrently(REQUESTS, concurrency, lambda i, b=b, o=offers: b.capture.accept_offer(o[i]))
        accept_cpu = time.process_time() - cpu
        rows.append(
            {
                "concurrency": concurrency,
                "offer_cpu_ms": ms(offer_cpu / REQUESTS),
                "accept_cpu_ms": ms(accept_cpu / REQUESTS),
                "offers_per_s": round(REQUESTS / offer_wall, 1),
            }
        )
        for desk in (a, b):
            await desk.store.close()
    return rows


# the live-swap curve


async def template(workdir: Path) -> tuple[Path, datetime]:
    """One accepted swap on the participant's side, waiting for leg 1: the row set every clone copies."""
    chains = fake_chains()
    now = chains["eth"].genesis_time
    a = await open_desk("desk-a", workdir / "template-a.sqlite3", chains, lambda: now)
    b = await open_desk("desk-b", workdir / "template-b.sqlite3", chains, lambda: now)
    await b.capture.accept_offer(await a.capture.create_offer(offer_to(b)))
    await a.store.close()
    await b.store.close()
    return workdir / "template-b.sqlite3", now


def clone(source: Path, target: Path, count: int) -> None:
    """``count`` copies of the single swap in ``source``, each under its own id and hashlock."""
    db = sqlite3.connect(source)
    swap = db.execute("SELECT * FROM swaps").fetchone()
    legs = db.execute("SELECT * FROM legs").fetchall()
    events = db.execute("SELECT * FROM events ORDER BY seq").fetchall()
    hashlock = db.execute("SELECT hashlock FROM legs").fetchone()[0]
    db.close()
    target.write_bytes(source.read_bytes())
    target.chmod(0o600)  # it holds (cloned) preimages, as the daemon's own database does
    db = sqlite3.connect(target)
    db.execute("DELETE FROM events")
    db.execute("DELETE FROM legs")
    db.execute("DELETE FROM swaps")
    swap_id = swap[0]
    seq = 0
    for n in range(count):
        new_id = f"{n:032x}"
        new_lock = hashlib.sha256(n.to_bytes(8, "big")).hexdigest()

        def moved(value: object, new_id: str = new_id, new_lock: str = new_lock) -> object:
            if isinstance(value, str):
                return value.replace(swap_id, new_id).replace(hashlock, new_lock)
            return value

        db.execute(f"INSERT INTO swaps VALUES ({','.join('?' * len(swap))})", [moved(v) for v in swap])
        for leg in legs:
            db.execute(f"INSERT INTO legs VALUES ({','.join('?' * len(leg))})", [moved(v) for v in leg])
        for event in events:
            seq += 1
            row = [moved(v) for v in event]
            row[0] = seq
            db.execute(f"INSERT INTO events VALUES ({','.join('?' * len(row))})", row)
    db.execute("UPDATE event_chain_head SET seq = ?", (seq,))
    db.commit()
    db.close()


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def curve_point(db: Path, count: int, now: datetime) -> dict[str, Any]:
    chains = fake_chains()
    gc.collect()
    before = rss_bytes()
    desk = await open_desk("desk-b", db, chains, lambda: now + timedelta(seconds=1))
    async with LagProbe() as restore_lag:
        started = time.perf_counter()
        restored = await desk.engine.resume()
        restore_s = time.perf_counter() - started
    assert restored == count, (restored, count)
    gc.collect()
    per_swap = (rss_bytes() - before) / count
    async with LagProbe() as tick_lag:
        started = time.perf_counter()
        await desk.engine.tick()
        tick_s = time.perf_counter() - started
    lists = []
    for _ in range(LIST_SAMPLES):
        started = time.perf_counter()
        page = await desk.store.list_swaps(limit=201)
        legs = await desk.store.legs_of_many([s.id for s in page[:200]])
        json.dumps([status_document(s, legs[s.id]) for s in page[:200]])
        lists.append(time.perf_counter() - started)
    await desk.store.close()
    return {
        "swaps": count,
        "restart_to_ready_s": round(restore_s, 3),
        "tick_ms": ms(tick_s),
        "loop_lag_max_ms": ms(max(restore_lag.worst, tick_lag.worst)),
        "list_200_p99_ms": ms(p(lists, 0.99)),
        "memory_per_swap_kb": round(per_swap / 1024, 2),
    }


KEYS = KeyChain(bytes(range(32)), 1)


def block(height: int, txs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "height": height,
        "hash": f"{height:064x}",
        "previousblockhash": f"{height - 1:064x}",
        "time": 1_700_000_000 + height * 600,
        "tx": [{"txid": f"{10**6 + height:064x}", "vin": [{"coinbase": "00"}], "vout": []}, *txs],
    }


def payment(n: int, spk: bytes) -> dict[str, Any]:
    output = {"n": 0, "value": "0.0007", "scriptPubKey": {"hex": spk.hex()}}
    return {"txid": f"{n:064x}", "vin": [], "vout": [output]}


class CountingStore:
    """The store, counting what each scanner save writes."""

    def __init__(self, store: Store) -> None:
        self.store, self.written = store, 0

    async def put_cursors(self, chain: str, changes: dict[str, str | None]) -> None:
        self.written = sum(len(k) + len(v or "") for k, v in changes.items())
        await self.store.put_cursors(chain, changes)


async def scanner_point(workdir: Path, count: int) -> dict[str, Any]:
    store = await Store.open(str(workdir / f"scanner{count}.sqlite3"))
    counting = CountingStore(store)
    scanner = Scanner("bitcoin", None, counting, Wallet(KEYS), lambda e: None, birthday=100, finality_depth=3)  # type: ignore[arg-type]
    scanner.tip = 99
    claim, refund = KEYS.swap_key(b"\1" * 32).pubkey, KEYS.wallet_key(0, 9).pubkey
    htlcs = []
    for n in range(count):
        hashlock = hashlib.sha256(n.to_bytes(8, "big")).digest()
        terms = HtlcTerms("bitcoin", "BTC", 70_000, hashlock, claim.hex(), refund.hex(), 500)
        htlcs.append(scanner.watch(terms))
    await scanner.save()
    cpu_times, written = [], []
    for height in range(100, 110):
        match: Htlc = htlcs[height % count]
        txs = [payment(height * 10_000 + i, bytes(34)) for i in range(BLOCK_TXS - 1)]
        txs.append(payment(height * 10_000 + BLOCK_TXS, match.script_pubkey))
        cpu = time.process_time()
        scanner._apply(block(height, txs))
        await scanner.save()
        cpu_times.append(time.process_time() - cpu)
        written.append(counting.written)
    started = time.perf_counter()
    for htlc in htlcs:
        scanner.unwatch(htlc.hashlock)
    unwatch_all = time.perf_counter() - started
    await store.close()
    return {
        "block_cpu_ms": ms(statistics.median(cpu_times)),
        "block_bytes_written": int(statistics.median(written)),
        "unwatch_us": round(unwatch_all / count * 1e6, 2),
    }


# status latency


async def sse_latency(workdir: Path) -> dict[str, float]:
    store = await Store.open(str(workdir / "sse.sqlite3"))
    async with store.write() as tx:
        await tx.insert_swap("s1", role="initiator", status="offered", counterparty="b", terms={})
        await tx.append_event("s1", "created", "offered", {})
    wakeup = asyncio.Event()
    app = make_app(make_settings(workdir / "sse.sqlite3"), store, log_changed=wakeup)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    headers = {"Authorization": f"Bearer {TOKENS['read']}", "Accept": "text/event-stream"}
    latencies = []
    url = f"http://{host}:{port}/v1/swaps/s1/events"
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as reply:
        lines = aiter(reply.content)
        await _next_event(lines)  # the backlog
        for _ in range(LATENCY_SAMPLES):
            started = time.perf_counter()
            async with store.write() as tx:
                await tx.append_event("s1", "tick", "offered", {})
            wakeup.set()  # what the engine does after every logged change
            await _next_event(lines)
            latencies.append(time.perf_counter() - started)
    await runner.cleanup()
    await store.close()
    return {"commit_to_sse_p50_ms": ms(p(latencies, 0.5)), "commit_to_sse_p99_ms": ms(p(latencies, 0.99))}


async def _next_event(lines: AsyncIterator[bytes]) -> None:
    for _ in range(1000):
        if (await asyncio.wait_for(anext(lines), 10)).startswith(b"id: "):
            return
    raise RuntimeError("no event on the stream")


# the table


def ratio(value: float, floor: float) -> str:
    """The figure over its floor (for a rate, the share of the floor's rate reached)."""
    return f"{value / floor:,.{1 if value >= floor else 2}f}x" if floor else ""


def row(measure: str, figure: str, floor: str = "", ratio_text: str = "") -> str:
    return f"| {measure} | {figure} | {floor} | {ratio_text} |"


def table(results: dict[str, Any]) -> str:
    floors = results["floors"]
    commit, sign = floors["sqlite_commit_ms"], floors["signature_ms"]
    capture = commit + sign  # what one request must do: sign a document, commit it durably
    out = ["| measure | figure | floor | ratio |", "|---|---|---|---|"]
    out.append(row("SQLite durable commit", f"{commit} ms"))
    out.append(row("node-key signature", f"{sign} ms"))
    for name in ("bitcoind_rpc_ms", "anvil_rpc_ms"):
        if name in floors:
            node = name.removesuffix("_rpc_ms")
            out.append(row(f"{node} JSON-RPC round trip", f"{floors[name]} ms"))
    for point in results["capture"]:
        c, offer, accept = point["concurrency"], point["offer_cpu_ms"], point["accept_cpu_ms"]
        out.append(
            row(f"offer CPU, concurrency {c}", f"{offer} ms", f"{capture:.3f} ms", ratio(offer, capture))
        )
        out.append(
            row(f"accept CPU, concurrency {c}", f"{accept} ms", f"{capture:.3f} ms", ratio(accept, capture))
        )
        rate, best = point["offers_per_s"], 1000 / capture
        out.append(row(f"offers/s, concurrency {c}", f"{rate}", f"{best:,.0f}", ratio(rate, best)))
    for point in results["curve"]:
        n = f"{point['swaps']:,}"
        out.append(row(f"restart to ready, {n} live", f"{point['restart_to_ready_s']} s"))
        out.append(row(f"tick, {n} live", f"{point['tick_ms']} ms"))
        out.append(row(f"longest loop stall (restore, tick), {n} live", f"{point['loop_lag_max_ms']} ms"))
        out.append(row(f"list of 200, p99, {n} live", f"{point['list_200_p99_ms']} ms"))
        out.append(row(f"memory per live swap, {n} live", f"{point['memory_per_swap_kb']} KiB"))
        out.append(
            row(f"scanner CPU per block ({BLOCK_TXS} txs), {n} watched", f"{point['block_cpu_ms']} ms")
        )
        out.append(row(f"scanner bytes written per block, {n} watched", f"{point['block_bytes_written']:,}"))
        out.append(row(f"unwatch, {n} watched", f"{point['unwatch_us']} µs"))
    p50, p99 = results["latency"]["commit_to_sse_p50_ms"], results["latency"]["commit_to_sse_p99_ms"]
    out.append(row("commit → SSE, p50 / p99", f"{p50} / {p99} ms", f"{commit} ms", ratio(p50, commit)))
    out.append(row("block → MQTT", "not measured by this suite"))
    return "\n".join(out)


async def main() -> None:
    with tempfile.TemporaryDirectory(prefix="settlerd-bench-") as tmp:
        workdir = Path(tmp)
        floors: dict[str, float] = {
            "sqlite_commit_ms": ms(sqlite_commit_floor(workdir)),
            "signature_ms": ms(signature_floor()),
        }
        floors.update(await node_floors(workdir))
        results: dict[str, Any] = {"floors": floors, "capture": await capture_figures(workdir), "curve": []}
        source, now = await template(workdir)
        for count in CURVE:
            db = workdir / f"curve{count}.sqlite3"
            clone(source, db, count)
            point = await curve_point(db, count, now)
            point.update(await scanner_point(workdir, count))
            results["curve"].append(point)
            print(f"  {count:,} live swaps measured", file=sys.stderr)
        results["latency"] = await sse_latency(workdir)
    results["at"] = datetime.now(UTC).isoformat(timespec="seconds")
    results["cpus"] = os.cpu_count()
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"scale-{results['at'].replace(':', '')}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(f"\nwritten to {path.relative_to(ROOT)}")


if __name__ == "__main__":
    asyncio.run(main())
