"""`settlerd contract deploy`: put the HTLC contract on an EVM chain and print its address."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from .deploy import deploy_contract


def cmd_deploy(args: argparse.Namespace) -> int:
    try:
        key = args.key_file.read_text().strip()
    except OSError as exc:
        print(f"settlerd: --key-file {args.key_file}: cannot read ({exc.strerror or exc})", file=sys.stderr)
        return 2
    try:
        address = asyncio.run(deploy_contract(args.rpc_url, key, max_fee_gwei=args.max_fee_gwei))
    except Exception as exc:  # any node or signing failure ends the command with its reason
        print(f"settlerd: contract deploy on {args.rpc_url} failed: {exc}", file=sys.stderr)
        return 1
    print(address)
    print(f'set `contract = "{address}"` in the chain\'s [chains.<name>] table', file=sys.stderr)
    return 0


def add_commands(subparsers: Any) -> None:
    contract = subparsers.add_parser("contract", help="the EVM HTLC contract")
    sub = contract.add_subparsers(dest="sub", required=True, metavar="SUBCOMMAND")
    deploy = sub.add_parser("deploy", help="deploy the HTLC contract and print its address")
    deploy.add_argument("--rpc-url", required=True, metavar="URL", help="the EVM node's JSON-RPC URL")
    deploy.add_argument(
        "--key-file", required=True, type=Path, metavar="PATH", help="file with the deploying account's key"
    )
    deploy.add_argument("--max-fee-gwei", type=float, default=200.0, help="fee cap (default 200 gwei)")
    deploy.set_defaults(func=cmd_deploy)
