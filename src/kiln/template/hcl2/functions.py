"""The HCL2 functions templates use most (a subset of Packer's Terraform-derived set)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import uuid as _uuid
from collections.abc import Callable, Mapping
from typing import Any

from kiln.errors import TemplateError

from .. import gotime
from ..source import read_text
from . import limits
from .expr import HCLError, to_num, to_str


def _format(fmt: str, *args: Any) -> str:
    out, i, n, k = [], 0, len(fmt), 0
    while i < n:
        c = fmt[i]
        if c != "%":
            out.append(c)
            i += 1
            continue
        m = re.compile(r"%([-+# 0]*)(\d*)(?:\.(\d+))?([a-zA-Z%])").match(fmt, i)
        if not m:
            raise HCLError(f"invalid format string {fmt!r}")
        i = m.end()
        verb = m.group(4)
        if verb == "%":
            out.append("%")
            continue
        if k >= len(args):
            raise HCLError(f"not enough arguments for format string {fmt!r}")
        arg = args[k]
        k += 1
        if verb in "sv":
            text = to_str(arg) if not isinstance(arg, list | dict) else json.dumps(arg)
        elif verb == "q":
            text = json.dumps(to_str(arg))
        elif verb == "d":
            text = str(int(to_num(arg)))
        elif verb in "fFeEgG":
            if int(m.group(3) or 0) > limits.FORMAT_WIDTH:
                raise HCLError(f"format: the precision in {m.group(0)!r} is too large")
            text = f"{to_num(arg):.{m.group(3) or 6}{verb}}"
        elif verb in "xX":
            value = arg if isinstance(arg, int | float) else int(to_num(arg))
            text = format(int(value), verb)
        elif verb == "t":
            text = "true" if arg is True else "false"
        else:
            raise HCLError(f"unsupported format verb %{verb}")
        width = int(m.group(2) or 0)
        if width > limits.FORMAT_WIDTH:
            raise HCLError(f"format: the width {width} in {m.group(0)!r} is too large")
        text = (
            text.ljust(width) if "-" in m.group(1) else text.rjust(width, "0" if "0" in m.group(1) else " ")
        )
        out.append(text)
    return "".join(out)


def _formatlist(fmt: str, *args: Any) -> list[str]:
    lengths = {len(a) for a in args if isinstance(a, list)}
    if len(lengths) > 1:
        raise HCLError("formatlist: all list arguments must have the same length")
    count = lengths.pop() if lengths else 1
    out, size = [], 0
    for i in range(count):
        out.append(_format(fmt, *[a[i] if isinstance(a, list) else a for a in args]))
        size += len(out[-1])
        if size > limits.TEXT:
            raise limits.text_error("formatlist()")
    return out


def _range(*args: Any) -> list[Any]:
    """cty's range(): [start,] end [, step], counting down when end is below start; at most
    1024 values."""
    numbers = [to_num(a) for a in args]
    start: float
    end: float
    step: float
    if len(numbers) == 1:
        start, end, step = 0, numbers[0], -1 if numbers[0] < 0 else 1
    elif len(numbers) == 2:
        start, end = numbers
        step = -1 if end < start else 1
    elif len(numbers) == 3:
        start, end, step = numbers
    else:
        raise HCLError("range: must have one, two, or three arguments")
    if step == 0:
        raise HCLError("range: step must not be zero")
    if step < 0 and end > start:
        raise HCLError("range: end must be less than start when step is negative")
    if step > 0 and end < start:
        raise HCLError("range: end must be greater than start when step is positive")
    values: list[Any] = []
    number = start
    while (number < end) if step > 0 else (number > end):
        if len(values) >= limits.RANGE_VALUES:
            raise HCLError(
                f"range: more than {limits.RANGE_VALUES} values were generated; either decrease the "
                "difference between start and end or use a smaller step"
            )
        values.append(number)
        number += step
    return values


def _replace(text: str, old: str, new: str) -> str:
    regex = len(old) > 1 and old[0] == old[-1] == "/"
    # an empty match (`""`, `/x*/`) can come before every character
    matches = len(text) + 1 if regex or not old else text.count(old)
    if len(text) + matches * len(new) > limits.TEXT:
        raise limits.text_error("replace()")
    return re.sub(old[1:-1], new.replace("$", "\\"), text) if regex else text.replace(old, new)


def _regex_replace(text: str, pattern: str, new: str) -> str:
    if len(text) + (len(text) + 1) * len(new) > limits.TEXT:
        raise limits.text_error("regex_replace()")
    return re.sub(pattern, new.replace("$", "\\"), text)


def _join(sep: Any, *lists: Any) -> str:
    items = [to_str(x) for lst in lists for x in lst]
    if sum(map(len, items)) + len(to_str(sep)) * len(items) > limits.TEXT:
        raise limits.text_error("join()")
    return to_str(sep).join(items)


_FORMATDATE = [
    ("YYYY", "2006"), ("YY", "06"), ("MMMM", "January"), ("MMM", "Jan"), ("MM", "01"), ("M", "1"),
    ("DD", "02"), ("D", "2"), ("EEEE", "Monday"), ("EEE", "Mon"), ("hh", "15"), ("h", "15"),
    ("HH", "03"), ("H", "3"), ("mm", "04"), ("m", "4"), ("ss", "05"), ("s", "5"), ("AA", "PM"),
    ("aa", "pm"), ("ZZZZZ", "-07:00"), ("ZZZZ", "-0700"), ("ZZZ", "MST"), ("Z", "Z07:00"),
]  # fmt: skip


def _formatdate(spec: str, stamp: str) -> str:
    from datetime import datetime

    t = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    out, i = [], 0
    while i < len(spec):
        if spec[i] == "'":
            end = spec.find("'", i + 1)
            out.append(spec[i + 1 : end if end > 0 else None])
            i = end + 1 if end > 0 else len(spec)
            continue
        for token, layout in _FORMATDATE:
            if spec.startswith(token, i):
                out.append(gotime.go_format(layout, t))
                i += len(token)
                break
        else:
            out.append(spec[i])
            i += 1
    return "".join(out)


def lookup(mapping: Mapping[str, Any], key: str, *default: Any) -> Any:
    if key in mapping:
        return mapping[key]
    if default:
        return default[0]
    raise HCLError(f'lookup: the given key "{key}" is not in the map')


def _substr(text: str, offset: Any, length: Any) -> str:
    off, ln = int(to_num(offset)), int(to_num(length))
    if off < 0:
        off += len(text)
    return text[off:] if ln < 0 else text[off : off + ln]


def _merge(*maps: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for m in maps:
        if m is not None:
            out.update(m)
    return out


def _flatten(value: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in value:
        out.extend(_flatten(item) if isinstance(item, list) else [item])
    return out


def _coalesce(*values: Any) -> Any:
    for v in values:
        if v is not None and v != "":
            return v
    raise HCLError("coalesce: no non-null, non-empty argument")


def _tonumber(value: Any) -> Any:
    return None if value is None else to_num(value)


def _tobool(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise HCLError(f"tobool: cannot convert {value!r} to bool")


def _length(value: Any) -> int:
    if isinstance(value, str | list | dict):
        return len(value)
    raise HCLError("length: argument must be a string, list or map")


def make_functions(environ: Mapping[str, str], base_dir: str) -> dict[str, Callable[..., Any]]:
    def path_of(p: str) -> str:
        return p if os.path.isabs(p) else os.path.join(base_dir, p)

    def read_file(p: str) -> str:
        path = path_of(p)
        try:
            return read_text(path, "data")[0]
        except TemplateError as exc:
            raise HCLError(f'file("{p}"): {exc.message.removeprefix(path + ": ")}') from None

    return {
        "upper": lambda s: to_str(s).upper(),
        "lower": lambda s: to_str(s).lower(),
        "title": lambda s: to_str(s).title(),
        "length": _length,
        "join": _join,
        "split": lambda sep, s: to_str(s).split(to_str(sep)),
        "replace": _replace,
        "regex_replace": _regex_replace,
        "lookup": lookup,
        "substr": _substr,
        "format": _format,
        "formatlist": _formatlist,
        "formatdate": _formatdate,
        "timestamp": lambda: gotime.go_format("2006-01-02T15:04:05Z07:00"),
        "legacy_isotime": lambda fmt: gotime.go_format(fmt),
        "legacy_strftime": lambda fmt: gotime.strftime(fmt),
        "uuidv4": lambda: str(_uuid.uuid4()),
        "env": lambda name: environ.get(to_str(name), ""),
        "concat": lambda *lists: [x for lst in lists for x in lst],
        "contains": lambda lst, v: v in lst,
        "keys": lambda m: sorted(m),
        "values": lambda m: [m[k] for k in sorted(m)],
        "merge": _merge,
        "flatten": _flatten,
        "distinct": lambda lst: list(dict.fromkeys(lst)),
        "reverse": lambda lst: list(reversed(lst)),
        "sort": lambda lst: sorted(to_str(x) for x in lst),
        "element": lambda lst, i: lst[int(to_num(i)) % len(lst)],
        "index": lambda lst, v: lst.index(v),
        "range": _range,
        "zipmap": lambda ks, vs: dict(zip(ks, vs, strict=True)),
        "coalesce": _coalesce,
        "min": lambda *xs: min(to_num(x) for x in xs),
        "max": lambda *xs: max(to_num(x) for x in xs),
        "abs": lambda x: abs(to_num(x)),
        "floor": lambda x: int(to_num(x) // 1),
        "ceil": lambda x: -int(-to_num(x) // 1),
        "trimspace": lambda s: to_str(s).strip(),
        "trim": lambda s, chars: to_str(s).strip(chars),
        "trimprefix": lambda s, p: s[len(p) :] if s.startswith(p) else s,
        "trimsuffix": lambda s, p: s[: -len(p)] if p and s.endswith(p) else s,
        "chomp": lambda s: s.rstrip("\r\n"),
        "startswith": lambda s, p: to_str(s).startswith(p),
        "endswith": lambda s, p: to_str(s).endswith(p),
        "tostring": lambda v: None if v is None else to_str(v),
        "tonumber": _tonumber,
        "tobool": _tobool,
        "tolist": lambda v: list(v),
        "toset": lambda v: sorted(set(v), key=str),
        "tomap": lambda v: dict(v),
        "jsonencode": lambda v: json.dumps(v, separators=(",", ":")),
        "jsondecode": lambda s: json.loads(s),
        "base64encode": lambda s: base64.b64encode(to_str(s).encode()).decode(),
        "base64decode": lambda s: base64.b64decode(to_str(s)).decode(),
        "md5": lambda s: hashlib.md5(to_str(s).encode()).hexdigest(),
        "sha1": lambda s: hashlib.sha1(to_str(s).encode()).hexdigest(),
        "sha256": lambda s: hashlib.sha256(to_str(s).encode()).hexdigest(),
        "sha512": lambda s: hashlib.sha512(to_str(s).encode()).hexdigest(),
        "file": read_file,
        "fileexists": lambda p: os.path.isfile(path_of(p)),
        "abspath": lambda p: os.path.abspath(p),
        "basename": lambda p: os.path.basename(p),
        "dirname": lambda p: os.path.dirname(p),
        "pathexpand": lambda p: os.path.expanduser(p),
        "can": lambda v: True,
        "try": lambda *vs: next((v for v in vs if v is not None), None),
    }
