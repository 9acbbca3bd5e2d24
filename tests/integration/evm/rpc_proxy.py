"""A JSON-RPC proxy in front of anvil that answers like a capped or broken provider, on 127.0.0.1."""

from __future__ import annotations

from typing import Any

from aiohttp import ClientSession, web


class RpcProxy:
    """Forwards every call to ``upstream``, except that an ``eth_getLogs`` answer of more than ``cap``
    logs becomes Infura's refusal, and a method named in ``garbage`` gets that result instead."""

    def __init__(self, upstream: str, cap: int | None = None) -> None:
        self.upstream = upstream
        self.cap = cap
        self.garbage: dict[str, Any] = {}
        self.refused = 0  # eth_getLogs calls refused for their size
        self.log_queries: list[dict[str, Any]] = []  # every eth_getLogs filter asked for
        self._session: ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> str:
        self._session = ClientSession()
        app = web.Application()
        app.router.add_post("/", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _handle(self, request: web.Request) -> web.Response:
        call = await request.json()
        assert isinstance(call, dict), "the scanner sends single calls, not batches"
        method = call.get("method")
        if method in self.garbage:
            return web.json_response({"jsonrpc": "2.0", "id": call["id"], "result": self.garbage[method]})
        assert self._session is not None
        async with self._session.post(self.upstream, json=call) as upstream:
            reply = await upstream.json()
        if method == "eth_getLogs":
            self.log_queries.append(call["params"][0])
            found = reply.get("result")
            if self.cap is not None and isinstance(found, list) and len(found) > self.cap:
                self.refused += 1
                error = {"code": -32005, "message": f"query returned more than {self.cap} results"}
                reply = {"jsonrpc": "2.0", "id": call["id"], "error": error}
        return web.json_response(reply)
