"""One local network per session (regtest node, anvil with the HTLC contract and a test ERC-20, two funded
settlerd processes), shared by every e2e test: starting chains and daemons costs more than a swap here."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from localnet import Daemon, Localnet, localnet


@pytest.fixture(scope="session")
async def net(request: pytest.FixtureRequest) -> AsyncIterator[Localnet]:
    failed_before = request.session.testsfailed
    async with localnet(("desk-a", "desk-b"), token=True) as network:
        yield network
        # Keep configs, logs and databases of a session in which an e2e test failed.
        network.keep = request.session.testsfailed > failed_before


@pytest.fixture
def desks(net: Localnet) -> tuple[Daemon, Daemon]:
    a, b = net.daemons
    return a, b
