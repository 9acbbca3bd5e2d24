"""The RPC methods, with bitcoind's parameter names, results and error codes and texts."""

from __future__ import annotations

import string
import time
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from .chain import BlockRejected
from .codec import DecodeError, OutPoint, Tx, hash_hex, parse_tx
from .jsonshapes import (
    REGTEST_DIFFICULTY,
    WORK_PER_BLOCK,
    Amount,
    block_json,
    confirmations,
    header_json,
    mempool_entry_json,
    script_pubkey_json,
    tx_json,
)
from .mempool import Reject, fee_for
from .node import Node
from .rpcserver import (
    RPC_DESERIALIZATION_ERROR,
    RPC_INVALID_ADDRESS_OR_KEY,
    RPC_INVALID_PARAMETER,
    RPC_MISC_ERROR,
    RPC_TYPE_ERROR,
    RPC_VERIFY_ALREADY_IN_UTXO_SET,
    RPC_VERIFY_ERROR,
    RPC_VERIFY_REJECTED,
    Handler,
    RpcError,
)
from .script import script_for_address

VERSION = 280000  # the bitcoind release whose RPC behaviour (full RBF, error texts) this node follows
SUBVERSION = "/kernelnode:0.1.0(py-bitcoinkernel 0.1.0a5)/"
PROTOCOL_VERSION = 70016
DEFAULT_MAX_FEERATE = Decimal("0.10")  # BTC/kvB, sendrawtransaction's and testmempoolaccept's default
MAX_CONF_TARGET = 1008
MAX_PACKAGE_COUNT = 25
NO_TXINDEX = (
    "No such mempool transaction. Use -txindex or provide a block hash"
    " to enable blockchain transaction queries"
)
WALLET_HINT = ". Use gettransaction for wallet transactions."


def _hash_param(value: Any, name: str) -> bytes:
    if not isinstance(value, str):
        raise RpcError(
            RPC_TYPE_ERROR, f"JSON value of type {type(value).__name__} is not of expected type string"
        )
    if len(value) != 64:
        raise RpcError(
            RPC_INVALID_PARAMETER, f"{name} must be of length 64 (not {len(value)}, for '{value}')"
        )
    if any(c not in string.hexdigits for c in value):
        raise RpcError(RPC_INVALID_PARAMETER, f"{name} must be hexadecimal string (not '{value}')")
    return bytes.fromhex(value)[::-1]


