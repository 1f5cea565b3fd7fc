"""The `{{ }}` engine of legacy JSON templates: the subset of Go's text/template that Packer
templates use.

Supported: text with `{{ action }}`s, trim markers (`{{- ` and ` -}}`), comments (`{{/* */}}`),
pipelines (`{{ user `x` | upper }}`), parenthesised arguments, string (interpreted and raw), number
and bool literals, data fields (`{{.Path}}`, `{{ .Vars }}`) and Packer's functions plus Go's cheap
built-ins (print, len, index, eq, ne, not, and, or). Control structures (if/range/with) and
`$variables` are reported as unsupported.

An action that needs something not known yet (a `{{ build `X` }}` before the build has run, a
`{{.Field}}` when no data is given) is left in the output exactly as written, so that a later render
with more context fills it in. Parsed templates are cached: a template string is parsed once.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from kiln.errors import TemplateError

from .context import ActionDeferred, CallError, InterpContext, UnknownUserVariable, to_text
from .funcs import FUNCS

__all__ = ["FUNCS", "InterpContext", "UnknownUserVariable", "compile_template", "references", "render"]


# ---------------------------------------------------------------------------------------------
# Parsing

# Node kinds (tuples keep the compiled form small and fast to walk):
#   ("text", str)
#   ("action", pipeline, source)        pipeline: tuple of commands; command: tuple of operands
# Operand kinds: ("fn", name) ("field", (names...)) ("dot",) ("lit", value) ("pipe", pipeline)
Node = tuple[Any, ...]


class ActionSyntaxError(Exception):
    pass


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "a": "\a", "b": "\b",
            "f": "\f", "v": "\v", "0": "\0"}  # fmt: skip
_KEYWORDS = {"if", "else", "end", "range", "with", "define", "template", "block", "break", "continue"}
_IDENT_START = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_IDENT = _IDENT_START | set("0123456789")


def _lex_action(src: str) -> list[tuple[str, Any]]:
    """Tokens of the inside of one action."""
    tokens: list[tuple[str, Any]] = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if c in " \t\r\n":
            i += 1
        elif c in "|()":
            tokens.append((c, c))
            i += 1
        elif c == "`":
            end = src.find("`", i + 1)
            if end < 0:
                raise ActionSyntaxError("unterminated raw quoted string")
            tokens.append(("lit", src[i + 1 : end]))
            i = end + 1
        elif c == '"':
            out: list[str] = []
            i += 1
            while True:
                if i >= n or src[i] == "\n":
                    raise ActionSyntaxError("unterminated quoted string")
                ch = src[i]
                if ch == '"':
                    i += 1
                    break
                if ch == "\\":
                    if i + 1 >= n:
                        raise ActionSyntaxError("unterminated quoted string")
                    esc = src[i + 1]
                    if esc in _ESCAPES:
                        out.append(_ESCAPES[esc])
                        i += 2
                    elif esc in "xuU":
                        width = {"x": 2, "u": 4, "U": 8}[esc]
                        digits = src[i + 2 : i + 2 + width]
                        try:
                            if len(digits) != width:
                                raise ValueError
                            out.append(chr(int(digits, 16)))
                        except ValueError:
                            raise ActionSyntaxError(
                                f"invalid escape \\{esc}{digits} in quoted string"
                            ) from None
                        i += 2 + width
                    else:
                        raise ActionSyntaxError(f"invalid escape \\{esc} in quoted string")
                else:
                    out.append(ch)
                    i += 1
            tokens.append(("lit", "".join(out)))
        elif c == ".":
            j = i
            names: list[str] = []
            while j + 1 < n and src[j] == "." and src[j + 1] in _IDENT_START:
                k = j + 1
                while k < n and src[k] in _IDENT:
                    k += 1
                names.append(src[j + 1 : k])
                j = k
            if names:
                tokens.append(("field", tuple(names)))
                i = j
            elif i + 1 < n and src[i + 1].isdigit():
                raise ActionSyntaxError(f"bad number syntax: {src[i:]!r}")
            else:
                tokens.append(("dot", None))
                i += 1
        elif c.isdigit() or (c in "+-" and i + 1 < n and src[i + 1].isdigit()):
            j = i + 1
            while j < n and (src[j] in _IDENT or src[j] in ".+-"):
                j += 1
            text = src[i:j].replace("_", "")
            try:
                value: Any = int(text, 0)
            except ValueError:
                try:
                    value = float(text)
                except ValueError:
                    raise ActionSyntaxError(f"bad number syntax: {src[i:j]!r}") from None
            tokens.append(("lit", value))
            i = j
        elif c in _IDENT_START:
            j = i + 1
            while j < n and src[j] in _IDENT:
                j += 1
            word = src[i:j]
            if word in ("true", "false"):
                tokens.append(("lit", word == "true"))
            elif word == "nil":
                tokens.append(("lit", None))
            elif word in _KEYWORDS:
                raise ActionSyntaxError(f'"{word}" is not supported in kiln templates')
            else:
                tokens.append(("fn", word))
            i = j
        elif c == "$":
            raise ActionSyntaxError("template variables ($x) are not supported in kiln templates")
        else:
            raise ActionSyntaxError(f"unexpected {c!r} in command")
    return tokens


def _parse_pipeline(tokens: list[tuple[str, Any]], pos: int, closing: str | None) -> tuple[Any, int]:
    commands: list[tuple[Node, ...]] = []
    operands: list[Node] = []
    while pos < len(tokens):
        kind, value = tokens[pos]
        if kind == ")":
            if closing != ")":
                raise ActionSyntaxError("unexpected right paren")
            break
        pos += 1
        if kind == "|":
            if not operands:
                raise ActionSyntaxError("missing command before '|'")
            commands.append(tuple(operands))
            operands = []
        elif kind == "(":
            inner, pos = _parse_pipeline(tokens, pos, ")")
            if pos >= len(tokens) or tokens[pos][0] != ")":
                raise ActionSyntaxError("unclosed left paren")
            pos += 1
            operands.append(("pipe", inner))
        elif kind == "fn":
            operands.append(("fn", value))
        elif kind == "field":
            operands.append(("field", value))
        elif kind == "dot":
            operands.append(("dot",))
        else:
            operands.append(("lit", value))
    if not operands:
        raise ActionSyntaxError("missing value for command" if commands or closing else "missing value")
    commands.append(tuple(operands))
    return tuple(commands), pos


@lru_cache(maxsize=4096)
def compile_template(text: str) -> tuple[Node, ...]:
    """Parse `text` once; raises TemplateError on bad syntax."""
    nodes: list[Node] = []
    pos, n = 0, len(text)
    trim_next = False
    while pos <= n:
        start = text.find("{{", pos)
        chunk = text[pos:] if start < 0 else text[pos:start]
        if trim_next:
            chunk = chunk.lstrip(" \t\r\n")
        if start < 0:
            if chunk:
                nodes.append(("text", chunk))
            break
        inner_start = start + 2
        if (
            text.startswith("- ", inner_start)
            or text.startswith("-\t", inner_start)
            or (text.startswith("-\n", inner_start))
        ):
            chunk = chunk.rstrip(" \t\r\n")
            inner_start += 1
        if chunk:
            nodes.append(("text", chunk))
        line = text.count("\n", 0, start) + 1
        comment = text.startswith("/*", inner_start)
        if comment:
            close = text.find("*/", inner_start + 2)
            if close < 0:
                raise TemplateError(f"template: root:{line}: unclosed comment")
            end = text.find("}}", close + 2)
            between = text[close + 2 : end] if end >= 0 else ""
            if end < 0 or between.strip(" ") not in ("", "-"):
                raise TemplateError(f"template: root:{line}: comment ends before closing delimiter")
            trim_next = between.strip(" ") == "-"
            pos = end + 2
            continue
        end = find_close(text, inner_start)
        if end < 0:
            raise TemplateError(f"template: root:{line}: unclosed action")
        inner_end = end
        trim_next = False
        if end - 2 >= inner_start and text[end - 1] == "-" and text[end - 2] in " \t\r\n":
            trim_next = True
            inner_end = end - 1
        source = text[start : end + 2]
        try:
            pipeline = parse_action(text[inner_start:inner_end])
        except ActionSyntaxError as exc:
            raise TemplateError(f"template: root:{line}: {exc} in {source}") from None
        _check_functions(pipeline, line, source)
        nodes.append(("action", pipeline, source))
        pos = end + 2
    return tuple(nodes)


def parse_action(body: str) -> Any:
    """The pipeline of one `{{ ... }}` action (its text between the delimiters); raises ActionSyntaxError."""
    tokens = _lex_action(body)
    if not tokens:
        raise ActionSyntaxError("missing value for command")
    pipeline, used = _parse_pipeline(tokens, 0, None)
    if used != len(tokens):
        raise ActionSyntaxError("unexpected right paren")
    return pipeline


def find_close(text: str, pos: int) -> int:
    """The `}}` that ends the action starting at `pos`, skipping quoted strings."""
    i, n = pos, len(text)
    while i < n:
        c = text[i]
        if c == "`":
            j = text.find("`", i + 1)
            if j < 0:
                return text.find("}}", i)
            i = j + 1
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"' and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            if j >= n or text[j] != '"':
                return text.find("}}", i)  # unterminated: the lexer says so
            i = j + 1
        elif text.startswith("}}", i):
            return i
        else:
            i += 1
    return -1


def _check_functions(pipeline: Any, line: int, source: str) -> None:
    for command in pipeline:
        for operand in command:
            if operand[0] == "fn" and operand[1] not in FUNCS:
                raise TemplateError(
                    f'template: root:{line}: function "{operand[1]}" not defined in {source}',
                    "see the functions of JSON templates: build_name, build_type, env, isotime, "
                    "strftime, timestamp, uuid, pwd, template_dir, split, replace, replace_all, upper, "
                    "lower, user, packer_version, build",
                )
            if operand[0] == "pipe":
                _check_functions(operand[1], line, source)


# ---------------------------------------------------------------------------------------------
# Execution


def _field(ctx: InterpContext, names: tuple[str, ...]) -> Any:
    if ctx.data is None:
        raise ActionDeferred
    value: Any = ctx.data
    for i, name in enumerate(names):
        if isinstance(value, Mapping) and name in value:
            value = value[name]
            continue
        if not isinstance(value, Mapping) and hasattr(value, name):
            value = getattr(value, name)
            continue
        where = "." + ".".join(names[:i]) if i else "the data"
        known = sorted(value) if isinstance(value, Mapping) else []
        hint = f" (known: {', '.join('.' + k for k in known)})" if known else ""
        raise CallError(f"can't evaluate field {name} in {where}{hint}")
    return value


def _operand(op: Node, ctx: InterpContext) -> Any:
    kind = op[0]
    if kind == "lit":
        return op[1]
    if kind == "field":
        return _field(ctx, op[1])
    if kind == "dot":
        if ctx.data is None:
            raise ActionDeferred
        return ctx.data
    if kind == "pipe":
        return _pipeline(op[1], ctx)
    return _call(op[1], (), ctx)  # a function named as an argument is called with no arguments


def _call(name: str, args: tuple[Any, ...], ctx: InterpContext) -> Any:
    fn = FUNCS[name]
    try:
        return fn(ctx, *args)
    except (CallError, ActionDeferred, TemplateError):
        raise
    except TypeError as exc:
        if "positional argument" in str(exc) or "required" in str(exc):
            raise CallError(f"wrong number of args for {name}: got {len(args)}") from None
        raise CallError(str(exc)) from None
    except (ValueError, OverflowError, LookupError, RecursionError) as exc:
        raise CallError(str(exc) or type(exc).__name__) from None


def _pipeline(pipeline: Any, ctx: InterpContext) -> Any:
    value: Any = _NO_VALUE
    for command in pipeline:
        head = command[0]
        args = [_operand(op, ctx) for op in command[1:]]
        if value is not _NO_VALUE:
            args.append(value)
        if head[0] == "fn":
            try:
                value = _call(head[1], tuple(args), ctx)
            except CallError as exc:
                raise CallError(f"error calling {head[1]}: {exc}") from None
        else:
            if args:
                raise CallError(f"can't give argument to non-function {_describe(head)}")
            value = _operand(head, ctx)
    return value


_NO_VALUE = object()


def _describe(op: Node) -> str:
    if op[0] == "field":
        return "." + ".".join(op[1])
    if op[0] == "lit":
        return repr(op[1])
    return "."


def render(text: str, ctx: InterpContext) -> str:
    """Render one string; raises TemplateError (UnknownUserVariable for an unknown user variable)."""
    if "{{" not in text:
        return text
    nodes = compile_template(text)
    out: list[str] = []
    for node in nodes:
        if node[0] == "text":
            out.append(node[1])
            continue
        try:
            out.append(to_text(_pipeline(node[1], ctx)))
        except ActionDeferred:
            out.append(node[2])
        except CallError as exc:
            raise TemplateError(f"{exc} in {node[2]}") from None
    return "".join(out)


def references(text: str, function: str) -> list[str]:
    """The literal first arguments of every call of `function` in `text` (e.g. the user variables
    a string reads); an unparseable string has none."""
    if "{{" not in text:
        return []
    try:
        nodes = compile_template(text)
    except TemplateError:
        return []
    found: list[str] = []

    def walk(pipeline: Any) -> None:
        for command in pipeline:
            for i, op in enumerate(command):
                if op[0] == "pipe":
                    walk(op[1])
                elif op[0] == "fn" and op[1] == function and i == 0 and len(command) > 1:
                    arg = command[1]
                    if arg[0] == "lit" and isinstance(arg[1], str):
                        found.append(arg[1])

    for node in nodes:
        if node[0] == "action":
            walk(node[1])
    return found
