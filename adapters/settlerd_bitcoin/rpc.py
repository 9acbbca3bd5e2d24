"""bitcoind JSON-RPC client: one pooled connection, bounded concurrency, capped backoff, warm-up retries."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import logging
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp

log = logging.getLogger(__name__)

RPC_IN_WARMUP = -28  # bitcoind is loading blocks/indexes; the same call succeeds a little later
MAX_CONCURRENT_CALLS = 8  # bitcoind serves 4 RPC threads by default; more only queues there
BACKOFF_START = 0.1  # seconds before the first retry
BACKOFF_CAP = 5.0  # seconds: a node coming back is noticed within this long
LOG_EVERY = 60.0  # seconds between repeated "node unavailable" log lines, not one per retry
REQUEST_TIMEOUT = 10.0  # seconds for one HTTP request; getblock on a full block stays well below
# A call retries an unreachable or warming-up node for this many request timeouts, then gives up: a blip
# is ridden out, and a node that stays away is the supervisor's to report while the loop restarts.
RETRY_TIMEOUTS = 3


class RpcError(Exception):
    """The node answered with a JSON-RPC error."""

    def __init__(self, method: str, code: int, message: str) -> None:
        super().__init__(f"{method}: {message} (RPC error {code})")
        self.method = method
        self.code = code
        self.message = message


class NodeUnavailable(ConnectionError):
    """The node could not be reached, or kept warming up, for longer than the retry budget."""


class NodeAuthRefused(PermissionError):
    """The node refused our credentials (HTTP 401/403)."""


def _basic_auth(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def read_cookie(path: Path) -> tuple[str, str]:
    user, _, password = path.read_text().strip().partition(":")
    return user, password


class RpcClient:
    def __init__(
        self,
        url: str,
        user: str | None = None,
        password: str | None = None,
        cookie_file: Path | None = None,
        *,
        max_concurrent: int = MAX_CONCURRENT_CALLS,
        timeout: float = REQUEST_TIMEOUT,
        retry_for: float | None = None,
    ) -> None:
        self.url = url
        self._user = user
        self._password = password
        self._cookie_file = cookie_file
        self._semaphore = asyncio.Semaphore(max_concurrent)
        self._timeout = timeout
        self._retry_for = RETRY_TIMEOUTS * timeout if retry_for is None else retry_for
        self._session: aiohttp.ClientSession | None = None
        self._ids = itertools.count(1)
        self._last_logged = -LOG_EVERY

    def __repr__(self) -> str:
        return f"RpcClient({self.url!r})"

    def _auth(self) -> dict[str, str]:
        if self._cookie_file is not None:
            # bitcoind rewrites the cookie on every start, so read it per connection attempt.
            try:
                return _basic_auth(*read_cookie(self._cookie_file))
            except OSError as exc:
                raise NodeAuthRefused(
                    f"cannot read the RPC cookie {self._cookie_file} for {self.url}: {exc}; "
                    "check the adapter's rpc_cookie_file setting and that settlerd may read it"
                ) from None
        if self._user is not None:
            return _basic_auth(self._user, self._password or "")
        return {}

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=MAX_CONCURRENT_CALLS, keepalive_timeout=30),
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                json_serialize=json.dumps,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(self, method: str, *params: Any) -> Any:
        """Call ``method``; retries while the node is unreachable or warming up, up to the retry budget."""
        deadline = time.monotonic() + self._retry_for
        delay = BACKOFF_START
        while True:
            try:
                return await self._call_once(method, params)
            except RpcError as exc:
                if exc.code != RPC_IN_WARMUP:
                    raise
                problem = f"node at {self.url} is warming up ({exc.message})"
            except (TimeoutError, aiohttp.ClientConnectionError) as exc:
                problem = f"cannot reach the Bitcoin node at {self.url} ({exc or type(exc).__name__})"
            if time.monotonic() + delay > deadline:
                raise NodeUnavailable(
                    f"{problem}; gave up on {method} after {self._retry_for:.0f} s. "
                    "Check that bitcoind runs and that the adapter's rpc_url points at it."
                )
            self._log_throttled(problem)
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_CAP)

    def _log_throttled(self, problem: str) -> None:
        now = time.monotonic()
        if now - self._last_logged >= LOG_EVERY:
            self._last_logged = now
            log.warning("%s; retrying (logged at most once a minute)", problem)

    async def _call_once(self, method: str, params: tuple[Any, ...]) -> Any:
        body = {"jsonrpc": "1.0", "id": next(self._ids), "method": method, "params": list(params)}
        async with (
            self._semaphore,
            self._session_now().post(self.url, json=body, headers=self._auth()) as resp,
        ):
            if resp.status in (401, 403):
                raise NodeAuthRefused(
                    f"the Bitcoin node at {self.url} refused our credentials (HTTP {resp.status}); "
                    "check rpc_user/rpc_password or rpc_cookie_file in the adapter settings"
                )
            text = await resp.text()
        try:
            reply = json.loads(text, parse_float=Decimal)
        except ValueError:
            raise RpcError(
                method, -32700, f"HTTP {resp.status} with a non-JSON body from {self.url}"
            ) from None
        error = reply.get("error") if isinstance(reply, dict) else None
        if error:
            raise RpcError(method, int(error.get("code", 0)), str(error.get("message", "")))
        if not isinstance(reply, dict) or "result" not in reply:
            raise RpcError(method, -32603, f"malformed reply from {self.url}")
        return reply["result"]
