"""First-party EVM adapter for settlerd: one HTLC contract for native ETH and ERC-20 swaps."""

from settlerd.adapters import AdapterInfo

adapter_info = AdapterInfo(name="evm", family="evm", description="EVM HTLC contract adapter (ETH, ERC-20)")

__all__ = ["adapter_info"]
