"""Compile the contracts with the pinned solc-js and write the committed artifacts.

Run ``python -m settlerd_evm.compile`` after editing a .sol file; tests recompile and compare bytecode, so
a source edit without a fresh artifact fails the suite.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

SOLC_VERSION = "0.8.33"
# Cancun is supported by every mainstream EVM chain and L2; nothing newer is needed by the contract.
EVM_VERSION = "cancun"
# High runs favour cheap calls over cheap deployment: the contract is deployed once, called per swap.
OPTIMIZER_RUNS = 1_000_000

CONTRACTS_DIR = Path(__file__).resolve().parent / "contracts"
REPO_ROOT = Path(__file__).resolve().parents[2]
SOLC_MODULE = REPO_ROOT / "regtest" / "node_modules" / "solc"

# (source file relative to contracts/, contract names, artifact path relative to contracts/)
TARGETS: list[tuple[str, tuple[str, ...], str]] = [
    ("HTLC.sol", ("HTLC",), "HTLC.json"),
    ("test/TestToken.sol", ("TestToken", "NoBoolToken", "FeeToken"), "test/TestTokens.json"),
]
# The IR pipeline inlines the HTLC's internal functions and saves gas on every operation. The test tokens
# stay on the legacy pipeline: the benchmark measures the HTLC against a token that costs what a
# mainstream (legacy-compiled) stablecoin costs, so a cheaper token must not flatter the figures.
VIA_IR = {"HTLC.sol": True, "test/TestToken.sol": False}

_NODE_SCRIPT = """
const solc = require(process.argv[1]);
let input = '';
process.stdin.on('data', (c) => { input += c; });
process.stdin.on('end', () => {
  process.stdout.write(JSON.stringify({version: solc.version(), output: JSON.parse(solc.compile(input))}));
});
"""


class CompileError(RuntimeError):
    pass


def settings(source_name: str) -> dict[str, Any]:
    return {
        "optimizer": {"enabled": True, "runs": OPTIMIZER_RUNS},
        **({"viaIR": True} if VIA_IR[source_name] else {}),
        "evmVersion": EVM_VERSION,
        "metadata": {"bytecodeHash": "none", "appendCBOR": False},
        "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}},
    }


def compile_source(source_name: str, solc_module: Path = SOLC_MODULE) -> tuple[str, dict[str, Any]]:
    """Compile one source file; returns the compiler's long version and its per-contract output."""
    source = (CONTRACTS_DIR / source_name).read_text()
    standard_input = {
        "language": "Solidity",
        "sources": {source_name: {"content": source}},
        "settings": settings(source_name),
    }
    if not solc_module.exists():
        raise CompileError(f"solc-js not found at {solc_module}: run `make npm` (npm ci in regtest/)")
    proc = subprocess.run(
        ["node", "-e", _NODE_SCRIPT, str(solc_module)],
        input=json.dumps(standard_input),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise CompileError(f"node/solc-js failed: {proc.stderr.strip()}")
    result = json.loads(proc.stdout)
    errors = [e for e in result["output"].get("errors", []) if e["severity"] == "error"]
    if errors:
        raise CompileError("\n".join(e["formattedMessage"] for e in errors))
    version: str = result["version"]
    if not version.startswith(SOLC_VERSION + "+"):
        raise CompileError(f"solc-js is {version}, the artifacts are pinned to {SOLC_VERSION}")
    return version, result["output"]["contracts"][source_name]


def build_artifact(source_name: str, names: tuple[str, ...]) -> dict[str, Any]:
    version, contracts = compile_source(source_name)
    source = (CONTRACTS_DIR / source_name).read_text()
    return {
        "compiler": {"name": "solc-js", "version": version, "settings": settings(source_name)},
        "source": source_name,
        "sourceSha256": hashlib.sha256(source.encode()).hexdigest(),
        "contracts": {
            name: {
                "abi": contracts[name]["abi"],
                "bytecode": "0x" + contracts[name]["evm"]["bytecode"]["object"],
                "deployedBytecode": "0x" + contracts[name]["evm"]["deployedBytecode"]["object"],
            }
            for name in names
        },
    }


def main() -> int:
    for source_name, names, artifact in TARGETS:
        data = build_artifact(source_name, names)
        (CONTRACTS_DIR / artifact).write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        for name in names:
            size = (len(data["contracts"][name]["deployedBytecode"]) - 2) // 2
            print(f"{artifact}: {name} ({size} bytes deployed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
