"""Typed component configuration, decoded from template data: each option declared once.

Every builder, provisioner and post-processor declares its options as a dataclass (a subclass of
`Options`) whose fields are made with `option(...)`: the default, whether it is required or secret,
the values it accepts (`choices`) and what it means (`doc`). That one declaration drives decoding,
the checks, and what users read about the option (`describe`, which `kiln inspect -options` and
docs/options.md show).

`decode()` turns the template's (already variable-expanded) mapping into that dataclass, collecting
*every* problem with its path in the template (`builders[1].ssh_port`) instead of stopping at the
first. Conversions are Packer's weak typing (kiln.weak): "true" is a bool, "22" an int, 22 a string,
"5m" a duration, a single value a one-element list.

Strings are run through the template engine (`render`) as they are decoded, except fields marked
`raw=True`, which a component renders itself later (`execute_command` needs `{{.Path}}`, known only
when the script runs).

A component's `validate` hook may still fill in defaults that depend on other options; once it has
run the config is frozen (`freeze`): what a build reads is what was validated.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from kiln import weak
from kiln.duration import Duration

__all__ = ["DecodeContext", "Duration", "OptionInfo", "Options", "decode", "describe", "freeze", "option"]

T = TypeVar("T")

_MISSING = dataclasses.MISSING
_FROZEN = "_kiln_frozen"


class FrozenOptionError(AttributeError):
    """A validated config was changed: a programming error, never a user's."""


class Options:
    """Base of every config dataclass: settable while it is decoded and validated, frozen after."""

    def __setattr__(self, name: str, value: Any) -> None:
        if self.__dict__.get(_FROZEN):
            raise FrozenOptionError(f"{type(self).__name__}.{name}: options are frozen once validated")
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        if self.__dict__.get(_FROZEN):
            raise FrozenOptionError(f"{type(self).__name__}.{name}: options are frozen once validated")
        object.__delattr__(self, name)


def freeze(config: Any) -> None:
    """Make a validated config (and the option dataclasses inside it) read-only."""
    if isinstance(config, Options):
        for f in dataclasses.fields(config):  # type: ignore[arg-type]
            value = getattr(config, f.name)
            for inner in value if isinstance(value, list | tuple) else [value]:
                freeze(inner)
        object.__setattr__(config, _FROZEN, True)


def option(
    default: Any = _MISSING,
    *,
    default_factory: Callable[[], Any] | None = None,
    required: bool = False,
    secret: bool = False,
    raw: bool = False,
    aliases: tuple[str, ...] = (),
    choices: tuple[str, ...] = (),
    invalid: str = "",
    unique: bool = False,
    cache: bool | str = True,
    doc: str = "",
) -> Any:
    """Declare a config option. `required` options must be present and non-empty; `secret` ones are
    redacted from every output; `raw` ones are not rendered at decode time. `choices` are the values
    a string option (or each item of a list of strings) may take; an empty string means the default,
    as in Packer; `invalid` is the error for any other value, with `{value}` and `{choices}` in it.
    `unique` lists drop repeated items, keeping the first. `cache` says what the option means to
    the build cache (kiln.cache.keys): True (the default) when a changed value may change the disk
    the component leaves, so it is part of the cache key; False when it cannot (names, tags,
    descriptions, output paths, timeouts); "file" when it names local files (or folders) whose
    content is sent to the machine, so that their content is part of the key as well."""
    meta = {
        "required": required, "secret": secret, "raw": raw, "aliases": aliases, "choices": choices,
        "invalid": invalid, "unique": unique, "cache": cache, "doc": doc,
    }  # fmt: skip
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
    #: the template is HCL2 (cty's conversions: a bool read as a string is "true", not "1")
    hcl2: bool = False
    #: the build runs with -force (Packer's packer_force): components derive their effective options
    force: bool = False

    def error(self, path: str, message: str) -> None:
        self.errors.append(f"{path}: {message}" if path else message)


class _Invalid(Exception):
    pass


@dataclass(frozen=True)
class OptionInfo:
    """One option as users read about it."""

    name: str
    type: str  #: "string", "bool", "number", "duration", "list of string", "object"...
    default: str  #: as a template would write it; "" when there is none to show
    required: bool
    secret: bool
    aliases: tuple[str, ...]
    choices: tuple[str, ...]
    doc: str
    fields: tuple[OptionInfo, ...] = ()  #: the options of an object (or a list of objects)


def describe(cls: type[Any]) -> list[OptionInfo]:
    """Every option of config dataclass `cls`, in declaration order."""
    hints = typing.get_type_hints(cls)
    infos = []
    for f in dataclasses.fields(cls):
        meta = f.metadata
        default: Any = f.default_factory() if f.default_factory is not _MISSING else f.default
        infos.append(
            OptionInfo(
                name=f.name,
                type=_type_text(hints[f.name]),
                default="" if meta.get("required") else _default_text(default),
                required=bool(meta.get("required")),
                secret=bool(meta.get("secret")),
                aliases=tuple(meta.get("aliases", ())),
                choices=tuple(meta.get("choices", ())),
                doc=str(meta.get("doc", "")),
                fields=tuple(describe(inner)) if (inner := _object_type(hints[f.name])) else (),
            )
        )
    return infos


