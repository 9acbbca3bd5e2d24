"""Where `*_file` settings point under systemd's LoadCredential=, and how the secret files are read."""

from __future__ import annotations

from pathlib import Path

import pytest

from settlerd.config.credentials import CredentialError, read_secret, resolve

CREDS = {"CREDENTIALS_DIRECTORY": "/run/credentials/settlerd.service"}


def test_bare_name_and_specifier_resolve_in_the_credentials_directory() -> None:
    expected = Path("/run/credentials/settlerd.service/mqtt-password")
    assert resolve("mqtt.password_file", "mqtt-password", CREDS) == expected
    assert resolve("mqtt.password_file", "%d/mqtt-password", CREDS) == expected


def test_absolute_path_is_used_as_given_even_without_systemd() -> None:
    assert resolve("wallet.seed_file", "/etc/settlerd/dev-seed", {}) == Path("/etc/settlerd/dev-seed")
    assert resolve("wallet.seed_file", Path("/srv/seed"), CREDS) == Path("/srv/seed")


def test_credential_name_without_credentials_directory_tells_what_to_do() -> None:
    with pytest.raises(CredentialError) as err:
        resolve("mqtt.password_file", "mqtt-password", {})
    message = str(err.value)
    assert message.startswith("mqtt.password_file: ")
    assert "LoadCredential=mqtt-password:PATH" in message and "CREDENTIALS_DIRECTORY" in message


@pytest.mark.parametrize("value", ["secrets/seed", "./seed", "../seed", "%d/../seed", "%d/", "%d/a/b", ".."])
def test_paths_escaping_or_depending_on_the_working_directory_are_refused(value: str) -> None:
    with pytest.raises(CredentialError, match=r"^wallet\.seed_file: "):
        resolve("wallet.seed_file", value, CREDS)


def test_read_secret_strips_one_trailing_newline(tmp_path: Path) -> None:
    (tmp_path / "evm-key").write_text("0xabc123\n")
    (tmp_path / "evm-key").chmod(0o400)
    env = {"CREDENTIALS_DIRECTORY": str(tmp_path)}
    assert read_secret("chains.ethereum.key_file", "evm-key", env) == "0xabc123"


@pytest.mark.parametrize(
    ("content", "mode", "complaint"),
    [
        (None, 0o600, "does not exist"),
        ("hunter2", 0o644, "chmod o-rwx"),
        ("\n", 0o600, "is empty"),
    ],
)
def test_read_secret_refuses_missing_world_readable_and_empty(
    tmp_path: Path, content: str | None, mode: int, complaint: str
) -> None:
    path = tmp_path / "mqtt-password"
    if content is not None:
        path.write_text(content)
        path.chmod(mode)
    with pytest.raises(CredentialError, match=complaint) as err:
        read_secret("mqtt.password_file", "%d/mqtt-password", {"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert "hunter2" not in str(err.value)
