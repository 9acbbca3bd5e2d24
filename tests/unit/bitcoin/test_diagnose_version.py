"""doctor's node version check: Bitcoin Core's integer is judged, anything else is a WARN, never a crash."""

from __future__ import annotations

from typing import Any

import pytest
from settlerd_bitcoin.diagnose import MIN_NODE_VERSION, _version

from settlerd.adapters import CheckStatus


def node_reporting(version: Any) -> Any:
    async def call(method: str, *params: Any) -> dict[str, Any]:
        assert method == "getnetworkinfo"
        info = {"subversion": "/Node:2.2.0/"}
        if version is not None:
            info["version"] = version
        return info

    return call


async def test_maintained_core_version_is_ok() -> None:
    check = await _version("btc", node_reporting(MIN_NODE_VERSION + 100))
    assert check.status is CheckStatus.OK


async def test_old_core_version_is_a_warn_naming_the_upgrade() -> None:
    check = await _version("btc", node_reporting(MIN_NODE_VERSION - 1))
    assert check.status is CheckStatus.WARN
    assert "upgrade" in check.fix


@pytest.mark.parametrize("version", ["2.2.0", "280000", None, 28.1, True, [30]])
async def test_a_version_that_is_not_an_integer_is_a_warn(version: Any) -> None:
    check = await _version("btc", node_reporting(version))
    assert check.status is CheckStatus.WARN
    assert check.name == "btc.version"
    assert "age is unknown" in check.detail
