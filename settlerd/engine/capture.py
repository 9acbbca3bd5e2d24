"""Trade capture: offer (initiator), acceptance (participant), registration of the acceptance (initiator).

Both daemons end with the same terms: the offer fixes amounts, hashlock and timelocks; the acceptance
adds the participant's claim address on leg 1 and refund address on leg 2. Deadlines (earliest refund
times) and latest refund times are each daemon's own reading of the agreed timelocks through its own chain
adapters: nobody relies on the other side's clock or block-time estimate.

The initiator picks leg 2's timelock first, then leg 1's so that leg 1's refund cannot open before leg 2's
latest refund time plus the claim margin (S2), however long leg 2's block-time spread makes that.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from settlerd import swap
from settlerd.adapters import ChainAdapter
from settlerd.store import Conflict, HashlockInUse
from settlerd.swap import Leg, Role
from settlerd.swap.terms import UNKNOWN_PARTY, LegTerms, SwapTerms

from . import codec, documents, records
from .documents import DocumentError, NodeKey
from .engine import Engine, UnknownSwap
from .records import LiveSwap

SECRET_BYTES = 32
_LEG_FIELDS = {"asset", "amount", "recipient", "sender", "timelock"}


class CaptureError(Exception):
    """A request that cannot become a swap; ``status`` is the HTTP status the API answers with."""

    def __init__(self, message: str, *, field: str | None = None, status: int = 422) -> None:
        super().__init__(message)
        self.field = field
        self.status = status


@dataclass(frozen=True)
class LegRequest:
    chain: str
    asset: str
    amount: int


@dataclass(frozen=True)
class OfferRequest:
    """The initiator locks ``give`` (leg 1) and receives ``get`` (leg 2)."""

    counterparty: str
    give: LegRequest
    get: LegRequest


@dataclass(frozen=True)
class CaptureSettings:
    node_id: str
    leg1_duration: timedelta
    leg2_duration: timedelta
    policy: swap.Policy
    finality_depth: dict[str, int]
    counterparty_keys: dict[str, str]  # node_id -> node key
    # Off: only the counterparties above may trade with us. On: anyone may, under any node id it claims.
    allow_unknown_counterparties: bool = False


class Capture:
    def __init__(self, engine: Engine, key: NodeKey, settings: CaptureSettings) -> None:
        self._engine = engine
        self._key = key
        self._settings = settings

    @property
    def adapters(self) -> Mapping[str, ChainAdapter]:
        return self._engine.adapters

    def _adapter_for(self, chain: str, field: str) -> ChainAdapter:
        adapter = self._engine.adapters.get(chain)
        if adapter is None:
            known = ", ".join(sorted(self._engine.adapters)) or "none"
            raise CaptureError(
                f"no chain named {chain!r} is configured here (configured: {known})", field=field
            )
        return adapter

    def _counterparty_key(self, node_id: str, field: str) -> str | None:
        """The node key configured for ``node_id``; None for an unknown one, if trading with anyone."""
        if not re.fullmatch(documents.NODE_ID, node_id):
            raise CaptureError(
                "must be a node id: letters, digits and `_.-`, at most 63 characters", field=field, status=400
            )
        key = self._settings.counterparty_keys.get(node_id)
        if key is None and not self._settings.allow_unknown_counterparties:
            raise CaptureError(
                f"{node_id!r} is not a configured counterparty: list it under [counterparties.{node_id}] "
                "with its node_key, or set engine.allow_unknown_counterparties = true to trade with anyone",
                field=field,
                status=403,
            )
        return key

    def _check_counterparty(self, node_id: str, node_key: str, field: str) -> None:
        expected = self._counterparty_key(node_id, f"{field}.node_id")
        if expected is not None and expected != node_key:
            raise CaptureError(
                f"{node_id!r} is configured with node key {expected}, but this document is signed by "
                f"{node_key}",
                field=f"{field}.node_key",
                status=403,
            )

    def _canonical_asset(self, adapter: ChainAdapter, asset: str, field: str) -> str:
        try:
            return adapter.canonical_asset(asset)
        except ValueError as exc:
            raise CaptureError(str(exc), field=field) from None

    async def create_offer(self, request: OfferRequest) -> dict[str, Any]:
        engine, cfg = self._engine, self._settings
        participant_key = self._counterparty_key(request.counterparty, "counterparty")
        give = self._adapter_for(request.give.chain, "give.chain")
        get = self._adapter_for(request.get.chain, "get.chain")
        # Risk limits key on the asset's spelling: one asset must have one spelling.
        request = replace(
            request,
            give=replace(request.give, asset=self._canonical_asset(give, request.give.asset, "give.asset")),
            get=replace(request.get, asset=self._canonical_asset(get, request.get.asset, "get.asset")),
        )
        secret = os.urandom(SECRET_BYTES)
        hashlock = hashlib.sha256(secret).digest()
        now = engine.clock()
        t2 = await get.timelock_for(now + cfg.leg2_duration)
        b2 = await get.bounds_of(t2)
        t1 = await give.timelock_for(
            swap.leg1_deadline(now, cfg.leg1_duration, b2.earliest, b2.latest, cfg.policy)
        )
        b1 = await give.bounds_of(t1)
        terms = SwapTerms(
            LegTerms(
                chain=request.give.chain,
                asset=request.give.asset,
                amount=request.give.amount,
                hashlock=hashlock,
                recipient=UNKNOWN_PARTY,
                sender=give.party(hashlock),
                timelock=t1,
                deadline=b1.earliest,
                finality_depth=cfg.finality_depth[request.give.chain],
                latest=b1.latest,
            ),
            LegTerms(
                chain=request.get.chain,
                asset=request.get.asset,
                amount=request.get.amount,
                hashlock=hashlock,
                recipient=get.party(hashlock),
                sender=UNKNOWN_PARTY,
                timelock=t2,
                deadline=b2.earliest,
                finality_depth=cfg.finality_depth[request.get.chain],
                latest=b2.latest,
            ),
        )
        self._check_request(terms)
        swap_id = uuid.uuid4().hex
        try:
            state = swap.new_swap(swap_id, Role.INITIATOR, terms, now, secret=secret, policy=cfg.policy)
        except swap.UnsafeTerms as exc:
            raise CaptureError(str(exc), field="policy") from None
        offer = self._key.sign(
            {
                "type": "settlerd.offer",
                "version": documents.DOCUMENT_VERSION,
                "swap_id": swap_id,
                "created_at": now.isoformat(),
                "initiator": {"node_id": cfg.node_id, "node_key": self._key.public_hex},
                "participant": {"node_id": request.counterparty}
                | ({"node_key": participant_key} if participant_key else {}),
                "terms": codec.terms_to_json(terms),
            }
        )
        await engine.add(LiveSwap(state, request.counterparty), terms, extra={"offer": offer})
        return offer

    async def accept_offer(self, document: Any) -> dict[str, Any]:
        engine, cfg = self._engine, self._settings
        offer = documents.parse_offer(document)
        self._check_counterparty(offer.initiator.node_id, offer.initiator.node_key, "initiator")
        self._check_addressee(offer.participant)
        if await engine.store.get_swap(offer.swap_id) is not None:
            raise CaptureError(f"swap {offer.swap_id} is already known here", field="swap_id", status=409)
        try:
            offered = codec.terms_from_json(offer.terms.model_dump())
        except ValueError as exc:
            raise DocumentError("terms", str(exc)) from None
        for number, leg, party in (
            (1, offered.leg1, offered.leg1.recipient),
            (2, offered.leg2, offered.leg2.sender),
        ):
            if party != UNKNOWN_PARTY:
                raise DocumentError(f"terms.leg{number}", "the participant's address must be left empty")
            adapter = self._adapter_for(leg.chain, f"terms.leg{number}.chain")
            canonical = self._canonical_asset(adapter, leg.asset, f"terms.leg{number}.asset")
            if canonical != leg.asset:
                # Our risk limits key on the canonical spelling; another one would dodge them.
                raise DocumentError(
                    f"terms.leg{number}.asset", f"{leg.asset!r} must be written {canonical!r}"
                )
        hashlock = offered.hashlock
        leg1_adapter = self._adapter_for(offered.leg1.chain, "terms.leg1.chain")
        leg2_adapter = self._adapter_for(offered.leg2.chain, "terms.leg2.chain")
        with_us = SwapTerms(
            replace(offered.leg1, recipient=leg1_adapter.party(hashlock)),
            replace(offered.leg2, sender=leg2_adapter.party(hashlock)),
        )
        self._check_terms(with_us)  # before anything reads the timelocks as dates
        if await engine.store.swaps_with_hashlock(hashlock):
            raise _hashlock_in_use()
        terms = SwapTerms(
            await self._local(with_us.leg1, leg1_adapter), await self._local(with_us.leg2, leg2_adapter)
        )
        now = engine.clock()
        try:
            state = swap.new_swap(offer.swap_id, Role.PARTICIPANT, terms, now, policy=cfg.policy)
        except swap.UnsafeTerms as exc:
            raise CaptureError(str(exc), field="terms") from None
        acceptance = self._key.sign(
            {
                "type": "settlerd.acceptance",
                "version": documents.DOCUMENT_VERSION,
                "swap_id": offer.swap_id,
                "offer_digest": documents.digest(document),
                "participant": {"node_id": cfg.node_id, "node_key": self._key.public_hex},
                "leg1_recipient": terms.leg1.recipient,
                "leg2_sender": terms.leg2.sender,
            }
        )
        live = LiveSwap(state, offer.initiator.node_id)
        try:
            # The store enforces the hashlock check above inside the write: concurrent acceptances
            # both pass that read, and only one may become a swap.
            await engine.add(live, terms, extra={"offer": document, "acceptance": acceptance})
        except HashlockInUse:
            raise _hashlock_in_use() from None
        except Conflict:
            raise CaptureError(
                f"swap {offer.swap_id} is already known here", field="swap_id", status=409
            ) from None
        await engine.apply(offer.swap_id, swap.AcceptanceRegistered(now, terms))
        return acceptance

    def _check_addressee(self, addressee: documents.AddresseeDoc | None) -> None:
        """An offer made to another node is not ours to accept (offers of earlier versions name nobody)."""
        if addressee is None:
            return
        if addressee.node_id != self._settings.node_id:
            raise CaptureError(
                f"the offer is for {addressee.node_id!r}, not this node ({self._settings.node_id!r})",
                field="participant.node_id",
                status=403,
            )
        if addressee.node_key is not None and addressee.node_key != self._key.public_hex:
            raise CaptureError(
                f"the offer is for node key {addressee.node_key}, not this node's {self._key.public_hex}",
                field="participant.node_key",
                status=403,
            )

    def _check_request(self, terms: SwapTerms) -> None:
        """Our own offer through the same checks the participant runs (range, dust, known asset), so we
        never lock leg 1 for a leg 2 that cannot be funded. The participant's parties are not known yet:
        our own stands in for them."""
        for name, leg in (("give", terms.leg1), ("get", terms.leg2)):
            ours = leg.sender if leg.recipient == UNKNOWN_PARTY else leg.recipient
            stand_in = replace(leg, recipient=ours, sender=ours)
            problems = self._adapter_for(leg.chain, f"{name}.chain").check_terms(
                records.htlc_terms_of(stand_in)
            )
            if problems:
                about = problems[0].split(":", 1)[0]  # check_terms names the HtlcTerms field first
                field = f"{name}.{about}" if about in ("asset", "amount") else name
                raise CaptureError("; ".join(problems), field=field)

    def _check_terms(self, terms: SwapTerms, field_of: Mapping[int, str] | None = None) -> None:
        """Refuse, before anything is stored, terms the chains could not carry: a malformed party from
        the counterparty's document would otherwise fail only when the leg is watched or spent."""
        for number, leg in ((1, terms.leg1), (2, terms.leg2)):
            adapter = self._adapter_for(leg.chain, f"terms.leg{number}.chain")
            problems = adapter.check_terms(records.htlc_terms_of(leg))
            if problems:
                about = problems[0].split(":", 1)[0]  # check_terms names the HtlcTerms field first
                named = f"terms.leg{number}.{about}" if about in _LEG_FIELDS else f"terms.leg{number}"
                raise DocumentError((field_of or {}).get(number, named), "; ".join(problems))

    async def _local(self, leg: LegTerms, adapter: ChainAdapter) -> LegTerms:
        """The offered leg as this daemon relies on it: its own bounds and at least its own depth."""
        depth = max(leg.finality_depth, self._settings.finality_depth[leg.chain])
        bounds = await adapter.bounds_of(leg.timelock)
        return replace(leg, deadline=bounds.earliest, latest=bounds.latest, finality_depth=depth)

    async def register_acceptance(self, swap_id: str, document: Any) -> swap.SwapState:
        engine = self._engine
        row = await engine.store.get_swap(swap_id)
        if row is None:
            raise CaptureError(f"no swap {swap_id}", status=404)
        if row.role != Role.INITIATOR.value:
            raise CaptureError(
                f"swap {swap_id} was accepted here; only its initiator registers an acceptance", status=409
            )
        acceptance = documents.parse_acceptance(document)
        if acceptance.swap_id != swap_id:
            raise DocumentError("swap_id", f"the acceptance is for swap {acceptance.swap_id}, not {swap_id}")
        if acceptance.offer_digest != documents.digest(row.terms["offer"]):
            raise DocumentError("offer_digest", "does not match the offer this daemon made")
        if acceptance.participant.node_id != row.counterparty:
            raise DocumentError(
                "participant.node_id",
                f"the offer was made to {row.counterparty!r}, not {acceptance.participant.node_id!r}",
            )
        bound = (row.terms["offer"].get("participant") or {}).get("node_key")
        if bound is not None and acceptance.participant.node_key != bound:
            raise CaptureError(
                f"the offer was made to {row.counterparty!r} with node key {bound}; this acceptance is "
                f"signed by {acceptance.participant.node_key}",
                field="participant.node_key",
                status=403,
            )
        self._check_counterparty(
            acceptance.participant.node_id, acceptance.participant.node_key, "participant"
        )
        try:
            live = engine.live(swap_id)
        except UnknownSwap:
            raise CaptureError(f"swap {swap_id} has ended ({row.status})", status=409) from None
        offered = live.state.terms
        terms = SwapTerms(
            replace(offered.leg1, recipient=acceptance.leg1_recipient),
            replace(offered.leg2, sender=acceptance.leg2_sender),
        )
        self._check_terms(terms, field_of={1: "leg1_recipient", 2: "leg2_sender"})
        try:
            await engine.apply(swap_id, swap.AcceptanceRegistered(engine.clock(), terms))
        except swap.SwapError as exc:
            raise CaptureError(str(exc), status=409) from None
        return live.state  # apply() moved this same object on

    async def cancel(self, swap_id: str, reason: str) -> None:
        try:
            await self._engine.apply(swap_id, swap.CancelRequested(self._engine.clock(), reason))
        except UnknownSwap:
            raise CaptureError(f"no live swap {swap_id}", status=404) from None
        except swap.SwapError as exc:
            raise CaptureError(str(exc), status=409) from None


def _hashlock_in_use() -> CaptureError:
    # One lock on chain could otherwise count for two swaps, and we would lock leg 2 twice.
    return CaptureError(
        "this hashlock already backs another swap here; a hashlock is used for one swap only",
        field="terms.leg1.hashlock",
        status=409,
    )


__all__ = ["Capture", "CaptureError", "CaptureSettings", "DocumentError", "Leg", "LegRequest", "OfferRequest"]
