"""GET /v1/swaps/{id}, /v1/swaps and /v1/swaps/{id}/events against a real store, checked with OpenAPI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from settlerd.store import Store

from .conftest import Api
from .swaps import HAPPY_PATH, SECRET, WEI_AMOUNT, advance, create_swap


async def test_swap_document_has_both_legs_and_never_the_secret(api: Api, store: Store) -> None:
    await create_swap(store, "swap-doc")
    for step in range(5):  # up to leg2_locked
        await advance(store, "swap-doc", step)
    reply = await api.get("/v1/swaps/swap-doc")
    assert reply.status == 200
    doc = reply.body
    assert doc["status"] == "leg2_locked"
    assert doc["terminal"] is False
    assert doc["role"] == "initiator" and doc["counterparty"] == "desk-b"
    leg1, leg2 = doc["legs"]
    assert (leg1["chain"], leg1["asset"], leg1["amount"]) == ("bitcoin", "BTC", "100000000")
    assert (leg2["chain"], leg2["asset"], leg2["amount"]) == ("evm", "USDC", str(WEI_AMOUNT))
    assert leg1["htlc_id"] == "bcrt1qhtlc" and leg1["lock_txid"] == "aa" * 32
    assert leg1["confirmations"] == 6 and leg1["final"] is True
    assert leg2["confirmations"] == 1 and leg2["final"] is False
    assert leg2["claim_txid"] is None and leg2["refund_txid"] is None
    assert leg1["deadline"].endswith("Z") and leg2["deadline"] < leg1["deadline"]
    text = str(doc)
    assert SECRET.hex() not in text and "secret" not in text


async def test_etag_answers_unchanged_polls_with_304(api: Api, store: Store) -> None:
    await create_swap(store, "swap-etag")
    first = await api.get("/v1/swaps/swap-etag")
    etag = first.headers["ETag"]
    unchanged = await api.get("/v1/swaps/swap-etag", headers={"If-None-Match": etag})
    assert unchanged.status == 304 and unchanged.body == "" and unchanged.headers["ETag"] == etag
    weak = await api.get("/v1/swaps/swap-etag", headers={"If-None-Match": f'"other", W/{etag}'})
    assert weak.status == 304
    await advance(store, "swap-etag", 0)
    changed = await api.get("/v1/swaps/swap-etag", headers={"If-None-Match": etag})
    assert changed.status == 200 and changed.body["status"] == "accepted"
    assert changed.headers["ETag"] != etag


async def test_list_filters_and_cursor_pages(api: Api, store: Store) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(7):
        await create_swap(
            store, f"list-{i}", counterparty="desk-b" if i % 2 else "desk-c", now=start + timedelta(hours=i)
        )
    await advance(store, "list-3", 0)
    await advance(store, "list-5", 0)

    seen: list[str] = []
    params = {"limit": "3"}
    pages = 0
    while True:
        reply = await api.get("/v1/swaps", params=params)
        assert reply.status == 200
        seen += [doc["id"] for doc in reply.body["swaps"]]
        pages += 1
        if reply.body["next_cursor"] is None:
            break
        params["cursor"] = reply.body["next_cursor"]
    assert seen == [f"list-{i}" for i in range(7)] and pages == 3

    accepted = await api.get("/v1/swaps", params={"status": "accepted"})
    assert [d["id"] for d in accepted.body["swaps"]] == ["list-3", "list-5"]
    either = await api.get("/v1/swaps", params={"status": "accepted,offered", "counterparty": "desk-c"})
    assert [d["id"] for d in either.body["swaps"]] == ["list-0", "list-2", "list-4", "list-6"]
    since = await api.get("/v1/swaps", params={"created_since": "2026-01-01T05:00:00Z"})
    assert [d["id"] for d in since.body["swaps"]] == ["list-5", "list-6"]
    none = await api.get("/v1/swaps", params={"counterparty": "nobody"})
    assert none.body == {"swaps": [], "next_cursor": None}


async def test_event_timeline_pages_in_seq_order(api: Api, store: Store) -> None:
    created = await create_swap(store, "timeline")
    await create_swap(store, "other")  # its events must not show up
    for step in range(len(HAPPY_PATH)):
        await advance(store, "timeline", step)
    whole = await api.get("/v1/swaps/timeline/events")
    events = whole.body["events"]
    assert [e["status"] for e in events] == ["offered", *(status for status, _, _ in HAPPY_PATH)]
    assert events[0]["seq"] == created.seq and events[0]["kind"] == "swap_created"
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert whole.body["next_after"] is None

    paged: list[int] = []
    params = {"limit": "4"}
    while True:
        reply = await api.get("/v1/swaps/timeline/events", params=params)
        paged += [e["seq"] for e in reply.body["events"]]
        if reply.body["next_after"] is None:
            break
        params["after"] = str(reply.body["next_after"])
    assert paged == seqs