def _object_type(tp: Any) -> type[Any] | None:
    """The dataclass an option of type `tp` holds (itself, or in a list), if any."""
    if typing.get_origin(tp) is list:
        tp = typing.get_args(tp)[0]
    return tp if dataclasses.is_dataclass(tp) and isinstance(tp, type) else None


def _type_text(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return " or ".join(_type_text(a) for a in inner)
    if origin is list:
        return f"list of {_type_text(args[0])}"
    if origin is dict:
        return f"map of {_type_text(args[1])}"
    names = {str: "string", bool: "bool", int: "number", float: "number", Duration: "duration"}
    if tp in names:
        return names[tp]
    return "object" if dataclasses.is_dataclass(tp) else "any"


def _default_text(value: Any) -> str:
    if value is None or value == "" or value == [] or value == {}:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if dataclasses.is_dataclass(value):
        return ""
    if isinstance(value, list):
        return ", ".join(_default_text(v) for v in value)
    return str(value)


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
            converted = _declared(f, converted, _join(path, key), ctx)
        except _Invalid:
            continue
        if f.metadata.get("secret") and converted:
            ctx.secrets.extend(_secret_strings(converted))
        values[f.name] = converted
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.metadata.get("required") and values.get(f.name) in (None, "", [], {}):
            ctx.error(path, f"{f.name} must be specified")
    return cls(**values)


def _declared(f: dataclasses.Field[Any], value: Any, path: str, ctx: DecodeContext) -> Any:
    """Apply what the option declares beyond its type: its choices, and unique items."""
    if f.metadata.get("choices"):
        if isinstance(value, list):
            for i, item in enumerate(value):
                _choose(f, item, _join(path, i), ctx)
        elif value == "" and isinstance(f.default, str):
            value = f.default
        else:
            _choose(f, value, path, ctx)
    if f.metadata.get("unique") and isinstance(value, list):
        value = list(dict.fromkeys(value))
    return value


def _choose(f: dataclasses.Field[Any], value: Any, path: str, ctx: DecodeContext) -> None:
    choices: tuple[str, ...] = f.metadata["choices"]
    if value not in choices and not (value == "" and f.default == ""):
        message = f.metadata.get("invalid") or '"{value}" is not one of {choices}'
        ctx.error(path, message.format(value=value, choices=", ".join(choices)))


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
            sub = DecodeContext(render=ctx.render, hcl2=ctx.hcl2, force=ctx.force)
            result = _convert(candidate, value, path, sub, raw)
            if not sub.errors:
                ctx.secrets.extend(sub.secrets)
                return result
        return _fail(ctx, path, f"unexpected type {weak.type_name(value)}")
    if tp is Any:
        return _render_any(value, ctx, path) if not raw else value
    if tp is str:
        text = weak.to_str(value, hcl2=ctx.hcl2)
        if text is None:
            return _fail(ctx, path, f"expected type 'string', got {weak.type_name(value)}")
        return text if raw else _render(text, ctx, path)
    if tp is bool:
        if isinstance(value, str):
            text = _render(value, ctx, path)
            parsed = weak.parse_bool(text)
            if parsed is None:
                return _fail(ctx, path, f'cannot parse "{text}" as bool')
            return parsed
        if isinstance(value, bool):
            return value
        if isinstance(value, int | float):
            return value != 0
        return _fail(ctx, path, f"expected type 'bool', got {weak.type_name(value)}")
    if tp is Duration:
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                return weak.number_duration(value)
            except ValueError as exc:
                return _fail(ctx, path, str(exc))
        if isinstance(value, str):
            text = _render(value, ctx, path)
            try:
                return Duration.parse(text) if text else Duration(0)
            except ValueError as exc:
                return _fail(ctx, path, str(exc))
        return _fail(ctx, path, f'expected a duration such as "5m", got {weak.type_name(value)}')
    if tp in (int, float):
        if isinstance(value, bool):
            return _fail(ctx, path, f"expected type '{tp.__name__}', got bool")
        if isinstance(value, str):
            text = _render(value, ctx, path)
            number: int | float | None
            if tp is int:
                number = weak.parse_int(text)
            else:
                try:
                    number = float(text)
                except ValueError:
                    number = None
            if number is None:
                return _fail(ctx, path, f'cannot parse "{text}" as {tp.__name__}')
            return number
        if isinstance(value, int | float):
            if tp is int and isinstance(value, float) and not value.is_integer():
                return _fail(ctx, path, f"expected an integer, got {weak.go_number(value)}")
            return tp(value)
        return _fail(ctx, path, f"expected type '{tp.__name__}', got {weak.type_name(value)}")
    if origin is list:
        (item_tp,) = args or (Any,)
        if not isinstance(value, list):
            if isinstance(value, dict) and not dataclasses.is_dataclass(item_tp):
                return _fail(ctx, path, f"expected a list, got {weak.type_name(value)}")
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
            return _fail(ctx, path, f"expected an object, got {weak.type_name(value)}")
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
            return _fail(ctx, path, f"expected an object, got {weak.type_name(value)}")
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
