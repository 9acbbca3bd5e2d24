"""`make demo`: start settlerd on the regtest configuration, show it healthy, stop it cleanly.

Everything it starts lives in a temporary directory and is stopped before it returns, also on failure.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config" / "regtest.toml"
SETTLERD = [sys.executable, "-m", "settlerd"]
READY_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def wait_healthy(url: str, proc: subprocess.Popen[bytes]) -> dict[str, str]:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"demo: settlerd exited with code {proc.returncode} before it was healthy")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                body: dict[str, str] = json.load(resp)
                return body
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    raise SystemExit(f"demo: {url} did not answer within {READY_TIMEOUT_S:.0f}s")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="settlerd-demo-") as tmp:
        port = free_port()
        env = {
            **os.environ,
            "SETTLERD_STORE__URL": f"sqlite:///{tmp}/demo.sqlite3",
            "SETTLERD_API__PORT": str(port),
        }
        step(f"settlerd config check --config {CONFIG.relative_to(ROOT)}")
        subprocess.run([*SETTLERD, "config", "check", "--config", str(CONFIG)], env=env, check=True)

        step("settlerd run (stops at the end of the demo)")
        proc = subprocess.Popen([*SETTLERD, "run", "--config", str(CONFIG)], env=env)
        try:
            health = wait_healthy(f"http://127.0.0.1:{port}/v1/health", proc)
            step(f"GET http://127.0.0.1:{port}/v1/health")
            print(json.dumps(health, indent=2))
            step("SIGTERM")
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        step(f"settlerd exited with code {code}")
        subprocess.run([*SETTLERD, "audit", "verify", "--config", str(CONFIG)], env=env, check=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
