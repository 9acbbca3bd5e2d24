"""The MQTT message signature: what seal makes verifies for its topic and key, and nothing else does."""

from __future__ import annotations

import json

import pytest

from settlerd.engine import NodeKey
from settlerd.status.signature import ForgedMessage, seal, verify_message

KEY = NodeKey.from_hex("42" * 32)
TOPIC = "settlerd/v1/desk-a/swaps/7f3a"
DOCUMENT = {"id": "7f3a", "status": "leg1_locked", "seq": 7, "legs": [{"leg": 1, "sender": "Zürich ✓"}]}


def sealed(document: dict[str, object] = DOCUMENT) -> bytes:
    return json.dumps(seal(TOPIC, document, KEY)).encode()


def test_a_sealed_message_verifies_for_its_topic() -> None:
    message = verify_message(sealed(), KEY.public_hex, TOPIC)
    assert {k: v for k, v in message.items() if k != "sig"} == {**DOCUMENT, "topic": TOPIC}


def test_key_order_and_whitespace_of_the_payload_do_not_matter() -> None:
    message = json.loads(sealed())
    reordered = json.dumps(dict(reversed(list(message.items()))), indent=2, ensure_ascii=True).encode()
    assert verify_message(reordered, KEY.public_hex, TOPIC)["status"] == "leg1_locked"


def test_without_a_key_the_message_names_its_topic_and_is_unsigned() -> None:
    message = seal(TOPIC, DOCUMENT, None)
    assert message == {**DOCUMENT, "topic": TOPIC}
    with pytest.raises(ForgedMessage, match="unsigned"):
        verify_message(json.dumps(message), KEY.public_hex, TOPIC)


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (b"", "not a JSON message"),
        (b"\xff\xfe", "not a JSON message"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"sig": 5, "topic": "settlerd/v1/a/events"}', "unsigned"),
        (json.dumps({**json.loads(sealed()), "topic": None}).encode(), "no topic"),
        (json.dumps({**json.loads(sealed()), "sig": "zz"}).encode(), "does not verify"),
        (json.dumps({**json.loads(sealed()), "sig": "30" * 35}).encode(), "does not verify"),
        (json.dumps({**json.loads(sealed()), "seq": 8}).encode(), "does not verify"),
        (json.dumps({**json.loads(sealed()), "extra": True}).encode(), "does not verify"),
        (
            json.dumps({k: v for k, v in json.loads(sealed()).items() if k != "legs"}).encode(),
            "does not verify",
        ),
    ],
)
def test_anything_else_is_refused_with_the_reason(payload: bytes, why: str) -> None:
    with pytest.raises(ForgedMessage, match=why):
        verify_message(payload, KEY.public_hex, TOPIC)


def test_another_topic_or_another_key_is_refused() -> None:
    with pytest.raises(ForgedMessage, match="signed for"):
        verify_message(sealed(), KEY.public_hex, "settlerd/v1/desk-a/swaps/other")
    with pytest.raises(ForgedMessage, match="does not verify"):
        verify_message(sealed(), NodeKey.from_hex("66" * 32).public_hex, TOPIC)


@pytest.mark.parametrize("key", ["", "04" + "11" * 32, "02" + "zz" * 32, "02" + "ff" * 32])
def test_a_node_key_that_is_not_a_public_key_is_a_usage_error(key: str) -> None:
    with pytest.raises(ValueError, match=r"node key|secp256k1") as raised:
        verify_message(sealed(), key, TOPIC)
    assert not isinstance(raised.value, ForgedMessage)
