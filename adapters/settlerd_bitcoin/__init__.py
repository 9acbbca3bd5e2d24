"""First-party Bitcoin adapter for settlerd: P2WSH HTLCs, own wallet, block scanner.

It talks to a node only through bitcoind's standard JSON-RPC (getblockchaininfo, getblockcount,
getblockhash, getblock, getrawmempool, getrawtransaction, sendrawtransaction, testmempoolaccept,
estimatesmartfee, gettxout) and never uses a node wallet.

Keys (see ``keys.py``) come from one HD seed:
wallet ``m/84'/coin'/account'/{0,1}/i``; per-swap keys ``m/8383'/coin'/account'/j'`` where ``j`` is taken
from the swap's hashlock. Timelocks are block heights (see ``htlc.py`` for why never timestamps).
"""

from settlerd.adapters import AdapterInfo

from .adapter import BitcoinAdapter, factory
from .settings import BitcoinSettings

adapter_info = AdapterInfo(
    name="bitcoin",
    family="bitcoin",
    description="Bitcoin P2WSH HTLC adapter",
    factory=factory,
    contract_version=2,
    settings=BitcoinSettings,
)

__all__ = ["BitcoinAdapter", "BitcoinSettings", "adapter_info", "factory"]
