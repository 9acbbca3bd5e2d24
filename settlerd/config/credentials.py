"""Secrets handed over by systemd's ``LoadCredential=``: where a ``*_file`` setting points, and reading it.

systemd copies each credential into a private, read-only directory and names it in $CREDENTIALS_DIRECTORY;
it expands ``%d`` to that directory in the unit file, but not in our TOML. So a ``*_file`` setting may hold:

- a bare credential name, ``"mqtt-password"``: the file of that name in $CREDENTIALS_DIRECTORY;
- ``"%d/mqtt-password"``: the same, written as one would in the unit file;
- an absolute path, used as it is (a secret file outside systemd, e.g. on a developer's machine).

A relative path with a directory in it is refused: it would silently depend on the working directory.
Outside systemd, exporting CREDENTIALS_DIRECTORY to a directory of files gives the same layout.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

ENV = "CREDENTIALS_DIRECTORY"
SPECIFIER = "%d"
# systemd keeps a credential ID usable as a file name; longer names are refused by the kernel anyway.
MAX_NAME_BYTES = 255


class CredentialError(Exception):
    """A secret cannot be found or read; the message names the setting and what to do."""


def resolve(setting: str, value: str | os.PathLike[str], environ: Mapping[str, str] = os.environ) -> Path:
    """Turn the value of the ``*_file`` setting named ``setting`` into the path of the secret file."""
    text = os.fspath(value)
    if text.startswith(SPECIFIER + "/"):
        name = text[len(SPECIFIER) + 1 :]
    elif os.path.isabs(text):
        return Path(text)
    elif "/" in text:
        raise CredentialError(
            f"{setting}: {text!r} is a relative path; give a systemd credential name (no '/'), "
            f"'{SPECIFIER}/NAME', or an absolute path"
        )
    else:
        name = text
    if name in ("", ".", "..") or "/" in name or len(name.encode()) > MAX_NAME_BYTES:
        raise CredentialError(f"{setting}: {name!r} is not a valid credential name (one file name, no '/')")
    directory = environ.get(ENV)
    if not directory:
        raise CredentialError(
            f"{setting}: {text!r} names a systemd credential but ${ENV} is not set; run under the "
            f"settlerd unit with LoadCredential={name}:PATH, export {ENV} pointing at a directory "
            "holding the file, or give an absolute path"
        )
    return Path(directory) / name


def read_secret(setting: str, value: str | os.PathLike[str], environ: Mapping[str, str] = os.environ) -> str:
    """The secret behind a ``*_file`` setting, without a trailing newline; refuses world-readable files."""
    path = resolve(setting, value, environ)
    try:
        with path.open("rb") as fh:
            mode = os.fstat(fh.fileno()).st_mode
            data = fh.read()
    except FileNotFoundError:
        raise CredentialError(f"{setting}: {path} does not exist; create it or fix {setting}") from None
    except PermissionError:
        raise CredentialError(
            f"{setting}: {path} is not readable by this user; give settlerd read access to it"
        ) from None
    except IsADirectoryError:
        raise CredentialError(f"{setting}: {path} is a directory, not a secret file") from None
    if mode & stat.S_IROTH:
        raise CredentialError(f"{setting}: {path} is readable by every user; run chmod o-rwx {path}")
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise CredentialError(f"{setting}: {path} is not UTF-8 text") from None
    text = text.removesuffix("\n").removesuffix("\r")
    if not text:
        raise CredentialError(f"{setting}: {path} is empty; write the secret into it")
    return text
