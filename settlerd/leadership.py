"""Which process acts for the node: the one process on SQLite, the lease holder among PostgreSQL replicas.

Replicas of one node (same node_id, keys and PostgreSQL database) elect a leader through the lease row
of ``store/lease.py``. Only the leader starts the chain adapters (scanning, signing, broadcasting), the
engine and the MQTT publisher; every write it makes checks its fencing token in the same transaction.
A standby serves the read API from the shared store, answers trade routes with ``503`` naming the
leader, and polls the lease. On takeover it does what a restarted daemon does: ``engine.restore()``
rebuilds every live swap from the store and the adapters resume from the scanner cursors and the
journal the leader kept, so nothing held only in the old leader's memory is needed.

A leader that cannot renew its lease before it expires, or whose write finds the fence moved, stops
(``LeadershipLost``); its supervisor restarts it, as a standby.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import re
import secrets
import time
from collections.abc import Callable
from datetime import timedelta
from hashlib import sha256
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CollectorRegistry, Gauge

from settlerd.config import Settings
from settlerd.config.credentials import read_secret
from settlerd.store import Store, StoreError
from settlerd.store import lease as lease_row
from settlerd.store.connect import process_name
from settlerd.store.lease import LeadershipLost

log = logging.getLogger("settlerd.leadership")

SINGLE, LEADER, STANDBY = "single", "leader", "standby"
ROLES = (SINGLE, LEADER, STANDBY)
# Three renewals per lease: two in a row may fail (a reconnect, a slow checkpoint) before it lapses.
RENEWALS_PER_LEASE = 3
# A standby looks at the lease four times per lease: it takes over within a quarter of a lease (plus
# the takeover's lock wait) after the leader's lease expires.
POLLS_PER_LEASE = 4
# Chain settings holding a wallet's signing material; RPC passwords may differ (one node per machine).
KEY_MATERIAL = re.compile(r"(seed|private_key)(_file)?$")


def keys_fingerprint(settings: Settings) -> str:
    """One hash over each chain's signing material (seed, private key; inline or ``*_file``), each hashed
    first: replicas compare wallets through it, and it reveals none of them."""
    parts = []
    for name in sorted(settings.chains):
        for key, value in sorted((settings.chains[name].model_extra or {}).items()):
            if not KEY_MATERIAL.search(key) or not isinstance(value, str):
                continue
            secret = read_secret(f"chains.{name}.{key}", value) if key.endswith("_file") else value
            parts.append(f"{name}.{key.removesuffix('_file')}={sha256(secret.encode()).hexdigest()}")
    return sha256("\n".join(parts).encode()).hexdigest() if parts else ""


class ReplicaRefused(Exception):
    """This process may not run against this store (another node's database, a second SQLite process)."""


class Replica:
    """This process's place among the node's replicas, for the daemon, the API and the metrics."""

    def __init__(
        self,
        store: Store,
        *,
        node_id: str,
        node_key: str | None,
        lease: timedelta,
        keys_fingerprint: str = "",  # ``keys_fingerprint(settings)``; empty: no wallet key configured
    ) -> None:
        self._store = store
        self._node_id = node_id
        self._node_key = node_key
        self._keys_fingerprint = keys_fingerprint
        self._lease_s = lease.total_seconds()
        self.replicated = store.backend == "postgresql"
        self.role = STANDBY if self.replicated else SINGLE
        self.holder = f"{process_name()}/{secrets.token_hex(3)}"
        self.token: int | None = None
        self.leader_url: str | None = None  # the leader's API, as last seen in the lease row
        self.leader_holder: str | None = None
        self._acquired: float | None = None  # monotonic
        self._renewed: float | None = None
        self._lock_file: int | None = None
        # Set by the daemon once every live swap is resumed: trade routes wait for it, or a swap taken
        # in meanwhile would be adopted twice.
        self.acting = False

    async def admit(self) -> None:
        """Refuse a replica of another node, or a second process on one SQLite file, with the reason."""
        if not self.replicated:
            self._lock_sqlite()
            return
        try:
            async with self._store.lease_tx() as conn:
                await lease_row.claim_identity(
                    conn, self._node_id, self._node_key, self._keys_fingerprint, self._store.where
                )
        except lease_row.IdentityMismatch as exc:
            raise ReplicaRefused(str(exc)) from None

    def _lock_sqlite(self) -> None:
        path = self._store.sqlite_path
        assert path is not None
        lock_path = path.with_name(path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = _read_pid(lock_path)
            os.close(fd)
            raise ReplicaRefused(
                f"database {path} is in use by another settlerd process{other} (lock {lock_path}): SQLite "
                "serves one process; stop that one, or put the store on PostgreSQL to run replicas"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_file = fd  # held, with its lock, until the process ends

    async def lead(self, api_url: str) -> None:
        """Return once this process may act: at once on SQLite, once it holds the lease on PostgreSQL."""
        if not self.replicated:
            return
        waited = failing = False
        while True:
            try:
                async with self._store.lease_tx() as conn:
                    token = await lease_row.try_acquire(conn, self.holder, api_url, self._lease_s)
                    seen = await lease_row.read(conn)
            except StoreError as exc:
                # The leader's write in flight holds the row (lock timeout), or the database is away:
                # neither is a reason to stop standing by.
                if not failing:
                    log.warning("standby: cannot look at the lease, trying again: %s", exc)
                failing = True
                await asyncio.sleep(self._lease_s / POLLS_PER_LEASE)
                continue
            failing = False
            if token is not None:
                break
            if seen is None:
                raise RuntimeError("Replica.lead() before admit(): the lease row does not exist")
            self.leader_url, self.leader_holder = seen.api_url, seen.holder
            if not waited:
                log.info(
                    "standby: node %s is led by %s (API %s, fencing token %d); taking over if its lease "
                    "lapses",
                    self._node_id,
                    seen.holder,
                    seen.api_url,
                    seen.token,
                )
                waited = True
            await asyncio.sleep(self._lease_s / POLLS_PER_LEASE)
        self._store.fence(self.holder, token)
        self.token = token
        self.role = LEADER
        self.leader_url, self.leader_holder = api_url, self.holder
        self._acquired = self._renewed = time.monotonic()
        log.info("leader of node %s with fencing token %d (replica %s)", self._node_id, token, self.holder)

    async def keep(self) -> None:
        """Renew the lease until cancelled; raises ``LeadershipLost`` once it is gone or has lapsed."""
        if not self.replicated:
            return
        assert self.token is not None and self._renewed is not None
        while True:
            await asyncio.sleep(self._lease_s / RENEWALS_PER_LEASE)
            try:
                async with self._store.lease_tx() as conn:
                    await lease_row.renew(conn, self.holder, self.token, self._lease_s)
                self._renewed = time.monotonic()
            except LeadershipLost:
                raise
            except StoreError as exc:
                # The database said nothing about the lease: retry while it may still be ours.
                if time.monotonic() - self._renewed >= self._lease_s:
                    raise LeadershipLost(
                        f"leadership lost (fencing token {self.token}): the lease could not be renewed "
                        f"for {self._lease_s:g} s ({exc}); this replica stops"
                    ) from None
                log.warning("lease renewal failed, retrying: %s", exc)

    async def release(self) -> None:
        """On a clean stop: hand the lease over at once instead of after it expires."""
        if self.role != LEADER or self.token is None:
            return
        try:
            async with self._store.lease_tx() as conn:
                await lease_row.release(conn, self.holder, self.token)
        except StoreError as exc:
            log.warning("could not release the lease (a standby takes over when it expires): %s", exc)

    def close(self) -> None:
        """Let go of the SQLite file lock (the process's end does it too)."""
        if self._lock_file is not None:
            os.close(self._lock_file)
            self._lock_file = None

    def lease_age_s(self) -> float | None:
        """Seconds since this leader last renewed its lease (None unless leading)."""
        return None if self._renewed is None or self.role != LEADER else time.monotonic() - self._renewed

    def status(self) -> dict[str, Any]:
        """For ``/v1/ready``: this replica's role and lease, and where the leader is."""
        age = self.lease_age_s()
        return {
            "role": self.role,
            "replica": self.holder,
            "fencing_token": self.token,
            "lease_age_s": None if age is None else round(age, 3),
            "leading_for_s": None if self._acquired is None else round(time.monotonic() - self._acquired, 3),
            "leader": {"replica": self.leader_holder, "api_url": self.leader_url}
            if self.replicated
            else None,
        }

    async def check(self) -> None:
        """Readiness: a standby is ready (it serves reads); the acting process once it has resumed."""
        if self.role != STANDBY and not self.acting:
            raise RuntimeError(f"{self.role}: resuming live swaps from the store")

    def register_metrics(self, registry: CollectorRegistry) -> None:
        role = Gauge("settlerd_replica_role", "1 for this replica's role.", ["role"], registry=registry)
        for name in ROLES:
            role.labels(role=name).set_function(self._is_role(name))
        token = Gauge("settlerd_replica_fencing_token", "Fencing token held (0: none).", registry=registry)
        token.set_function(lambda: float(self.token or 0))
        age = Gauge(
            "settlerd_replica_lease_age_seconds",
            "Seconds since the leader last renewed its lease (0 on a standby).",
            registry=registry,
        )
        age.set_function(lambda: self.lease_age_s() or 0.0)

    def _is_role(self, name: str) -> Callable[[], float]:
        return lambda: float(self.role == name)

    def gate(self, handler: Handler) -> Handler:
        """A trade route: served by the leader (or the single process); a standby answers 503."""

        async def gated(request: web.Request) -> web.StreamResponse:
            if self.role != STANDBY and not self.acting:
                return web.json_response(
                    {"error": "starting: resuming live swaps; try again in a moment", "field": None},
                    status=503,
                    headers={"Retry-After": "1"},
                )
            if self.role == STANDBY:
                where = self.leader_url or "unknown (no leader yet)"
                return web.json_response(
                    {
                        "error": f"this replica is a standby; trade on the leader at {where}",
                        "field": None,
                        "leader": self.leader_url,
                    },
                    status=503,
                    headers={"Retry-After": str(max(1, round(self._lease_s / POLLS_PER_LEASE)))},
                )
            return await handler(request)

        return gated


def _read_pid(path: Path) -> str:
    try:
        pid = path.read_text().strip()
    except OSError:
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""
