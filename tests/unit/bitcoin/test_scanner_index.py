"""The scanner's block matching, depth reports and reorg undo, fed blocks in getblock's verbosity-2 shape."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
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
    """Just the cursor half of AdapterStore, in memory; ``writes`` keeps what each save wrote."""

    def __init__(self) -> None:
        self.saved: dict[str, str] = {}
        self.writes: list[dict[str, str | None]] = []

    async def put_cursor(self, chain: str, key: str, value: str) -> None:
        await self.put_cursors(chain, {key: value})

    async def get_cursor(self, chain: str, key: str) -> str | None:
        return self.saved.get(key)

    async def get_cursors(self, chain: str, prefix: str) -> dict[str, str]:
        return {k: v for k, v in self.saved.items() if k.startswith(prefix)}

    async def put_cursors(self, chain: str, changes: Mapping[str, str | None]) -> None:
        self.writes.append(dict(changes))
        for key, value in changes.items():
            if value is None:
                self.saved.pop(key, None)
            else:
                self.saved[key] = value

    def bytes_written(self) -> int:
        return sum(len(k) + len(v or "") for k, v in self.writes[-1].items())


def other_terms(n: int) -> HtlcTerms:
    return HtlcTerms(
        "bitcoin", "BTC", 5_000, sha256(n.to_bytes(32, "big")), CLAIM_PK.hex(), REFUND_PK.hex(), 500
    )


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
    fundings = [json.loads(v) for k, v in cursors.saved.items() if k.startswith("scanner.funding.")]
    saved = {f["outpoint"]: f["spend"][:3] for f in fundings}
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


async def test_a_block_saves_what_changed_not_everything_watched() -> None:
    cursors = CursorDict()
    s, _ = scanner()
    s.store = cursors  # type: ignore[assignment]
    for n in range(1_000):
        s.watch(other_terms(n))
    await s.save()
    assert len(cursors.writes[-1]) == 1_002  # header, the 1,001 scripts: each written once
    s._apply(block(100, []))
    await s.save()
    quiet = cursors.bytes_written()
    assert set(cursors.writes[-1]) == {"scanner"}

    s._apply(block(101, [pay(1, HTLC.script_pubkey, 70_000)]))
    await s.save()
    assert set(cursors.writes[-1]) == {"scanner", f"scanner.funding.{txid(1)}:0"}
    assert cursors.bytes_written() < quiet + 1_000

    s.unwatch(HASHLOCK)  # the swap ended: its script and funding leave the store with it
    await s.save()
    assert cursors.writes[-1][f"scanner.funding.{txid(1)}:0"] is None
    assert cursors.writes[-1][f"scanner.htlc.{HTLC.script_pubkey.hex()}"] is None
    t = Scanner("bitcoin", None, cursors, Wallet(keys), [].append, birthday=100, finality_depth=FINALITY)  # type: ignore[arg-type]
    await t.load()
    assert len(t.htlcs) == 1_000 and HTLC.script_pubkey not in t.htlcs and not t.fundings
    assert not t.has_unspent_fundings()


async def test_a_state_saved_whole_by_an_older_version_loads_and_is_split_on_the_next_save() -> None:
    s, _ = scanner()
    s._apply(block(100, [pay(1, HTLC.script_pubkey, 70_000)]))
    cursors = CursorDict()
    whole = {
        "tip": s.tip,
        "hashes": s.hashes,
        "htlcs": [HTLC.witness_script.hex()],
        "fundings": [f.to_json() for f in s.fundings.values()],
        "maturing": sorted(s.maturing),
        "wallet": s.wallet.to_json(),
    }
    cursors.saved["scanner"] = json.dumps(whole)
    t = Scanner("bitcoin", None, cursors, Wallet(keys), [].append, birthday=100, finality_depth=FINALITY)  # type: ignore[arg-type]
    await t.load()
    assert set(t.htlcs) == {HTLC.script_pubkey} and set(t.fundings) == {f"{txid(1)}:0"}
    await t.save()
    assert "htlcs" not in json.loads(cursors.saved["scanner"])
    u = Scanner("bitcoin", None, cursors, Wallet(keys), [].append, birthday=100, finality_depth=FINALITY)  # type: ignore[arg-type]
    await u.load()
    assert set(u.htlcs) == {HTLC.script_pubkey} and u.fundings[f"{txid(1)}:0"].amount == 70_000
    assert u.has_unspent_fundings()


class SlowCursors(CursorDict):
    """A store whose write lets other code run before it completes, as a real database does."""

    async def put_cursors(self, chain: str, changes: Mapping[str, str | None]) -> None:
        await asyncio.sleep(0)
        await super().put_cursors(chain, changes)


async def test_a_watch_made_while_a_save_is_under_way_is_saved_by_the_next() -> None:
    cursors = SlowCursors()
    s, _ = scanner()
    s.store = cursors  # type: ignore[assignment]
    saving = asyncio.create_task(s.save())
    await asyncio.sleep(0)
    s.watch(other_terms(1))  # the adapter's watch() runs between the save's start and its commit
    await saving
    await s.save()
    t = Scanner("bitcoin", None, cursors, Wallet(keys), [].append, birthday=100, finality_depth=FINALITY)  # type: ignore[arg-type]
    await t.load()
    assert set(t.htlcs) == set(s.htlcs) and len(t.htlcs) == 2