def _int_param(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RpcError(
            RPC_TYPE_ERROR, f"JSON value of type {type(value).__name__} is not of expected type number"
        )
    return value


def _verbosity(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    return _int_param(value)


def _btc_per_kvb_to_sat(value: Any) -> int:
    try:
        return int(Decimal(str(value)) * 100_000_000)
    except InvalidOperation as exc:
        raise RpcError(RPC_TYPE_ERROR, "Amount is not a number or string") from exc


def _decode_tx(hexstr: Any, message: str) -> Tx:
    try:
        return parse_tx(bytes.fromhex(hexstr))
    except (DecodeError, ValueError, TypeError) as exc:
        raise RpcError(RPC_DESERIALIZATION_ERROR, message) from exc


def _address_spk(address: Any) -> bytes:
    spk = script_for_address(address) if isinstance(address, str) else None
    if spk is None:
        raise RpcError(RPC_INVALID_ADDRESS_OR_KEY, "Error: Invalid address")
    return spk


class Methods:
    def __init__(self, node: Node, stop: Callable[[], None]) -> None:
        self.node = node
        self._stop = stop

    def table(self) -> dict[str, Handler]:
        return {
            name: getattr(self, name)
            for name in dir(self)
            if not name.startswith("_") and name not in ("table", "node") and callable(getattr(self, name))
        }

    def _block_hash(self, value: Any, name: str = "blockhash") -> bytes:
        h = _hash_param(value, name)
        if h not in self.node.chain.meta:
            raise RpcError(RPC_INVALID_ADDRESS_OR_KEY, "Block not found")
        return h

    # --- chain ---
    async def getblockchaininfo(self) -> dict[str, Any]:
        chain = self.node.chain
        tip = chain.tip
        return {
            "chain": "regtest",
            "blocks": chain.height,
            "headers": chain.height,
            "bestblockhash": hash_hex(tip),
            "bits": "207fffff",
            "target": "7fffff" + "0" * 58,
            "difficulty": REGTEST_DIFFICULTY,
            "time": chain.meta[tip].time,
            "mediantime": chain.meta[tip].mtp,
            "verificationprogress": 1,
            "initialblockdownload": self.node.in_ibd(),
            "chainwork": f"{(chain.height + 1) * WORK_PER_BLOCK:064x}",
            "size_on_disk": sum(len(r) for r in chain.store.raw.values()),
            "pruned": False,
            "warnings": [],
        }

    async def getblockcount(self) -> int:
        return self.node.chain.height

    async def getbestblockhash(self) -> str:
        return hash_hex(self.node.chain.tip)

    async def getdifficulty(self) -> float:
        return REGTEST_DIFFICULTY

    async def getblockhash(self, height: Any) -> str:
        h = _int_param(height)
        if h < 0 or h > self.node.chain.height:
            raise RpcError(RPC_INVALID_PARAMETER, "Block height out of range")
        return hash_hex(self.node.chain.active[h])

    async def getblockheader(self, blockhash: Any, verbose: Any = True) -> Any:
        h = self._block_hash(blockhash, "hash")
        if not verbose:
            return self.node.chain.block(h).header.serialize().hex()
        return header_json(self.node.chain, h)

    async def getblock(self, blockhash: Any, verbosity: Any = 1) -> Any:
        h = self._block_hash(blockhash)
        level = _verbosity(verbosity)
        if level <= 0:
            return self.node.chain.block(h).serialize().hex()
        return block_json(self.node.chain, h, min(level, 2))

    async def getchaintips(self) -> list[dict[str, Any]]:
        chain = self.node.chain
        has_child = {m.prev for m in chain.meta.values() if m.height > 0}
        excluded = chain.excluded()
        tips = []
        for h, m in chain.meta.items():
            if h in has_child and h != chain.tip:
                continue
            fork = h
            while not chain.in_active(fork):
                fork = chain.meta[fork].prev
            status = "active" if h == chain.tip else ("invalid" if h in excluded else "valid-fork")
            tips.append(
                {
                    "height": m.height,
                    "hash": hash_hex(h),
                    "branchlen": m.height - chain.meta[fork].height,
                    "status": status,
                }
            )
        return tips

    async def invalidateblock(self, blockhash: Any) -> None:
        h = self._block_hash(blockhash)
        if h == self.node.chain.genesis_hash:
            raise RpcError(RPC_MISC_ERROR, "Genesis block cannot be invalidated")
        self.node.invalidate(h)

    async def reconsiderblock(self, blockhash: Any) -> None:
        self.node.reconsider(self._block_hash(blockhash))

    # --- transactions ---
    async def getrawtransaction(self, txid: Any, verbose: Any = 0, blockhash: Any = None) -> Any:
        t = _hash_param(txid, "parameter 1")
        level = _verbosity(verbose)
        chain = self.node.chain
        tx: Tx | None = None
        in_block: bytes | None = None
        if blockhash is not None:
            in_block = self._block_hash(blockhash)
            tx = chain.find_tx(in_block, t)
            if tx is None:
                raise RpcError(
                    RPC_INVALID_ADDRESS_OR_KEY,
                    "No such transaction found in the provided block" + WALLET_HINT,
                )
        else:
            entry = self.node.mempool.entries.get(t)
            if entry is None:
                raise RpcError(RPC_INVALID_ADDRESS_OR_KEY, NO_TXINDEX + WALLET_HINT)
            tx = entry.tx
        if level <= 0:
            return tx.serialize().hex()
        fee = None
        if in_block is not None and level >= 2 and in_block in chain.fees and not tx.is_coinbase():
            fee = chain.fees[in_block][chain.meta[in_block].txids.index(t) - 1]
        out: dict[str, Any] = {}
        if in_block is not None:
            out["in_active_chain"] = chain.in_active(in_block)
        out.update(tx_json(tx, fee=fee))
        if in_block is not None:
            out["blockhash"] = hash_hex(in_block)
            conf = confirmations(chain, in_block)
            out["confirmations"] = max(conf, 0)
            if conf > 0:
                out["time"] = out["blocktime"] = chain.meta[in_block].time
        return out

    async def decoderawtransaction(self, hexstring: Any, iswitness: Any = None) -> dict[str, Any]:
        return tx_json(_decode_tx(hexstring, "TX decode failed"), include_hex=False)

    async def sendrawtransaction(
        self, hexstring: Any, maxfeerate: Any = DEFAULT_MAX_FEERATE, maxburnamount: Any = 0
    ) -> str:
        tx = _decode_tx(hexstring, "TX decode failed. Make sure the tx has at least one input.")
        pool = self.node.mempool
        txid = tx.txid
        if any(OutPoint(txid, n) in self.node.chain.utxo for n in range(len(tx.vout))):
            raise RpcError(RPC_VERIFY_ALREADY_IN_UTXO_SET, "Transaction outputs already in utxo set")
        existing = pool.entries.get(txid)
        if existing is not None and existing.wtxid == tx.wtxid:
            return hash_hex(txid)
        try:
            verdict = pool.check(tx)
        except Reject as rej:
            code = RPC_VERIFY_ERROR if rej.kind == Reject.MISSING else RPC_VERIFY_REJECTED
            raise RpcError(code, str(rej)) from rej
        max_rate = _btc_per_kvb_to_sat(maxfeerate)
        if max_rate and verdict.fee > fee_for(max_rate, verdict.vsize):
            raise RpcError(
                RPC_VERIFY_ERROR, "Fee exceeds maximum configured by user (e.g. -maxtxfee, maxfeerate)"
            )
        pool.accept(tx)
        return hash_hex(txid)

    async def testmempoolaccept(
        self, rawtxs: Any, maxfeerate: Any = DEFAULT_MAX_FEERATE
    ) -> list[dict[str, Any]]:
        if not isinstance(rawtxs, list):
            raise RpcError(RPC_TYPE_ERROR, "JSON value is not of expected type array")
        if not 1 <= len(rawtxs) <= MAX_PACKAGE_COUNT:
            raise RpcError(
                RPC_INVALID_PARAMETER, f"Array must contain between 1 and {MAX_PACKAGE_COUNT} transactions."
            )
        if len(rawtxs) > 1:
            raise RpcError(RPC_INVALID_PARAMETER, "This stand-in node tests one transaction at a time.")
        tx = _decode_tx(rawtxs[0], "TX decode failed: unable to parse the transaction")
        result: dict[str, Any] = {"txid": hash_hex(tx.txid), "wtxid": hash_hex(tx.wtxid)}
        try:
            verdict = self.node.mempool.check(tx)
        except Reject as rej:
            reason = "missing-inputs" if rej.kind == Reject.MISSING else rej.reason
            result.update({"allowed": False, "reject-reason": reason, "reject-details": str(rej)})
            return [result]
        max_rate = _btc_per_kvb_to_sat(maxfeerate)
        if max_rate and verdict.fee > fee_for(max_rate, verdict.vsize):
            result.update({"allowed": False, "reject-reason": "max-fee-exceeded"})
            return [result]
        result.update(
            {
                "allowed": True,
                "vsize": verdict.vsize,
                "fees": {
                    "base": Amount(verdict.fee),
                    "effective-feerate": Amount(verdict.fee * 1000 // verdict.vsize),
                    "effective-includes": [hash_hex(tx.wtxid)],
                },
            }
        )
        return [result]

    async def getrawmempool(self, verbose: Any = False, mempool_sequence: Any = False) -> Any:
        pool = self.node.mempool
        if verbose:
            return {hash_hex(t): mempool_entry_json(pool, e) for t, e in pool.entries.items()}
        return [hash_hex(t) for t in pool.entries]

    async def getmempoolentry(self, txid: Any) -> dict[str, Any]:
        t = _hash_param(txid, "txid")
        entry = self.node.mempool.entries.get(t)
        if entry is None:
            raise RpcError(RPC_INVALID_ADDRESS_OR_KEY, "Transaction not in mempool")
        return mempool_entry_json(self.node.mempool, entry)

    async def getmempoolinfo(self) -> dict[str, Any]:
        pool = self.node.mempool
        return {
            "loaded": True,
            "size": len(pool.entries),
            "bytes": sum(e.vsize for e in pool.entries.values()),
            "usage": sum(e.tx.size for e in pool.entries.values()),
            "total_fee": Amount(sum(e.fee for e in pool.entries.values())),
            "maxmempool": 300_000_000,
            "mempoolminfee": Amount(pool.min_relay_feerate),
            "minrelaytxfee": Amount(pool.min_relay_feerate),
            "incrementalrelayfee": Amount(pool.incremental_feerate),
            "unbroadcastcount": 0,
            "fullrbf": True,
        }

    async def gettxout(self, txid: Any, n: Any, include_mempool: Any = True) -> dict[str, Any] | None:
        outpoint = OutPoint(_hash_param(txid, "txid"), _int_param(n))
        pool = self.node.mempool
        chain = self.node.chain
        if include_mempool:
            if outpoint in pool.spenders:
                return None
            coin = pool.coin(outpoint)
        else:
            coin = chain.utxo.get(outpoint)
        if coin is None:
            return None
        in_mempool = outpoint.txid in pool.entries and outpoint not in chain.utxo
        return {
            "bestblock": hash_hex(chain.tip),
            "confirmations": 0 if in_mempool else chain.height - coin.height + 1,
            "value": Amount(coin.value),
            "scriptPubKey": script_pubkey_json(coin.script_pubkey),
            "coinbase": coin.coinbase,
        }

    async def estimatesmartfee(self, conf_target: Any, estimate_mode: Any = "economical") -> dict[str, Any]:
        target = _int_param(conf_target)
        if not 1 <= target <= MAX_CONF_TARGET:
            raise RpcError(
                RPC_INVALID_PARAMETER, f"Invalid conf_target, must be between 1 and {MAX_CONF_TARGET}"
            )
        if str(estimate_mode).lower() not in ("unset", "economical", "conservative"):
            raise RpcError(
                RPC_INVALID_PARAMETER,
                'Invalid estimate_mode parameter, must be one of: "unset", "economical", "conservative"',
            )
        # This node keeps no fee history, so it answers as bitcoind does before it has any: no feerate, and
        # "blocks" 0, the target the estimator fell back to. bitcoind's -fallbackfee is a wallet setting that
        # estimatesmartfee never reads, so no option here changes this answer either.
        return {"errors": ["Insufficient data or no feerate found"], "blocks": 0}

    # --- mining ---
    async def generatetoaddress(self, nblocks: Any, address: Any, maxtries: Any = 1_000_000) -> list[str]:
        count = _int_param(nblocks)
        spk = _address_spk(address)
        try:
            return [hash_hex(h) for h in self.node.mine(count, spk)]
        except BlockRejected as exc:
            raise RpcError(RPC_MISC_ERROR, f"ProcessNewBlock, block not accepted: {exc}") from exc

    async def generateblock(self, output: Any, transactions: Any, submit: Any = True) -> dict[str, Any]:
        spk = script_for_address(output) if isinstance(output, str) else None
        if spk is None and isinstance(output, str) and output.startswith("raw(") and output.endswith(")"):
            spk = bytes.fromhex(output[4:-1])
        if spk is None:
            raise RpcError(RPC_INVALID_ADDRESS_OR_KEY, "Error: Invalid address or descriptor")
        if not isinstance(transactions, list):
            raise RpcError(RPC_TYPE_ERROR, "JSON value is not of expected type array")
        txs: list[Tx] = []
        for item in transactions:
            if isinstance(item, str) and len(item) == 64 and all(c in string.hexdigits for c in item):
                entry = self.node.mempool.entries.get(bytes.fromhex(item)[::-1])
                if entry is None:
                    raise RpcError(RPC_INVALID_ADDRESS_OR_KEY, f"Transaction {item} not in mempool.")
                txs.append(entry.tx)
            else:
                msg = f"Transaction decode failed for {item}. Make sure the tx has at least one input."
                txs.append(_decode_tx(item, msg))
        if submit is False:
            raise RpcError(RPC_INVALID_PARAMETER, "This stand-in node always submits generated blocks.")
        try:
            h = self.node.mine_with(txs, spk)
        except BlockRejected as exc:
            raise RpcError(RPC_VERIFY_ERROR, f"TestBlockValidity failed: {exc}") from exc
        return {"hash": hash_hex(h)}

    # --- node ---
    async def getnetworkinfo(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "subversion": SUBVERSION,
            "protocolversion": PROTOCOL_VERSION,
            "localservices": "0000000000000409",
            "localservicesnames": ["NETWORK", "WITNESS", "NETWORK_LIMITED"],
            "localrelay": True,
            "timeoffset": 0,
            "networkactive": False,
            "connections": 0,
            "connections_in": 0,
            "connections_out": 0,
            "networks": [],
            "relayfee": Amount(self.node.mempool.min_relay_feerate),
            "incrementalfee": Amount(self.node.mempool.incremental_feerate),
            "localaddresses": [],
            "warnings": [],
        }

    async def getindexinfo(self, index_name: Any = None) -> dict[str, Any]:
        return {}

    async def uptime(self) -> int:
        return int(time.time() - self.node.started)

    async def stop(self, wait: Any = None) -> str:
        self._stop()
        return "Bitcoin Core stopping"
