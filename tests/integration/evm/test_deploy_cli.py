"""`settlerd contract deploy` against anvil: prints an address holding exactly the artifact's code."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from settlerd_evm.artifact import htlc
from web3 import AsyncWeb3

from tests.fixtures.anvil import Anvil


async def test_deploy_prints_the_address_of_the_artifacts_code(
    anvil: Anvil, w3: AsyncWeb3, tmp_path: Path
) -> None:
    key = tmp_path / "deployer.key"
    key.write_text(anvil.keys[1] + "\n")
    result = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "settlerd",
            "contract",
            "deploy",
            "--rpc-url",
            anvil.rpc_url,
            "--key-file",
            str(key),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    address = result.stdout.strip()
    code = "0x" + bytes(await w3.eth.get_code(AsyncWeb3.to_checksum_address(address))).hex()
    assert code == htlc()["deployedBytecode"].lower()
    assert anvil.keys[1][2:] not in result.stdout + result.stderr, "the key must never be printed"


def test_deploy_to_a_dead_node_fails_with_one_line(tmp_path: Path) -> None:
    key = tmp_path / "deployer.key"
    key.write_text("0x" + "11" * 32)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "settlerd",
            "contract",
            "deploy",
            "--rpc-url",
            "http://127.0.0.1:9",
            "--key-file",
            str(key),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("settlerd: contract deploy on http://127.0.0.1:9 failed: ")
    assert len(result.stderr.strip().splitlines()) == 1
