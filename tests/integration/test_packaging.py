"""settlerd installs as users install it: the built wheel, in a clean virtualenv, starts and checks a config.

The editable install every other test runs on hides a package missing from the wheel (it once left out
``settlerd.doctor``, and the installed ``settlerd`` could not start).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Building the wheel and installing its dependencies from the package index or pip's cache.
INSTALL_TIMEOUT_S = 600


def _run(*args: str | Path, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Built from the checkout's files alone: the editable install's egg-info in the tree would otherwise
    # fill in packages that the configuration leaves out.
    source = tmp_path_factory.mktemp("source")
    files = _run("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard").stdout
    for name in filter(None, files.split("\0")):
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    out = tmp_path_factory.mktemp("wheel")
    built = _run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", source, "-w", out)
    assert built.returncode == 0, built.stderr
    (path,) = out.glob("settlerd-*.whl")
    return path


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("venv")
    made = _run(sys.executable, "-m", "venv", venv)
    assert made.returncode == 0, made.stderr
    got = _run(venv / "bin/python", "-m", "pip", "install", "-q", wheel)
    assert got.returncode == 0, got.stderr
    return venv


def test_wheel_holds_every_package_of_the_source_tree(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    sources = [REPO / "settlerd", REPO / "adapters/settlerd_bitcoin", REPO / "adapters/settlerd_evm"]
    for root in sources:
        for init in root.rglob("__init__.py"):
            package = init.relative_to(root.parent).as_posix()
            assert package in names, f"{package} is missing from the wheel"
    assert "settlerd_evm/contracts/HTLC.json" in names


def test_installed_wheel_runs_help_and_checks_the_example_config(installed: Path, tmp_path: Path) -> None:
    # Run outside the checkout, so nothing is imported from the source tree.
    shown = _run(installed / "bin/settlerd", "--help", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "config" in shown.stdout

    checked = _run(
        installed / "bin/settlerd", "config", "check", "--config", REPO / "config/settlerd.example.toml",
        cwd=tmp_path,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert "ok" in checked.stdout

    # Both first-party adapters are found through their entry points in the installed distribution.
    listed = _run(
        installed / "bin/python", "-c",
        "from settlerd.adapters import discover; print(sorted(discover()))", cwd=tmp_path,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.strip() == "['bitcoin', 'evm']"
