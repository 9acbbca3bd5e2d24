"""sd_notify addressing and the watchdog interval rules of sd_watchdog_enabled(3)."""

import os
import socket
from datetime import timedelta

from settlerd.sdnotify import Notifier, watchdog_interval


def test_abstract_namespace_socket_receives_ready() -> None:
    name = f"settlerd-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind("\0" + name)
        notifier = Notifier.from_env({"NOTIFY_SOCKET": "@" + name})
        notifier.ready("serving")
        notifier.close()
        fields = server.recv(1024).decode().split("\n")
    assert fields[:2] == ["READY=1", "STATUS=serving"]


def test_without_notify_socket_nothing_is_sent() -> None:
    notifier = Notifier.from_env({})
    assert not notifier.enabled
    notifier.ready("serving")  # must not raise


def test_watchdog_interval_is_half_the_timeout_and_only_for_this_process() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == timedelta(seconds=15)
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}) == timedelta(
        seconds=15
    )
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval({}) is None


def test_a_full_notify_queue_drops_instead_of_blocking() -> None:
    name = f"settlerd-full-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind("\0" + name)
        notifier = Notifier.from_env({"NOTIFY_SOCKET": "@" + name})
        for _ in range(1000):  # far beyond the kernel's datagram queue; nobody reads
            notifier.watchdog()
        notifier.close()
        assert server.recv(64) == b"WATCHDOG=1"
