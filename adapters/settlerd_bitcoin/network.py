"""Bitcoin networks the adapter knows: address prefix, BIP44 coin type, and bitcoind's chain name."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Network:
    name: str  # the setting's value: "mainnet", "testnet", "testnet4", "signet", "regtest"
    hrp: str  # bech32 human-readable part
    coin_type: int  # BIP44 coin type: 0 on mainnet, 1 on every test network
    chain: str  # what getblockchaininfo reports as "chain"


NETWORKS: dict[str, Network] = {
    n.name: n
    for n in (
        Network("mainnet", "bc", 0, "main"),
        Network("testnet", "tb", 1, "test"),
        Network("testnet4", "tb", 1, "testnet4"),
        Network("signet", "tb", 1, "signet"),
        Network("regtest", "bcrt", 1, "regtest"),
    )
}


def network(name: str) -> Network:
    try:
        return NETWORKS[name]
    except KeyError:
        known = ", ".join(NETWORKS)
        raise ValueError(
            f"unknown Bitcoin network {name!r} in the adapter settings (use one of {known})"
        ) from None
