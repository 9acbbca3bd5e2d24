"""The chain-adapter contract between the core and each chain family.

The core knows nothing chain-specific: everything about scripts, contracts, fees, nonces and block
formats lives in an adapter package. Adapters are found through the ``settlerd.adapters`` entry-point
group, so a third party ships one as its own distribution exactly like the first-party ones do.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib.metadata import entry_points
from typing import Any, ClassVar, Protocol, TypeAlias, TypeVar, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, ValidationError

ENTRY_POINT_GROUP = "settlerd.adapters"
# The edition of this contract. An adapter declares the one it was written for; the daemon refuses to
# start one written for another, whose methods would be called with a meaning it does not know.
# 2: run() holds the adapter's long-lived work, owned and restarted by the daemon; start() creates no task.
CONTRACT_VERSION = 2
# What an adapter that predates versioning implements: the first edition, whose start() spawned its loops.
UNVERSIONED_CONTRACT = 1


class AdapterConfigError(ValueError):
    """An adapter's settings cannot work: an unknown or malformed key, a node or contract that does not
    match them. ``settlerd run`` ends with exit 2 and this message; ``problems`` holds one line each."""

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems) or [message]


class AdapterSettings(BaseModel):
    """Base of an adapter's settings model: the keys of a ``[chains.<name>]`` table besides ``adapter``.

    The core fills in ``name`` (the table's name) and ``finality_depth``; ``*_file`` keys reach the
    factory as paths. Unknown keys are refused, so a misspelt setting is an error, not a default.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    finality_depth: int = Field(default=6, ge=1)


_M = TypeVar("_M", bound=AdapterSettings)


def settings_problems(exc: ValidationError, table: str = "") -> list[str]:
    """One ``table.key: what is wrong`` per problem, in the words ``settlerd config check`` prints
    (``chains.btc.rpc_urll: unknown key``); a problem of the whole table is ``table: what is wrong``."""
    problems = []
    for err in exc.errors():
        where = ".".join(([table] if table else []) + [str(part) for part in err["loc"]])
        why = "unknown key" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
        problems.append(f"{where}: {why}" if where else why)
    return problems


def validate_settings(model: type[_M], table: Mapping[str, Any]) -> _M:
    """``table`` as ``model``, or an AdapterConfigError listing every problem."""
    try:
        return model.model_validate(dict(table))
    except ValidationError as exc:
        problems = settings_problems(exc)
        raise AdapterConfigError("; ".join(problems), problems) from None


@dataclass(frozen=True, slots=True)
class AdapterInfo:
    """What an adapter package declares about itself through its entry point."""

    name: str
    family: str
    description: str
    factory: Any = None  # callable(settings: Mapping[str, Any], store: Any) -> ChainAdapter
    cli: Any = None  # callable(subparsers) adding the adapter's own `settlerd` commands
    contract_version: int = UNVERSIONED_CONTRACT  # the CONTRACT_VERSION the adapter implements
    settings: type[AdapterSettings] | None = None  # its settings model, checked by `settlerd config check`

    def version_problem(self) -> str | None:
        """Why the daemon cannot run this adapter, if it was written for another edition of the contract."""
        if self.contract_version == CONTRACT_VERSION:
            return None
        return (
            f"adapter {self.name!r} implements chain-adapter contract version {self.contract_version}, "
            f"this settlerd needs version {CONTRACT_VERSION}; install a matching adapter release"
        )


@dataclass(frozen=True, slots=True)
class HtlcTerms:
    """One leg's agreed HTLC, in the chain's own units and address format."""

    chain: str
    asset: str  # "BTC", "ETH" or an ERC-20 contract address
    amount: int  # base units: satoshi, wei, token units
    hashlock: bytes  # sha256(preimage), 32 bytes
    recipient: str  # who may claim with the preimage (a pubkey hex on Bitcoin, an address on EVM)
    sender: str  # who may refund after the timelock
    timelock: int  # chain-native: block height on Bitcoin, unix seconds on EVM


class Purpose(enum.StrEnum):
    """What a signed transaction is for; the journal stores these values."""

    LOCK = "lock"
    CLAIM = "claim"
    REFUND = "refund"
    APPROVE = "approve"  # an ERC-20 allowance, signed with the lock it lets through
    CANCEL = "cancel"  # a no-op at the nonce of a lock or claim that must never go out (``Cancelling``)


@dataclass(frozen=True, slots=True)
class TimelockBounds:
    """When a refund with a given timelock opens, as wall-clock times.

    ``earliest``: it opens sooner with probability at most ``probability``; ``latest``: it has opened by then
    except with probability at most ``probability``. Each swap check compares the bound that is against us.
    """

    earliest: datetime
    latest: datetime
    probability: float

    def __post_init__(self) -> None:
        if self.latest < self.earliest:
            raise ValueError(f"latest bound {self.latest} is before earliest {self.earliest}")


@dataclass(frozen=True, slots=True)
class TimeLeft:
    """``TimelockBounds`` as durations from the moment the chain was read."""

    earliest: timedelta
    latest: timedelta
    probability: float


@dataclass(frozen=True, slots=True)
class SignedTx:
    """A transaction signed and ready to broadcast; persisted before it is broadcast (S4)."""

    chain: str
    txid: str
    raw: bytes
    purpose: Purpose
    # The HTLC it locks, claims or refunds, in the form the scanner reports it: for a lock, the one it
    # creates. None for a transaction of no HTLC (an approve).
    htlc_id: str | None
    nonce: int | None = None  # EVM account nonce, None on UTXO chains
    meta: Mapping[str, Any] = field(default_factory=dict)


class HtlcFact(enum.StrEnum):
    """What a chain event tells of an HTLC, and so what a reorg can take back."""

    LOCKED = "locked"
    CLAIMED = "claimed"
    REFUNDED = "refunded"


@dataclass(frozen=True, slots=True)
class Tip:
    """The scanner reached a new best block."""

    chain: str
    height: int
    block_hash: str | None
    block_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class HtlcEvent:
    """What every event about a watched HTLC carries: where it was found, which HTLC, which transaction."""

    chain: str
    height: int
    block_hash: str | None  # None for a spend seen only in the mempool
    htlc_id: str  # outpoint "txid:vout" on Bitcoin, contract swap id on EVM
    hashlock: bytes
    txid: str


@dataclass(frozen=True, slots=True)
class Locked(HtlcEvent):
    """An HTLC matching watched terms was funded, or its depth changed."""

    fact: ClassVar[HtlcFact] = HtlcFact.LOCKED
    amount: int
    confirmations: int
    found: HtlcTerms  # the HTLC's terms as read from the chain


@dataclass(frozen=True, slots=True)
class Claimed(HtlcEvent):
    """The HTLC was spent with the preimage, which the witness or log revealed."""

    fact: ClassVar[HtlcFact] = HtlcFact.CLAIMED
    preimage: bytes
    confirmations: int


@dataclass(frozen=True, slots=True)
class Refunded(HtlcEvent):
    """The HTLC was spent back to its sender."""

    fact: ClassVar[HtlcFact] = HtlcFact.REFUNDED
    confirmations: int


@dataclass(frozen=True, slots=True)
class Reorged(HtlcEvent):
    """An earlier Locked, Claimed or Refunded event (of ``txid``) left the best chain."""

    undoes: HtlcFact


HtlcFound: TypeAlias = Locked | Claimed | Refunded
ChainEvent: TypeAlias = Locked | Claimed | Refunded | Reorged | Tip


class HtlcSpent(Exception):
    """A claim or refund cannot be built because the HTLC is already spent, by either party.

    Not a failure: the adapter found the spend and handed its ``Claimed`` (with the preimage) or ``Refunded``
    event to ``events``, so the engine learns the outcome from there instead of retrying the spend.
    """


@runtime_checkable
class ChainAdapter(Protocol):
    """What the engine needs from a chain family. One instance per configured chain."""

    name: str
    native_asset: str  # the asset fees are paid in: "BTC", "ETH"

    async def start(self) -> None:
        """Connect, check the node (network, sync, contract code) and resume the scanner's saved state.

        It creates no task: the long-lived work belongs in ``run``. A setting the node contradicts
        (another network, no contract at the address) raises AdapterConfigError."""

    async def run(self) -> None:
        """The adapter's long-lived work (scanning, mempool, rebroadcasts and fee bumps), until cancelled.

        Called after ``start``, as a named task of the daemon, which restarts it with backoff whenever it
        raises, logs the failure and reports the chain not ready meanwhile. So it lets any failure out
        rather than swallowing it, and each call picks up from the adapter's state, as after a restart."""

    async def close(self) -> None:
        """Release connections, keeping what the scanner found (``run`` was cancelled before). Called
        also after a ``start`` that failed, so it must cope with a half-started adapter."""

    async def timelock_for(self, deadline: datetime) -> int:
        """A chain-native timelock whose refund opens no earlier than ``deadline``: its ``bounds_of``
        earliest time is at or after ``deadline``, at the chain's stated probability."""

    async def bounds_of(self, timelock: int) -> TimelockBounds:
        """When a refund with ``timelock`` opens: the earliest and the latest wall-clock time.

        On a height timelock both depend on the chain's tip and the moment it was read: an adapter reads
        the node's tip for each call and counts from that moment.
        """

    async def time_left(self, timelock: int) -> TimeLeft:
        """How long until a refund with ``timelock`` opens, at the earliest and at the latest, by the node's
        live tip (zero once it may already be open).

        Bounds were converted once, at capture; this is the last look at the chain before the secret is
        revealed or leg 2 locked, in case the chain ran ahead of (or behind) that conversion. Relative to
        the chain's own clock (a block timestamp, the moment a tip was read), so it needs no agreement
        between the daemon's clock and the node's.
        """

    def check_terms(self, terms: HtlcTerms) -> list[str]:
        """Why these terms (often from the counterparty's document) cannot be an HTLC on this chain:
        malformed or non-canonical parties, an asset it does not carry, an amount or a timelock out of
        range. Each problem starts with the ``HtlcTerms`` field it is about (``"amount: ..."``)."""

    def canonical_asset(self, asset: str) -> str:
        """The one spelling of ``asset`` on this chain (a native symbol upper-case, a token address in
        its checksummed form): terms and risk limits are keyed on it, so another spelling of the same
        asset cannot count as a different one. Raises ``ValueError`` for an asset the chain does not carry.
        """

    def party(self, hashlock: bytes) -> str:
        """Our identity on this chain for the swap with ``hashlock``, as it goes into ``HtlcTerms``
        ``recipient``/``sender``: a fresh per-swap public key on Bitcoin, the account address on EVM."""

    def watch(self, terms: HtlcTerms) -> None:
        """Add an HTLC to the scanner's index; events for it arrive through ``events``."""

    def unwatch(self, hashlock: bytes) -> None:
        """Drop an HTLC from the index once its swap has ended."""

    def events(self) -> AsyncIterator[ChainEvent]:
        """Chain events in the order the scanner found them, reorgs included."""

    async def receive_address(self) -> str:
        """An address of this daemon's own wallet on the chain, to fund its locks."""

    async def spendable(self, asset: str) -> int:
        """Our balance of ``asset`` that a lock could spend now, in base units (fees not deducted)."""

    async def build_lock(self, terms: HtlcTerms) -> SignedTx:
        """Sign a transaction that funds the HTLC; never broadcast it. Its ``htlc_id`` names the HTLC it
        creates, in the same form the scanner reports it."""

    async def build_claim(self, terms: HtlcTerms, htlc_id: str, preimage: bytes) -> SignedTx:
        """Sign a claim of the HTLC with the preimage."""

    async def build_refund(self, terms: HtlcTerms, htlc_id: str) -> SignedTx:
        """Sign a refund of the HTLC to its sender; valid only once the timelock allows."""

    async def broadcast(self, tx: SignedTx) -> str:
        """Broadcast; broadcasting the same transaction twice is harmless. Returns the txid."""


class CheckStatus(enum.StrEnum):
    OK = "ok"
    WARN = "warn"  # works, but an operator should look: an empty wallet, no fee estimate
    FAIL = "FAIL"  # settlerd cannot run safely like this


@dataclass(frozen=True, slots=True)
class Check:
    """One line of ``settlerd doctor``: what was checked, what was found, and what to change if not ok.

    ``fix`` names the setting (``chains.btc.rpc_url``) or the action; nothing here may hold a secret.
    """

    name: str  # "<chain>.<aspect>", e.g. "btc.network"
    status: CheckStatus
    detail: str
    fix: str = ""


@runtime_checkable
class Diagnosable(Protocol):
    """Optional for an adapter: checks of its node and settings for ``settlerd doctor``.

    Called on a built but not started adapter. It must not write to the store or broadcast, must return
    a FAIL check instead of raising when the node is unreachable, and must bound every network call so it
    returns within a few seconds however the node misbehaves.
    """

    async def diagnose(self) -> list[Check]: ...


@runtime_checkable
class SyncReporting(Protocol):
    """Optional: how far the adapter's scanner has read against its node's tip (readiness, metrics)."""

    async def sync_status(self) -> tuple[int, int]:
        """(last block height scanned, the node's tip height); raises when the node does not answer."""


@runtime_checkable
class Cancelling(Protocol):
    """Optional, for a chain whose transactions hold an account nonce: how a signed transaction that must
    never go out (a leg-2 lock the last timing check refused, a claim whose reveal came too late) gives
    its nonce back without a gap. The engine journals the result as a replacement of ``tx`` before it
    broadcasts it (S4), and the adapter's rebroadcasts keep it moving like any other transaction."""

    async def build_cancel(self, tx: SignedTx) -> SignedTx:
        """Sign a no-op (a 0-value transfer to our own address) at ``tx``'s nonce, paying more than ``tx``
        so that it replaces it wherever ``tx`` may have reached; purpose ``Purpose.CANCEL``."""
        ...


@runtime_checkable
class Releasing(Protocol):
    """Optional, for a wallet that reserves coins for a signed transaction until it is seen on chain."""

    def release(self, tx: SignedTx) -> None:
        """``tx`` will never be broadcast (dropped from the journal, or never journaled): what it reserved
        is spendable again."""
        ...


class AdapterNotFound(LookupError):
    pass


def discover() -> dict[str, AdapterInfo]:
    """All adapters installed in this environment, by name."""
    found: dict[str, AdapterInfo] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        info = ep.load()
        if not isinstance(info, AdapterInfo):
            raise TypeError(f"entry point {ep.name!r} ({ep.value}) does not name an AdapterInfo")
        found[info.name] = info
    return found


def find(name: str) -> AdapterInfo:
    adapters = discover()
    try:
        return adapters[name]
    except KeyError:
        known = ", ".join(sorted(adapters)) or "none"
        raise AdapterNotFound(f"no chain adapter named {name!r} is installed (installed: {known})") from None


class AdapterStore(Protocol):
    """The slice of the store an adapter may use: its own cursors and the journal of signed transactions.

    Cursors hold what an adapter must find again after a restart (scanner tip and recent block hashes,
    wallet birthday progress, the next EVM nonce). Signed transactions are written by the engine before
    broadcast (S4); an adapter reads them back to rebroadcast and to keep nonces without gaps, and journals
    its own fee bumps through ``record_replacement`` before it broadcasts them (S3, S4).
    """

    async def get_cursor(self, chain: str, key: str) -> str | None: ...

    async def put_cursor(self, chain: str, key: str, value: str) -> None: ...

    async def get_cursors(self, chain: str, prefix: str) -> dict[str, str]:
        """Every cursor of ``chain`` whose key starts with ``prefix``, by key."""
        ...

    async def put_cursors(self, chain: str, changes: Mapping[str, str | None]) -> None:
        """Write several cursors (a value) and delete others (None) in one transaction: state kept as
        one cursor per item is saved by what changed, never half."""
        ...

    async def unconfirmed_txs(self, chain: str) -> list[SignedTx]: ...

    async def unsent(self, chain: str) -> Mapping[str, bool]:
        """Txids of journaled transactions the engine never broadcast, of every purpose, dropped ones
        included; each maps to whether it is abandoned (still only signed, its swap ended). The engine alone
        sends its transactions first, right after its last checks: a claim after checking that the secret
        may still be revealed (S1), a lock after checking it may still be made (S2). An adapter's
        rebroadcasts skip these; one holding a nonce that is abandoned (or a claim past its timelock) gets
        a no-op at its nonce, or every later transaction of the account would wait behind the gap. Read it
        after ``unconfirmed_txs``: one journaled in between is in neither, and one dropped in between
        (never to go out) stays in this one. Replacements (fee bumps, no-ops) are never among them."""
        ...

    async def record_replacement(self, tx: SignedTx, replaces: str) -> None:
        """Journal ``tx``, a fee-bumped replacement of the journaled transaction ``replaces`` (a txid on
        the same chain), under the same swap and leg; call it before ``tx`` is broadcast. The replaced one
        stays unconfirmed until the engine settles whichever version confirms."""
