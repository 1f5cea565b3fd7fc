from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conformance_suite import SUITE

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = SUITE / "fixtures" / "command" / "test-fixtures"


@dataclass
class Result:
    code: int
    out: str
    err: str


class Kiln:
    """Runs the real `kiln` command line in a folder of its own."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd

    def __call__(self, *args: str, stdin: str = "") -> Result:
        proc = subprocess.run(
            [sys.executable, "-m", "kiln", *args],
            cwd=self.cwd,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def kiln(tmp_path: Path) -> Kiln:
    return Kiln(tmp_path)
