"""A kit for chain-adapter authors and for the core's own tests.

``FakeChain`` is an in-memory chain the test drives (blocks, reorgs, fees, a mempool, HTLCs, balances);
``FakeChainAdapter`` implements the ``ChainAdapter`` contract on it, so the engine runs on it as on a real
node, in milliseconds. ``settlerd.testing.conformance`` holds the tests every adapter must pass (it needs
pytest, so it is not imported here).
"""

from .adapter import FakeChainAdapter, FakeNodeError
from .chain import Block, FakeChain, FakeTx, Htlc, TxRejected

__all__ = ["Block", "FakeChain", "FakeChainAdapter", "FakeNodeError", "FakeTx", "Htlc", "TxRejected"]
