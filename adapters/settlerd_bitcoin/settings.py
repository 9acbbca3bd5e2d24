"""The adapter's settings: the keys under ``[chains.<name>]`` besides ``adapter``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .blocktimes import DEFAULT_TIMELOCK_PROBABILITY, Arrivals, BlockTimes
from .fees import FeePolicy
from .network import Network, network

DEFAULT_BLOCK_INTERVAL = 600.0  # seconds: Bitcoin's target spacing
KNOWN_KEYS = frozenset(
    {
        "adapter",
        "name",
        "rpc_url",
        "rpc_user",
        "rpc_password",
        "rpc_password_file",
        "rpc_cookie_file",
        "network",
        "seed",
        "seed_file",
        "account",
        "birthday_height",
        "finality_depth",
        "fee_floor",
        "fee_cap",
        "fee_conf_target",
        "block_interval",
        "block_arrivals",
        "timelock_probability",
        "poll_interval",
    }
)


@dataclass(frozen=True, slots=True)
class BitcoinSettings:
    rpc_url: str
    network: Network
    seed: bytes = field(repr=False)
    name: str = "bitcoin"
    rpc_user: str | None = None
    rpc_password: str | None = field(default=None, repr=False)
    rpc_cookie_file: Path | None = None
    account: int = 0
    birthday_height: int = 0  # no wallet or HTLC output exists below this height
    finality_depth: int = 6
    fees: FeePolicy = field(default_factory=FeePolicy)
    block_interval: float = DEFAULT_BLOCK_INTERVAL
    # How blocks arrive ("steady" only for a local chain mined on a timer) and the tail probability at
    # which a height timelock's earliest and latest wall-clock times are stated.
    block_arrivals: Arrivals = Arrivals.RANDOM
    timelock_probability: float = DEFAULT_TIMELOCK_PROBABILITY
    poll_interval: float = 5.0  # seconds between looks at the node's tip and mempool

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> BitcoinSettings:
        unknown = sorted(set(raw) - KNOWN_KEYS)
        if unknown:
            raise ValueError(
                f"unknown bitcoin adapter setting(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(KNOWN_KEYS))}"
            )

        def need(key: str) -> Any:
            if key not in raw:
                raise ValueError(
                    f"the bitcoin adapter needs the setting {key!r} under its [chains.<name>] table"
                )
            return raw[key]

        seed_hex = Path(raw["seed_file"]).read_text().strip() if "seed_file" in raw else need("seed")
        try:
            seed = bytes.fromhex(seed_hex)
        except ValueError:
            raise ValueError("the bitcoin adapter's seed must be hex (16 to 64 bytes)") from None
        password = raw.get("rpc_password")
        if "rpc_password_file" in raw:
            password = Path(raw["rpc_password_file"]).read_text().strip()
        cookie = raw.get("rpc_cookie_file")
        return cls(
            rpc_url=need("rpc_url"),
            network=network(raw.get("network", "regtest")),
            seed=seed,
            name=raw.get("name", "bitcoin"),
            rpc_user=raw.get("rpc_user"),
            rpc_password=password,
            rpc_cookie_file=Path(cookie) if cookie else None,
            account=int(raw.get("account", 0)),
            birthday_height=int(raw.get("birthday_height", 0)),
            finality_depth=int(raw.get("finality_depth", 6)),
            fees=FeePolicy(
                floor=float(raw.get("fee_floor", 1.0)),
                cap=float(raw.get("fee_cap", 200.0)),
                conf_target=int(raw.get("fee_conf_target", 6)),
            ),
            block_interval=float(raw.get("block_interval", DEFAULT_BLOCK_INTERVAL)),
            block_arrivals=Arrivals(raw.get("block_arrivals", Arrivals.RANDOM)),
            timelock_probability=float(raw.get("timelock_probability", DEFAULT_TIMELOCK_PROBABILITY)),
            poll_interval=float(raw.get("poll_interval", 5.0)),
        )

    @property
    def block_times(self) -> BlockTimes:
        return BlockTimes(self.block_interval, self.timelock_probability, self.block_arrivals)
