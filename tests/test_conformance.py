"""Packer's own command and template tests, transcribed in the conformance suite (see
tests/conformance_suite.py), run against kiln: every case is a test of its own, named by its id
(`test_packer_case[validate/TestValidateCommand/...]`), legacy JSON and HCL2 alike.

The cases run through the suite's own runner (`run`), two at a time: the first case this session
selects runs all the selected ones, and each test then reports its own case's result.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import shlex
import sys
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType
from typing import Any

import pytest

from tests.conformance_suite import ROOT, SUITE, need_suite

JOBS = 2
#: seconds a case may take (the runner's own default is 60; the machine is shared)
TIMEOUT = 120.0


def case_ids() -> list[str]:
    try:
        doc = json.loads((SUITE / "cases.json").read_text())
    except (OSError, ValueError):
        return []
    return [case["id"] for case in doc["cases"]]


def load_runner() -> ModuleType:
    path = str(SUITE / "run")
    loader = importlib.machinery.SourceFileLoader("conformance_run", path)
    spec = importlib.util.spec_from_loader("conformance_run", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def run_cases(wanted: set[str]) -> dict[str, Any]:
    """Run the cases named `wanted` as the suite's runner does (its environment, its checks)."""
    runner = load_runner()
    doc = json.loads((SUITE / "cases.json").read_text())
    env = dict(os.environ)
    runner.strip_env(env, doc.get("env_unset", []))
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), *filter(None, [env.get("PYTHONPATH")])])
    kiln = shlex.split(f"{shlex.quote(sys.executable)} -m kiln")
    cases = [case for case in doc["cases"] if case["id"] in wanted]

    def run(case: dict[str, Any]) -> Any:
        return runner.run_case(case, doc, kiln, env, TIMEOUT, False)

    with ThreadPoolExecutor(max_workers=JOBS) as pool:
        return {res.case["id"]: res for res in pool.map(run, cases)}


@pytest.fixture(scope="module")
def results(request: pytest.FixtureRequest) -> dict[str, Any]:
    wanted = {
        item.callspec.params["case_id"]
        for item in request.session.items
        if isinstance(item, pytest.Function) and item.originalname == "test_packer_case"
    }
    return run_cases(wanted)


def test_suite_is_there() -> None:
    """In CI the suite must be there; in a user's clone the skip says where it comes from."""
    need_suite()
    assert len(case_ids()) >= 188


@pytest.mark.parametrize("case_id", case_ids())
def test_packer_case(case_id: str, results: dict[str, Any]) -> None:
    res = results[case_id]
    if res.status == "skip":
        pytest.skip("; ".join(res.problems))
    assert res.status == "pass", "\n".join([*res.problems, *res.details])
