"""`settlerd swap show|list|watch`: the desk's and venue's view of swaps, over the HTTP API.

Tables for people, ``--json`` for scripts. The API address and token come from ``--api`` /
``--token-file`` or the SETTLERD_API_URL / SETTLERD_API_TOKEN environment variables.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from settlerd.swap import TERMINAL

_TERMINAL = frozenset(str(status) for status in TERMINAL)

DEFAULT_API = "http://127.0.0.1:8480"
REQUEST_TIMEOUT_S = 30.0
# A watch survives a daemon restart: it reconnects with Last-Event-ID this many times in a row.
WATCH_RECONNECTS = 5
WATCH_RETRY_S = 2.0
# The server sends a keepalive every 15 s; nothing read for this long means the connection is dead.
STREAM_IDLE_TIMEOUT_S = 60.0

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class CliError(Exception):
    """One line for stderr, and the exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.code = code


class ApiClient:
    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token

    def _request(
        self,
        path: str,
        query: Mapping[str, str] | None,
        accept: str,
        headers: Mapping[str, str],
        timeout: float = REQUEST_TIMEOUT_S,
        data: bytes | None = None,
    ) -> Any:
        url = self.base_url + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        request = urllib.request.Request(
            url, data, headers={"Authorization": f"Bearer {self._token}", "Accept": accept, **headers}
        )
        try:
            return urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as exc:
            raise CliError(f"{url}: {exc.code} {_error_text(exc)}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise CliError(
                f"cannot reach the API at {self.base_url} ({reason}); is settlerd running? "
                "set --api or SETTLERD_API_URL"
            ) from None

    def get_json(self, path: str, query: Mapping[str, str] | None = None) -> Any:
        with self._request(path, query, "application/json", {}) as response:
            return json.load(response)

    def post_json(self, path: str, body: Any) -> Any:
        data = json.dumps(body).encode()
        with self._request(
            path, None, "application/json", {"Content-Type": "application/json"}, data=data
        ) as r:
            return json.load(r)

    def stream(self, path: str, last_event_id: int) -> Iterator[tuple[int, dict[str, Any]]]:
        """Server-Sent Events as (id, data) pairs, resuming after ``last_event_id``."""
        headers = {"Last-Event-ID": str(last_event_id)} if last_event_id else {}
        response = self._request(path, None, "text/event-stream", headers, STREAM_IDLE_TIMEOUT_S)
        with response:
            event_id: int | None = None
            data: list[str] = []
            for raw in response:
                line = raw.decode().rstrip("\r\n")
                if line == "":
                    if event_id is not None and data:
                        yield event_id, json.loads("\n".join(data))
                    event_id, data = None, []
                elif line.startswith("id:"):
                    event_id = int(line[3:].strip())
                elif line.startswith("data:"):
                    data.append(line[5:].removeprefix(" "))


def _error_text(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read())
    except (ValueError, OSError):
        return exc.reason
    field = f" ({body['field']})" if body.get("field") else ""
    return f"{body.get('error', exc.reason)}{field}"


def _client(args: argparse.Namespace) -> ApiClient:
    base = args.api or os.environ.get("SETTLERD_API_URL") or DEFAULT_API
    if args.token_file is not None:
        try:
            token = args.token_file.read_text().strip()
        except OSError as exc:
            raise CliError(
                f"--token-file {args.token_file}: cannot read ({exc.strerror or exc})", EXIT_USAGE
            ) from None
    else:
        token = os.environ.get("SETTLERD_API_TOKEN", "").strip()
    if not token:
        raise CliError("no API token: give --token-file PATH or set SETTLERD_API_TOKEN", EXIT_USAGE)
    return ApiClient(base, token)


def _quote(swap_id: str) -> str:
    return urllib.parse.quote(swap_id, safe="")


# output


def _table(rows: Sequence[Sequence[str]], out: IO[str]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip(), file=out
        )


def _leg_summary(leg: Mapping[str, Any]) -> str:
    final = "final" if leg["final"] else f"{leg['confirmations']} conf"
    return f"{leg['amount']} {leg['asset']}@{leg['chain']} ({final})"


def print_swap(doc: Mapping[str, Any], out: IO[str]) -> None:
    for name in ("id", "status", "role", "counterparty", "created_at", "updated_at"):
        print(f"{name + ':':<14}{doc[name]}", file=out)
    if not doc["legs"]:
        print("legs:         none yet", file=out)
        return
    header = ["LEG", "CHAIN", "ASSET", "AMOUNT", "HTLC", "LOCK TX", "CLAIM TX", "REFUND TX", "CONF", "FINAL"]
    rows = [header]
    for leg in doc["legs"]:
        rows.append(
            [
                str(leg["leg"]),
                leg["chain"],
                leg["asset"],
                leg["amount"],
                leg["htlc_id"] or "-",
                leg["lock_txid"] or "-",
                leg["claim_txid"] or "-",
                leg["refund_txid"] or "-",
                str(leg["confirmations"]),
                "yes" if leg["final"] else "no",
            ]
        )
    print(file=out)
    _table(rows, out)
    for leg in doc["legs"]:
        print(f"leg {leg['leg']} deadline: {leg['deadline'] or '-'}", file=out)


