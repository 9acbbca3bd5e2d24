"""docs/status.md is the public reference of the status vocabulary: it must match the code exactly."""

from __future__ import annotations

import re
from pathlib import Path

from settlerd.swap import ORDER, TERMINAL, Status, rank

DOC = Path(__file__).resolve().parents[2] / "docs" / "status.md"
ROW = re.compile(r"^\| (\d+) \| `([a-z0-9_]+)`( ■)? \|", re.MULTILINE)


def test_every_status_is_documented_in_order_with_its_rank_and_terminal_mark() -> None:
    rows = ROW.findall(DOC.read_text())
    assert [Status(name) for _, name, _ in rows] == list(ORDER)
    for number, name, mark in rows:
        status = Status(name)
        assert int(number) == rank(status), name
        assert bool(mark) == (status in TERMINAL), name


def test_status_values_are_lowercase_snake_case() -> None:
    for status in Status:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", status.value)
