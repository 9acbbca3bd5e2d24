"""Which eth_getLogs refusals the scanner answers by asking for smaller ranges, in providers' own words."""

from __future__ import annotations

import pytest
from aiohttp import ClientResponseError, RequestInfo
from multidict import CIMultiDict, CIMultiDictProxy
from settlerd_evm.scanner import _too_big
from web3.exceptions import Web3RPCError
from yarl import URL


def refusal(code: int, message: str) -> Web3RPCError:
    error = {"code": code, "message": message}
    return Web3RPCError(repr(error), rpc_response={"jsonrpc": "2.0", "id": 1, "error": error})


def http(status: int) -> ClientResponseError:
    info = RequestInfo(URL("http://127.0.0.1/"), "POST", CIMultiDictProxy(CIMultiDict()))
    return ClientResponseError(info, (), status=status)


@pytest.mark.parametrize(
    "exc",
    [
        refusal(-32005, "query returned more than 10000 results. Try with this block range [0x1, 0x2]."),
        refusal(
            -32602,
            "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range and "
            "no limit on the response size, or you can request any block range with a cap of 10K logs",
        ),
        refusal(-32602, "query exceeds max results 20000, retry with the range 23879634-23879696"),
        refusal(-32602, "range 1000000 exceeds limit of 10000"),
        refusal(-32000, "query returned more than 10000 results"),
        refusal(-32603, "eth_getLogs range is too large, max is 1k blocks"),
        refusal(-32600, "eth_getLogs is limited to a 10,000 range"),
        refusal(-32062, "Block range is too large"),
        refusal(-32000, "block range is too wide"),
        refusal(-32005, "limit exceeded"),
        http(413),
    ],
)
def test_a_too_big_range_is_split(exc: Exception) -> None:
    assert _too_big(exc)


@pytest.mark.parametrize(
    "exc",
    [
        refusal(-32005, "project ID request rate exceeded"),
        refusal(-32005, "daily request count exceeded, request rate limited"),
        refusal(-32601, "the method eth_getLogs does not exist/is not available"),
        refusal(-32000, "header not found"),
        refusal(-32602, "invalid argument 0: hex string without 0x prefix"),
        http(502),
        http(429),
    ],
)
def test_other_failures_are_not_split(exc: Exception) -> None:
    assert not _too_big(exc)
