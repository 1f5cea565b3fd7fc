"""Weak typing: reading a value written as one type as another, the way Packer decodes templates.

Both the component options (kiln.config) and the template loader read through this module, so a
value means the same wherever it is written:

- a legacy JSON template follows mapstructure's WeaklyTypedInput, which Packer's config.Decode
  uses: a bool read as a string is "1" or "0", a number is written as Go's strconv writes it
  ("22", "1.5", never "1e+21");
- an HCL2 template follows cty's conversions, which Packer applies before decoding: a bool read as
  a string is "true" or "false"; numbers are written the same way;
- a string read as a bool is one of Go's strconv.ParseBool spellings (1, t, true, 0, f, false in
  any case), "yes" / "no", or empty (false);
- a number read as a duration is nanoseconds when it is large (Go's time.Duration), else seconds.

Nothing here changes a value it shows: an error quotes the value exactly as it was written, so the
redactor still recognises a secret in it.
"""

from __future__ import annotations

from typing import Any

from kiln.duration import Duration

TRUE = ("1", "t", "true", "yes")
FALSE = ("0", "f", "false", "no", "")


def type_name(value: Any) -> str:
    """What a template value is, in the words errors use: string, bool, number, list, object, null."""
    if value is None:
        return "null"
    return {
        str: "string", bool: "bool", int: "number", float: "number", list: "list", dict: "object",
    }.get(type(value), type(value).__name__)  # fmt: skip


def go_number(value: int | float) -> str:
    """A number as Go's strconv.FormatFloat(f, 'f', -1, 64) writes it: "22", "1.5", "1000000000000000000000"."""
    if isinstance(value, int):
        return str(value)
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    text = repr(value)
    if "e" in text and value == value and abs(value) != float("inf"):
        from decimal import Decimal  # only for the rare number written with an exponent

        text = format(Decimal(text), "f")
    return text


def to_str(value: Any, *, hcl2: bool = False) -> str | None:
    """`value` read as a string, or None when it is not a scalar (a list, an object, null)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        if hcl2:
            return "true" if value else "false"
        return "1" if value else "0"
    if isinstance(value, int | float):
        return go_number(value)
    return None


def parse_bool(text: str) -> bool | None:
    """A string read as a bool, or None when it is not one."""
    folded = text.strip().lower()
    if folded in TRUE:
        return True
    if folded in FALSE:
        return False
    return None


def parse_int(text: str) -> int | None:
    """A string read as an integer (decimal, or 0x / 0o / 0b as Go's ParseInt with base 0), or None."""
    try:
        return int(text.strip(), 0)
    except ValueError:
        return None


def template_duration(value: Any) -> Duration:
    """A provisioner's `pause_before` / `timeout`, read as Packer reads them: a string as Go's
    time.ParseDuration does (a unit is required), a number as `number_duration`. Raises ValueError
    saying what is wrong."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f'expected a duration such as "30s", got {type_name(value)}')
    if isinstance(value, int | float):
        return number_duration(value)
    if value.strip().lstrip("+-").replace(".", "", 1).isdigit() and value.strip() != "0":
        raise ValueError(f'time: missing unit in duration "{value}" (write e.g. "{value}s")')
    return Duration.parse(value) if value else Duration(0)


def number_duration(value: int | float) -> Duration:
    """A bare number in a duration option: nanoseconds as Go reads it, unless it is small enough to
    be meant as seconds (Packer users write strings; a small number is a mistake kiln forgives).
    Raises ValueError past Go's longest duration (about 292 years)."""
    seconds = value / 1e9 if value > 1e6 else value
    if not abs(seconds) <= Duration.MAX_SECONDS:  # NaN too
        raise ValueError(f"time: invalid duration {value!r} (the longest is about 292 years)")
    return Duration(seconds)
