"""The HTLC contract's calls and events as bytes: ids, calldata and log decoding, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from hashlib import sha256

from eth_abi.abi import decode, encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

ETH = "ETH"  # HtlcTerms.asset for native ether; anything else is an ERC-20 contract address
ZERO_ADDRESS = "0x" + "00" * 20
MAX_AMOUNT = (1 << 96) - 1  # the contract packs recipient and amount into one slot


def selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


def topic(signature: str) -> bytes:
    return keccak(text=signature)


LOCKED_TOPIC = topic("Locked(bytes32,address,address,address,uint256,uint256)")
CLAIMED_TOPIC = topic("Claimed(bytes32,bytes32,bytes32)")
REFUNDED_TOPIC = topic("Refunded(bytes32)")
KEY = "(address,address,uint256)"


def token_address(asset: str) -> str:
    return ZERO_ADDRESS if asset.upper() == ETH else to_checksum_address(asset)


def swap_id(token: str, sender: str, timelock: int, hashlock: bytes) -> bytes:
    """The contract's swap id: keccak256(abi.encode(token, sender, timelock, hashlock))."""
    return keccak(encode(["address", "address", "uint256", "bytes32"], [token, sender, timelock, hashlock]))


def hashlock_of(preimage: bytes) -> bytes:
    return sha256(preimage).digest()


def lock_eth(recipient: str, hashlock: bytes, timelock: int) -> bytes:
    return selector("lockEth(address,bytes32,uint256)") + encode(
        ["address", "bytes32", "uint256"], [recipient, hashlock, timelock]
    )


def lock_token(token: str, recipient: str, amount: int, hashlock: bytes, timelock: int) -> bytes:
    return selector("lockToken(address,address,uint256,bytes32,uint256)") + encode(
        ["address", "address", "uint256", "bytes32", "uint256"],
        [token, recipient, amount, hashlock, timelock],
    )


def claim(token: str, sender: str, timelock: int, preimage: bytes) -> bytes:
    return selector(f"claim({KEY},bytes32)") + encode([KEY, "bytes32"], [(token, sender, timelock), preimage])


def refund(token: str, sender: str, timelock: int, hashlock: bytes) -> bytes:
    return selector(f"refund({KEY},bytes32)") + encode(
        [KEY, "bytes32"], [(token, sender, timelock), hashlock]
    )


def approve(spender: str, amount: int) -> bytes:
    return selector("approve(address,uint256)") + encode(["address", "uint256"], [spender, amount])


def allowance(owner: str, spender: str) -> bytes:
    return selector("allowance(address,address)") + encode(["address", "address"], [owner, spender])


def balance_of(owner: str) -> bytes:
    return selector("balanceOf(address)") + encode(["address"], [owner])


@dataclass(frozen=True, slots=True)
class LockedLog:
    hashlock: bytes
    token: str
    sender: str
    recipient: str
    amount: int
    timelock: int

    @property
    def id(self) -> bytes:
        return swap_id(self.token, self.sender, self.timelock, self.hashlock)


@dataclass(frozen=True, slots=True)
class ClaimedLog:
    hashlock: bytes
    id: bytes
    preimage: bytes


@dataclass(frozen=True, slots=True)
class RefundedLog:
    id: bytes


HtlcLog = LockedLog | ClaimedLog | RefundedLog


def decode_log(topics: list[bytes], data: bytes) -> HtlcLog | None:
    """One of the contract's events, or None for anything else (the contract emits nothing else)."""
    if not topics:
        return None
    if topics[0] == LOCKED_TOPIC:
        token, sender, recipient, amount, timelock = decode(
            ["address", "address", "address", "uint256", "uint256"], data
        )
        return LockedLog(
            topics[1], to_checksum_address(token), to_checksum_address(sender),
            to_checksum_address(recipient), amount, timelock,
        )  # fmt: skip
    if topics[0] == CLAIMED_TOPIC:
        id_, preimage = decode(["bytes32", "bytes32"], data)
        return ClaimedLog(topics[1], id_, preimage)
    if topics[0] == REFUNDED_TOPIC:
        return RefundedLog(topics[1])
    return None


REVERT_ERRORS = {
    selector(sig): sig.split("(")[0]
    for sig in (
        "AlreadyLocked(bytes32)",
        "SwapNotActive(bytes32)",
        "ClaimExpired(bytes32,uint256)",
        "RefundNotYetAllowed(bytes32,uint256)",
        "TimelockInPast(uint256)",
        "AmountOutOfRange(uint256)",
        "ZeroRecipient()",
        "ValueMismatch(uint256,uint256)",
        "TokenAmountMismatch(address,uint256,uint256)",
        "TokenTransferFailed(address)",
        "EthTransferFailed(address)",
    )
}


def error_name(revert_data: bytes) -> str | None:
    """The contract's custom error name for revert data, if it is one of ours."""
    return REVERT_ERRORS.get(revert_data[:4])
