"""First-party EVM adapter for settlerd: one HTLC contract for native ETH and ERC-20 swaps."""

from typing import Any

from settlerd.adapters import AdapterInfo, AdapterStore

from .settings import EvmSettings


def _factory(settings: Any, store: AdapterStore) -> Any:
    # Imported on use so that discovering adapters does not load web3.
    from .adapter import factory

    return factory(settings, store)


def _cli(subparsers: Any) -> None:
    from .cli import add_commands

    add_commands(subparsers)


adapter_info = AdapterInfo(
    name="evm",
    family="evm",
    description="EVM HTLC contract adapter (ETH, ERC-20)",
    factory=_factory,
    cli=_cli,
    contract_version=2,
    settings=EvmSettings,
)

__all__ = ["adapter_info"]
