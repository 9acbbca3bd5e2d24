"""docs/first-swap.md, run as written: its `sh` blocks, taken from the page, in one bash on the local chains.

The page cannot drift from what works: a command renamed, a flag dropped or a port moved fails here. The run
happens in a scratch tree shaped like the repository (regtest/'s scripts, .venv and node_modules linked in,
config/ copied) so its regtest/.state/ is private, with every well-known port the page names (18443, 8545,
8481, 8482) moved to a free one in the page's commands and the copied configurations alike.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.bitcoin_node import free_port
from tests.fixtures.timeouts import TIMEOUT_FACTOR

pytestmark = [pytest.mark.bitcoind, pytest.mark.anvil, pytest.mark.mqtt]

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "docs" / "first-swap.md"
SKIP_MARK = "<!-- first-swap-test: skip"
# The page's commands take about a minute and a half on a loaded 2-core machine: a node start, 101 blocks,
# two daemon starts and two swaps of ~20 s each at one block per 2 s.
RUN_TIMEOUT_S = 240.0
WELL_KNOWN_PORTS = ("18443", "8545", "8481", "8482")
LINKED = ("up", "down", "fund", "devchain.py", "ensure-broker", "kernelnode", "node_modules")


def guide_commands(text: str) -> list[str]:
    """Every ```sh block of the page, in order, except one right after the skip mark."""
    blocks = []
    skip = False
    for match in re.finditer(r"(<!-- first-swap-test: skip[^>]*-->\s*)?```sh\n(.*?)```", text, re.S):
        skip = bool(match.group(1))
        if not skip:
            blocks.append(match.group(2))
    return blocks


def test_the_page_has_the_steps_it_promises() -> None:
    text = GUIDE.read_text()
    script = "\n".join(guide_commands(text))
    assert text.count("```sh") == len(guide_commands(text)) + text.count(SKIP_MARK)
    for step in (
        "regtest/up --block-time 2s", "settlerd keys init", "settlerd keys show", "regtest/fund",
        "settlerd run", "mosquitto_sub", "/v1/swaps", "text/event-stream", "settlerd swap create",
        "settlerd swap accept", "settlerd swap register", "settlerd swap watch", "regtest/down",
    ):  # fmt: skip
        assert step in script, step


def _workspace(root: Path, ports: dict[str, str]) -> None:
    (root / "regtest").mkdir()
    for name in LINKED:
        (root / "regtest" / name).symlink_to(REPO / "regtest" / name)
    (root / ".venv").symlink_to(REPO / ".venv")
    (root / "config").mkdir()
    for desk in ("desk-a", "desk-b"):
        (root / "config" / f"{desk}.toml").write_text(
            _moved(ports, (REPO / "config" / f"{desk}.toml").read_text())
        )


def _moved(ports: dict[str, str], text: str) -> str:
    return re.sub(r"\b(" + "|".join(ports) + r")\b", lambda m: ports[m.group(1)], text)


def _clear_retained(state: Path) -> None:
    """The swaps' retained status documents would stay on the shared broker for a week."""
    for offer in state.glob("desk-*/offer.json"):
        with contextlib.suppress(ValueError, OSError):
            swap_id = json.loads(offer.read_text())["swap_id"]
            for desk in ("desk-a", "desk-b"):
                topic = f"settlerd/v1/{desk}/swaps/{swap_id}"
                subprocess.run(["mosquitto_pub", "-r", "-n", "-t", topic], timeout=10, check=False)


@pytest.mark.timeout(RUN_TIMEOUT_S * TIMEOUT_FACTOR + 60)
def test_first_swap_guide_runs_as_written(tmp_path: Path) -> None:
    ports = {port: str(free_port()) for port in WELL_KNOWN_PORTS}
    root = tmp_path / "clone"
    root.mkdir()
    _workspace(root, ports)
    script = "set -euo pipefail\n" + _moved(ports, "\n".join(guide_commands(GUIDE.read_text())))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SETTLERD_")}
    env.update(
        SETTLERD_BTC_RPC_PORT=ports["18443"],
        SETTLERD_BTC_P2P_PORT=str(free_port()),
        SETTLERD_ANVIL_PORT=ports["8545"],
    )
    state = root / "regtest" / ".state"
    proc = subprocess.Popen(
        ["bash", "-c", script], cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=RUN_TIMEOUT_S * TIMEOUT_FACTOR)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
    finally:
        # Whatever the page left running (daemons, the venue's subscriber, nodes) goes with the test.
        with_pids = [
            state / "desk-a" / "settlerd.pid",
            state / "desk-b" / "settlerd.pid",
            state / "venue.pid",
        ]
        for pidfile in with_pids:
            with contextlib.suppress(OSError, ValueError):  # not started, or gone already
                os.kill(int(pidfile.read_text()), signal.SIGKILL)
        subprocess.run(
            [str(root / "regtest" / "down")], env=env, capture_output=True, timeout=60, check=False
        )
        _clear_retained(state)
    text = out.decode(errors="replace")
    logs = "".join(
        f"\n--- {log}:\n" + "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        for log in sorted(state.glob("**/*.log"))
    )
    assert proc.returncode == 0, text + logs

    # The curl swap: desk A's status document, printed last by the SSE block, says completed.
    decode = json.JSONDecoder().raw_decode
    printed = [decode(line)[0] for line in text.splitlines() if line.startswith("{")]
    swap_docs = [doc for doc in printed if "legs" in doc]
    assert swap_docs and swap_docs[-1]["status"] == "completed", text
    first = swap_docs[-1]["id"]
    assert "event: " in text or "data: " in text, text  # the SSE stream was shown
    # The CLI swap: watched to its end, and both swaps listed as completed.
    assert text.count("completed") >= 3, text
    # The venue received both desks' retained status documents for the first swap, signed.
    venue = (state / "venue.log").read_text()
    for desk in ("desk-a", "desk-b"):
        assert f"settlerd/v1/{desk}/swaps/{first} " in venue, venue[-2000:]
    # No secret reached the output.
    for desk in ("desk-a", "desk-b"):
        for name in ("node-key", "bitcoin-seed", "evm-key"):
            secret = (state / desk / name).read_text().strip()
            assert secret.removeprefix("0x") not in text
    shutil.rmtree(state / "bitcoin", ignore_errors=True)
