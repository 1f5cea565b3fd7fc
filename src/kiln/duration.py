"""Lengths of time as Go writes them: parsed from templates ("1h2m3.5s", "300ms") and printed the
way Go's time.Duration.String() prints them ("1h0m0s", "1.5s", "300ms"), wherever kiln shows one."""

from __future__ import annotations

import math
import os
import re
import typing
from collections.abc import Callable

_UNITS: dict[str, float] = {
    "ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0,
}  # fmt: skip
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def seconds_from_env(
    name: str,
    default: float,
    accept: Callable[[float], bool],
    expected: str,
    hint: str,
    error: Callable[[str, str], Exception],
) -> float:
    """$NAME as a number of seconds: `default` when it is unset or blank; a value that is not a
    number `accept` takes raises `error("NAME='value' is not EXPECTED", hint)`."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not accept(value):
        raise error(f"{name}={raw!r} is not {expected}", hint)
    return value


def go_duration(seconds: float) -> str:
    """Go's time.Duration.String(): `1h0m0s`, `1m30s`, `1.5s`, `300ms`, `0s`."""
    ns = round(seconds * 1e9)
    if ns == 0:
        return "0s"
    sign, ns = ("-" if ns < 0 else ""), abs(ns)

    def trim(value: int, scale: int) -> str:
        whole, frac = divmod(value, scale)
        digits = str(frac).rjust(len(str(scale)) - 1, "0").rstrip("0")
        return f"{whole}.{digits}" if digits else str(whole)

    if ns < 1_000_000_000:
        for scale, unit in ((1_000_000, "ms"), (1_000, "µs"), (1, "ns")):
            if ns >= scale:
                return sign + trim(ns, scale) + unit
    hours, rest = divmod(ns, 3600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if hours or minutes else "")
    return sign + text + trim(rest, 10**9) + "s"


class Duration(float):
    """A length of time in seconds, written in templates as Go durations: "1h2m3.5s", "300ms", or a
    number of seconds; shown as Go shows it."""

    #: Go's durations are int64 nanoseconds: about 292 years (Python's longest wait too)
    MAX_SECONDS: typing.ClassVar[float] = float((2**63 - 1) // 10**9)

    @classmethod
    def parse(cls, text: str) -> Duration:
        text = text.strip()
        value = cls._parse(text)
        if abs(value) > cls.MAX_SECONDS:
            raise ValueError(f'time: invalid duration "{text}" (the longest is about 292 years)')
        return value

    @classmethod
    def _parse(cls, text: str) -> Duration:
        if re.fullmatch(r"\d+(\.\d+)?", text):
            return cls(float(text))
        sign = -1.0 if text.startswith("-") else 1.0
        body = text.lstrip("+-")
        if not body:
            raise ValueError(f'invalid duration "{text}"')
        pos, total = 0, 0.0
        for match in _PART.finditer(body):
            if match.start() != pos:
                break
            total += float(match.group(1)) * _UNITS[match.group(2)]
            pos = match.end()
        if pos != len(body):
            raise ValueError(f'invalid duration "{text}" (use e.g. "30s", "5m", "1h30m")')
        return cls(sign * total)

    def __str__(self) -> str:
        return go_duration(float(self))
