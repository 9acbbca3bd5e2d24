"""`settlerd verify-status`: check that an MQTT message was signed by a node, for a venue or an operator.

One message (the payload of a status or events topic) from a file or stdin, the node's public key, and
optionally the topic it arrived on. One line out; exit 0 when it verifies, 1 when it does not, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_FORGED = 1
EXIT_USAGE = 2


def _describe(message: dict[str, Any]) -> str:
    if "legs" in message:
        return f"swap {message.get('id')} {message.get('status')} at seq {message.get('seq')}"
    return f"event {message.get('seq')} {message.get('kind')} of swap {message.get('swap_id')}"


def cmd_verify_status(args: argparse.Namespace) -> int:
    from settlerd.status.signature import ForgedMessage, parse_node_key, verify_message

    try:
        key = args.node_key if args.node_key else args.node_key_file.read_text()
        parse_node_key(key)
        payload = sys.stdin.buffer.read() if str(args.message) == "-" else args.message.read_bytes()
    except (OSError, ValueError) as exc:
        print(f"settlerd: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        message = verify_message(payload, key, args.topic)
    except ForgedMessage as exc:
        print(f"NOT VERIFIED: {exc}")
        return EXIT_FORGED
    print(f"verified: {_describe(message)}, signed by {key.strip()} for {message['topic']}")
    return EXIT_OK


def add_verify_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "verify-status", help="check an MQTT status or event message against the node's public key"
    )
    keys = parser.add_mutually_exclusive_group(required=True)
    keys.add_argument("--node-key", metavar="HEX", help="the node's public key (compressed, 66 hex)")
    keys.add_argument("--node-key-file", type=Path, metavar="PATH", help="a file holding that key")
    parser.add_argument(
        "--topic", help="the topic the message arrived on: a message signed for another topic is refused"
    )
    parser.add_argument(
        "message", nargs="?", type=Path, default=Path("-"), metavar="FILE", help="the payload, - for stdin"
    )
    parser.set_defaults(func=cmd_verify_status)
