"""The committed, compiled contracts: ABI and bytecode exactly as the pinned solc-js produced them."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

CONTRACTS_DIR = Path(__file__).resolve().parent / "contracts"
HTLC_ARTIFACT = "HTLC.json"


@cache
def load_artifact(name: str = HTLC_ARTIFACT) -> dict[str, dict[str, Any]]:
    """Contracts of one artifact file by name, each with abi, bytecode, deployedBytecode and compiler."""
    data = json.loads((CONTRACTS_DIR / name).read_text())
    return {
        contract: {**parts, "compiler": data["compiler"]} for contract, parts in data["contracts"].items()
    }


def htlc() -> dict[str, Any]:
    return load_artifact()["HTLC"]
