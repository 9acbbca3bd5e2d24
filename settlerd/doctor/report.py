"""Running every check and printing one line each; the exit code says whether anything failed."""

from __future__ import annotations

import asyncio
import sys
from typing import TextIO

from settlerd.adapters import Check, CheckStatus
from settlerd.config import Settings

from .broker import diagnose_broker
from .chains import diagnose_chain
from .store import CursorReader, diagnose_store


def _api(settings: Settings) -> Check:
    tokens = settings.api.tokens
    if not tokens:
        return Check(
            "api.tokens",
            CheckStatus.WARN,
            "none configured: every route but health and the OpenAPI document answers 401",
            "add [[api.tokens]] tables (name, scope, sha256) or set api.tokens_file",
        )
    scopes = ", ".join(sorted({t.scope for t in tokens}))
    return Check("api.tokens", CheckStatus.OK, f"{len(tokens)} configured (scopes: {scopes})")


async def diagnose(settings: Settings) -> list[Check]:
    """Every check, in the order they are printed: store, chains in configuration order, broker, API."""
    found = await diagnose_store(settings.store.url)
    try:
        reader = CursorReader(found.engine)
        async with asyncio.TaskGroup() as tg:
            chains = [
                tg.create_task(diagnose_chain(settings, name, reader), name=f"doctor-{name}")
                for name in settings.chains
            ]
            broker = tg.create_task(diagnose_broker(settings.mqtt, settings.node_id), name="doctor-mqtt")
    finally:
        if found.engine is not None:
            await found.engine.dispose()
    checks = list(found.checks)
    for task in chains:
        checks += task.result()
    return [*checks, broker.result(), _api(settings)]


def format_check(check: Check) -> str:
    line = f"{check.status.value:<4}  {check.name}: {check.detail}"
    return f"{line} -> fix: {check.fix}" if check.fix and check.status is not CheckStatus.OK else line


def run(settings: Settings, out: TextIO = sys.stdout) -> int:
    checks = asyncio.run(diagnose(settings))
    for check in checks:
        print(format_check(check), file=out)
    failed = sum(c.status is CheckStatus.FAIL for c in checks)
    warned = sum(c.status is CheckStatus.WARN for c in checks)
    print(f"{len(checks)} checks: {failed} failed, {warned} warnings", file=out)
    return 1 if failed else 0
