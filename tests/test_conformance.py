"""Packer's own command and template tests, transcribed in ../shared/conformance/packer/, run
against kiln: every case of every category must pass, legacy JSON and HCL2 alike."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SUITE = ROOT.parent / "shared" / "conformance" / "packer"
CATEGORIES = ("build", "validate", "inspect", "template-parse", "fmt", "hcl2_upgrade")


@pytest.mark.skipif(not SUITE.exists(), reason="the conformance suite is not beside the checkout")
@pytest.mark.parametrize("category", CATEGORIES)
def test_packer_conformance_cases(category: str) -> None:
    env = dict(os.environ, KILN=f"{sys.executable} -m kiln")
    result = subprocess.run(
        [sys.executable, str(SUITE / "run"), "--category", category, "-j", "2"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    failures = [line for line in result.stdout.splitlines() if line.startswith("FAIL ")]
    assert result.returncode == 0 and not failures, "\n".join(failures) or result.stderr[-2000:]
    assert " 0 failed" in result.stdout
