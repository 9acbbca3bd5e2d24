"""`settlerd swap show|list|watch` against a real daemon process and its API."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

from settlerd.store import Store

from .daemon import Daemon, running_daemon
from .swaps import HAPPY_PATH, advance, create_swap


async def test_show_list_and_watch(tmp_path: Path) -> None:
    async with running_daemon(tmp_path, "cli-test") as daemon:
        store = await Store.open(f"sqlite:///{daemon.db}")
        try:
            await _show_and_list(daemon, store)
            await _watch_to_the_end(daemon, store)
        finally:
            await store.close()
        assert await daemon.stop() == 0


async def _show_and_list(daemon: Daemon, store: Store) -> None:
    for name in ("cli-a", "cli-b", "cli-c"):
        await create_swap(store, name, counterparty="desk-x" if name == "cli-b" else "desk-y")
    for step in range(5):
        await advance(store, "cli-a", step)

    code, out, err = await daemon.cli("show", "cli-a")
    assert code == 0, err
    assert "status:       leg2_locked" in out
    assert "60000000000000000000001" in out and "bcrt1qhtlc" in out and "aa" * 32 in out
    code, out, _ = await daemon.cli("show", "cli-a", "--json")
    assert json.loads(out)["legs"][1]["amount"] == "60000000000000000000001"

    code, out, _ = await daemon.cli("list", "--json", "--all", "--limit", "2")
    assert code == 0 and [d["id"] for d in json.loads(out)] == ["cli-a", "cli-b", "cli-c"]
    code, out, _ = await daemon.cli("list", "--counterparty", "desk-y", "--status", "offered")
    table = out.splitlines()
    assert table[0].split()[:3] == ["ID", "STATUS", "ROLE"]
    assert [row.split()[0] for row in table[1:]] == ["cli-c"]

    code, _, err = await daemon.cli("show", "nope")
    assert code == 1 and "404 no swap nope (id)" in err
    code, _, err = await daemon.cli("list", "--status", "done")
    assert code == 1 and "unknown status 'done'" in err and "(status)" in err
    bad = daemon.read_token_file.with_name("bad.token")
    bad.write_text("not-a-token\n")
    code, _, err = await daemon.cli("list", token_file=bad)
    assert code == 1 and "401 the bearer token is not valid" in err


async def _watch_to_the_end(daemon: Daemon, store: Store) -> None:
    await create_swap(store, "watched")
    first = await advance(store, "watched", 0)
    watch = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "settlerd", "swap", "watch", "watched", "--json",
        "--after", str(first.seq),
        env={"SETTLERD_API_URL": daemon.url, "SETTLERD_API_TOKEN": daemon.read_token_file.read_text().strip(),
             "PATH": "/usr/bin:/bin"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert watch.stdout is not None
    written = []
    for step in range(1, len(HAPPY_PATH)):
        written.append(await advance(store, "watched", step))
        if step == 1:  # the stream is open once the first live event arrives
            line = await asyncio.wait_for(watch.stdout.readline(), 30)
            assert json.loads(line)["seq"] == written[0].seq
    out, err = await asyncio.wait_for(watch.communicate(), 30)
    assert watch.returncode == 0, err.decode()
    printed = [json.loads(line) for line in out.decode().splitlines()]
    assert [e["seq"] for e in printed] == [e.seq for e in written[1:]]
    assert printed[-1]["status"] == "completed"

    # An ended swap: watch prints its timeline and returns at once; the table form for people.
    code, out, _ = await daemon.cli("watch", "watched")
    assert code == 0 and out.splitlines()[-1].split()[-1] == "completed"
    assert len(out.splitlines()) == len(HAPPY_PATH) + 1


async def test_open_event_streams_do_not_hold_up_a_stop(tmp_path: Path) -> None:
    async with running_daemon(tmp_path, "cli-stop") as daemon:
        store = await Store.open(f"sqlite:///{daemon.db}")
        try:
            await create_swap(store, "held")
        finally:
            await store.close()
        watch = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "settlerd", "swap", "watch", "held", "--api", daemon.url,
            "--token-file", str(daemon.read_token_file),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert watch.stdout is not None
        await asyncio.wait_for(watch.stdout.readline(), 30)  # the creation event: the stream is open
        assert await daemon.stop(signal.SIGTERM) == 0
        watch.kill()
        await watch.wait()
        assert "stopped cleanly" in daemon.log()
