"""Starting the chain adapters: every adapter that was asked to start is closed, whatever failed."""

from __future__ import annotations

from typing import Any

import pytest

from settlerd.chains import ChainStartError, started


class Recording:
    """Just the lifecycle of an adapter: what was started and closed, and what fails."""

    def __init__(
        self, name: str, log: list[str], *, fail_start: bool = False, fail_close: bool = False
    ) -> None:
        self.name, self.log = name, log
        self.fail_start, self.fail_close = fail_start, fail_close

    async def start(self) -> None:
        self.log.append(f"start {self.name}")
        if self.fail_start:
            raise OSError("database is full")

    async def close(self) -> None:
        self.log.append(f"close {self.name}")
        if self.fail_close:
            raise RuntimeError("already gone")


async def test_an_adapter_whose_start_fails_is_closed_with_those_before_it() -> None:
    log: list[str] = []
    built: dict[str, Any] = {"a": Recording("a", log), "b": Recording("b", log, fail_start=True)}
    built["c"] = Recording("c", log)
    with pytest.raises(ChainStartError, match="chain b: database is full"):
        async with started(built):
            pass
    assert log == ["start a", "start b", "close b", "close a"]


async def test_one_failing_close_does_not_leave_the_others_open(caplog: pytest.LogCaptureFixture) -> None:
    log: list[str] = []
    built: dict[str, Any] = {"a": Recording("a", log), "b": Recording("b", log, fail_close=True)}
    async with started(built):
        pass
    assert log == ["start a", "start b", "close b", "close a"]
    assert "chain b: closing the adapter failed: already gone" in caplog.text
