"""systemd's notify protocol (sd_notify): READY, STOPPING, WATCHDOG and STATUS over NOTIFY_SOCKET.

A few lines over a unix datagram socket; the PyPI packages for it are unmaintained, and this keeps the
dependency list short. Outside systemd (no NOTIFY_SOCKET) every call is a no-op.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping
from datetime import timedelta

log = logging.getLogger("settlerd.sdnotify")


class Notifier:
    def __init__(self, address: str | None) -> None:
        # An address starting with "@" names a socket in the abstract namespace.
        self._address = "\0" + address[1:] if address and address.startswith("@") else address
        self._sock: socket.socket | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Notifier:
        return cls(environ.get("NOTIFY_SOCKET") or None)

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, *fields: str) -> None:
        if self._address is None:
            return
        if self._sock is None:
            self._sock = socket.socket(
                socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK
            )
        try:
            self._sock.sendto("\n".join(fields).encode(), self._address)
        except BlockingIOError:
            # The receiver's queue is full. Blocking here would stall the event loop (and with it
            # every swap); a dropped ping is sent again next interval, and systemd drains its queue.
            log.debug("sd_notify: %s dropped, the notify socket's queue is full", fields[0])

    def ready(self, status: str) -> None:
        self.notify("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def stopping(self) -> None:
        self.notify("STOPPING=1", "STATUS=stopping")

    def watchdog(self) -> None:
        self.notify("WATCHDOG=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval(environ: Mapping[str, str] = os.environ) -> timedelta | None:
    """Half of WATCHDOG_USEC, as sd_watchdog_enabled(3) advises; None when no watchdog is asked for."""
    usec = environ.get("WATCHDOG_USEC")
    if not usec or not usec.isdigit() or int(usec) == 0:
        return None
    pid = environ.get("WATCHDOG_PID")
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None  # the watchdog is meant for another process of the unit
    return timedelta(microseconds=int(usec) / 2)
