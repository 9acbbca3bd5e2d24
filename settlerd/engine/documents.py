"""Trade-capture documents: the signed offer and acceptance the two daemons exchange.

Self-describing JSON (``type`` and ``version``), signed with the daemon's node key (secp256k1 ECDSA over
SHA-256 of the canonical JSON without the signature). A document that fails to parse, to verify, or to
match is refused with a ``DocumentError`` naming the field.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal, TypeVar

import coincurve
from pydantic import BaseModel, ConfigDict, Field, ValidationError

DOCUMENT_VERSION = 1
HEX32 = r"^[0-9a-f]{64}$"
PUBKEY = r"^0[23][0-9a-f]{64}$"
NODE_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
Amount = Annotated[str, Field(pattern=r"^[1-9][0-9]{0,77}$")]


class DocumentError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def canonical(data: dict[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def digest(document: dict[str, Any]) -> str:
    """Identifies a signed document; the acceptance quotes the offer's."""
    return hashlib.sha256(canonical(document)).hexdigest()


class NodeKey:
    """The daemon's signing key. Its repr never shows the secret."""

    def __init__(self, secret: bytes) -> None:
        self._key = coincurve.PrivateKey(secret)
        self.public_hex: str = self._key.public_key.format(compressed=True).hex()

    @classmethod
    def from_hex(cls, text: str) -> NodeKey:
        try:
            secret = bytes.fromhex(text.strip())
            if len(secret) != 32:
                raise ValueError
            return cls(secret)
        except ValueError:
            raise ValueError("the node key must be 64 hex characters (32 bytes)") from None

    def sign(self, document: dict[str, Any]) -> dict[str, Any]:
        body = {k: v for k, v in document.items() if k != "signature"}
        return {**body, "signature": self._key.sign(canonical(body)).hex()}

    def __repr__(self) -> str:
        return f"NodeKey({self.public_hex})"


def verify_signature(document: dict[str, Any], public_hex: str) -> None:
    body = {k: v for k, v in document.items() if k != "signature"}
    try:
        signature = bytes.fromhex(str(document.get("signature", "")))
        ok = coincurve.PublicKey(bytes.fromhex(public_hex)).verify(signature, canonical(body))
    except (ValueError, TypeError):
        ok = False
    if not ok:
        raise DocumentError("signature", "does not verify against the signer's node key")


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class PartyDoc(_Doc):
    node_id: str = Field(pattern=NODE_ID)
    node_key: str = Field(pattern=PUBKEY)


class AddresseeDoc(_Doc):
    """Who an offer is for: the node id, and its node key when the initiator knows it (then only an
    acceptance signed by that key is registered)."""

    node_id: str = Field(pattern=NODE_ID)
    node_key: str | None = Field(default=None, pattern=PUBKEY)


class LegDoc(_Doc):
    chain: str = Field(min_length=1, max_length=64)
    asset: str = Field(min_length=1, max_length=64)
    amount: Amount
    hashlock: str = Field(pattern=HEX32)
    recipient: str = Field(max_length=130)
    sender: str = Field(max_length=130)
    timelock: int = Field(gt=0)
    deadline: str
    finality_depth: int = Field(ge=1, le=10_000)
    latest: str | None = None  # the offerer's reading; each daemon relies on its own


class TermsDoc(_Doc):
    leg1: LegDoc
    leg2: LegDoc


class OfferDoc(_Doc):
    type: Literal["settlerd.offer"]
    version: Literal[1]
    swap_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    created_at: str
    initiator: PartyDoc
    participant: AddresseeDoc | None = None  # absent in offers of earlier versions
    terms: TermsDoc
    signature: str = Field(pattern=r"^[0-9a-f]{16,200}$")


class AcceptanceDoc(_Doc):
    type: Literal["settlerd.acceptance"]
    version: Literal[1]
    swap_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    offer_digest: str = Field(pattern=HEX32)
    participant: PartyDoc
    leg1_recipient: str = Field(min_length=1, max_length=130)
    leg2_sender: str = Field(min_length=1, max_length=130)
    signature: str = Field(pattern=r"^[0-9a-f]{16,200}$")


_D = TypeVar("_D", bound=_Doc)


def _parse(model: type[_D], document: Any, what: str) -> _D:
    if not isinstance(document, dict):
        raise DocumentError("(document)", f"an {what} must be a JSON object")
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "(document)"
        raise DocumentError(field, err["msg"]) from None


def parse_offer(document: Any) -> OfferDoc:
    offer = _parse(OfferDoc, document, "offer")
    verify_signature(document, offer.initiator.node_key)
    return offer


def parse_acceptance(document: Any) -> AcceptanceDoc:
    acceptance = _parse(AcceptanceDoc, document, "acceptance")
    verify_signature(document, acceptance.participant.node_key)
    return acceptance
