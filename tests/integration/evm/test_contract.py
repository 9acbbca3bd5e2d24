"""The HTLC contract's own rules, called directly: payees, lock once, odd tokens, batches."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account
from settlerd_evm import contract as c
from settlerd_evm.artifact import htlc, load_artifact
from web3 import AsyncWeb3
from web3.exceptions import ContractCustomError

from tests.fixtures.anvil import Anvil

from .conftest import HOUR, new_secret, send

pytestmark = pytest.mark.anvil
ZERO = c.ZERO_ADDRESS


@pytest.fixture
async def h(w3: AsyncWeb3, htlc_address: str) -> Any:
    return w3.eth.contract(address=htlc_address, abi=htlc()["abi"])


async def now(w3: AsyncWeb3) -> int:
    return int((await w3.eth.get_block("latest"))["timestamp"])


async def reverts_with(w3: AsyncWeb3, key: str, to: str, data: bytes | str, value: int = 0) -> str:
    tx = {"from": Account.from_key(key).address, "to": to, "data": data, "value": value}
    with pytest.raises(ContractCustomError) as err:
        await w3.eth.call(tx)  # type: ignore[arg-type]
    name = c.error_name(bytes.fromhex(str(err.value.data)[2:]))
    assert name is not None
    return name


async def test_claim_pays_the_recipient_whoever_submits(anvil: Anvil, w3: AsyncWeb3, h: Any) -> None:
    sender, recipient, stranger = (Account.from_key(k).address for k in anvil.keys[:3])
    preimage, hashlock = new_secret()
    tl = await now(w3) + HOUR
    await send(
        w3, anvil.keys[0], {"to": h.address, "data": c.lock_eth(recipient, hashlock, tl), "value": 1234}
    )
    lock_again = c.lock_eth(recipient, hashlock, tl)
    assert await reverts_with(w3, anvil.keys[0], h.address, lock_again, 1234) == "AlreadyLocked"
    before = await w3.eth.get_balance(recipient)
    receipt = await send(w3, anvil.keys[2], {"to": h.address, "data": c.claim(ZERO, sender, tl, preimage)})
    assert receipt["status"] == 1 and stranger != recipient
    assert await w3.eth.get_balance(recipient) == before + 1234
    (log,) = receipt["logs"]
    claimed = c.decode_log([bytes(t) for t in log["topics"]], bytes(log["data"]))
    assert isinstance(claimed, c.ClaimedLog) and claimed.preimage == preimage and claimed.hashlock == hashlock


async def test_lock_checks_its_terms_and_logs_every_one(
    anvil: Anvil, w3: AsyncWeb3, h: Any, token: Any
) -> None:
    me = Account.from_key(anvil.keys[0]).address
    recipient = Account.from_key(anvil.keys[1]).address
    _, hashlock = new_secret()
    tl = await now(w3) + HOUR
    key = anvil.keys[0]
    refused = {
        "zero amount": (c.lock_eth(recipient, hashlock, tl), 0, "AmountOutOfRange"),
        "amount over 96 bits": (c.lock_token(token.address, recipient, c.MAX_AMOUNT + 1, hashlock, tl), 0,
                                "AmountOutOfRange"),
        "zero recipient": (c.lock_eth(ZERO, hashlock, tl), 1, "ZeroRecipient"),
        "timelock passed": (c.lock_eth(recipient, hashlock, tl - 2 * HOUR), 1, "TimelockInPast"),
        "no token code": (c.lock_token(recipient, recipient, 1, hashlock, tl), 0, "TokenTransferFailed"),
    }  # fmt: skip
    for case, (data, value, error) in refused.items():
        assert await reverts_with(w3, key, h.address, data, value) == error, case

    # The largest amount the slot holds is accepted, and the Locked log carries every term exactly.
    amount = c.MAX_AMOUNT
    await send(w3, key, {"to": token.address, "data": token.encode_abi("mint", [me, amount])})
    await send(w3, key, {"to": token.address, "data": c.approve(h.address, amount)})
    expected_id = c.swap_id(token.address, me, tl, hashlock)
    assert await h.functions.lockToken(token.address, recipient, amount, hashlock, tl).call({"from": me}) == (
        expected_id
    )
    receipt = await send(
        w3, key, {"to": h.address, "data": c.lock_token(token.address, recipient, amount, hashlock, tl)}
    )
    logs = [log for log in receipt["logs"] if log["address"] == h.address]
    (locked,) = [c.decode_log([bytes(t) for t in log["topics"]], bytes(log["data"])) for log in logs]
    assert locked == c.LockedLog(hashlock, token.address, me, recipient, amount, tl)
    assert locked.id == expected_id
    assert await h.functions.swaps(expected_id).call() == [recipient, amount]
    again = c.lock_token(token.address, recipient, amount, hashlock, tl)
    assert await reverts_with(w3, key, h.address, again) == "AlreadyLocked"


async def test_fee_on_transfer_token_is_refused_and_no_bool_token_works(
    anvil: Anvil, w3: AsyncWeb3, h: Any
) -> None:
    arts = load_artifact("test/TestTokens.json")
    me = Account.from_key(anvil.keys[0]).address
    recipient = Account.from_key(anvil.keys[1]).address
    for name, expected in (("FeeToken", "TokenAmountMismatch"), ("NoBoolToken", None)):
        receipt = await send(w3, anvil.keys[0], {"data": arts[name]["bytecode"]})
        tok = w3.eth.contract(address=receipt["contractAddress"], abi=arts[name]["abi"])
        await send(w3, anvil.keys[0], {"to": tok.address, "data": tok.encode_abi("mint", [me, 10**9])})
        await send(w3, anvil.keys[0], {"to": tok.address, "data": c.approve(h.address, 10**6)})
        preimage, hashlock = new_secret()
        tl = await now(w3) + HOUR
        data = c.lock_token(tok.address, recipient, 10**6, hashlock, tl)
        if expected:
            assert await reverts_with(w3, anvil.keys[0], h.address, data) == expected
            continue
        assert (await send(w3, anvil.keys[0], {"to": h.address, "data": data}))["status"] == 1
        claim = c.claim(tok.address, me, tl, preimage)
        assert (await send(w3, anvil.keys[1], {"to": h.address, "data": claim}))["status"] == 1
        assert await tok.functions.balanceOf(recipient).call() == 10**6


async def test_batch_lock_claim_and_refund(anvil: Anvil, w3: AsyncWeb3, h: Any, token: Any) -> None:
    me = Account.from_key(anvil.keys[0]).address
    recipient = Account.from_key(anvil.keys[1]).address
    tl = await now(w3) + HOUR
    secrets_ = [new_secret() for _ in range(4)]
    batch = [(recipient, 10 + i, hl, tl) for i, (_, hl) in enumerate(secrets_)]
    wrong_value = h.encode_abi("lockEthMany", [batch])
    assert await reverts_with(w3, anvil.keys[0], h.address, wrong_value, 1) == "ValueMismatch"
    await send(w3, anvil.keys[0], {"to": h.address, "data": wrong_value, "value": sum(b[1] for b in batch)})
    await send(w3, anvil.keys[0], {"to": token.address, "data": c.approve(h.address, 4 * 10**6)})
    tok_batch = [(recipient, 10**6, hl, tl + 1) for _, hl in secrets_]
    await send(
        w3,
        anvil.keys[0],
        {"to": h.address, "data": h.encode_abi("lockTokenMany", [token.address, tok_batch])},
    )

    # Claim two ETH swaps and all token swaps in one call; the other two ETH swaps are refunded later.
    keys = [(ZERO, me, tl)] * 2 + [(token.address, me, tl + 1)] * 4
    preimages = [p for p, _ in secrets_[:2]] + [p for p, _ in secrets_]
    eth_before = await w3.eth.get_balance(recipient)
    tok_before = await token.functions.balanceOf(recipient).call()
    receipt = await send(
        w3, anvil.keys[2], {"to": h.address, "data": h.encode_abi("claimMany", [keys, preimages])}
    )
    assert receipt["status"] == 1
    assert await w3.eth.get_balance(recipient) == eth_before + 10 + 11
    assert await token.functions.balanceOf(recipient).call() == tok_before + 4 * 10**6

    refund = h.encode_abi("refundMany", [[(ZERO, me, tl)] * 2, [hl for _, hl in secrets_[2:]]])
    assert await reverts_with(w3, anvil.keys[2], h.address, refund) == "RefundNotYetAllowed"
    anvil.rpc("evm_increaseTime", HOUR + 1)
    anvil.rpc("evm_mine")
    me_before = await w3.eth.get_balance(me)
    assert (await send(w3, anvil.keys[2], {"to": h.address, "data": refund}))["status"] == 1
    assert await w3.eth.get_balance(me) == me_before + 12 + 13
    for _, hl in secrets_:
        assert await h.functions.swaps(c.swap_id(ZERO, me, tl, hl)).call() == [ZERO, 0]
