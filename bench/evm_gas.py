"""Gas used by every HTLC operation, measured on anvil, beside the targets from issue 5.

Run from the repository root: ``.venv/bin/python bench/evm_gas.py``. Not a test: it prints figures.

Fairness rules, the same for every row: payees already hold ETH and the token (a transfer to an empty
account costs 25,000 more for ETH, 20,000 for a first token balance, whatever the contract); claims are
submitted by the recipient and refunds by the sender, as settlerd does; ERC-20 rows are a second swap on a
contract that already holds the token; approve is excluded (an exact-amount approve before each lock).
Secrets come from a seeded generator and have no zero byte in preimage or hashlock, so each run prints the
same figures and none is flattered by cheap calldata (a zero byte costs 12 gas less than any other).
"""

from __future__ import annotations

import random
import sys
from hashlib import sha256
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eth_account import Account
from settlerd_evm.artifact import load_artifact
from web3 import Web3

from tests.fixtures.anvil import run_anvil

BATCH = 10
SEED = 5  # any fixed seed: the figures only need to repeat from run to run
TARGETS = {
    ("ETH", "lock"): 47_573,
    ("ETH", "claim"): 32_424,
    ("ETH", "refund"): 31_571,
    ("ERC-20", "lock"): 65_418,
    ("ERC-20", "claim"): 41_952,
    ("ERC-20", "refund"): 41_132,
}
HOUR = 3600


class Bench:
    def __init__(self, w3: Web3, keys: tuple[str, ...]) -> None:
        self.w3 = w3
        self.sender = Account.from_key(keys[0])
        self.recipient = Account.from_key(keys[1])
        self.third = Account.from_key(keys[2])

    def send(self, account: Any, fn: Any, value: int = 0) -> int:
        tx = fn.build_transaction(
            {
                "from": account.address,
                "value": value,
                "nonce": self.w3.eth.get_transaction_count(account.address),
            }
        )
        signed = account.sign_transaction(tx)
        receipt = self.w3.eth.wait_for_transaction_receipt(
            self.w3.eth.send_raw_transaction(signed.raw_transaction)
        )
        if receipt["status"] != 1:
            raise RuntimeError(f"transaction reverted: {fn.fn_name}")
        self.last_tx = receipt["transactionHash"]
        return int(receipt["gasUsed"])

    def deploy(self, contract: dict[str, Any]) -> Any:
        factory = self.w3.eth.contract(abi=contract["abi"], bytecode=contract["bytecode"])
        tx = factory.constructor().build_transaction(
            {"from": self.sender.address, "nonce": self.w3.eth.get_transaction_count(self.sender.address)}
        )
        signed = self.sender.sign_transaction(tx)
        receipt = self.w3.eth.wait_for_transaction_receipt(
            self.w3.eth.send_raw_transaction(signed.raw_transaction)
        )
        return self.w3.eth.contract(address=receipt["contractAddress"], abi=contract["abi"])

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def pass_time(self, seconds: int) -> None:
        self.w3.provider.make_request("evm_increaseTime", [seconds])
        self.w3.provider.make_request("evm_mine", [])


