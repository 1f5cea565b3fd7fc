"""The functions of `{{ }}` templates: Packer's (build_name, isotime, user, build, ...) and the cheap
built-ins of Go's text/template (print, len, index, eq, ...). Each takes the context first."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from . import clock
from .context import ActionDeferred, CallError, InterpContext, UnknownUserVariable, to_text


def _need_str(value: Any, what: str) -> str:
    if isinstance(value, str):
        return value
    raise CallError(f"wrong type for value; expected string; got {_go_type(value)} ({what})")


def _need_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.lstrip("-").isdigit():
            return int(value)
        raise CallError(f"wrong type for value; expected int; got {_go_type(value)} ({what})")
    if not -(2**63) <= value < 2**63:
        raise CallError(f"{value} overflows int ({what})")
    return value


def _go_type(value: Any) -> str:
    return {str: "string", int: "int", float: "float64", bool: "bool"}.get(type(value), "<nil>")


def _build_name(ctx: InterpContext) -> str:
    if not ctx.build_name:
        raise CallError("build_name not available")
    return ctx.build_name


def _build_type(ctx: InterpContext) -> str:
    if not ctx.build_type:
        raise CallError("build_type not available")
    return ctx.build_type


def _env(ctx: InterpContext, key: Any) -> str:
    if not ctx.allow_env:
        raise CallError('env vars are not allowed here (only inside the template\'s "variables")')
    environ = ctx.environ if ctx.environ is not None else os.environ
    return environ.get(_need_str(key, "env"), "")


def _isotime(ctx: InterpContext, *layout: Any) -> str:
    from . import gotime

    if not layout:
        return gotime.go_format("2006-01-02T15:04:05Z07:00")
    if len(layout) > 1:
        raise CallError(f"too many values, 1 needed: {list(layout)}")
    return gotime.go_format(_need_str(layout[0], "isotime"))


def _timestamp(ctx: InterpContext) -> str:
    return str(int(clock.START))


def _strftime(fmt: str) -> str:
    from . import gotime

    return gotime.strftime(fmt)


def _uuid(ctx: InterpContext) -> str:
    import time

    now = time.time_ns()
    tail = os.urandom(8).hex()
    return f"{now >> 32:08x}-{(now >> 16) & 0xFFFF:04x}-{now & 0xFFFF:04x}-{tail[:4]}-{tail[4:]}"


def _template_dir(ctx: InterpContext) -> str:
    if not ctx.template_dir:
        raise CallError("template path not available")
    return os.path.abspath(ctx.template_dir)


def _split(ctx: InterpContext, text: Any, sep: Any, index: Any) -> str:
    s, sp, i = _need_str(text, "split"), _need_str(sep, "split"), _need_int(index, "split")
    parts = s.split(sp) if sp else list(s)
    if i < 0 or len(parts) <= i:
        raise CallError(
            f"the substring {i} was unavailable using the separator value, {sp}, only {len(parts)} "
            "values were found"
        )
    return parts[i]


def _replace(ctx: InterpContext, old: Any, new: Any, count: Any, src: Any) -> str:
    n = _need_int(count, "replace")
    return _need_str(src, "replace").replace(
        _need_str(old, "replace"), _need_str(new, "replace"), n if n >= 0 else -1
    )


def _replace_all(ctx: InterpContext, old: Any, new: Any, src: Any) -> str:
    return _need_str(src, "replace_all").replace(_need_str(old, "replace_all"), _need_str(new, "replace_all"))


def _user(ctx: InterpContext, name: Any) -> str:
    key = _need_str(name, "user")
    value = ctx.user_variables.get(key)
    if value is None:
        raise UnknownUserVariable(key)
    return value


def _packer_version(ctx: InterpContext) -> str:
    from kiln import PACKER_COMPATIBLE_VERSION

    return PACKER_COMPATIBLE_VERSION


def _build(ctx: InterpContext, name: Any) -> str:
    key = _need_str(name, "build")
    if ctx.generated is None:
        raise ActionDeferred
    if key not in ctx.generated:
        known = ", ".join(sorted(ctx.generated)) or "none"
        raise CallError(f"loaded data, but couldn't find {key} in it (known: {known})")
    return to_text(ctx.generated[key])


def _external(name: str) -> Callable[..., str]:
    def call(ctx: InterpContext, *args: Any) -> str:
        if not ctx.allow_env:
            raise CallError(f"{name} is only allowed in the variables section")
        raise CallError(f"{name} is not supported by kiln; pass the value with -var or an env variable")

    return call


def _sed(ctx: InterpContext, *args: Any) -> str:
    raise CallError("template function `sed` is deprecated, use `replace` or `replace_all` instead")


def _print(ctx: InterpContext, *args: Any) -> str:
    # Go's fmt.Sprint: spaces only between operands when neither is a string
    out = ""
    for i, arg in enumerate(args):
        if i and not isinstance(arg, str) and not isinstance(args[i - 1], str):
            out += " "
        out += to_text(arg)
    return out


def _len(ctx: InterpContext, value: Any) -> int:
    if isinstance(value, str | list | tuple | dict):
        return len(value)
    raise CallError(f"len of type {_go_type(value)}")


def _index(ctx: InterpContext, value: Any, *keys: Any) -> Any:
    for key in keys:
        try:
            value = value[key]
        except (KeyError, IndexError, TypeError):
            raise CallError(f"error calling index: cannot index with {key!r}") from None
    return value


def _truth(value: Any) -> bool:
    return bool(value)


FUNCS: dict[str, Callable[..., Any]] = {
    "build_name": _build_name,
    "build_type": _build_type,
    "env": _env,
    "isotime": _isotime,
    "strftime": lambda ctx, fmt: _strftime(_need_str(fmt, "strftime")),
    "timestamp": _timestamp,
    "uuid": _uuid,
    "pwd": lambda ctx: os.getcwd(),
    "template_dir": _template_dir,
    "split": _split,
    "replace": _replace,
    "replace_all": _replace_all,
    "upper": lambda ctx, s: _need_str(s, "upper").upper(),
    "lower": lambda ctx, s: _need_str(s, "lower").lower(),
    "user": _user,
    "packer_version": _packer_version,
    "build": _build,
    "consul_key": _external("consul_key"),
    "vault": _external("vault"),
    "aws_secretsmanager": _external("aws_secretsmanager"),
    "aws_secretsmanager_raw": _external("aws_secretsmanager_raw"),
    "sed": _sed,
    "print": _print,
    "len": _len,
    "index": _index,
    "eq": lambda ctx, a, *bs: any(a == b for b in bs),
    "ne": lambda ctx, a, b: a != b,
    "not": lambda ctx, a: not _truth(a),
    "and": lambda ctx, *xs: next((x for x in xs if not _truth(x)), xs[-1] if xs else None),
    "or": lambda ctx, *xs: next((x for x in xs if _truth(x)), xs[-1] if xs else None),
}
