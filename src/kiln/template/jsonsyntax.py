"""Reading JSON the way Packer does: syntax errors located as Go's encoding/json locates them
(`line 5, column 6 (offset 50)` with a highlighted excerpt), duplicate keys rejected, and the
non-standard constants Python accepts (NaN, Infinity) refused."""

from __future__ import annotations

import json
import re
from typing import Any

from kiln.errors import TemplateError


class DuplicateKeys(Exception):
    def __init__(self, keys: list[str]) -> None:
        super().__init__(keys)
        self.keys = keys


class _BadConstant(Exception):
    pass


def _reject_constant(name: str) -> Any:
    raise _BadConstant(name)


def decode_text(data: bytes) -> str:
    # surrogateescape keeps byte offsets computable for files that are not valid UTF-8
    return data.decode("utf-8", errors="surrogateescape")


def loads(data: bytes, source: str) -> Any:
    """Parse JSON bytes; raises TemplateError naming `source`, line and column on bad syntax and
    listing every duplicated key."""
    text = decode_text(data)
    check_nesting(data, text, source)
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in items:
            if key in seen and key not in duplicates:
                duplicates.append(key)
            seen[key] = value
        return seen

    try:
        value = json.loads(text, object_pairs_hook=pairs, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise _syntax_error(data, text, exc.msg, exc.pos, source) from None
    except _BadConstant:
        pos = _find_constant(text)
        raise _syntax_error(data, text, "invalid constant", pos, source) from None
    except RecursionError:
        raise TemplateError(
            f"{source}: JSON nests too deeply", "a template nests objects and arrays a few levels only"
        ) from None
    if duplicates:
        raise TemplateError(
            f"{source}: " + "; ".join(f"template has duplicate field: {k}" for k in duplicates),
            "each key may appear once in a JSON object; remove or rename the repeated one",
        )
    return value


_STRING_OR_BRACKET = re.compile(r'"(?:[^"\\]|\\.)*"|[][{}]')


def check_nesting(data: bytes, text: str, source: str) -> None:
    """Raise TemplateError, located, where objects and arrays nest more than MAX_NESTING deep."""
    from .source import MAX_NESTING

    if text.count("[") + text.count("{") <= MAX_NESTING:
        return
    depth = 0
    for m in _STRING_OR_BRACKET.finditer(text):
        token = m.group(0)
        if token in "[{":
            depth += 1
            if depth > MAX_NESTING:
                offset = len(text[: m.start()].encode("utf-8", errors="surrogateescape"))
                line, col, highlight = highlight_position(data, offset + 1)
                raise TemplateError(
                    f"{source}: objects and arrays nest more than {MAX_NESTING} levels deep at line "
                    f"{line}, column {col}",
                    "a template nests objects and arrays a few levels only:\n" + highlight.rstrip("\n"),
                )
        elif token in "]}":
            depth -= 1


def _find_constant(text: str) -> int:
    """Where the first bare NaN/Infinity/-Infinity is (outside strings)."""
    i, n, in_string = 0, len(text), False
    while i < n:
        c = text[i]
        if in_string:
            if c == "\\":
                i += 2
                continue
            if c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "NI" or (c == "-" and text.startswith("-Infinity", i)):
            return i
        i += 1
    return 0


def _go_message(msg: str, text: str, pos: int) -> tuple[str, int]:
    """Go's wording and error offset (bytes read when the error was found) for Python's error."""
    if pos >= len(text) or msg.startswith("Unterminated string"):
        return "unexpected end of JSON input", len(text)
    ch = text[pos]
    shown = repr(ch)[1:-1] if ch not in "'" else "'"
    if msg == "Extra data":
        what = "after top-level value"
    elif msg.startswith("Expecting property name"):
        what = "looking for beginning of object key string"
    elif msg.startswith("Expecting ':'"):
        what = "after object key"
    elif msg.startswith("Expecting ',' delimiter"):
        what = "after object key:value pair" if _in_object(text, pos) else "after array element"
    elif msg.startswith("Invalid control character"):
        what = "in string literal"
    elif msg.startswith("Invalid \\escape") or msg.startswith("Invalid \\u"):
        what = "in string escape code"
    else:
        what = "looking for beginning of value"
    return f"invalid character '{shown}' {what}", pos + 1


def _in_object(text: str, pos: int) -> bool:
    """Whether `pos` is directly inside an object (rather than an array)."""
    stack: list[str] = []
    i, in_string = 0, False
    while i < pos:
        c = text[i]
        if in_string:
            if c == "\\":
                i += 1
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "[{":
            stack.append(c)
        elif c in "]}" and stack:
            stack.pop()
        i += 1
    return bool(stack) and stack[-1] == "{"


def _syntax_error(data: bytes, text: str, msg: str, pos: int, source: str) -> TemplateError:
    go_msg, char_offset = _go_message(msg, text, pos)
    offset = len(text[:char_offset].encode("utf-8", errors="surrogateescape"))
    line, col, highlight = highlight_position(data, offset)
    message = f"{source}: Error parsing JSON: {go_msg} at line {line}, column {col} (offset {offset})"
    return TemplateError(message, "fix the JSON syntax here:\n" + highlight.rstrip("\n"))


#: the most bytes of a line an excerpt shows (a one-line template can be megabytes long)
EXCERPT_BYTES = 80


def highlight_position(data: bytes, offset: int) -> tuple[int, int, str]:
    """Line, column and an excerpt with a caret, counted exactly as Packer counts them (the
    column of line 1 starts at 0, later lines at 1). The excerpt shows at most EXCERPT_BYTES of
    each line, the ones just before the error."""
    prefix = data[:offset]
    line = prefix.count(b"\n") + 1
    start = prefix.rfind(b"\n") + 1
    this_line = prefix[start:]
    col = len(this_line) + (1 if line > 1 else 0)
    shown = this_line if len(this_line) <= EXCERPT_BYTES else b"..." + this_line[-EXCERPT_BYTES:]
    highlight = ""
    if line > 1:
        last_line = prefix[prefix.rfind(b"\n", 0, start - 1) + 1 : start - 1]
        if len(last_line) > EXCERPT_BYTES:
            last_line = last_line[:EXCERPT_BYTES] + b"..."
        highlight += f"{line - 1:5d}: {last_line.decode('utf-8', errors='replace')}\n"
    highlight += f"{line:5d}: {shown.decode('utf-8', errors='replace')}\n"
    highlight += " " * (col - len(this_line) + len(shown) + 5) + "^\n"
    return line, col, highlight
