"""The served OpenAPI document is exact: schemathesis, every check, against a real daemon with trading on.

Coverage, fuzzing and stateful phases, bounded by examples and time. Whatever the document calls valid
must not get a 400, whatever it calls invalid must not get a 2xx, and every reply must be documented.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from settlerd.store import Store

from .daemon import running_daemon
from .swaps import HAPPY_PATH, advance, create_swap

MAX_EXAMPLES = 15  # per operation and phase
MAX_TIME_S = 60
RUN_TIMEOUT_S = 240.0  # the whole run, schema loading and shrinking included, on a loaded machine
# 422 is the daemon refusing well-formed terms: a signature that does not verify, a chain or counterparty
# not configured here. No schema can know those, so valid data may get it; the rest are schemathesis' own.
CONFIG = """\
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "422", "429"]
"""


async def test_schemathesis_finds_nothing(tmp_path: Path) -> None:
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    async with running_daemon(tmp_path, "fuzzed", trading=True) as daemon:
        store = await Store.open(f"sqlite:///{daemon.db}")
        try:
            for name in ("offered-swap", "ended-swap"):
                await create_swap(store, name)
            for step in range(len(HAPPY_PATH)):
                await advance(store, "ended-swap", step)
        finally:
            await store.close()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "--no-color",
            "run", daemon.url + "/v1/openapi.json",
            "--checks", "all", "--phases", "examples,coverage,fuzzing,stateful",
            "--max-examples", str(MAX_EXAMPLES), "--max-time", str(MAX_TIME_S),
            "--header", f"Authorization: Bearer {daemon.trade_token}",
            "--seed", "13", "--workers", "1", "--request-timeout", "10",
            "--suppress-health-check", "all",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            cwd=tmp_path,  # where it keeps its own state (.schemathesis/)
        )  # fmt: skip
        out, _ = await asyncio.wait_for(proc.communicate(), RUN_TIMEOUT_S)
        report = out.decode(errors="replace")
        assert proc.returncode == 0, report
        assert "Traceback" not in daemon.log(), daemon.log()
