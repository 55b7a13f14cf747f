"""Issue 24: one version, from the package metadata; a license that says so."""
import importlib.metadata
import subprocess
import sys
import tomllib
from pathlib import Path

import nnkit
from nnkit import cli

ROOT = Path(__file__).resolve().parents[2]


def test_version_is_the_installed_metadata(capsys):
    assert nnkit.__version__ == importlib.metadata.version("nnkit")
    try:
        cli.main(["--version"])
    except SystemExit as exc:
        assert exc.code == 0
    assert capsys.readouterr().out == f"nnkit {nnkit.__version__}\n"


_FAKE = """
import importlib.metadata as m
real = m.version
def version(name):
    if name != "nnkit":
        return real(name)
    if {installed}:
        return "9.8.7"
    raise m.PackageNotFoundError(name)
m.version = version
import sys, nnkit
from nnkit import cli
print(nnkit.__version__)
try:
    cli.main(["--version"])
except SystemExit:
    pass
"""


def _with_metadata(installed: bool) -> list[str]:
    p = subprocess.run([sys.executable, "-c", _FAKE.format(installed=installed)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return p.stdout.splitlines()


def test_version_has_one_source():
    """Whatever the metadata says is the version everywhere (no second copy
    in the code to forget when pyproject.toml's version moves)."""
    assert _with_metadata(True) == ["9.8.7", "nnkit 9.8.7"]


def test_version_fallback_when_not_installed():
    assert _with_metadata(False) == ["0+unknown", "nnkit 0+unknown"]


def test_license_file_and_field():
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("BSD 3-Clause License")
    assert "Copyright (c) 2026, the nnkit developers" in text
    assert "Neither the name of the copyright holder" in text      # the third clause
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["license"] == "BSD-3-Clause"
    assert project["license-files"] == ["LICENSE"]
