"""Logging: one line per event, JSON when read by a machine, readable text on a terminal, secrets redacted.

Context travels in ``extra`` (``log.info("leg locked", extra={"swap_id": ..., "chain": ..., "txid": ...})``)
or is bound once with :func:`bind`. Every field whose name says it holds a secret (preimage, seed, private
key, password, token, ...) is printed as ``[redacted]``, and its value is also scrubbed from the message and
any traceback on the same line, so a careless f-string cannot leak it either (invariant S7).

Under systemd, stderr is the journal: each line then starts with a ``<N>`` syslog priority, which journald
strips and turns into the entry's priority, so ``journalctl -p warning`` works on JSON lines too.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import stat
import sys
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import IO, Any

REDACTED = "[redacted]"
LEVELS = ("debug", "info", "warning", "error")
PRIVATE_MODE = 0o600

# A field is secret when one of the words of its name is one of these (``mqtt_password``, ``evmPrivateKey``).
SECRET_WORDS = frozenset(
    {
        "preimage",
        "secret",
        "seed",
        "mnemonic",
        "private",
        "privkey",
        "xprv",
        "tprv",
        "wif",
        "password",
        "passwd",
        "passphrase",
        "token",
        "bearer",
        "authorization",
        "cookie",
    }
)
# ...unless its last word says it names or points at the secret instead of holding it
# (``token_scope``, ``secret_hash`` = h, public by design; ``password_file``).
PUBLIC_LAST_WORDS = frozenset({"id", "name", "scope", "hash", "file", "path"})
# A name ending in "key" holds a private key unless one of these words says otherwise (``public_key``).
PUBLIC_KEY_WORDS = frozenset({"public", "idempotency"})
# Values this short are not scrubbed from free text: replacing every "1" in a line would hide nothing
# worth hiding and garble the rest.
MIN_SCRUB_LENGTH = 6

_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
_STANDARD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
# sd-daemon(3) priorities for the journal prefix.
_SYSLOG_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}


def is_secret_name(name: str) -> bool:
    words = [w.lower() for w in _WORD.findall(name)]
    if not words or words[-1] in PUBLIC_LAST_WORDS:
        return False
    if words[-1] == "key" and not PUBLIC_KEY_WORDS.intersection(words):
        return True  # evm_key, api_key, signing_key: a key unless it says it is a public one
    return any(w in SECRET_WORDS for w in words)


def _redact(value: Any, found: list[str]) -> Any:
    """Copy ``value`` with every secret-named mapping entry replaced; collect the hidden values."""
    if isinstance(value, Mapping):
        clean: dict[str, Any] = {}
        for key, item in value.items():
            if is_secret_name(str(key)):
                found.extend(_text_forms(item))
                clean[str(key)] = REDACTED
            else:
                clean[str(key)] = _redact(item, found)
        return clean
    if isinstance(value, list | tuple):
        return [_redact(item, found) for item in value]
    return value


def _text_forms(value: Any) -> list[str]:
    """The ways a secret value could show up in a rendered line."""
    if isinstance(value, bytes | bytearray):
        raw = bytes(value)
        return [raw.hex(), raw.hex().upper(), repr(raw)]
    if isinstance(value, Mapping):
        return [form for item in value.values() for form in _text_forms(item)]
    if isinstance(value, list | tuple):
        return [form for item in value for form in _text_forms(item)]
    return [str(value)]


def _map_strings(value: Any, fn: Callable[[str], str]) -> Any:
    """Apply ``fn`` to every string inside ``value``, before encoding could escape a secret out of reach."""
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, dict):
        return {key: _map_strings(item, fn) for key, item in value.items()}
    if isinstance(value, list):
        return [_map_strings(item, fn) for item in value]
    return value


def _json_value(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


class _Redactor:
    """Values never to print, whatever the field: those registered with LogControl.add_secret."""

    def __init__(self) -> None:
        self.known: set[str] = set()

    def add(self, value: str | bytes) -> None:
        self.known.update(form for form in _text_forms(value) if len(form) >= MIN_SCRUB_LENGTH)

    def scrub(self, text: str, extra: Iterable[str] = ()) -> str:
        # Longest first, so a hex string is replaced whole before any shorter value inside it.
        for secret in sorted({*self.known, *extra}, key=len, reverse=True):
            if len(secret) >= MIN_SCRUB_LENGTH and secret in text:
                text = text.replace(secret, REDACTED)
        return text


class _EventFormatter(logging.Formatter):
    def __init__(self, redactor: _Redactor, *, as_json: bool, priority_prefix: bool) -> None:
        super().__init__()
        self._redactor = redactor
        self._as_json = as_json
        self._priority_prefix = priority_prefix

    def format(self, record: logging.LogRecord) -> str:
        hidden: list[str] = []
        context = _redact({k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS}, hidden)
        args = record.args
        if isinstance(args, Mapping):
            record.args = _redact(args, hidden)
        try:
            message = record.getMessage()
        finally:
            record.args = args
        message = self._redactor.scrub(message, hidden)
        context = _map_strings(context, lambda text: self._redactor.scrub(text, hidden))
        exc = self._exception_text(record)
        exc = self._redactor.scrub(exc, hidden) if exc else None
        ts = datetime.fromtimestamp(record.created, UTC)
        level = record.levelname.lower()
        if self._as_json:
            event: dict[str, Any] = {
                "ts": ts.isoformat(timespec="microseconds").replace("+00:00", "Z"),
                "level": level,
                "logger": record.name,
                "msg": message,
            }
            event.update((k, v) for k, v in context.items() if k not in event)
            if exc:
                event["exc"] = exc
            line = json.dumps(event, default=_json_value, ensure_ascii=False)
        else:
            fields = "".join(f" {k}={_text_value(v)}" for k, v in context.items())
            stamp = ts.isoformat(timespec="milliseconds").replace("+00:00", "Z")
            line = f"{stamp} {level:<7} {record.name}: {_one_line(message)}{fields}"
            if exc:
                line += "\n" + exc  # a traceback on a terminal reads better on its own lines
        line = self._redactor.scrub(line, hidden)  # values rendered inside other fields
        if self._priority_prefix:
            line = f"<{_SYSLOG_PRIORITY.get(record.levelno, 6)}>{line}"
        return line

    def _exception_text(self, record: logging.LogRecord) -> str | None:
        parts = []
        if record.exc_info:
            parts.append(self.formatException(record.exc_info))
        if record.stack_info:
            parts.append(self.formatStack(record.stack_info))
        return "\n".join(parts) or None


def _one_line(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _text_value(value: Any) -> str:
    if isinstance(value, str) and value and not re.search(r"[\s\"=]", value):
        return value
    return json.dumps(value, default=_json_value, ensure_ascii=False)


class _StreamHandler(logging.StreamHandler[IO[str]]):
    """The handler settlerd installs on a stream; a distinct class so a second setup replaces it."""


class _FileHandler(logging.FileHandler):
    """A log file that can be reopened after logrotate moved it away, created readable by its owner only
    (swap ids, addresses and amounts are nobody else's business), whatever the umask."""

    def _open(self) -> io.TextIOWrapper:
        try:
            fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
        except FileExistsError:
            return super()._open()
        os.fchmod(fd, PRIVATE_MODE)  # a umask can only take bits away; this also undoes an odd one
        return io.TextIOWrapper(open(fd, "ab"), encoding=self.encoding, errors=self.errors)

    def reopen(self) -> None:
        self.acquire()
        try:
            fresh = self._open()  # open first: if that fails, keep writing to the old file
            old, self.stream = self.stream, fresh
            if old is not None:
                old.close()
        finally:
            self.release()


def _writes_to_journal(stream: IO[str], environ: Mapping[str, str]) -> bool:
    """True when ``stream`` is the journal connection systemd.exec(5) announces in $JOURNAL_STREAM."""
    expected = environ.get("JOURNAL_STREAM", "")
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False  # not a real file descriptor (a StringIO in tests, a closed stream)
    return expected == f"{st.st_dev}:{st.st_ino}"


def _level_number(level: str) -> int:
    name = level.lower()
    if name not in LEVELS:
        raise ValueError(f"log level {level!r} is not one of {', '.join(LEVELS)}; fix log.level")
    return int(logging.getLevelName(name.upper()))


class LogControl:
    """What SIGHUP needs: change the level and reopen the log file, without touching anything else."""

    def __init__(self, handler: logging.Handler, redactor: _Redactor, file: Path | None) -> None:
        self._handler = handler
        self._redactor = redactor
        self.file = file

    @property
    def level(self) -> str:
        return logging.getLevelName(logging.getLogger().level).lower()

    def reload(self, level: str) -> None:
        """Switch every logger to ``level`` (debug, info, warning, error); raises ValueError otherwise."""
        number = _level_number(level)
        old = self.level
        logging.getLogger().setLevel(number)
        if old != level.lower():
            logging.getLogger("settlerd.logs").warning("log level changed from %s to %s", old, level.lower())

    def reopen(self) -> None:
        """Reopen the log file (after logrotate); a no-op when logging to a stream such as the journal."""
        if not isinstance(self._handler, _FileHandler):
            return
        try:
            self._handler.reopen()
        except OSError as exc:
            logging.getLogger("settlerd.logs").error(
                "cannot reopen log file %s (%s); still writing to the old file: check the directory's "
                "permissions and free space, then send SIGHUP again",
                self.file,
                exc.strerror or exc,
            )

    def add_secret(self, value: str | bytes) -> None:
        """Never print ``value`` again, in any field or message (a seed, a key, a token read at start-up)."""
        self._redactor.add(value)

    def close(self) -> None:
        logging.getLogger().removeHandler(self._handler)
        self._handler.close()
        logging.captureWarnings(False)


def setup_logging(
    level: str,
    *,
    json_output: bool | None = None,
    stream: IO[str] | None = None,
    file: Path | None = None,
    environ: Mapping[str, str] = os.environ,
) -> LogControl:
    """Route every logger through settlerd's formatter and return the control SIGHUP uses.

    Output goes to ``file`` when given, else to ``stream`` (default: stderr). JSON unless the output is
    a terminal; ``json_output`` forces either. Calling it again replaces the previous set-up.
    """
    number = _level_number(level)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StreamHandler | _FileHandler)]:
        root.removeHandler(old)
        old.close()
    handler: logging.Handler
    if file is not None:
        handler = _FileHandler(file, encoding="utf-8")
        as_json = True if json_output is None else json_output
        prefix = False
    else:
        out = stream if stream is not None else sys.stderr
        handler = _StreamHandler(out)
        as_json = (not out.isatty()) if json_output is None else json_output
        prefix = _writes_to_journal(out, environ)
    redactor = _Redactor()
    handler.setFormatter(_EventFormatter(redactor, as_json=as_json, priority_prefix=prefix))
    root.addHandler(handler)
    root.setLevel(number)
    logging.captureWarnings(True)
    if not prefix:  # the journal is no file of ours
        _warn_if_shared(handler.stream if isinstance(handler, logging.StreamHandler) else None)
    return LogControl(handler, redactor, file)


def _warn_if_shared(stream: IO[str] | None) -> None:
    """Warn when the log is a file other users can read: one created before, or a redirected stderr."""
    try:
        st = os.fstat(stream.fileno()) if stream is not None else None
    except (OSError, ValueError, AttributeError):
        return  # not a real file descriptor
    if st is None or not stat.S_ISREG(st.st_mode) or not stat.S_IMODE(st.st_mode) & 0o077:
        return
    logging.getLogger("settlerd.logs").warning(
        "the log file is mode %04o: other users of this machine can read it; chmod 600 it",
        stat.S_IMODE(st.st_mode),
    )


class ContextLogger(logging.LoggerAdapter[logging.Logger]):
    """A logger that adds bound fields (swap id, chain, ...) to every event; per-call ``extra`` adds more."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return msg, kwargs

    def bind(self, **fields: Any) -> ContextLogger:
        return ContextLogger(self.logger, {**(self.extra or {}), **fields})


def bind(logger: logging.Logger | str, **fields: Any) -> ContextLogger:
    """``bind("settlerd.engine", swap_id=swap.id, chain="bitcoin")``: a logger adding those fields."""
    base = logging.getLogger(logger) if isinstance(logger, str) else logger
    return ContextLogger(base, fields)
