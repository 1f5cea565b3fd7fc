"""Time formatting the way Packer's templates do it: Go reference-time layouts (`isotime`) and
C-style directives (`strftime`, as jehiah/go-strftime reads them). Both format the same instant, the
process start time in UTC, so every `{{timestamp}}` and `{{isotime}}` of one run agree."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from .clock import START

#: One instant per run, like Packer's interpolate.InitTime.
INIT_TIME = datetime.fromtimestamp(START, UTC)

_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December"]  # fmt: skip
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]

# Longest first within each leading character, as Go's layout scanner tries them.
_CHUNKS = [
    "January", "Jan", "Monday", "Mon", "MST",
    "01", "02", "03", "04", "05", "06", "002",
    "15", "1", "2006", "2", "__2", "_2",
    "3", "4", "5", "PM", "pm",
    "-07:00:00", "-070000", "-07:00", "-0700", "-07",
    "Z07:00:00", "Z070000", "Z07:00", "Z0700", "Z07",
]  # fmt: skip
_BY_FIRST: dict[str, list[str]] = {}
for _chunk in sorted(_CHUNKS, key=len, reverse=True):
    _BY_FIRST.setdefault(_chunk[0], []).append(_chunk)


def _chunk_value(chunk: str, t: datetime) -> str:
    hour12 = t.hour % 12 or 12
    match chunk:
        case "January":
            return _MONTHS[t.month - 1]
        case "Jan":
            return _MONTHS[t.month - 1][:3]
        case "Monday":
            return _DAYS[t.weekday()]
        case "Mon":
            return _DAYS[t.weekday()][:3]
        case "MST":
            return "UTC"
        case "01":
            return f"{t.month:02d}"
        case "1":
            return str(t.month)
        case "02":
            return f"{t.day:02d}"
        case "2":
            return str(t.day)
        case "_2":
            return f"{t.day:>2d}"
        case "002":
            return f"{t.timetuple().tm_yday:03d}"
        case "__2":
            return f"{t.timetuple().tm_yday:>3d}"
        case "15":
            return f"{t.hour:02d}"
        case "3":
            return str(hour12)
        case "03":
            return f"{hour12:02d}"
        case "4":
            return str(t.minute)
        case "04":
            return f"{t.minute:02d}"
        case "5":
            return str(t.second)
        case "05":
            return f"{t.second:02d}"
        case "2006":
            return f"{t.year:04d}"
        case "06":
            return f"{t.year % 100:02d}"
        case "PM":
            return "PM" if t.hour >= 12 else "AM"
        case "pm":
            return "pm" if t.hour >= 12 else "am"
    if chunk.startswith("Z"):  # the time is UTC, which ISO 8601 layouts write as Z
        return "Z"
    return _offset(chunk)


def _offset(chunk: str) -> str:
    return {"-07:00:00": "+00:00:00", "-070000": "+000000", "-07:00": "+00:00", "-0700": "+0000",
            "-07": "+00"}[chunk]  # fmt: skip


def go_format(layout: str, t: datetime = INIT_TIME) -> str:
    """Format `t` with a Go layout ("2006-01-02T15:04:05Z07:00")."""
    out: list[str] = []
    i, n = 0, len(layout)
    while i < n:
        c = layout[i]
        if c in ".," and i + 1 < n and layout[i + 1] in "09":
            j = i + 1
            while j < n and layout[j] == layout[i + 1]:
                j += 1
            if not (j < n and layout[j].isdigit()):
                digits = j - i - 1
                frac = f"{t.microsecond:06d}{0:03d}"[:digits]
                if layout[i + 1] == "9":
                    frac = frac.rstrip("0")
                    out.append(c + frac if frac else "")
                else:
                    out.append(c + frac)
                i = j
                continue
        for chunk in _BY_FIRST.get(c, ()):
            if not layout.startswith(chunk, i):
                continue
            after = layout[i + len(chunk) : i + len(chunk) + 1]
            if chunk in ("Jan", "Mon") and after.islower():
                continue  # "Month", "Janet": plain text, as Go reads it
            out.append(_chunk_value(chunk, t))
            i += len(chunk)
            break
        else:
            out.append(c)
            i += 1
    return "".join(out)


_STRFTIME: dict[str, Callable[[datetime], str]] = {
    "a": lambda t: _DAYS[t.weekday()][:3],
    "A": lambda t: _DAYS[t.weekday()],
    "b": lambda t: _MONTHS[t.month - 1][:3],
    "B": lambda t: _MONTHS[t.month - 1],
    "c": lambda t: go_format("Mon Jan  2 15:04:05 2006", t),
    "d": lambda t: f"{t.day:02d}",
    "f": lambda t: f"{t.microsecond:06d}",
    "H": lambda t: f"{t.hour:02d}",
    "I": lambda t: f"{(t.hour % 12 or 12):02d}",
    "j": lambda t: f"{t.timetuple().tm_yday:03d}",
    "L": lambda t: f"{t.microsecond // 1000:03d}",
    "m": lambda t: f"{t.month:02d}",
    "M": lambda t: f"{t.minute:02d}",
    "p": lambda t: "PM" if t.hour >= 12 else "AM",
    "S": lambda t: f"{t.second:02d}",
    "y": lambda t: f"{t.year % 100:02d}",
    "Y": lambda t: f"{t.year:04d}",
    "z": lambda t: "+0000",
    "Z": lambda t: "UTC",
    "%": lambda t: "%",
}


def strftime(fmt: str, t: datetime = INIT_TIME) -> str:
    """C-style formatting; an unknown directive is written as it stands."""
    out: list[str] = []
    i, n = 0, len(fmt)
    while i < n:
        c = fmt[i]
        if c == "%" and i + 1 < n:
            fn = _STRFTIME.get(fmt[i + 1])
            if fn is not None:
                out.append(fn(t))
                i += 2
                continue
        out.append(c)
        i += 1
    return "".join(out)
