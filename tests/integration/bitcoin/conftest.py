"""Alice (funded wallet, locks) and Bob (claims) for the whole module, on the session's regtest node."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.bitcoin.desks import Desk

COINBASES = 4  # enough mature coins for every test in the module to lock from its own


@pytest.fixture(scope="module")
async def desks(
    bitcoin_node: object, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Desk, Desk]]:
    node = bitcoin_node
    workdir: Path = tmp_path_factory.mktemp("bitcoin-desks")
    birthday = await node.rpc("getblockcount") + 1  # type: ignore[attr-defined]
    alice = Desk("alice", node, workdir / "alice.sqlite3", os.urandom(32), birthday)
    bob = Desk("bob", node, workdir / "bob.sqlite3", os.urandom(32), birthday)
    await alice.start()
    await bob.start()
    try:
        await node.mine(COINBASES, await alice.a.receive_address())  # type: ignore[attr-defined]
        await node.mine(100)  # type: ignore[attr-defined]
        await alice.synced()
        await bob.synced()
        yield alice, bob
    finally:
        await alice.stop()
        await bob.stop()
