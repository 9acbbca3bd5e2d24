"""Desks trade with the command line: create, accept, register, then watch the swap to its end."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from localnet import ADMIN_TOKEN, Daemon, Localnet


async def settlerd(daemon: Daemon, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, "SETTLERD_API_URL": daemon.url, "SETTLERD_API_TOKEN": ADMIN_TOKEN}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "settlerd",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_swap_create_accept_register_and_watch(
    net: Localnet, desks: tuple[Daemon, Daemon], tmp_path: Path
) -> None:
    a, b = desks
    offer, acceptance = tmp_path / "offer.json", tmp_path / "acceptance.json"

    code, _, err = await settlerd(
        a, "swap", "create", "--counterparty", b.node_id, "--give", "bitcoin:BTC:2000000",
        "--get", "evm:ETH:50000000000000000", "--out", str(offer),
    )  # fmt: skip
    assert code == 0, err
    swap_id = json.loads(offer.read_text())["swap_id"]
    code, _, err = await settlerd(b, "swap", "accept", str(offer), "--out", str(acceptance))
    assert code == 0, err
    code, out, err = await settlerd(a, "swap", "register", str(acceptance))
    assert code == 0, err
    assert swap_id in out

    code, out, err = await settlerd(a, "swap", "watch", swap_id)
    assert code == 0, err
    assert out.splitlines()[-1].split()[-1] == "completed"

    code, out, _ = await settlerd(a, "swap", "accept", str(offer))
    assert code == 1
    code, _, err = await settlerd(
        a, "swap", "create", "--counterparty", b.node_id, "--give", "bitcoin:BTC", "--get", "x"
    )
    assert code == 2
    assert "expected CHAIN:ASSET:AMOUNT" in err
