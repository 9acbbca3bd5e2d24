"""What `regtest/up` and `regtest/fund` do on the local chains, for people driving desks by hand.

    python regtest/devchain.py contracts --evm-url URL            # the HTLC contract and the test token
    python regtest/devchain.py miner --btc-url URL --evm-url URL --block-time 2   # runs until stopped
    python regtest/devchain.py fund DESK_CONFIG [--btc 5] [--eth 100] [--tokens 1000000000000]

Bitcoin credentials come from SETTLERD_BTC_RPC_USER / SETTLERD_BTC_RPC_PASSWORD (`regtest/up` sets them);
`fund` uses the desk configuration's own node settings instead. Local chains only: every key here is public.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

from eth_account import Account
from settlerd_evm.artifact import load_artifact
from settlerd_evm.deploy import deploy_contract
from web3 import AsyncHTTPProvider, AsyncWeb3

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: the chain fixtures live under tests/
    sys.path.insert(0, str(ROOT))

from settlerd import config  # noqa: E402
from settlerd.chains import adapter_settings  # noqa: E402
from tests.fixtures.anvil import DEV_KEYS  # noqa: E402
from tests.fixtures.bitcoin_node import COINBASE_MATURITY, BitcoinNode, BitcoinRpcError  # noqa: E402

log = logging.getLogger("devchain")

# anvil's dev account #3 deploys the HTLC contract (its nonce 0) and the test token (nonce 1), and nothing
# else: on a fresh anvil both land at the addresses config/desk-*.toml name.
DEPLOYER_KEY = DEV_KEYS[3]
HTLC_ADDRESS = "0x057ef64E23666F000b34aE31332854aCBd1c8544"
TOKEN_ADDRESS = "0x261D8c5e9742e6f7f1076Fa1F560894524e19cad"
# Account #0 pays the desks' ETH and mints their tokens.
FUNDER_KEY = DEV_KEYS[0]
DEFAULT_BTC = Decimal(5)  # a tenth of an early regtest coinbase (50 BTC), enough for many swaps
DEFAULT_ETH = Decimal(100)  # locks plus gas for every claim and refund
DEFAULT_TOKENS = 10**12  # test-token base units
SATS_PER_BTC = 100_000_000
WEI_PER_ETH = 10**18
ETH_TRANSFER_GAS = 21_000
CONTRACT_CALL_GAS = 200_000
MAX_FEE_WEI = 100 * 10**9  # far above anvil's base fee, which starts at 1 gwei and only falls when idle
PRIORITY_FEE_WEI = 10**9
# Rounds of 101 blocks fund() mines at most to mature coinbases enough for one payment.
FUND_ROUNDS = 3
RECEIPT_TIMEOUT_S = 60.0  # with a block-time miner a receipt takes one interval; anvil alone mines at once


class DevchainError(RuntimeError):
    """Something on the local chains is not as this tool needs it; the message says what to do."""


def _btc_node(url: str, user: str, password: str) -> BitcoinNode:
    return BitcoinNode(
        kind="bitcoind", datadir=Path("."), rpc_port=0, rpc_user=user, rpc_password=password, external_url=url
    )


# --- contracts ---


async def _send(w3: AsyncWeb3, key: str, tx: dict[str, Any]) -> Any:
    account = Account.from_key(key)
    tx = {
        "from": account.address,
        "nonce": await w3.eth.get_transaction_count(account.address, "pending"),
        "chainId": await w3.eth.chain_id,
        "maxFeePerGas": MAX_FEE_WEI,
        "maxPriorityFeePerGas": PRIORITY_FEE_WEI,
        **tx,
    }
    txid = await w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)
    receipt = await w3.eth.wait_for_transaction_receipt(txid, timeout=RECEIPT_TIMEOUT_S)
    if receipt["status"] != 1:
        raise DevchainError(f"transaction 0x{bytes(txid).hex()} reverted; see the anvil log")
    return receipt


async def contracts(evm_url: str) -> tuple[str, str]:
    """The HTLC contract's and the test token's addresses, deploying whichever is missing."""
    w3 = AsyncWeb3(AsyncHTTPProvider(evm_url))
    try:
        deployer = Account.from_key(DEPLOYER_KEY).address
        htlc, token = HTLC_ADDRESS, TOKEN_ADDRESS
        if not await w3.eth.get_code(htlc):
            if await w3.eth.get_transaction_count(deployer) != 0:
                log.warning("dev account #3 was used before: the contracts land elsewhere; edit the desks'")
            htlc = await deploy_contract(evm_url, DEPLOYER_KEY)
        if not await w3.eth.get_code(token):
            art = load_artifact("test/TestTokens.json")["TestToken"]
            receipt = await _send(w3, DEPLOYER_KEY, {"data": art["bytecode"], "gas": 3_000_000})
            token = str(receipt["contractAddress"])
        return htlc, token
    finally:
        await w3.provider.disconnect()


# --- the miner ---


async def mine_forever(btc: BitcoinNode, evm_url: str, block_time: float) -> None:
    """One block on each chain per ``block_time`` seconds, to the faucet's key on Bitcoin. A failed call is
    logged and tried again next time: a node restarting must not stop the miner."""
    w3 = AsyncWeb3(AsyncHTTPProvider(evm_url))
    try:
        while True:
            try:
                await btc.mine(1)
            except Exception as exc:  # any node failure: the next interval tries again
                log.warning("bitcoin: %s", exc)
            try:
                await w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
            except Exception as exc:  # as above
                log.warning("evm: %s", exc)
            await asyncio.sleep(block_time)
    finally:
        await btc.stop()
        await w3.provider.disconnect()


# --- funding a desk ---


async def _fund_btc(settings: config.Settings, name: str, sats: int) -> str:
    from settlerd_bitcoin.settings import BitcoinSettings

    chain = BitcoinSettings.from_mapping(adapter_settings(settings, name))
    user, password = chain.rpc_user or "", chain.rpc_password or ""
    if chain.rpc_cookie_file is not None:
        user, _, password = chain.rpc_cookie_file.read_text().strip().partition(":")
    node = _btc_node(chain.rpc_url, user, password)
    address = chain.funding_address()
    try:
        if (await node.rpc("getblockchaininfo"))["chain"] != "regtest":
            raise DevchainError(f"{chain.rpc_url} is not a regtest node: fund only pays on local chains")
        if await node.rpc("getblockcount") <= COINBASE_MATURITY:
            # The faucet spends coinbases, which are spendable 100 blocks after theirs.
            await _mine_retrying(node, COINBASE_MATURITY + 1)
        for _ in range(FUND_ROUNDS):
            try:
                txid, _ = await node.faucet.fund(address, sats)
                break
            except RuntimeError:  # the faucet's mature coinbases are spent: mature more of them
                await _mine_retrying(node, COINBASE_MATURITY + 1)
        else:
            raise DevchainError(
                f"{chain.rpc_url}: the faucet's coinbases cannot pay {sats} sat; regtest halves the subsidy "
                "every 150 blocks, so a long chain pays little: ask for less (--btc) or start a new chain"
            )
        await _mine_retrying(node, 1)
        return f"{name}: {Decimal(sats) / SATS_PER_BTC} BTC to {address} (tx {txid}, confirmed)"
    finally:
        await node.stop()


async def _mine_retrying(node: BitcoinNode, blocks: int) -> None:
    """generatetoaddress, once more if the background miner's block won the race for the same height."""
    try:
        await node.mine(blocks)
    except BitcoinRpcError:
        await node.mine(blocks)


