"""Deploy the committed HTLC artifact; ``settlerd contract deploy`` calls ``deploy_contract``."""

from __future__ import annotations

from eth_account import Account
from web3 import AsyncHTTPProvider, AsyncWeb3

from . import fees
from .artifact import htlc

DEPLOY_GAS_HEADROOM_NUM, DEPLOY_GAS_HEADROOM_DEN = 6, 5  # estimates are exact; leave room for rounding


class DeployError(RuntimeError):
    pass


async def deploy_contract(
    rpc_url: str, private_key: str, *, max_fee_gwei: float = 200.0, priority_fee_gwei: float = 1.0,
    timeout_s: float = 300.0,
) -> str:  # fmt: skip
    """Deploy the HTLC contract from the key's account, wait for the receipt, return the checksum address.

    The deployed code is compared with the artifact's deployedBytecode, the same check the adapter makes
    when it starts.
    """
    w3 = AsyncWeb3(AsyncHTTPProvider(rpc_url))
    try:
        account = Account.from_key(private_key)
        artifact = htlc()
        call = {"from": account.address, "data": artifact["bytecode"]}
        gas = int(await w3.eth.estimate_gas(call)) * DEPLOY_GAS_HEADROOM_NUM // DEPLOY_GAS_HEADROOM_DEN  # type: ignore[arg-type]
        base_fee = int((await w3.eth.get_block("latest"))["baseFeePerGas"])
        policy = fees.FeePolicy(int(max_fee_gwei * fees.GWEI), int(priority_fee_gwei * fees.GWEI))
        fee = fees.quote(base_fee, policy)
        tx = {
            "type": 2, "chainId": int(await w3.eth.chain_id),
            "nonce": int(await w3.eth.get_transaction_count(account.address, "pending")),
            "value": 0, "data": artifact["bytecode"], "gas": gas,
            "maxFeePerGas": fee.max_fee_per_gas, "maxPriorityFeePerGas": fee.max_priority_fee_per_gas,
        }  # fmt: skip
        signed = account.sign_transaction(tx)
        txid = await w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = await w3.eth.wait_for_transaction_receipt(txid, timeout=timeout_s)
        if receipt["status"] != 1 or not receipt["contractAddress"]:
            raise DeployError(f"deployment transaction 0x{bytes(txid).hex()} failed; check the node's logs")
        address = AsyncWeb3.to_checksum_address(receipt["contractAddress"])
        code = "0x" + bytes(await w3.eth.get_code(address)).hex()
        if code != artifact["deployedBytecode"].lower():
            raise DeployError(f"code at {address} differs from the artifact; the node's EVM may be too old")
        return address
    finally:
        await w3.provider.disconnect()
