"""The scanner's block matching, depth reports and reorg undo, fed blocks in getblock's verbosity-2 shape."""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from settlerd_bitcoin.htlc import Htlc, sha256
from settlerd_bitcoin.keys import RECEIVE, KeyChain
from settlerd_bitcoin.scanner import Scanner
from settlerd_bitcoin.txbuild import REFUND_SELECTOR
from settlerd_bitcoin.wallet import Wallet

from settlerd.adapters import ChainEvent, Claimed, HtlcFact, HtlcFound, HtlcTerms, Locked, Refunded, Reorged

SECRET = bytes(range(32))
HASHLOCK = sha256(SECRET)
keys = KeyChain(bytes(range(32)), 1)
CLAIM_PK = keys.swap_key(HASHLOCK).pubkey
REFUND_PK = keys.wallet_key(0, 9).pubkey
HTLC = Htlc(HASHLOCK, CLAIM_PK, REFUND_PK, 500)
TERMS = HtlcTerms("bitcoin", "BTC", 70_000, HASHLOCK, CLAIM_PK.hex(), REFUND_PK.hex(), 500)
FINALITY = 3


def txid(n: int) -> str:
    return f"{n:064x}"


def block(height: int, txs: list[dict[str, Any]], tag: str = "a") -> dict[str, Any]:
    return {
        "height": height,
        "hash": f"{tag}{height:063x}",
        "previousblockhash": f"{tag}{height - 1:063x}",
        "time": 1_700_000_000 + height * 600,
        "tx": [{"txid": txid(10_000 + height), "vin": [{"coinbase": "00"}], "vout": []}, *txs],
    }


def pay(n: int, spk: bytes, sats: int, spends: Sequence[tuple[str, list[str]]] = ()) -> dict[str, Any]:
    vin = [{"txid": op.split(":")[0], "vout": int(op.split(":")[1]), "txinwitness": w} for op, w in spends]
    value = Decimal(sats) / Decimal(100_000_000)
    return {
        "txid": txid(n),
        "vin": vin,
        "vout": [{"n": 0, "value": value, "scriptPubKey": {"hex": spk.hex()}}],
    }


def scanner() -> tuple[Scanner, list[ChainEvent]]:
    events: list[ChainEvent] = []
    s = Scanner("bitcoin", None, None, Wallet(keys), events.append, birthday=100, finality_depth=FINALITY)  # type: ignore[arg-type]
    s.tip = 99
    s.watch(TERMS)
    return s, events


def kinds(events: list[ChainEvent]) -> list[tuple[type, int]]:
    return [(type(e), e.confirmations) for e in events if isinstance(e, HtlcFound)]


def test_funding_is_reported_with_its_terms_and_depth_until_final() -> None:
    s, events = scanner()
    s._apply(block(100, [pay(1, HTLC.script_pubkey, 70_000)]))
    for h in range(101, 106):
        s._apply(block(h, []))
    assert kinds(events) == [(Locked, 1), (Locked, 2), (Locked, 3)]
    first = events[0]
    assert isinstance(first, Locked)
    assert (first.htlc_id, first.amount, first.found) == (f"{txid(1)}:0", 70_000, TERMS)
    assert not s.maturing  # final and unspent: nothing more per block


def test_claim_reveals_the_preimage_and_refund_does_not() -> None:
    s, events = scanner()
    s._apply(block(100, [pay(1, HTLC.script_pubkey, 70_000), pay(2, HTLC.script_pubkey, 80_000)]))
    script = HTLC.witness_script.hex()
    claim = pay(3, bytes(22), 69_000, [(f"{txid(1)}:0", ["30", SECRET.hex(), script])])
    refund = pay(4, bytes(22), 79_000, [(f"{txid(2)}:0", ["30", REFUND_SELECTOR.hex(), script])])
    s._apply(block(101, [claim, refund]))
    spent = {e.htlc_id: e for e in events if isinstance(e, Claimed | Refunded)}
    claimed, refunded = spent[f"{txid(1)}:0"], spent[f"{txid(2)}:0"]
    assert isinstance(claimed, Claimed) and claimed.preimage == SECRET
    assert isinstance(refunded, Refunded) and refunded.txid == txid(4)


