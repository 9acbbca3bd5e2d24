"""bitcoind's JSON-RPC over HTTP: basic auth (rpcuser/rpcpassword or the datadir cookie), single and batch
requests, JSON-RPC 1.0 framing ({result, error, id}) and 2.0 when asked, bitcoind's HTTP status codes."""

from __future__ import annotations

import base64
import hmac
import inspect
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from .jsonshapes import dumps

log = logging.getLogger("kernelnode.rpc")

RPC_MISC_ERROR = -1
RPC_TYPE_ERROR = -3
RPC_INVALID_ADDRESS_OR_KEY = -5
RPC_INVALID_PARAMETER = -8
RPC_DESERIALIZATION_ERROR = -22
RPC_VERIFY_ERROR = -25
RPC_VERIFY_REJECTED = -26
RPC_VERIFY_ALREADY_IN_UTXO_SET = -27
RPC_IN_WARMUP = -28
RPC_METHOD_NOT_FOUND = -32601
RPC_INVALID_REQUEST = -32600
RPC_PARSE_ERROR = -32700

COOKIE_USER = "__cookie__"


class RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


Handler = Callable[..., Awaitable[Any]]


class RpcServer:
    def __init__(
        self,
        netdir: Path,
        rpc_user: str | None,
        rpc_password: str | None,
        methods: Callable[[], dict[str, Handler]],
    ) -> None:
        self._methods = methods
        self._warmup: str | None = "Loading block index…"
        self.cookie_path = netdir / ".cookie"
        self._credentials = set()
        self._cookie_written = False
        if rpc_user and rpc_password is not None:
            self._credentials.add(f"{rpc_user}:{rpc_password}")
        else:
            # Like bitcoind: the cookie is the credential only when no password was given.
            self._write_cookie()
        self.app = web.Application(client_max_size=64 * 1024 * 1024)
        self.app.router.add_post("/", self._handle)
        self.app.router.add_post("/wallet/{name:.*}", self._handle)

    def set_warmup(self, message: str | None) -> None:
        self._warmup = message

    def _write_cookie(self) -> None:
        cookie = f"{COOKIE_USER}:{secrets.token_hex(32)}"
        self.cookie_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.cookie_path.with_suffix(".tmp")
        tmp.write_text(cookie)
        tmp.chmod(0o600)
        tmp.replace(self.cookie_path)
        self._credentials.add(cookie)
        self._cookie_written = True

    def remove_cookie(self) -> None:
        if self._cookie_written:  # a cookie left by an earlier run without a password is not ours
            self.cookie_path.unlink(missing_ok=True)

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            given = base64.b64decode(header[6:].strip()).decode()
        except (ValueError, UnicodeDecodeError):
            return False
        return any(hmac.compare_digest(given, cred) for cred in self._credentials)

    async def _handle(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="jsonrpc"'})
        try:
            body = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError):
            return self._reply(
                500,
                {"result": None, "error": {"code": RPC_PARSE_ERROR, "message": "Parse error"}, "id": None},
            )
        if isinstance(body, list):
            replies = [(await self._call(item))[1] for item in body]
            return self._reply(200, replies)
        if not isinstance(body, dict):
            err = {"code": RPC_PARSE_ERROR, "message": "Top-level object parse error"}
            return self._reply(500, {"result": None, "error": err, "id": None})
        status, reply = await self._call(body)
        return self._reply(status, reply)

    @staticmethod
    def _reply(status: int, payload: Any) -> web.Response:
        return web.Response(status=status, text=dumps(payload) + "\n", content_type="application/json")

    async def _call(self, req: Any) -> tuple[int, dict[str, Any]]:
        v2 = isinstance(req, dict) and req.get("jsonrpc") == "2.0"
        req_id = req.get("id") if isinstance(req, dict) else None
        try:
            if not isinstance(req, dict):
                raise RpcError(RPC_INVALID_REQUEST, "Invalid Request object")
            method = req.get("method")
            if not isinstance(method, str):
                raise RpcError(RPC_INVALID_REQUEST, "Method must be a string")
            params = req.get("params", [])
            if params is None:
                params = []
            if not isinstance(params, list | dict):
                raise RpcError(RPC_INVALID_REQUEST, "Params must be an array or object")
            if self._warmup is not None:
                raise RpcError(RPC_IN_WARMUP, self._warmup)
            result = await self._dispatch(method, params)
        except RpcError as exc:
            error = {"code": exc.code, "message": exc.message}
            if v2:
                return 200, {"jsonrpc": "2.0", "error": error, "id": req_id}
            status = {RPC_INVALID_REQUEST: 400, RPC_METHOD_NOT_FOUND: 404}.get(exc.code, 500)
            return status, {"result": None, "error": error, "id": req_id}
        except Exception as exc:
            log.exception("RPC %s failed", req.get("method") if isinstance(req, dict) else "?")
            error = {"code": RPC_MISC_ERROR, "message": f"internal error: {exc}"}
            if v2:
                return 200, {"jsonrpc": "2.0", "error": error, "id": req_id}
            return 500, {"result": None, "error": error, "id": req_id}
        if v2:
            return 200, {"jsonrpc": "2.0", "result": result, "id": req_id}
        return 200, {"result": result, "error": None, "id": req_id}

    async def _dispatch(self, method: str, params: list[Any] | dict[str, Any]) -> Any:
        handler = self._methods().get(method)
        if handler is None:
            raise RpcError(RPC_METHOD_NOT_FOUND, "Method not found")
        sig = inspect.signature(handler)
        names = list(sig.parameters)
        if isinstance(params, dict):
            for key in params:
                if key not in names:
                    raise RpcError(RPC_INVALID_PARAMETER, f"Unknown named parameter {key}")
            args = {k: v for k, v in params.items() if v is not None}
        else:
            if len(params) > len(names):
                raise RpcError(RPC_MISC_ERROR, f"{method}: too many arguments (at most {len(names)})")
            args = {names[i]: v for i, v in enumerate(params) if v is not None}
        missing = [
            n for n, p in sig.parameters.items() if p.default is inspect.Parameter.empty and n not in args
        ]
        if missing:
            raise RpcError(RPC_MISC_ERROR, f"{method}: missing required argument '{missing[0]}'")
        return await handler(**args)
