"""The coverage page: per product, the actions localcloud answers out of every action its official
SDK has (kiln.localcloud.sdkmodels), and the list of them all, implemented ones ticked.

docs/localcloud-coverage.md is this page, written by
`python -m kiln.localcloud.coverage > docs/localcloud-coverage.md` (a test checks that it is current).
"""

from __future__ import annotations

import importlib.metadata
import sys

import kiln.localcloud.server  # noqa: F401 - declares every action and operation the server answers
from kiln.localcloud import sdkmodels
from kiln.localcloud.api.oss.wire import OPERATIONS
from kiln.localcloud.api.registry import ACTIONS

HEADER = """# localcloud's coverage of the Alibaba Cloud APIs

Made from the official SDKs' action lists and localcloud's own registry by
`python -m kiln.localcloud.coverage > docs/localcloud-coverage.md`. An action ticked here answers
as its SDK's model says (tests/localcloud/test_shapes.py checks the RPC products' answers,
test_oss_shapes.py OSS's XML bodies).
"""


def implemented(product: str) -> set[str]:
    """The actions localcloud answers for `product` (its registry name; OSS's operations for "Oss")."""
    if product == "Oss":
        return set(OPERATIONS)
    return {found.name for found in ACTIONS.values() if product in {p.name for p in found.products}}


def reference() -> str:
    parts = [HEADER]
    summary = ["| product | SDK | implemented |", "| --- | --- | --- |"]
    sections = []
    for product, package in sdkmodels.SDKS.items():
        everything = sdkmodels.actions(product)
        done = implemented(product)
        version = importlib.metadata.version(package.replace("_", "-"))
        count = len(done & set(everything))
        share = f"{count} / {len(everything)}"
        summary.append(f"| {product} | {package} {version} | {share} ({100 * count // len(everything)}%) |")
        lines = [f"## {product}", "", f"{share} actions of {package} {version}.", ""]
        lines += [f"- [{'X' if name in done else ' '}] {name}" for name in everything]
        sections.append("\n".join(lines) + "\n")
    parts.append("\n".join(summary) + "\n")
    parts.extend(sections)
    return "\n".join(parts)


if __name__ == "__main__":
    sys.stdout.write(reference())
