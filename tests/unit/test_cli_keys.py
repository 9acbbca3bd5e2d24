"""`settlerd keys init|show`: key files mode 0600, never printed, never overwritten; what a counterparty
needs, as TOML the other desk's configuration accepts."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import pytest
from eth_account import Account

from settlerd import config
from settlerd.cli import main
from settlerd.cli.keys import KEY_FILES
from settlerd.engine import NodeKey

REPO = Path(__file__).resolve().parents[2]


def _init(directory: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["keys", "init", str(directory)])
    out, err = capsys.readouterr()
    return code, out + err


def test_init_writes_private_files_and_prints_no_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = tmp_path / "desk-a"
    code, output = _init(keys, capsys)
    assert code == 0, output
    assert sorted(p.name for p in keys.iterdir()) == sorted(KEY_FILES)
    assert keys.stat().st_mode & 0o777 == 0o700
    for name in KEY_FILES:
        path = keys / name
        assert path.stat().st_mode & 0o777 == 0o600
        secret = path.read_text().strip()
        assert secret.removeprefix("0x") not in output
    NodeKey.from_hex((keys / "node-key").read_text())
    assert len(bytes.fromhex((keys / "bitcoin-seed").read_text())) == 32
    assert (keys / "evm-key").read_text().startswith("0x")
    Account.from_key((keys / "evm-key").read_text().strip())


def test_init_refuses_to_overwrite_any_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keys = tmp_path / "desk-a"
    assert _init(keys, capsys)[0] == 0
    (keys / "bitcoin-seed").unlink()  # one key gone, two left: still nothing is replaced
    before = {p.name: p.read_text() for p in keys.iterdir()}
    code, output = _init(keys, capsys)
    assert code == 1
    assert "node-key, evm-key" in output and "not overwriting" in output
    assert {p.name: p.read_text() for p in keys.iterdir()} == before


def test_show_prints_a_counterparty_table_the_other_desk_accepts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    keys_a, keys_b = tmp_path / "desk-a", tmp_path / "desk-b"
    for keys in (keys_a, keys_b):
        assert _init(keys, capsys)[0] == 0
        (keys / "bitcoin-rpc-password").write_text("not used here\n")
        (keys / "bitcoin-rpc-password").chmod(0o600)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(keys_b))
    assert main(["keys", "show", "--config", str(REPO / "config" / "desk-b.toml")]) == 0
    snippet, _ = capsys.readouterr()

    table = tomllib.loads(snippet)["counterparties"]["desk-b"]
    assert table == {"node_key": NodeKey.from_hex((keys_b / "node-key").read_text()).public_hex}
    evm_address = Account.from_key((keys_b / "evm-key").read_text().strip()).address
    assert f"# evm (evm) funding address: {evm_address}\n" in snippet
    assert "# bitcoin (bitcoin) funding address: bcrt1q" in snippet
    for name in KEY_FILES:
        assert (keys_b / name).read_text().strip().removeprefix("0x") not in snippet

    desk_a = tmp_path / "desk-a.toml"
    shutil.copy(REPO / "config" / "desk-a.toml", desk_a)
    desk_a.write_text(desk_a.read_text() + snippet)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(keys_a))
    settings = config.load(desk_a)
    assert settings.counterparties["desk-b"].node_key == table["node_key"]


def test_show_without_a_node_key_file_says_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert main(["keys", "show", "--config", str(REPO / "config" / "desk-a.toml")]) == 1
    assert "node-key does not exist" in capsys.readouterr().err
