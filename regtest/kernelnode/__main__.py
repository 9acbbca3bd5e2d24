"""`python -m kernelnode --datadir DIR --rpcport N [--rpcuser U --rpcpassword P]`"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from decimal import Decimal
from pathlib import Path

from aiohttp import web

from .methods import Methods
from .node import Node, NodeOptions
from .rpcserver import Handler, RpcServer

log = logging.getLogger("kernelnode")

DEFAULT_RPC_PORT = 18443  # bitcoind's regtest RPC port


def _sat_per_kvb(btc_per_kvb: str) -> int:
    return int(Decimal(btc_per_kvb) * 100_000_000)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="kernelnode", description=__doc__)
    p.add_argument(
        "--datadir", type=Path, required=True, help="chain, cookie and mempool live in DATADIR/regtest"
    )
    p.add_argument("--rpcbind", default="127.0.0.1")
    p.add_argument("--rpcport", type=int, default=DEFAULT_RPC_PORT)
    p.add_argument("--rpcuser")
    p.add_argument("--rpcpassword")
    p.add_argument("--minrelaytxfee", default="0.00001", help="BTC/kvB, bitcoind's default")
    return p.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    netdir = args.datadir / "regtest"
    netdir.mkdir(parents=True, exist_ok=True)
    methods: dict[str, Handler] = {}  # filled once the chain is loaded; until then calls get -28
    server = RpcServer(netdir, args.rpcuser, args.rpcpassword, lambda: methods)
    runner = web.AppRunner(server.app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, args.rpcbind, args.rpcport)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        server.remove_cookie()
        sys.exit(
            f"kernelnode: cannot listen on {args.rpcbind}:{args.rpcport} ({exc}); choose another --rpcport"
        )
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    log.info("RPC listening on %s:%d, loading chain from %s", args.rpcbind, args.rpcport, netdir)
    options = NodeOptions(
        datadir=args.datadir,
        min_relay_feerate=_sat_per_kvb(args.minrelaytxfee),
    )
    node = await asyncio.to_thread(Node, options)
    methods.update(Methods(node, stopping.set).table())
    server.set_warmup(None)
    log.info("ready at height %d", node.chain.height)
    try:
        await stopping.wait()
        await asyncio.sleep(0.05)  # let the reply to `stop` leave before the socket closes
    finally:
        await runner.cleanup()
        node.close()
        server.remove_cookie()
        log.info("stopped")


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(serve(parse_args(sys.argv[1:] if argv is None else argv)))


if __name__ == "__main__":
    main()
