"""bitcoind's JSON shapes for blocks, headers, transactions and mempool entries.

Amounts are `Amount` values, written by the RPC encoder as JSON numbers with 8 decimals like bitcoind's
ValueFromAmount (50.00000000), not as Python floats.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .chain import Chain
from .codec import Block, Tx, hash_hex
from .mempool import Entry, Mempool
from .script import address_of, script_type, to_asm

REGTEST_DIFFICULTY = 4.656542373906925e-10  # difficulty of bits 0x207fffff
WORK_PER_BLOCK = 2  # 2**256 // (regtest target + 1)

_AMOUNT_TAG = "\x00amount:"
_AMOUNT_RE = re.compile(r'"\\u0000amount:(-?[0-9]+\.[0-9]{8})"')


class Amount(str):
    """Satoshis rendered as a BTC JSON number with 8 decimals."""

    def __new__(cls, sats: int) -> Amount:
        sign = "-" if sats < 0 else ""
        q, r = divmod(abs(sats), 100_000_000)
        return super().__new__(cls, f"{_AMOUNT_TAG}{sign}{q}.{r:08d}")


def dumps(obj: Any) -> str:
    return _AMOUNT_RE.sub(r"\1", json.dumps(obj))


def script_pubkey_json(spk: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {"asm": to_asm(spk), "hex": spk.hex()}
    address = address_of(spk)
    if address is not None:
        out["address"] = address
    out["type"] = script_type(spk)
    return out


def tx_json(tx: Tx, fee: int | None = None, include_hex: bool = True) -> dict[str, Any]:
    vin: list[dict[str, Any]] = []
    for txin in tx.vin:
        item: dict[str, Any]
        if tx.is_coinbase():
            item = {"coinbase": txin.script_sig.hex()}
        else:
            item = {
                "txid": hash_hex(txin.prevout.txid),
                "vout": txin.prevout.vout,
                "scriptSig": {
                    "asm": to_asm(txin.script_sig, sighash_decode=True),
                    "hex": txin.script_sig.hex(),
                },
            }
        if txin.witness:
            item["txinwitness"] = [w.hex() for w in txin.witness]
        item["sequence"] = txin.sequence
        vin.append(item)
    out: dict[str, Any] = {
        "txid": hash_hex(tx.txid),
        "hash": hash_hex(tx.wtxid),
        "version": tx.version,
        "size": tx.size,
        "vsize": tx.vsize,
        "weight": tx.weight,
        "locktime": tx.locktime,
        "vin": vin,
        "vout": [
            {"value": Amount(o.value), "n": n, "scriptPubKey": script_pubkey_json(o.script_pubkey)}
            for n, o in enumerate(tx.vout)
        ],
    }
    if fee is not None:
        out["fee"] = Amount(fee)
    if include_hex:
        out["hex"] = tx.serialize().hex()
    return out


def confirmations(chain: Chain, block_hash: bytes) -> int:
    if not chain.in_active(block_hash):
        return -1
    return chain.height - chain.meta[block_hash].height + 1


def header_json(chain: Chain, block_hash: bytes) -> dict[str, Any]:
    meta = chain.meta[block_hash]
    header = chain.block(block_hash).header
    out: dict[str, Any] = {
        "hash": hash_hex(block_hash),
        "confirmations": confirmations(chain, block_hash),
        "height": meta.height,
        "version": header.version,
        "versionHex": f"{header.version & 0xFFFFFFFF:08x}",
        "merkleroot": hash_hex(header.merkle_root),
        "time": header.time,
        "mediantime": meta.mtp,
        "nonce": header.nonce,
        "bits": f"{header.bits:08x}",
        "difficulty": REGTEST_DIFFICULTY,
        "chainwork": f"{(meta.height + 1) * WORK_PER_BLOCK:064x}",
        "nTx": len(meta.txids),
    }
    if meta.height > 0:
        out["previousblockhash"] = hash_hex(meta.prev)
    if chain.in_active(block_hash) and meta.height < chain.height:
        out["nextblockhash"] = hash_hex(chain.active[meta.height + 1])
    return out


def block_json(chain: Chain, block_hash: bytes, verbosity: int) -> dict[str, Any]:
    blk: Block = chain.block(block_hash)
    out = header_json(chain, block_hash)
    out["strippedsize"] = blk.stripped_size
    out["size"] = blk.size
    out["weight"] = blk.weight
    if verbosity == 1:
        out["tx"] = [hash_hex(t.txid) for t in blk.txs]
    else:
        fees = chain.fees.get(block_hash)
        txs = []
        for i, tx in enumerate(blk.txs):
            fee = fees[i - 1] if fees is not None and i > 0 else None
            txs.append(tx_json(tx, fee=fee))
        out["tx"] = txs
    return out


def mempool_entry_json(pool: Mempool, entry: Entry) -> dict[str, Any]:
    ancestors = pool.ancestors(entry.txid)
    descendants = pool.descendants(entry.txid)
    anc = [pool.entries[a] for a in ancestors]
    desc = [pool.entries[d] for d in descendants]
    return {
        "vsize": entry.vsize,
        "weight": entry.weight,
        "time": entry.time,
        "height": entry.height,
        "descendantcount": len(desc) + 1,
        "descendantsize": entry.vsize + sum(d.vsize for d in desc),
        "ancestorcount": len(anc) + 1,
        "ancestorsize": entry.vsize + sum(a.vsize for a in anc),
        "wtxid": hash_hex(entry.wtxid),
        "fees": {
            "base": Amount(entry.fee),
            "modified": Amount(entry.fee),
            "ancestor": Amount(entry.fee + sum(a.fee for a in anc)),
            "descendant": Amount(entry.fee + sum(d.fee for d in desc)),
        },
        "depends": sorted(hash_hex(p) for p in entry.parents),
        "spentby": sorted(hash_hex(c) for c in pool.children(entry.txid)),
        "bip125-replaceable": pool.signals_rbf(entry.txid),
        "unbroadcast": False,
    }