async def _fund_evm(settings: config.Settings, name: str, wei: int, tokens: int, token: str) -> list[str]:
    from settlerd_evm.settings import EvmSettings

    chain = EvmSettings.from_mapping(adapter_settings(settings, name))
    address = chain.funding_address()
    w3 = AsyncWeb3(AsyncHTTPProvider(chain.rpc_url))
    lines = []
    try:
        await _send(w3, FUNDER_KEY, {"to": address, "value": wei, "gas": ETH_TRANSFER_GAS})
        lines.append(f"{name}: {Decimal(wei) / WEI_PER_ETH} ETH to {address}")
        if tokens and await w3.eth.get_code(AsyncWeb3.to_checksum_address(token)):
            abi = load_artifact("test/TestTokens.json")["TestToken"]["abi"]
            contract = w3.eth.contract(address=AsyncWeb3.to_checksum_address(token), abi=abi)
            data = contract.encode_abi("mint", [address, tokens])
            await _send(w3, FUNDER_KEY, {"to": token, "data": data, "gas": CONTRACT_CALL_GAS})
            lines.append(f"{name}: {tokens} units of the test token {token} to {address}")
        elif tokens:
            lines.append(f"{name}: no test token at {token}; run regtest/up (it deploys one)")
    finally:
        await w3.provider.disconnect()
    return lines


async def fund(path: Path, btc: Decimal, eth: Decimal, tokens: int, token: str) -> list[str]:
    try:
        settings = config.load(path)
    except config.ConfigError as exc:
        raise DevchainError("; ".join([f"{exc.source}: {p}" for p in exc.problems])) from None
    lines = []
    for name, chain in settings.chains.items():
        if chain.adapter == "bitcoin" and btc > 0:
            lines.append(await _fund_btc(settings, name, int(btc * SATS_PER_BTC)))
        elif chain.adapter == "evm":
            lines += await _fund_evm(settings, name, int(eth * WEI_PER_ETH), tokens, token)
    return lines


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    p = argparse.ArgumentParser(prog="devchain", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("contracts", help="deploy the HTLC contract and the test token where missing")
    c.add_argument("--evm-url", required=True)
    m = sub.add_parser("miner", help="mine one block on each chain per --block-time seconds, until stopped")
    m.add_argument("--btc-url", required=True)
    m.add_argument("--evm-url", required=True)
    m.add_argument("--block-time", type=float, required=True)
    f = sub.add_parser("fund", help="pay a desk's funding addresses: BTC, ETH and the test token")
    f.add_argument("config", type=Path)
    f.add_argument("--btc", type=Decimal, default=DEFAULT_BTC)
    f.add_argument("--eth", type=Decimal, default=DEFAULT_ETH)
    f.add_argument("--tokens", type=int, default=DEFAULT_TOKENS)
    f.add_argument("--token", default=os.environ.get("SETTLERD_REGTEST_TOKEN", TOKEN_ADDRESS))
    args = p.parse_args(argv)
    try:
        if args.command == "contracts":
            htlc, token = asyncio.run(contracts(args.evm_url))
            print(f"HTLC={htlc}\nTOKEN={token}")
        elif args.command == "miner":
            user = os.environ.get("SETTLERD_BTC_RPC_USER", "")
            node = _btc_node(args.btc_url, user, os.environ.get("SETTLERD_BTC_RPC_PASSWORD", ""))
            with contextlib.suppress(KeyboardInterrupt):
                asyncio.run(mine_forever(node, args.evm_url, args.block_time))
        else:
            for line in asyncio.run(fund(args.config, args.btc, args.eth, args.tokens, args.token)):
                print(line)
    except (DevchainError, OSError, ValueError) as exc:
        print(f"{p.prog}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
