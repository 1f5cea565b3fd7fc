"""Packer's own fmt and hcl2_upgrade command tests (../shared/conformance/packer/, categories fmt and
hcl2_upgrade) run against kiln: every case must pass."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from .conftest import ROOT, SUITE


@pytest.mark.skipif(not SUITE.exists(), reason="the conformance suite is not beside the checkout")
@pytest.mark.parametrize("category", ["fmt", "hcl2_upgrade"])
def test_packer_conformance_cases(category: str) -> None:
    env = dict(os.environ, KILN=f"{sys.executable} -m kiln")
    result = subprocess.run(
        [sys.executable, str(SUITE / "run"), "--category", category, "-j", "2"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    failures = [line for line in result.stdout.splitlines() if line.startswith("FAIL ")]
    assert result.returncode == 0 and not failures, "\n".join(failures) or result.stderr[-2000:]
    assert " 0 failed" in result.stdout
