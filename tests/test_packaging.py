"""What a non-editable install ships: every code folder is a listed package and every bundled data
or config file matches a package-data pattern (a wheel silently lacked data/extra once)."""
from __future__ import annotations

import fnmatch
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parent.parent
SETUP = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]


def _folder_of(package: str) -> Path:
    """The repository folder a dotted package name is installed from (package-dir mapping)."""
    mapping = SETUP["package-dir"]
    parts = package.split(".")
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in mapping:
            return ROOT / mapping[".".join(parts[:i])] / Path(*parts[i:])
    raise AssertionError(f"{package} is under no package-dir entry")


def test_every_code_folder_is_a_listed_package():
    listed = {_folder_of(p) for p in SETUP["packages"]}
    for top in ("training", "inference"):
        for init in (ROOT / top).rglob("__init__.py"):
            assert init.parent in listed, f"{init.parent.relative_to(ROOT)} is missing from pyproject packages"


def test_every_bundled_file_is_package_data():
    for package, root in (("xinwen.data", ROOT / "data"), ("xinwen.configs", ROOT / "configs")):
        patterns = SETUP["package-data"][package]
        files = [p for p in root.rglob("*") if p.is_file() and p.suffix != ".py" and "__pycache__" not in p.parts]
        assert files
        for path in files:
            rel = path.relative_to(root).as_posix()
            assert any(fnmatch.fnmatch(rel, pat) for pat in patterns), f"{package}: {rel} would not be installed"


def test_the_version_is_defined_once():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert "version" in project["dynamic"] and "version" not in project
    assert SETUP["dynamic"]["version"] == {"attr": "xinwen.__version__"}
