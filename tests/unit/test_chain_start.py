"""Starting the chain adapters: every adapter that was asked to start is closed, whatever failed."""

from __future__ import annotations

from typing import Any

import pytest

from settlerd import adapters
from settlerd.adapters import CONTRACT_VERSION, AdapterConfigError, AdapterInfo
from settlerd.chains import ChainStartError, build, started
from settlerd.config import Settings


class Recording:
    """Just the lifecycle of an adapter: what was started and closed, and what fails."""

    def __init__(
        self,
        name: str,
        log: list[str],
        *,
        fail_start: bool = False,
        fail_close: bool = False,
        refuse_settings: bool = False,
    ) -> None:
        self.name, self.log = name, log
        self.fail_start, self.fail_close, self.refuse_settings = fail_start, fail_close, refuse_settings

    async def start(self) -> None:
        self.log.append(f"start {self.name}")
        if self.fail_start:
            raise OSError("database is full")
        if self.refuse_settings:
            raise AdapterConfigError("node is on chain id 5, settings say 1")

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


async def test_an_adapter_refusing_its_settings_at_start_is_a_configuration_error() -> None:
    log: list[str] = []
    built: dict[str, Any] = {"a": Recording("a", log, refuse_settings=True)}
    with pytest.raises(ChainStartError, match="chain a: node is on chain id 5, settings say 1") as caught:
        async with started(built):
            pass
    assert caught.value.bad_config
    assert log == ["start a", "close a"]


def test_an_adapter_for_another_contract_version_is_refused_before_it_is_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built: list[object] = []
    old = AdapterInfo("old", "old", "an adapter from before run()", factory=lambda s, st: built.append(s))
    monkeypatch.setattr(adapters, "discover", lambda: {"old": old})
    settings = Settings(node_id="a", chains={"x": {"adapter": "old"}})
    with pytest.raises(ChainStartError) as caught:
        build(settings, store=None)  # type: ignore[arg-type]
    assert str(caught.value) == (
        f"chain x: adapter 'old' implements chain-adapter contract version 1, this settlerd needs version "
        f"{CONTRACT_VERSION}; install a matching adapter release"
    )
    assert caught.value.bad_config and built == []
