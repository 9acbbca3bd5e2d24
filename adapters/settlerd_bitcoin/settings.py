"""The adapter's settings: the keys under ``[chains.<name>]`` besides ``adapter``.

``BitcoinSettings`` is the model ``settlerd config check`` validates each Bitcoin chain table with, and what
the adapter runs with once ``from_mapping`` has read the ``*_file`` secrets.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import ConfigDict, Field, PlainValidator, model_validator

from settlerd.adapters import AdapterConfigError, AdapterSettings, validate_settings

from .blocktimes import DEFAULT_TIMELOCK_PROBABILITY, Arrivals, BlockTimes
from .fees import FeePolicy
from .network import NETWORKS, Network, network

DEFAULT_BLOCK_INTERVAL = 600.0  # seconds: Bitcoin's target spacing
# Seconds one RPC call may take: getblock of a full block answers well within it on a healthy node, and
# a node that hangs holds a claim or refund up for no longer.
DEFAULT_RPC_TIMEOUT = 10.0
SEED_BYTES = (16, 64)  # BIP32's range for a master seed


def _network(value: object) -> Network:
    if isinstance(value, Network):
        return value
    if not isinstance(value, str):
        raise ValueError("must be a network name such as mainnet, signet or regtest")
    return network(value)


def _seed(value: object) -> bytes | None:
    if value is None or isinstance(value, bytes):
        seed = value
    elif isinstance(value, str):
        try:
            seed = bytes.fromhex(value)
        except ValueError:
            raise ValueError("must be hex (16 to 64 bytes)") from None
    else:
        raise ValueError("must be hex (16 to 64 bytes)")
    if seed is not None and not SEED_BYTES[0] <= len(seed) <= SEED_BYTES[1]:
        raise ValueError(f"must be 16 to 64 bytes, not {len(seed)}")
    return seed


class BitcoinSettings(AdapterSettings):
    """A ``[chains.<name>]`` table with ``adapter = "bitcoin"``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "bitcoin"
    rpc_url: str
    rpc_user: str | None = None
    rpc_password: str | None = Field(default=None, repr=False)
    rpc_password_file: str | None = None
    rpc_cookie_file: Path | None = None
    rpc_timeout: float = Field(default=DEFAULT_RPC_TIMEOUT, gt=0, le=300)
    network: Annotated[Network, PlainValidator(_network)] = NETWORKS["regtest"]
    seed: Annotated[bytes | None, PlainValidator(_seed)] = Field(default=None, repr=False)
    seed_file: str | None = None
    account: int = Field(default=0, ge=0, lt=2**31)
    birthday_height: int = Field(default=0, ge=0)  # no wallet or HTLC output exists below this height
    fee_floor: float = Field(default=1.0, gt=0)
    fee_cap: float = Field(default=200.0, gt=0)
    fee_conf_target: int = Field(default=6, ge=1, le=1008)
    block_interval: float = Field(default=DEFAULT_BLOCK_INTERVAL, gt=0)
    # How blocks arrive ("steady" only for a local chain mined on a timer) and the tail probability at
    # which a height timelock's earliest and latest wall-clock times are stated.
    block_arrivals: Arrivals = Arrivals.RANDOM
    timelock_probability: float = Field(default=DEFAULT_TIMELOCK_PROBABILITY, gt=0, lt=1)
    poll_interval: float = Field(default=5.0, gt=0)  # seconds between looks at the node's tip and mempool

    @model_validator(mode="after")
    def _consistent(self) -> BitcoinSettings:
        if (self.seed is None) == (self.seed_file is None):
            raise ValueError("set exactly one of seed and seed_file")
        if self.rpc_password is not None and self.rpc_password_file is not None:
            raise ValueError("set rpc_password or rpc_password_file, not both")
        if self.fee_floor > self.fee_cap:
            raise ValueError(f"fee_floor {self.fee_floor} must be at most fee_cap {self.fee_cap} (sat/vB)")
        return self

    @property
    def fees(self) -> FeePolicy:
        return FeePolicy(floor=self.fee_floor, cap=self.fee_cap, conf_target=self.fee_conf_target)

    @property
    def block_times(self) -> BlockTimes:
        return BlockTimes(self.block_interval, self.timelock_probability, self.block_arrivals)

    @property
    def master_seed(self) -> bytes:
        if self.seed is None:
            raise AdapterConfigError(f"{self.name}: seed_file was not read; build settings with from_mapping")
        return self.seed

    def funding_address(self) -> str:
        """The wallet's first receive address (``m/84'/coin'/account'/0/0``): always watched, so coins paid
        to it before the daemon ever ran are found (`settlerd keys show`, `regtest/fund`)."""
        from .htlc import p2wpkh_script_pubkey, segwit_address
        from .keys import RECEIVE, KeyChain

        key = KeyChain(self.master_seed, self.network.coin_type, self.account).wallet_key(RECEIVE, 0)
        return segwit_address(p2wpkh_script_pubkey(key.pubkey_hash), self.network.hrp)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> BitcoinSettings:
        """The settings the adapter runs with, from a chain table: ``*_file`` secrets are read here."""
        values = {k: v for k, v in raw.items() if k != "adapter"}
        for key, target in (("seed_file", "seed"), ("rpc_password_file", "rpc_password")):
            if key in values and target not in values:
                path = Path(values.pop(key))
                try:
                    values[target] = path.read_text().strip()
                except OSError as exc:
                    raise AdapterConfigError(f"{key} {path}: {exc.strerror or exc}") from None
        return validate_settings(cls, values)
