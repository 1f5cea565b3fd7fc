"""How much an HCL expression may compute: a template must not be able to exhaust memory or time.

Packer's cty refuses a `range()` of more than 1024 values and Go's fmt a width or precision over a
million; kiln keeps those, and also bounds what cty leaves to memory: the iterations of `for`
expressions, the length of a string, and the size of a value counted as if every shared part were
copied (which is what encoding or flattening it does). Going over a bound is an HCLError saying
which, never a MemoryError or a build that never ends.
"""

from __future__ import annotations

from typing import Any

from kiln.errors import TemplateError

#: cty's RangeFunc stops at 1024 values
RANGE_VALUES = 1024
#: Go's fmt refuses widths and precisions over a million
FORMAT_WIDTH = 1_000_000
#: iterations of `for` expressions and `%{for}` directives in one evaluation
ITERATIONS = 1_000_000
#: characters in one string (the size of the largest file kiln reads)
TEXT = 16 * 1024 * 1024
#: elements of one value (lists, objects, and a unit per 64 characters of its strings)
WEIGHT = 1_000_000


class LimitError(TemplateError):
    """An expression went over one of the bounds above."""


class Budget:
    """The iterations left to one evaluation, shared by every scope made from its root scope."""

    def __init__(self) -> None:
        self.left = ITERATIONS

    def spend(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise LimitError(
                f"for expressions ran more than {ITERATIONS} iterations in one expression",
                "iterate over smaller collections",
            )


def text_error(what: str) -> LimitError:
    return LimitError(f"{what} makes a string of more than {TEXT} characters")


def check_text(text: str, what: str) -> str:
    if len(text) > TEXT:
        raise text_error(what)
    return text


def weigh(value: Any, what: str) -> None:
    """Raise LimitError if `value`, with shared parts counted each time, is larger than WEIGHT."""
    left = WEIGHT
    stack = [value]
    while stack:
        item = stack.pop()
        left -= 1
        if isinstance(item, str):
            left -= len(item) // 64
        elif isinstance(item, list | dict):
            left -= len(item)
            if left >= 0:
                stack.extend(item.values() if isinstance(item, dict) else item)
        if left < 0:
            raise LimitError(
                f"{what} makes a value of more than {WEIGHT} elements",
                "a template's values are lists and maps of a few hundred elements",
            )
