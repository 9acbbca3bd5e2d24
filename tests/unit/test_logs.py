"""Log lines: structure, terminal or machine output, secrets never printed (S7), SIGHUP reload/reopen."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import signal
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from settlerd.logs import REDACTED, LogControl, bind, is_secret_name, setup_logging

PREIMAGE = bytes(range(1, 33))
SEED = "legal winner thank year wave sausage worth useful legal winner thank yellow"
XPRV = "xprv9s21ZrQH143K3QTDL4LXw2F7HEK3wJUD2nW2nRk4stbPy6cq3jPPqjiChkVvvNKmPGJxWUtg6LnF5kejMRNNU3T"
EVM_KEY = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(level)
    logging.captureWarnings(False)


@pytest.fixture
def json_log(restore_root: None) -> Iterator[tuple[LogControl, io.StringIO]]:
    out = io.StringIO()
    control = setup_logging("info", json_output=True, stream=out)
    yield control, out
    control.close()


def events(out: io.StringIO) -> list[dict[str, Any]]:
    lines = out.getvalue().splitlines()
    return [json.loads(line) for line in lines]


def test_json_line_carries_time_level_logger_message_and_context(
    json_log: tuple[LogControl, io.StringIO],
) -> None:
    _, out = json_log
    txid = "ab" * 32
    logging.getLogger("settlerd.engine").info(
        "leg %d locked", 1, extra={"swap_id": "sw-1", "chain": "bitcoin", "txid": txid, "height": 812}
    )
    [event] = events(out)
    assert event["level"] == "info"
    assert event["logger"] == "settlerd.engine"
    assert event["msg"] == "leg 1 locked"
    assert (event["swap_id"], event["chain"], event["txid"], event["height"]) == (
        "sw-1",
        "bitcoin",
        txid,
        812,
    )
    assert event["ts"].endswith("Z")
    ts = datetime.fromisoformat(event["ts"].replace("Z", "+00:00"))
    assert ts.utcoffset() is not None and ts.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert abs((datetime.now(UTC) - ts).total_seconds()) < 3600


def test_one_line_per_event_even_with_newlines_and_tracebacks(
    json_log: tuple[LogControl, io.StringIO],
) -> None:
    _, out = json_log
    log = logging.getLogger("settlerd.api")
    log.warning("first line\nforged line pretending to be an event")
    try:
        raise RuntimeError("node unreachable")
    except RuntimeError:
        log.exception("rpc failed", extra={"chain": "evm"})
    first, second = events(out)  # exactly two lines, both valid JSON
    assert first["msg"] == "first line\nforged line pretending to be an event"
    assert second["chain"] == "evm"
    assert "RuntimeError: node unreachable" in second["exc"]


def test_bound_logger_adds_swap_and_chain_and_call_extra_wins(
    json_log: tuple[LogControl, io.StringIO],
) -> None:
    _, out = json_log
    log = bind("settlerd.engine", swap_id="sw-7", chain="bitcoin")
    log.info("watching")
    log.bind(txid="cd" * 32).info("funding seen", extra={"chain": "bitcoin-testnet"})
    first, second = events(out)
    assert (first["swap_id"], first["chain"]) == ("sw-7", "bitcoin")
    assert "txid" not in first
    assert (second["swap_id"], second["chain"], second["txid"]) == ("sw-7", "bitcoin-testnet", "cd" * 32)


@pytest.mark.parametrize(
    "name",
    [
        "preimage",
        "secret",
        "seed",
        "private_key",
        "evmPrivateKey",
        "xprv",
        "mqtt_password",
        "token",
        "api-token",
        "passphrase",
        "mnemonic",
        "Authorization",
        "evm_key",
        "key",
        "signingKey",
    ],
)
def test_secret_field_names_are_recognised(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "swap_id",
        "chain",
        "txid",
        "secret_hash",
        "token_scope",
        "token_name",
        "password_file",
        "amount",
        "public_key",
        "pubkey",
    ],
)
def test_public_field_names_pass(name: str) -> None:
    assert not is_secret_name(name)


def test_secrets_in_fields_never_print_anywhere_on_the_line(json_log: tuple[LogControl, io.StringIO]) -> None:
    _, out = json_log
    log = bind("settlerd.engine", swap_id="sw-9")
    secrets: dict[str, Any] = {
        "preimage": PREIMAGE,
        "seed": SEED,
        "private_key": EVM_KEY,
        "xprv": XPRV,
        "mqtt_password": "hunter2-broker",
        "token": "st_venue_8f3a9c2b1d",
    }
    log.info("claim built", extra={**secrets, "secret_hash": "ee" * 32})
    # The careless cases: the value interpolated into the message, nested in a dict, and in a traceback.
    log.info("revealing %s for claim", PREIMAGE.hex(), extra={"preimage": PREIMAGE})
    log.info("terms", extra={"terms": {"amount": 5, "counterparty": {"private_key": EVM_KEY}}})
    try:
        raise ValueError(f"bad key {EVM_KEY}")
    except ValueError:
        log.exception("signing failed", extra={"private_key": EVM_KEY})
    logging.getLogger("settlerd.api").info("auth %(token)s rejected", {"token": "st_desk_77aa0011"})

    text = out.getvalue()
    leaked = [
        form
        for form in [
            PREIMAGE.hex(),
            PREIMAGE.hex().upper(),
            SEED,
            EVM_KEY,
            "hunter2-broker",
            "st_venue_8f3a9c2b1d",
            "st_desk_77aa0011",
            "xprv9s",
        ]
        if form in text
    ]
    assert leaked == []
    first, second, third, fourth, fifth = events(out)
    assert all(first[key] == REDACTED for key in secrets)
    assert first["secret_hash"] == "ee" * 32  # h is public by design and needed to follow a swap
    assert second["msg"] == f"revealing {REDACTED} for claim"
    assert third["terms"] == {"amount": 5, "counterparty": {"private_key": REDACTED}}
    assert REDACTED in fourth["exc"] and fourth["private_key"] == REDACTED
    assert fifth["msg"] == f"auth {REDACTED} rejected"


def test_registered_secret_is_scrubbed_from_any_logger(json_log: tuple[LogControl, io.StringIO]) -> None:
    control, out = json_log
    control.add_secret(EVM_KEY)
    control.add_secret(PREIMAGE)
    logging.getLogger("web3.providers").debug("not shown at info")
    quoted = 'pass"word\\with-escapes'
    control.add_secret(quoted)
    logging.getLogger("web3.providers").warning(
        "sending raw key %s", EVM_KEY, extra={"note": PREIMAGE.hex(), "detail": {"raw": f"x {quoted} y"}}
    )
    [event] = events(out)
    assert event["msg"] == f"sending raw key {REDACTED}"
    assert event["note"] == REDACTED
    assert event["detail"] == {"raw": f"x {REDACTED} y"}


def test_text_on_a_terminal_and_json_on_a_pipe(restore_root: None) -> None:
    leader, follower = os.openpty()
    read_end, write_end = os.pipe()
    with (
        open(follower, "w", buffering=1, closefd=True) as tty,
        open(write_end, "w", buffering=1, closefd=True) as pipe,
    ):
        control = setup_logging("info", stream=tty)
        bind("settlerd.engine", swap_id="sw-1", chain="evm").info("leg locked", extra={"note": "two words"})
        control.close()
        control = setup_logging("info", stream=pipe)
        bind("settlerd.engine", swap_id="sw-1", chain="evm").info("leg locked")
        control.close()
    on_terminal = os.read(leader, 4096).decode()
    os.close(leader)
    with open(read_end) as fh:
        on_pipe = fh.read()
    assert ' info    settlerd.engine: leg locked swap_id=sw-1 chain=evm note="two words"' in on_terminal
    assert not on_terminal.lstrip().startswith("{")
    assert json.loads(on_pipe)["swap_id"] == "sw-1"


def test_journal_stream_gets_syslog_priority_prefix(restore_root: None, tmp_path: Path) -> None:
    path = tmp_path / "journal-stand-in"
    with path.open("w") as fh:
        st = os.fstat(fh.fileno())
        control = setup_logging("info", stream=fh, environ={"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
        logging.getLogger("settlerd").warning("broker unreachable")
        logging.getLogger("settlerd").info("broker back")
        control.close()
    warning, info = path.read_text().splitlines()
    assert warning.startswith("<4>{") and json.loads(warning[3:])["level"] == "warning"
    assert info.startswith("<6>{")


def test_reload_changes_the_level(json_log: tuple[LogControl, io.StringIO]) -> None:
    control, out = json_log
    log = logging.getLogger("settlerd.engine")
    log.debug("hidden")
    control.reload("debug")
    log.debug("shown")
    assert control.level == "debug"
    with pytest.raises(ValueError, match=r"log\.level"):
        control.reload("verbose")
    assert [e["msg"] for e in events(out)] == ["log level changed from info to debug", "shown"]


def test_reopen_follows_logrotate(restore_root: None, tmp_path: Path) -> None:
    path = tmp_path / "settlerd.log"
    control = setup_logging("info", file=path)
    log = logging.getLogger("settlerd.engine")
    log.info("before rotation")
    path.rename(tmp_path / "settlerd.log.1")
    log.info("still to the moved file until SIGHUP")
    control.reopen()
    log.info("after rotation")
    control.close()
    assert [json.loads(x)["msg"] for x in (tmp_path / "settlerd.log.1").read_text().splitlines()] == [
        "before rotation",
        "still to the moved file until SIGHUP",
    ]
    assert [json.loads(x)["msg"] for x in path.read_text().splitlines()] == ["after rotation"]


def test_reopen_failure_keeps_logging_to_the_old_file(restore_root: None, tmp_path: Path) -> None:
    directory = tmp_path / "logs"
    directory.mkdir()
    path = directory / "settlerd.log"
    control = setup_logging("info", file=path)
    path.rename(tmp_path / "kept.log")
    directory.rmdir()
    control.reopen()
    logging.getLogger("settlerd").info("still here")
    control.close()
    lines = [json.loads(x) for x in (tmp_path / "kept.log").read_text().splitlines()]
    assert lines[0]["level"] == "error" and "cannot reopen log file" in lines[0]["msg"]
    assert lines[1]["msg"] == "still here"


async def test_sighup_handler_in_the_loop_reloads_and_reopens(restore_root: None, tmp_path: Path) -> None:
    path = tmp_path / "settlerd.log"
    control = setup_logging("info", file=path)
    loop = asyncio.get_running_loop()
    done = asyncio.Event()

    def on_sighup() -> None:
        control.reopen()
        control.reload("debug")
        done.set()

    loop.add_signal_handler(signal.SIGHUP, on_sighup)
    try:
        path.rename(tmp_path / "settlerd.log.1")
        os.kill(os.getpid(), signal.SIGHUP)
        await asyncio.wait_for(done.wait(), 10)
    finally:
        loop.remove_signal_handler(signal.SIGHUP)
    logging.getLogger("settlerd.engine").debug("after SIGHUP")
    control.close()
    assert [json.loads(x)["msg"] for x in path.read_text().splitlines()] == [
        "log level changed from info to debug",
        "after SIGHUP",
    ]
