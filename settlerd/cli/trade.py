"""`settlerd swap create|accept|register|cancel`: trade capture for desks, over the HTTP API.

Offers and acceptances are signed JSON documents the desks pass to each other as they like (chat,
e-mail, an OTC platform); these commands write them to a file or stdout and read them back.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from settlerd.cli.swap import EXIT_OK, EXIT_USAGE, CliError, _client, _quote, _run, common, print_swap


def _leg(text: str) -> dict[str, str]:
    """CHAIN:ASSET:AMOUNT, the amount in base units (satoshi, wei, token units)."""
    parts = text.split(":")
    if len(parts) != 3 or not all(parts) or not parts[2].isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: expected CHAIN:ASSET:AMOUNT, e.g. bitcoin:BTC:100000")
    return {"chain": parts[0], "asset": parts[1], "amount": parts[2]}


def _read_document(path: Path) -> Any:
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text()
        return json.loads(text)
    except OSError as exc:
        raise CliError(f"{path}: cannot read ({exc.strerror or exc})", EXIT_USAGE) from None
    except json.JSONDecodeError as exc:
        raise CliError(f"{path}: not a JSON document: {exc}", EXIT_USAGE) from None


def _write_document(document: Any, out: Path | None, what: str) -> None:
    text = json.dumps(document, indent=2) + "\n"
    if out is None:
        sys.stdout.write(text)
        return
    out.write_text(text)
    print(f"{what} for swap {document['swap_id']} written to {out}", file=sys.stderr)


def cmd_create(args: argparse.Namespace) -> int:
    body = {"counterparty": args.counterparty, "give": args.give, "get": args.get}
    offer = _client(args).post_json("/v1/swaps", body)
    _write_document(offer, args.out, "offer")
    return EXIT_OK


def cmd_accept(args: argparse.Namespace) -> int:
    acceptance = _client(args).post_json("/v1/offers/accept", _read_document(args.offer))
    _write_document(acceptance, args.out, "acceptance")
    return EXIT_OK


def cmd_register(args: argparse.Namespace) -> int:
    acceptance = _read_document(args.acceptance)
    swap_id = str(acceptance.get("swap_id", "")) if isinstance(acceptance, dict) else ""
    if not swap_id:
        raise CliError(f"{args.acceptance}: no swap_id in the acceptance", EXIT_USAGE)
    doc = _client(args).post_json(f"/v1/swaps/{_quote(swap_id)}/acceptance", acceptance)
    _show(doc, args.json)
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace) -> int:
    doc = _client(args).post_json(f"/v1/swaps/{_quote(args.swap_id)}/cancel", {"reason": args.reason})
    _show(doc, args.json)
    return EXIT_OK


def _show(doc: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(doc, indent=2))
    else:
        print_swap(doc, sys.stdout)


def add_trade_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    create = common(sub.add_parser("create", help="initiator: create a swap and print its signed offer"))
    create.add_argument("--counterparty", required=True, metavar="NODE_ID", help="the other desk's node id")
    create.add_argument("--give", required=True, type=_leg, metavar="CHAIN:ASSET:AMOUNT", help="what we lock")
    create.add_argument(
        "--get", required=True, type=_leg, metavar="CHAIN:ASSET:AMOUNT", help="what we receive"
    )
    create.add_argument("--out", type=Path, metavar="FILE", help="write the offer here instead of stdout")
    create.set_defaults(func=_run(cmd_create))

    accept = common(sub.add_parser("accept", help="participant: accept an offer and print the acceptance"))
    accept.add_argument("offer", type=Path, metavar="OFFER_FILE", help="the offer document (- for stdin)")
    accept.add_argument(
        "--out", type=Path, metavar="FILE", help="write the acceptance here instead of stdout"
    )
    accept.set_defaults(func=_run(cmd_accept))

    register = common(sub.add_parser("register", help="initiator: register the counterparty's acceptance"))
    register.add_argument("acceptance", type=Path, metavar="ACCEPTANCE_FILE", help="(- for stdin)")
    register.set_defaults(func=_run(cmd_register))

    cancel = common(sub.add_parser("cancel", help="cancel a swap that has locked none of our funds"))
    cancel.add_argument("swap_id", metavar="SWAP_ID")
    cancel.add_argument("--reason", default="cancelled by the desk")
    cancel.set_defaults(func=_run(cmd_cancel))
