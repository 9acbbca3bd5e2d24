"""Building, starting and closing the configured chain adapters."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from settlerd import adapters
from settlerd.adapters import AdapterConfigError, AdapterStore, ChainAdapter
from settlerd.config import Settings
from settlerd.config.credentials import CredentialError, resolve

log = logging.getLogger("settlerd.chains")


class ChainStartError(Exception):
    """A chain adapter could not be built or started; the message names the chain and the reason.

    ``bad_config`` when the settings are at fault (the operator must change them; restarting cannot help).
    """

    def __init__(self, message: str, *, bad_config: bool = False) -> None:
        super().__init__(message)
        self.bad_config = bad_config


def adapter_settings(settings: Settings, name: str) -> dict[str, Any]:
    """What the adapter of chain ``name`` is given: its table, with its name and ``*_file`` paths resolved."""
    chain = settings.chains[name]
    raw: dict[str, Any] = dict(chain.model_extra or {})
    for key, value in list(raw.items()):
        if key.endswith("_file") and isinstance(value, str):
            raw[key] = str(resolve(f"chains.{name}.{key}", value))
    raw["name"] = name
    raw["finality_depth"] = chain.finality_depth
    return raw


def build(settings: Settings, store: AdapterStore) -> dict[str, ChainAdapter]:
    built: dict[str, ChainAdapter] = {}
    for name, chain in settings.chains.items():
        info = adapters.find(chain.adapter)
        if info.factory is None:
            raise ChainStartError(f"chain {name}: adapter {chain.adapter!r} cannot be started (no factory)")
        mismatch = info.version_problem()
        if mismatch is not None:
            raise ChainStartError(f"chain {name}: {mismatch}", bad_config=True)
        try:
            built[name] = info.factory(adapter_settings(settings, name), store)
        except AdapterConfigError as exc:
            raise ChainStartError(f"chain {name}: {exc}", bad_config=True) from None
        except (CredentialError, ValueError, OSError) as exc:
            raise ChainStartError(f"chain {name}: {exc}") from None
    return built


@asynccontextmanager
async def started(built: dict[str, ChainAdapter]) -> AsyncIterator[dict[str, ChainAdapter]]:
    """The adapters, started (node checked, scanner state resumed); every one closed on exit.

    Start them after the engine restored its swaps and watched their legs: a scanner that catches up
    before it knows what to watch would read past a lock made while the daemon was down. Closing is
    complete: an adapter whose start failed is closed too, and one failing close stops no other."""
    running: list[tuple[str, ChainAdapter]] = []
    try:
        for name, adapter in built.items():
            # A start that failed halfway may hold connections already: it is closed like the others.
            running.append((name, adapter))
            try:
                await adapter.start()
            except AdapterConfigError as exc:
                raise ChainStartError(f"chain {name}: {exc}", bad_config=True) from None
            except Exception as exc:  # any failure to reach or check a node stops start-up with its reason
                raise ChainStartError(f"chain {name}: {exc}") from None
        yield built
    finally:
        for name, adapter in reversed(running):
            await _close(name, adapter)


async def _close(name: str, adapter: ChainAdapter) -> None:
    """Close one adapter; a failure is logged in one line, and the next adapter is still closed."""
    try:
        await adapter.close()
    except Exception as exc:
        log.error("chain %s: closing the adapter failed: %s", name, exc)
