"""The lowest releases CI tests are the floors pyproject.toml states."""

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]


def _floors():
    with open(ROOT / "pyproject.toml", "rb") as f:
        dependencies = tomllib.load(f)["project"]["dependencies"]
    return dict(re.fullmatch(r"([\w-]+)>=([\d.]+)", d).groups() for d in dependencies)


def _lowest():
    lines = (ROOT / ".ci" / "lowest.txt").read_text().splitlines()
    pins = [line for line in lines if line and not line.startswith("#")]
    return dict(re.fullmatch(r"([\w-]+)==([\d.]+)\.\*", p).groups() for p in pins)


def test_ci_tests_every_floor_but_torch():
    floors, lowest = _floors(), _lowest()
    assert set(floors) - set(lowest) == {"torch"}
    for name, version in lowest.items():
        assert floors[name] == version, name
