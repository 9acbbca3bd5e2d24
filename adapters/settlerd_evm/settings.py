"""The adapter's settings: the keys under ``[chains.<name>]`` besides ``adapter``.

``EvmSettings`` is the model ``settlerd config check`` validates each EVM chain table with, and what the
adapter runs with once ``from_mapping`` has read ``private_key_file``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field, model_validator

from settlerd.adapters import AdapterConfigError, AdapterSettings, validate_settings

from . import fees

# Seconds one node call may take; web3's default of 30 s, retried, held claims and refunds up for minutes.
DEFAULT_RPC_TIMEOUT = 10.0
# The first block stamped at or after a timelock comes at most this long after it: five 12-second slots on
# Ethereum, where five missed slots in a row are rarer than BLOCK_LAG_PROBABILITY (a setting per chain).
DEFAULT_BLOCK_LAG_S = 60


class EvmSettings(AdapterSettings):
    """A ``[chains.<name>]`` table with ``adapter = "evm"``; ``settlerd config check`` validates with it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "evm"
    rpc_url: str
    rpc_timeout: float = Field(default=DEFAULT_RPC_TIMEOUT, gt=0, le=300)
    contract: str
    private_key: str | None = Field(default=None, repr=False)
    private_key_file: str | None = None
    chain_id: int | None = None  # when set, the node must report this chain id
    max_fee_gwei: float = Field(default=200.0, gt=0)
    priority_fee_gwei: float = Field(default=1.0, ge=0)
    finality_depth: int = Field(default=12, ge=1)
    poll_interval_s: float = Field(default=2.0, gt=0)
    start_block: int | None = Field(default=None, ge=0)  # first scan only; later starts resume from the tip
    backfill_blocks: int = Field(default=50_000, ge=0)  # how far back a newly watched hashlock is looked up
    # The longest wait for a block stamped at or after a given time.
    block_lag_s: int = Field(default=DEFAULT_BLOCK_LAG_S, ge=0)

    @model_validator(mode="after")
    def _one_key(self) -> EvmSettings:
        if (self.private_key is None) == (self.private_key_file is None):
            raise ValueError("set exactly one of private_key and private_key_file")
        return self

    @classmethod
    def from_mapping(cls, settings: Mapping[str, Any]) -> EvmSettings:
        """The settings the adapter runs with, from a chain table: ``private_key_file`` (a path, once the
        daemon resolved credential names) is read here."""
        values = {k: v for k, v in settings.items() if k != "adapter"}
        if "private_key_file" in values and "private_key" not in values:
            path = Path(values.pop("private_key_file"))
            try:
                values["private_key"] = path.read_text().strip()
            except OSError as exc:
                raise AdapterConfigError(f"private_key_file {path}: {exc.strerror or exc}") from None
        return validate_settings(cls, values)

    @property
    def key(self) -> str:
        if self.private_key is None:
            raise AdapterConfigError(f"{self.name}: private_key_file was not read; use from_mapping")
        return self.private_key

    def funding_address(self) -> str:
        """The account the adapter locks and pays gas from (`settlerd keys show`, `regtest/fund`)."""
        from eth_account import Account

        return str(Account.from_key(self.key).address)

    def fee_policy(self) -> fees.FeePolicy:
        return fees.FeePolicy(int(self.max_fee_gwei * fees.GWEI), int(self.priority_fee_gwei * fees.GWEI))
