"""docs/localcloud-coverage.md is what the SDKs and localcloud's registry say."""

from __future__ import annotations

from pathlib import Path

from kiln.localcloud import coverage, sdkmodels


def test_the_coverage_page_is_current() -> None:
    path = Path(__file__).resolve().parents[2] / "docs" / "localcloud-coverage.md"
    assert path.read_text() == coverage.reference(), (
        "run: python -m kiln.localcloud.coverage > docs/localcloud-coverage.md"
    )


def test_every_implemented_action_is_one_its_sdk_has() -> None:
    for product in sdkmodels.SDKS:
        unknown = coverage.implemented(product) - set(sdkmodels.actions(product))
        assert not unknown, f"{product}: {sorted(unknown)} are not actions of {sdkmodels.SDKS[product]}"


def test_the_page_counts_what_is_implemented() -> None:
    page = coverage.reference()
    for product in sdkmodels.SDKS:
        done, total = len(coverage.implemented(product)), len(sdkmodels.actions(product))
        assert f"| {product} | " in page and f"{done} / {total} actions" in page
        section = page.split(f"## {product}\n", 1)[1].split("\n## ", 1)[0]
        assert section.count("- [X] ") == done and section.count("- [ ] ") == total - done
