"""``settlerd doctor``: every configured dependency checked, one line each, with what to fix.

Checks run against the store, each chain's node through its adapter's ``diagnose()``, the MQTT broker and
the API settings. Nothing is written, migrated, signed or published. Every network check is bounded, so a
dead node is a FAIL line within seconds. Exit 0 when nothing failed (warnings allowed), 1 otherwise.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from settlerd.config import Settings

__all__ = ["add_doctor_command"]


def add_doctor_command(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    load: Callable[[Path], Settings | int],
) -> None:
    """``settlerd doctor --config PATH``; ``load`` is the CLI's loader (a bad configuration exits 2)."""

    def cmd_doctor(args: argparse.Namespace) -> int:
        settings = load(args.config)
        if isinstance(settings, int):
            return settings
        from .report import run  # imported on use: other commands need not load web3 and aiomqtt

        return run(settings)

    parser = subparsers.add_parser("doctor", help="check the nodes, contract, wallets, broker and store")
    parser.add_argument("--config", "-c", type=Path, required=True, metavar="PATH", help="TOML configuration")
    parser.set_defaults(func=cmd_doctor)
