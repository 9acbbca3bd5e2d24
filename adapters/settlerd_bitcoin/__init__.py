"""First-party Bitcoin adapter for settlerd: P2WSH HTLCs, own wallet, block scanner."""

from settlerd.adapters import AdapterInfo

adapter_info = AdapterInfo(name="bitcoin", family="bitcoin", description="Bitcoin P2WSH HTLC adapter")

__all__ = ["adapter_info"]