def main() -> int:
    htlc_art = load_artifact()
    tokens_art = load_artifact("test/TestTokens.json")
    rows: list[tuple[str, str, int, int | None]] = []
    with run_anvil() as node:
        w3 = Web3(Web3.HTTPProvider(node.rpc_url))
        b = Bench(w3, node.keys)
        htlc = b.deploy(htlc_art["HTLC"])
        token = b.deploy(tokens_art["TestToken"])
        s, r = b.sender.address, b.recipient.address
        b.send(b.sender, token.functions.mint(s, 10**15))
        b.send(b.sender, token.functions.mint(r, 10**6))  # a funded recipient: its balance slot is non-zero
        eth_amount, tok_amount = 10**17, 5_000 * 10**6

        def key(tok: str, timelock: int) -> tuple[str, str, int]:
            return (tok, s, timelock)

        rng = random.Random(SEED)

        def new_secret() -> tuple[bytes, bytes]:
            pre, h = b"\0", b"\0"
            while 0 in pre or 0 in h:
                pre = rng.randbytes(32)
                h = sha256(pre).digest()
            return pre, h

        def lock_eth(amount: int, timelock: int) -> tuple[int, bytes, bytes]:
            pre, h = new_secret()
            return b.send(b.sender, htlc.functions.lockEth(r, h, timelock), value=amount), pre, h

        def lock_tok(amount: int, timelock: int) -> tuple[int, bytes, bytes]:
            pre, h = new_secret()
            b.send(b.sender, token.functions.approve(htlc.address, amount))
            return b.send(b.sender, htlc.functions.lockToken(token.address, r, amount, h, timelock)), pre, h

        zero = "0x" + "00" * 20
        for asset, tok, amount, lock in (
            ("ETH", zero, eth_amount, lock_eth),
            ("ERC-20", token.address, tok_amount, lock_tok),
        ):
            lock(amount, b.now() + HOUR)  # warm-up swap: the contract now holds the asset
            tl = b.now() + HOUR
            gas, pre, _ = lock(amount, tl)
            rows.append((asset, "lock", gas, TARGETS[(asset, "lock")]))
            if asset == "ERC-20":
                rows.append((asset, "  of which FoT refusal", fot_check_gas(w3, b.last_tx), None))
            gas = b.send(b.recipient, htlc.functions.claim(key(tok, tl), pre))
            rows.append((asset, "claim", gas, TARGETS[(asset, "claim")]))
            tl = b.now() + HOUR
            _, pre, _ = lock(amount, tl)
            gas = b.send(b.third, htlc.functions.claim(key(tok, tl), pre))
            rows.append((asset, "claim by a third party", gas, None))
            tl = b.now() + HOUR
            _, _, h = lock(amount, tl)
            b.pass_time(HOUR + 1)
            gas = b.send(b.sender, htlc.functions.refund(key(tok, tl), h))
            rows.append((asset, "refund", gas, TARGETS[(asset, "refund")]))

            # A batch of ten: ten hashlocks, same recipient, one transaction per operation.
            for settle in ("claim", "refund"):
                tl = b.now() + HOUR
                secrets_ = [new_secret() for _ in range(BATCH)]
                batch = [(r, amount, h, tl) for _, h in secrets_]
                if asset == "ETH":
                    gas = b.send(b.sender, htlc.functions.lockEthMany(batch), value=amount * BATCH)
                else:
                    b.send(b.sender, token.functions.approve(htlc.address, amount * BATCH))
                    gas = b.send(b.sender, htlc.functions.lockTokenMany(token.address, batch))
                if settle == "claim":
                    rows.append((asset, f"lock x{BATCH}, per swap", gas // BATCH, TARGETS[(asset, "lock")]))
                    gas = b.send(
                        b.recipient,
                        htlc.functions.claimMany([key(tok, tl)] * BATCH, [p for p, _ in secrets_]),
                    )
                else:
                    b.pass_time(HOUR + 1)
                    gas = b.send(
                        b.sender,
                        htlc.functions.refundMany([key(tok, tl)] * BATCH, [h for _, h in secrets_]),
                    )
                rows.append((asset, f"{settle} x{BATCH}, per swap", gas // BATCH, TARGETS[(asset, settle)]))

    print_table(rows, htlc_art["HTLC"]["compiler"])
    return 0


def fot_check_gas(w3: Web3, txid: Any) -> int:
    """Net gas of the two balanceOf calls that refuse fee-on-transfer tokens.

    From the call tracer, plus the warm call each; minus the cold-slot surcharge (2,100 - 100) of the first
    read, which transferFrom would pay anyway when it updates the contract's balance.
    """
    trace = w3.provider.make_request(
        "debug_traceTransaction", ["0x" + bytes(txid).hex(), {"tracer": "callTracer"}]
    )
    calls = [x for x in trace["result"].get("calls", []) if x["type"] == "STATICCALL"]
    return sum(int(x["gasUsed"], 16) + 100 for x in calls) - 2_000


def print_table(rows: list[tuple[str, str, int, int | None]], compiler: dict[str, Any]) -> None:
    opt = compiler["settings"]["optimizer"]
    pipeline = "via IR" if compiler["settings"].get("viaIR") else "legacy"
    print(f"HTLC gas on anvil, solc {compiler['version']} optimizer runs={opt['runs']}, {pipeline}")
    print("payees already hold ETH and the token: a payee with no ETH yet costs 25,000 more on any contract")
    print("claims sent by the recipient, refunds by the sender; ERC-20 rows: second swap, approve excluded")
    print(f"{'asset':<7} {'operation':<24} {'gas':>8} {'target':>8} {'vs target':>10}")
    for asset, op, gas, target in rows:
        delta = "" if target is None else f"{gas - target:+,}"
        tgt = "" if target is None else f"{target:,}"
        print(f"{asset:<7} {op:<24} {f'{gas:,}':>8} {tgt:>8} {delta:>10}")


if __name__ == "__main__":
    sys.exit(main())
