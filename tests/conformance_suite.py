"""Where Packer's conformance suite is, for the tests that read it.

The suite (Packer's own command and template tests, transcribed by hand, with their fixtures) is not
part of kiln's repository: it sits beside the checkout, in `../shared/conformance/packer/`, or where
`KILN_CONFORMANCE_SUITE` says. Without it those tests skip in a user's clone and fail in CI
(`CI=true`), where it must be there.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SUITE = Path(os.environ.get("KILN_CONFORMANCE_SUITE") or ROOT.parent / "shared" / "conformance" / "packer")
MISSING = (
    f"Packer's conformance suite is not at {SUITE} (it is not part of kiln's repository: put the "
    "suite's conformance/packer/ folder beside the checkout, as ../shared/conformance/packer/, or "
    "set KILN_CONFORMANCE_SUITE to it)"
)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


def need_suite() -> None:
    """Skip the calling test when the suite is missing (fail instead in CI)."""
    if (SUITE / "cases.json").is_file():
        return
    if in_ci():
        pytest.fail(f"CI=true: {MISSING}", pytrace=False)
    pytest.skip(MISSING)
