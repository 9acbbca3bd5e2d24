"""`settlerd audit verify` as an operator runs it, against a real database file."""

import sqlite3
import subprocess
import sys
from pathlib import Path

from settlerd.store import Store


def verify(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "settlerd", "audit", "verify", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_audit_verify_exits_non_zero_naming_the_first_bad_event(tmp_path: Path) -> None:
    db = tmp_path / "settlerd.db"
    config = tmp_path / "settlerd.toml"
    config.write_text(f'node_id = "audit-test"\n\n[store]\nurl = "sqlite:///{db}"\n')
    store = await Store.open(str(db))
    for i in range(5):
        async with store.write() as tx:
            await tx.append_event("s1", "step", f"status{i}", {"i": i})
    await store.close()

    intact = verify(config)
    assert intact.returncode == 0, intact.stderr
    assert "5 events verified" in intact.stdout

    with sqlite3.connect(db) as raw:
        raw.execute("DELETE FROM events WHERE seq = 3")
    tampered = verify(config)
    assert tampered.returncode == 1
    assert "event 3: removed" in tampered.stderr
    assert "Traceback" not in tampered.stderr and len(tampered.stderr.strip().splitlines()) == 1
