"""Packer's own command and template tests, transcribed in ../shared/conformance/packer/, run
against kiln: every case of the legacy JSON templates must pass (HCL2 cases are reported, not yet
required)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SUITE = ROOT.parent / "shared" / "conformance" / "packer"
CATEGORIES = ("build", "validate", "inspect", "template-parse")

#: JSON cases kiln deliberately does not pass, each with the reason (none so far).
KNOWN_DEPARTURES: dict[str, str] = {}


def json_case_ids() -> set[str]:
    cases = json.loads((SUITE / "cases.json").read_text())["cases"]
    ids = set()
    for case in cases:
        if case["category"] not in CATEGORIES:
            continue
        steps = case.get("steps", [case])
        targets = [a for a in steps[-1]["args"] if not a.startswith("-") or a == "-"]
        target = targets[-1] if targets else ""
        if (target.endswith(".json") and not target.endswith(".pkr.json")) or target == "-":
            ids.add(case["id"])
    return ids


@pytest.mark.skipif(not SUITE.exists(), reason="the conformance suite is not beside the checkout")
@pytest.mark.parametrize("category", CATEGORIES)
def test_packer_conformance_json_cases(category: str) -> None:
    env = dict(os.environ, KILN=f"{sys.executable} -m kiln")
    result = subprocess.run(
        [sys.executable, str(SUITE / "run"), "--category", category, "-j", "2"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    failures = {
        line.split(":", 1)[0].removeprefix("FAIL ").strip(): line
        for line in result.stdout.splitlines()
        if line.startswith("FAIL ")
    }
    json_failures = {cid: line for cid, line in failures.items() if cid in json_case_ids()}
    unexpected = {cid: line for cid, line in json_failures.items() if cid not in KNOWN_DEPARTURES}
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr[-500:]
    assert not unexpected, f"{summary}\n" + "\n".join(unexpected.values())
    assert "passed" in summary
