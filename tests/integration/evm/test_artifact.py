"""The committed artifacts are exactly what the pinned solc-js makes of the committed sources."""

import hashlib

import pytest
from settlerd_evm import compile as solc
from settlerd_evm.artifact import CONTRACTS_DIR, load_artifact


@pytest.mark.parametrize(("source", "names", "artifact"), solc.TARGETS)
def test_recompiling_gives_the_committed_bytecode(source: str, names: tuple[str, ...], artifact: str) -> None:
    committed = load_artifact(artifact)
    fresh = solc.build_artifact(source, names)
    assert fresh["compiler"]["version"].startswith("0.8.33+")
    for name in names:
        assert committed[name]["compiler"] == fresh["compiler"]
        assert committed[name]["bytecode"] == fresh["contracts"][name]["bytecode"], f"{name}: stale artifact"
        assert committed[name]["deployedBytecode"] == fresh["contracts"][name]["deployedBytecode"]
        assert committed[name]["abi"] == fresh["contracts"][name]["abi"]
    assert fresh["sourceSha256"] == hashlib.sha256((CONTRACTS_DIR / source).read_bytes()).hexdigest()