def print_swaps(docs: Sequence[Mapping[str, Any]], out: IO[str]) -> None:
    rows = [["ID", "STATUS", "ROLE", "COUNTERPARTY", "CREATED", "LEG 1", "LEG 2"]]
    for doc in docs:
        legs = {leg["leg"]: _leg_summary(leg) for leg in doc["legs"]}
        first, second = legs.get(1, "-"), legs.get(2, "-")
        rows.append(
            [doc["id"], doc["status"], doc["role"], doc["counterparty"], doc["created_at"], first, second]
        )
    _table(rows, out)


def print_event(event: Mapping[str, Any], out: IO[str]) -> None:
    status = event["status"] or "-"
    print(f"{event['seq']:>8}  {event['created_at']}  {event['kind']:<24} {status}", file=out, flush=True)


# commands


def cmd_show(args: argparse.Namespace) -> int:
    doc = _client(args).get_json(f"/v1/swaps/{_quote(args.swap_id)}")
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print_swap(doc, sys.stdout)
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    client = _client(args)
    query: dict[str, str] = {"limit": str(args.limit)}
    for name in ("status", "counterparty", "created_since"):
        if getattr(args, name) is not None:
            query[name] = getattr(args, name)
    docs: list[Any] = []
    while True:
        page = client.get_json("/v1/swaps", query)
        docs.extend(page["swaps"])
        if not args.all or page["next_cursor"] is None:
            break
        query["cursor"] = page["next_cursor"]
    if args.json:
        print(json.dumps(docs, indent=2))
    elif docs:
        print_swaps(docs, sys.stdout)
    else:
        print("no swaps match", file=sys.stderr)
    return EXIT_OK


def cmd_watch(args: argparse.Namespace) -> int:
    """Print the swap's events until one brings a terminal status; reconnects resume after the last seen."""
    client = _client(args)
    path = f"/v1/swaps/{_quote(args.swap_id)}"
    last = args.after
    if client.get_json(path)["terminal"]:
        # Ended already: the timeline is complete, no need to wait on a stream.
        for event in _timeline(client, path, last):
            _print_watched(event, args.json)
        return EXIT_OK
    failures = 0
    while True:
        try:
            for seq, event in client.stream(path + "/events", last):
                failures = 0
                last = seq
                _print_watched(event, args.json)
                if event["status"] in _TERMINAL:
                    return EXIT_OK
        except (OSError, ValueError) as exc:
            reason = str(exc)
        else:
            reason = "the server ended the stream"
        failures += 1
        if failures > WATCH_RECONNECTS:
            raise CliError(f"event stream of {args.swap_id} keeps failing ({reason}); giving up")
        time.sleep(WATCH_RETRY_S)


def _print_watched(event: Mapping[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(event, separators=(",", ":")), flush=True)
    else:
        print_event(event, sys.stdout)


def _timeline(client: ApiClient, path: str, after: int) -> Iterator[dict[str, Any]]:
    while True:
        page = client.get_json(path + "/events", {"after": str(after)})
        yield from page["events"]
        if page["next_after"] is None:
            return
        after = page["next_after"]


def common(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--api", metavar="URL", help=f"API base URL (env SETTLERD_API_URL; default {DEFAULT_API})")
    p.add_argument(
        "--token-file",
        type=Path,
        metavar="PATH",
        help="file holding the bearer token (env SETTLERD_API_TOKEN holds the token itself)",
    )
    p.add_argument("--json", action="store_true", help="print JSON for scripts instead of tables")
    return p


def add_swap_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from settlerd.cli.trade import add_trade_commands

    swap = subparsers.add_parser("swap", help="create, accept, show, list and watch swaps over the HTTP API")
    sub = swap.add_subparsers(dest="sub", required=True, metavar="SUBCOMMAND")
    add_trade_commands(sub)

    show = common(sub.add_parser("show", help="one swap's status, legs and deadlines"))
    show.add_argument("swap_id", metavar="SWAP_ID")
    show.set_defaults(func=_run(cmd_show))

    listing = common(sub.add_parser("list", help="swaps, oldest first"))
    listing.add_argument("--status", help="one or more statuses, comma-separated")
    listing.add_argument("--counterparty")
    listing.add_argument("--created-since", dest="created_since", metavar="RFC3339")
    listing.add_argument("--limit", type=int, default=50, help="swaps per page (1-200)")
    listing.add_argument("--all", action="store_true", help="follow the cursor through every page")
    listing.set_defaults(func=_run(cmd_list))

    watch = common(sub.add_parser("watch", help="follow a swap's events until it ends (SSE)"))
    watch.add_argument("swap_id", metavar="SWAP_ID")
    watch.add_argument("--after", type=int, default=0, metavar="SEQ", help="start after this event")
    watch.set_defaults(func=_run(cmd_watch))


def _run(command: Any) -> Any:
    def guarded(args: argparse.Namespace) -> int:
        try:
            code: int = command(args)
        except CliError as exc:
            print(f"settlerd: {exc}", file=sys.stderr)
            return exc.code
        except KeyboardInterrupt:
            return EXIT_FAILURE
        return code

    return guarded
