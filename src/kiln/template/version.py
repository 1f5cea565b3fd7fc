"""Versions and version constraints as Packer (hashicorp/go-version) reads them: `1.7`, `v1.7.0`,
`1.8.0-beta1`; constraints `>= 1.0.0, < 2`, `~> 1.7`."""

from __future__ import annotations

import re
from dataclasses import dataclass

_VERSION = re.compile(
    r"v?(\d+(?:\.\d+)*)"
    r"(?:-?([0-9A-Za-z\-~]+(?:\.[0-9A-Za-z\-~]+)*))?"
    r"(?:\+([0-9A-Za-z\-~]+(?:\.[0-9A-Za-z\-~]+)*))?"
)


@dataclass(frozen=True)
class Version:
    segments: tuple[int, ...]
    pre: str = ""
    meta: str = ""

    @property
    def key(self) -> tuple[tuple[int, ...], int, tuple[tuple[int, int | str], ...]]:
        # A pre-release sorts before its release; its parts compare numerically where numeric.
        parts = tuple((0, int(p)) if p.isdigit() else (1, p) for p in self.pre.split(".")) if self.pre else ()
        return (self.segments, 0 if self.pre else 1, parts)  # type: ignore[return-value]

    def __str__(self) -> str:
        text = ".".join(str(s) for s in self.segments)
        if self.pre:
            text += f"-{self.pre}"
        if self.meta:
            text += f"+{self.meta}"
        return text


def parse_version(text: str) -> Version | None:
    match = _VERSION.fullmatch(text.strip())
    if match is None:
        return None
    segments = [int(s) for s in match.group(1).split(".")]
    while len(segments) < 3:
        segments.append(0)
    return Version(tuple(segments), match.group(2) or "", match.group(3) or "")


_CONSTRAINT = re.compile(r"\s*(=|!=|>=|<=|>|<|~>)?\s*(\S+)\s*")


def satisfies(version: str, constraints: str) -> bool:
    """Whether `version` meets every comma-separated constraint; ValueError for a malformed one."""
    actual = parse_version(version)
    if actual is None:
        raise ValueError(f"Malformed version: {version}")
    for part in constraints.split(","):
        match = _CONSTRAINT.fullmatch(part)
        wanted = parse_version(match.group(2)) if match else None
        if match is None or wanted is None:
            raise ValueError(f"Malformed constraint: {part.strip()}")
        op = match.group(1) or "="
        a, w = actual.key, wanted.key
        ok = {
            "=": a == w,
            "!=": a != w,
            ">": a > w,
            "<": a < w,
            ">=": a >= w,
            "<=": a <= w,
        }.get(op)
        if op == "~>":
            written = len(_VERSION.fullmatch(match.group(2)).group(1).split("."))  # type: ignore[union-attr]
            prefix = max(written - 1, 1)
            ok = a >= w and actual.segments[:prefix] == wanted.segments[:prefix]
        if not ok:
            return False
    return True