def test_reorg_undoes_spend_then_funding_and_wallet_outputs() -> None:
    s, events = scanner()
    wallet_spk = s.wallet.script(RECEIVE, 0)
    s._apply(block(100, [pay(5, wallet_spk, 1_000_000)]))
    s._apply(block(101, [pay(1, HTLC.script_pubkey, 70_000, [(f"{txid(5)}:0", [])])]))
    claim = pay(3, bytes(22), 69_000, [(f"{txid(1)}:0", ["30", SECRET.hex(), HTLC.witness_script.hex()])])
    s._apply(block(102, [claim]))
    assert s.wallet.utxos[f"{txid(5)}:0"].spent_height == 101
    events.clear()
    s._undo_above(100)
    assert events == [
        Reorged("bitcoin", 100, s.hashes[100], f"{txid(1)}:0", HASHLOCK, txid(3), HtlcFact.CLAIMED),
        Reorged("bitcoin", 100, s.hashes[100], f"{txid(1)}:0", HASHLOCK, txid(1), HtlcFact.LOCKED),
    ]
    assert s.tip == 100 and set(s.hashes) == {100}
    assert f"{txid(1)}:0" not in s.fundings
    coin = s.wallet.utxos[f"{txid(5)}:0"]
    assert coin.spent_height is None and f"{txid(5)}:0" in s.wallet.reserved  # ours, coming back


def test_unwatched_outputs_are_ignored_and_index_cost_is_a_lookup() -> None:
    s, events = scanner()
    other = Htlc(sha256(b"x" * 32), CLAIM_PK, REFUND_PK, 500)
    s._apply(block(100, [pay(n, other.script_pubkey, 5_000) for n in range(1, 200)]))
    assert kinds(events) == [] and not s.fundings


class CursorDict:
    """Just the cursor half of AdapterStore, in memory."""

    def __init__(self) -> None:
        self.saved: dict[str, str] = {}

    async def put_cursor(self, chain: str, key: str, value: str) -> None:
        self.saved[key] = value

    async def get_cursor(self, chain: str, key: str) -> str | None:
        return self.saved.get(key)


async def test_state_round_trips_through_the_cursor() -> None:
    s, _ = scanner()
    s._apply(block(100, [pay(1, HTLC.script_pubkey, 70_000), pay(5, s.wallet.script(RECEIVE, 3), 9_000)]))
    cursors = CursorDict()
    s.store = cursors  # type: ignore[assignment]
    await s.save()
    t = Scanner("bitcoin", None, cursors, Wallet(keys), [].append, birthday=100, finality_depth=FINALITY)  # type: ignore[arg-type]
    await t.load()
    assert (t.tip, t.hashes, set(t.htlcs)) == (s.tip, s.hashes, set(s.htlcs))
    assert t.fundings.keys() == s.fundings.keys() and t.fundings[f"{txid(1)}:0"].amount == 70_000
    assert t.wallet.utxos.keys() == s.wallet.utxos.keys() and t.wallet.next_index[RECEIVE] == 4


async def test_a_spend_round_trips_through_the_cursor_in_the_saved_form_of_before() -> None:
    s, _ = scanner()
    s._apply(block(100, [pay(1, HTLC.script_pubkey, 70_000), pay(2, HTLC.script_pubkey, 80_000)]))
    script = HTLC.witness_script.hex()
    claim = pay(3, bytes(22), 69_000, [(f"{txid(1)}:0", ["30", SECRET.hex(), script])])
    refund = pay(4, bytes(22), 79_000, [(f"{txid(2)}:0", ["30", REFUND_SELECTOR.hex(), script])])
    s._apply(block(101, [claim, refund]))
    cursors = CursorDict()
    s.store = cursors  # type: ignore[assignment]
    await s.save()
    saved = {f["outpoint"]: f["spend"][:3] for f in json.loads(cursors.saved["scanner"])["fundings"]}
    assert saved == {
        f"{txid(1)}:0": [txid(3), "claimed", SECRET.hex()],
        f"{txid(2)}:0": [txid(4), "refunded", None],
    }
    events: list[ChainEvent] = []
    t = Scanner("bitcoin", None, cursors, Wallet(keys), events.append, birthday=100, finality_depth=FINALITY)  # type: ignore[arg-type]
    t.watch(TERMS)
    await t.load()
    spends = {e.htlc_id: e for e in events if isinstance(e, Claimed | Refunded)}
    assert spends == {
        f"{txid(1)}:0": Claimed("bitcoin", 101, s.hashes[101], f"{txid(1)}:0", HASHLOCK, txid(3), SECRET, 1),
        f"{txid(2)}:0": Refunded("bitcoin", 101, s.hashes[101], f"{txid(2)}:0", HASHLOCK, txid(4), 1),
    }
