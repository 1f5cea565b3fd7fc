"""Typed component configuration, decoded from template data.

Every builder, provisioner and post-processor declares its options as a dataclass whose fields are
made with `option(...)`. `decode()` turns the template's (already variable-expanded) mapping into
that dataclass, collecting *every* problem with its path in the template (`builders[1].ssh_port`)
instead of stopping at the first. Conversions follow Packer's weakly typed decoding: "true" is a
bool, "22" an int, 22 a string, "5m" a duration, a single value a one-element list.

Strings are run through the template engine (`render`) as they are decoded, except fields marked
`raw=True`, which a component renders itself later (`execute_command` needs `{{.Path}}`, known only
when the script runs).
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

_MISSING = dataclasses.MISSING


class Duration(float):
    """A length of time in seconds, written in templates as Go durations: "1h2m3.5s", "300ms", or a
    number of seconds."""

    _UNITS: typing.ClassVar[dict[str, float]] = {
        "ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0,
    }  # fmt: skip
    _PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")

    @classmethod
    def parse(cls, text: str) -> Duration:
        text = text.strip()
        if re.fullmatch(r"\d+(\.\d+)?", text):
            return cls(float(text))
        sign = -1.0 if text.startswith("-") else 1.0
        body = text.lstrip("+-")
        if not body:
            raise ValueError(f"invalid duration {text!r}")
        pos, total = 0, 0.0
        for match in cls._PART.finditer(body):
            if match.start() != pos:
                break
            total += float(match.group(1)) * cls._UNITS[match.group(2)]
            pos = match.end()
        if pos != len(body):
            raise ValueError(f'invalid duration "{text}" (use e.g. "30s", "5m", "1h30m")')
        return cls(sign * total)

    def __str__(self) -> str:
        seconds = float(self)
        if seconds and seconds == int(seconds):
            h, rest = divmod(int(seconds), 3600)
            m, s = divmod(rest, 60)
            return (f"{h}h" if h else "") + (f"{m}m" if m or h else "") + f"{s}s"
        return f"{seconds:g}s"


def option(
    default: Any = _MISSING,
    *,
    default_factory: Callable[[], Any] | None = None,
    required: bool = False,
    secret: bool = False,
    raw: bool = False,
    aliases: tuple[str, ...] = (),
    doc: str = "",
) -> Any:
    """Declare a config option. `required` options must be present and non-empty; `secret` ones are
    redacted from every output; `raw` ones are not rendered at decode time."""
    meta = {"required": required, "secret": secret, "raw": raw, "aliases": aliases, "doc": doc}
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=meta)
    if default is _MISSING and not required:
        default = None
    if default is _MISSING:
        # Required options still get a neutral default so that a config with errors can be built.
        return field(default=None, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class DecodeContext:
    """What decoding needs from the template: how to render strings, and where to put problems."""

    render: Callable[[str], str] | None = None
    errors: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)

    def error(self, path: str, message: str) -> None:
        self.errors.append(f"{path}: {message}" if path else message)


class _Invalid(Exception):
    pass


def option_names(cls: type[Any]) -> list[str]:
    names: list[str] = []
    for f in dataclasses.fields(cls):
        names.append(f.name)
        names.extend(f.metadata.get("aliases", ()))
    return names


def decode(cls: type[T], data: Mapping[str, Any], path: str, ctx: DecodeContext) -> T:
    """Decode `data` into dataclass `cls`; problems go to `ctx.errors`, each prefixed with `path`."""
    hints = typing.get_type_hints(cls)
    fields_by_key: dict[str, dataclasses.Field[Any]] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        fields_by_key[f.name] = f
        for alias in f.metadata.get("aliases", ()):
            fields_by_key[alias] = f
    values: dict[str, Any] = {}
    for key, value in data.items():
        if not isinstance(key, str) or (key.startswith("_") and key not in fields_by_key):
            continue
        found = fields_by_key.get(key)
        if found is None:
            import difflib  # only when there is a problem to report

            close = difflib.get_close_matches(key, list(fields_by_key), n=1)
            hint = f'; did you mean "{close[0]}"?' if close else ""
            ctx.error(path, f'unknown configuration key: "{key}"{hint}')
            continue
        f = found
        try:
            converted = _convert(
                hints[f.name], value, _join(path, key), ctx, raw=f.metadata.get("raw", False)
            )
        except _Invalid:
            continue
        if f.metadata.get("secret") and converted:
            ctx.secrets.extend(_secret_strings(converted))
        values[f.name] = converted
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.metadata.get("required") and values.get(f.name) in (None, "", [], {}):
            ctx.error(path, f"{f.name} must be specified")
    return cls(**values)


def _secret_strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [s for item in value for s in _secret_strings(item)]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _secret_strings(item)]
    return []


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _type_name(value: Any) -> str:
    return {
        str: "string", bool: "bool", int: "number", float: "number",
        list: "list", dict: "object", type(None): "null",
    }.get(type(value), type(value).__name__)  # fmt: skip


def _convert(tp: Any, value: Any, path: str, ctx: DecodeContext, raw: bool = False) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _convert(inner[0], value, path, ctx, raw)
        for candidate in inner:
            sub = DecodeContext(render=ctx.render)
            result = _convert(candidate, value, path, sub, raw)
            if not sub.errors:
                ctx.secrets.extend(sub.secrets)
                return result
        return _fail(ctx, path, f"unexpected type {_type_name(value)}")
    if tp is Any:
        return _render_any(value, ctx, path) if not raw else value
    if tp is str:
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, int | float):
            value = str(value)
        if not isinstance(value, str):
            return _fail(ctx, path, f"expected type 'string', got {_type_name(value)}")
        return value if raw else _render(value, ctx, path)
    if tp is bool:
        if isinstance(value, str):
            value = _render(value, ctx, path).strip().lower()
            if value in ("true", "1", "t", "yes"):
                return True
            if value in ("false", "0", "f", "no", ""):
                return False
            return _fail(ctx, path, f"cannot parse '{value}' as bool")
        if isinstance(value, bool):
            return value
        if isinstance(value, int | float):
            return value != 0
        return _fail(ctx, path, f"expected type 'bool', got {_type_name(value)}")
    if tp is Duration:
        if isinstance(value, int | float) and not isinstance(value, bool):
            # A bare number in a Go duration field is nanoseconds; Packer users write strings.
            return Duration(value / 1e9) if value > 1e6 else Duration(value)
        if isinstance(value, str):
            text = _render(value, ctx, path)
            try:
                return Duration.parse(text) if text else Duration(0)
            except ValueError as exc:
                return _fail(ctx, path, str(exc))
        return _fail(ctx, path, f'expected a duration such as "5m", got {_type_name(value)}')
    if tp in (int, float):
        if isinstance(value, bool):
            return _fail(ctx, path, f"expected type '{tp.__name__}', got bool")
        if isinstance(value, str):
            text = _render(value, ctx, path).strip()
            try:
                return tp(text) if tp is float else int(text, 0)
            except ValueError:
                return _fail(ctx, path, f"cannot parse '{text}' as {tp.__name__}")
        if isinstance(value, int | float):
            if tp is int and isinstance(value, float) and not value.is_integer():
                return _fail(ctx, path, f"expected an integer, got {value}")
            return tp(value)
        return _fail(ctx, path, f"expected type '{tp.__name__}', got {_type_name(value)}")
    if origin is list:
        (item_tp,) = args or (Any,)
        if not isinstance(value, list):
            if isinstance(value, dict) and not dataclasses.is_dataclass(item_tp):
                return _fail(ctx, path, f"expected a list, got {_type_name(value)}")
            value = [value]
        out = []
        for i, item in enumerate(value):
            try:
                out.append(_convert(item_tp, item, _join(path, i), ctx, raw))
            except _Invalid:
                continue
        return out
    if origin is dict:
        key_tp, val_tp = args or (str, Any)
        if not isinstance(value, dict):
            return _fail(ctx, path, f"expected an object, got {_type_name(value)}")
        mapping: dict[Any, Any] = {}
        for k, v in value.items():
            try:
                mapping[_convert(key_tp, k, path, ctx, raw)] = _convert(
                    val_tp, v, _join(path, str(k)), ctx, raw
                )
            except _Invalid:
                continue
        return mapping
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, dict):
            return _fail(ctx, path, f"expected an object, got {_type_name(value)}")
        return decode(tp, value, path, ctx)
    raise TypeError(f"unsupported option type {tp!r} at {path}")  # a programming error, not a user's


def _fail(ctx: DecodeContext, path: str, message: str) -> Any:
    ctx.error(path, message)
    raise _Invalid


def _render(text: str, ctx: DecodeContext, path: str) -> str:
    if ctx.render is None or "{{" not in text:
        return text
    try:
        rendered: str = ctx.render(text)
    except Exception as exc:  # the template engine's errors name the problem; we add where
        return _fail(ctx, path, f"error processing template: {exc}")  # type: ignore[no-any-return]
    return rendered


def _render_any(value: Any, ctx: DecodeContext, path: str) -> Any:
    if isinstance(value, str):
        return _render(value, ctx, path)
    if isinstance(value, list):
        return [_render_any(v, ctx, _join(path, i)) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _render_any(v, ctx, _join(path, str(k))) for k, v in value.items()}
    return value
