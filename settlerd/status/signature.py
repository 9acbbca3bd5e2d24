"""Signatures on the MQTT messages, so a venue can tell the node's own status from a forged one.

A broker relays whatever its clients publish; on a shared or misconfigured broker anyone could put words in
the node's mouth. Each JSON message names the topic it was published for (``topic``) and, when a node key is
configured, carries ``sig``: the node key's secp256k1 ECDSA signature (DER, hex) over the SHA-256 of the
canonical JSON of the message without ``sig``. ``docs/api.md`` specifies it for other languages.

The topic is signed too, so a genuine message cannot be replayed onto another swap's or another node's
topic. A signature proves who wrote a message, not that it is the latest: ``seq`` orders them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import coincurve

from settlerd.engine.documents import NodeKey, canonical

SIG = "sig"
TOPIC = "topic"
# What the node publishes under; a signed message naming any other topic was not made by the publisher.
TOPIC_ROOT = "settlerd/v1/"
_PUBKEY = re.compile(r"^0[23][0-9a-f]{64}$")


class ForgedMessage(ValueError):
    """The message is not one the node signed, or not for the topic it arrived on; the text says why."""


def seal(topic: str, document: Mapping[str, Any], key: NodeKey | None) -> dict[str, Any]:
    """The message to publish on ``topic``: the document, the topic and, with a key, the signature."""
    body = {**document, TOPIC: topic}
    if key is None:
        return body
    # NodeKey.sign signs the canonical JSON of everything but a "signature" field, which no message has.
    return {**body, SIG: key.sign(body)["signature"]}


def parse_node_key(text: str) -> coincurve.PublicKey:
    """The node's public key as its offers carry it (compressed, 66 hex); ValueError when it is not one."""
    cleaned = text.strip().lower()
    if not _PUBKEY.match(cleaned):
        raise ValueError("a node key is 66 hex characters starting with 02 or 03 (compressed secp256k1)")
    try:
        return coincurve.PublicKey(bytes.fromhex(cleaned))
    except ValueError:
        raise ValueError(f"{cleaned} is not a point on secp256k1") from None


def verify_message(payload: bytes | str, node_key: str, topic: str | None = None) -> dict[str, Any]:
    """The message, once its signature verifies against ``node_key`` and, when given, it was signed for
    ``topic`` (the topic it arrived on: always pass it when you have it). Raises ForgedMessage otherwise,
    and ValueError for a ``node_key`` that is not a public key."""
    public = parse_node_key(node_key)
    try:
        message = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise ForgedMessage("not a JSON message (an empty payload clears a retained topic)") from None
    if not isinstance(message, dict):
        raise ForgedMessage("not a JSON object")
    sig = message.get(SIG)
    if not isinstance(sig, str):
        raise ForgedMessage("unsigned: no sig field (is engine.node_key_file set on the node?)")
    signed_for = message.get(TOPIC)
    if not isinstance(signed_for, str) or not signed_for.startswith(TOPIC_ROOT):
        raise ForgedMessage(f"no {TOPIC} under {TOPIC_ROOT}: not a settlerd status message")
    if topic is not None and signed_for != topic:
        raise ForgedMessage(f"signed for {signed_for}, but published on {topic}")
    body = {k: v for k, v in message.items() if k != SIG}
    try:
        ok = public.verify(bytes.fromhex(sig), canonical(body))
    except (ValueError, TypeError):
        ok = False
    if not ok:
        raise ForgedMessage("the signature does not verify against the node key")
    return message
