"""hcl2_upgrade's rewriting of `{{ }}` calls inside generated HCL text, the way Packer does it: a
block's text is run as a Go template whose functions return their HCL2 spelling (`{{ user `x` }}`
-> `${var.x}`, `{{ timestamp }}` -> `${local.timestamp}`, ...). Calls with no HCL2 equivalent stay
as `{{ ... }}` text under a comment that says so; every such place is also recorded as an `Issue`
so that the command can list them (Packer only writes the comment).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kiln.template.interpolate import ActionSyntaxError, find_close, parse_action


@dataclass
class Issue:
    place: str  #: where in the JSON template: "provisioners[3]", "variables.password", ...
    message: str


@dataclass
class UpgradeState:
    """What one conversion accumulates (Packer keeps these in globals)."""

    secrets: dict[str, dict[str, str]] = field(default_factory=dict)  #: data source id -> config
    local_names: set[str] = field(default_factory=set)  #: JSON variables that became locals
    timestamp: bool = False
    isotime: bool = False
    strftime: bool = False
    issues: list[Issue] = field(default_factory=list)


class _Unhandled(Exception):
    def __init__(self, call: str, instead: str, docs: str, spelled: str, line: int) -> None:
        super().__init__(
            f'unhandled "{call}" call:\n# there is no way to automatically upgrade the "{call}" call.\n'
            f"# Please manually upgrade to {instead}\n# Visit {docs} for more infos."
        )
        self.call, self.instead, self.spelled, self.line = call, instead, spelled, line


class _ExecError(Exception):
    pass


_DOCS = "https://www.packer.io/docs/templates/hcl_templates/functions/string/"
_REPLACE = "`replace(string, substring, replacement)` or `regex_replace(string, substring, replacement)`"
_REPLACE_DOCS = f"{_DOCS}replace or {_DOCS}regex_replace"
_UNHANDLED = {
    "lower": ("`lower(var.example)`", f"{_DOCS}lower", "{{{{ lower `{0}` }}}}"),
    "upper": ("`upper(var.example)`", f"{_DOCS}upper", "{{{{ upper `{0}` }}}}"),
    "split": ("`split(separator, string)`", f"{_DOCS}split", "{{{{ split `{0}` `{1}` {2} }}}}"),
    "replace": (_REPLACE, _REPLACE_DOCS, "{{{{ replace `{0}` `{1}` `{3}` {2} }}}}"),
    "replace_all": (_REPLACE, _REPLACE_DOCS, "{{{{ replace_all `{0}` `{1}` `{2}` }}}}"),
    "clean_resource_name": (
        "use custom validation rules, " + _REPLACE,
        "https://packer.io/docs/templates/hcl_templates/variables#custom-validation-rules , " + _REPLACE_DOCS,
        "{{{{ clean_resource_name `{0}` }}}}",
    ),
}
#: parameter kinds of the functions, Go style: "s" string, "i" int, "*" any number of strings
_SIGNATURES = {
    "aws_secretsmanager": "*", "timestamp": "", "isotime": "*", "strftime": "*", "user": "s",
    "env": "s", "build": "s", "data": "s", "template_dir": "", "pwd": "", "packer_version": "",
    "uuid": "", "lower": "s", "upper": "s", "split": "ssi", "replace": "ssis", "replace_all": "sss",
    "clean_resource_name": "s", "build_name": "", "build_type": "",
}  # fmt: skip
_VARIABLE_FUNCS = set(_SIGNATURES) - {"build", "data", "clean_resource_name", "build_name", "build_type"}


def go_quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _go_unquote(text: str) -> str | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, str) else None


_FIX_QUOTING = re.compile(r'\{\{\s*\w*(\s*(\\".*\\")\s*)+\w*\s*\}\}')


def fix_quoting(text: str) -> str:
    """`{{ env \\"X\\" }}` (a JSON-escaped quote, as it reads once inside an HCL string) ->
    `{{ env "X" }}`."""

    def unquote(m: re.Match[str]) -> str:
        group = m.group(1)
        plain = _go_unquote('"' + group + '"')
        return m.group(0) if plain is None else m.group(0).replace(group, plain, 1)

    return _FIX_QUOTING.sub(unquote, text)


# A parsed block: text pieces and actions (pipeline, line, source text).
_Piece = str | tuple[Any, int, str]


class _ParseError(Exception):
    pass


_CONTROL_NODES = {
    "if": "IfNode", "range": "RangeNode", "with": "WithNode", "template": "TemplateNode",
    "define": "ListNode", "block": "TemplateNode", "break": "BreakNode", "continue": "ContinueNode",
    "else": "elseNode", "end": "endNode",
}  # fmt: skip


def _functions(pipeline: Any) -> list[str]:
    names: list[str] = []
    for command in pipeline:
        for operand in command:
            if operand[0] == "fn":
                names.append(operand[1])
            elif operand[0] == "pipe":
                names += _functions(operand[1])
    return names


def parse(text: str, known: set[str] | None) -> list[_Piece]:
    """Text and actions; `known`: the functions that exist (None: any)."""
    pieces: list[_Piece] = []
    pos, trim = 0, False
    while True:
        start = text.find("{{", pos)
        chunk = text[pos:] if start < 0 else text[pos:start]
        if trim:
            chunk = chunk.lstrip(" \t\r\n")
        if start < 0:
            pieces.append(chunk)
            return pieces
        inner = start + 2
        if text[inner : inner + 2] in ("- ", "-\t", "-\n"):
            chunk, inner = chunk.rstrip(" \t\r\n"), inner + 1
        pieces.append(chunk)
        line = text.count("\n", 0, start) + 1
        if text.startswith("/*", inner):
            end = text.find("*/}}", inner)
            if end < 0:
                raise _ParseError(f"template: hcl2_upgrade:{line}: unclosed comment")
            pos, trim = end + 4, False
            continue
        end = find_close(text, inner)
        if end < 0:
            raise _ParseError(f"template: hcl2_upgrade:{line}: unclosed action")
        inner_end, trim = end, False
        if end - 2 >= inner and text[end - 1] == "-" and text[end - 2] in " \t\r\n":
            inner_end, trim = end - 1, True
        try:
            pipeline = parse_action(text[inner:inner_end])
        except ActionSyntaxError as exc:
            reason = str(exc)
            control = re.match(r'"(\w+)" is not supported', reason)
            if control:  # Go parses these, then Packer gives up on the block as here
                node = _CONTROL_NODES.get(control.group(1), "")
                raise _ParseError(f"unhandled node type *parse.{node or 'Node'}") from None
            if "'\\\\'" in reason or '"\\\\"' in reason:
                reason = 'unexpected "\\\\" in operand'
            raise _ParseError(f"template: hcl2_upgrade:{line}: {reason}") from None
        for name in _functions(pipeline):
            if known is not None and name not in known:
                raise _ParseError(f'template: hcl2_upgrade:{line}: function "{name}" not defined')
        pieces.append((pipeline, line, text[start : end + 2]))
        pos = end + 2


def _operand_text(op: Any) -> str:
    kind = op[0]
    if kind == "field":
        return "." + ".".join(op[1])
    if kind == "dot":
        return "."
    if kind == "fn":
        return str(op[1])
    if kind == "pipe":
        return "(" + " | ".join(" ".join(_operand_text(o) for o in c) for c in op[1]) + ")"
    value = op[1]
    if isinstance(value, str):
        return go_quote(value)
    return str(value).lower() if isinstance(value, bool) else str(value)


class _Run:
    """One execution of a block's template."""

    def __init__(self, state: UpgradeState, variable_mode: bool) -> None:
        self.state = state
        self.variable_mode = variable_mode
        self.is_local = False
        self.unhandled: list[_Unhandled] = []
        self.line = 0  #: the line (of the block's text) of the action being run

    def call(self, name: str, args: list[Any]) -> str:
        kinds = _SIGNATURES[name]
        if kinds != "*":
            if len(args) != len(kinds):
                raise _ExecError(f"wrong number of args for {name}: want {len(kinds)} got {len(args)}")
            for arg, kind in zip(args, kinds, strict=True):
                ok = (
                    isinstance(arg, str)
                    if kind == "s"
                    else isinstance(arg, int) and not isinstance(arg, bool)
                )
                if not ok:
                    want = "string" if kind == "s" else "int"
                    raise _ExecError(f"wrong type for value; expected {want}; got {type(arg).__name__}")
        elif not all(isinstance(a, str) for a in args):
            raise _ExecError(f"wrong type for value; expected string in {name}")
        if self.variable_mode and name != "env":
            self.is_local = True
            return ""
        return self.handle(name, args)

    def handle(self, name: str, a: list[Any]) -> str:
        st = self.state
        if name in _UNHANDLED:
            instead, docs, spelled = _UNHANDLED[name]
            text = spelled.format(*a)
            self.unhandled.append(_Unhandled(name, instead, docs, text, self.line))
            return text
        if name == "aws_secretsmanager":
            want = {"name": a[0], "key": a[1]} if len(a) >= 2 else {"name": a[0] if a else ""}
            for key, config in st.secrets.items():
                if config.get("name") == want["name"] and (len(a) < 2 or config.get("key") == want["key"]):
                    return f"${{data.amazon-secretsmanager.{key}.value}}"
            key = f"autogenerated_{len(st.secrets) + 1}"
            st.secrets[key] = want
            return f"${{data.amazon-secretsmanager.{key}.value}}"
        if name == "timestamp":
            st.timestamp = True
            return "${local.timestamp}"
        if name in ("isotime", "strftime"):
            if not a:
                return "${timestamp()}"
            setattr(st, name, True)
            return f'${{legacy_{name}("{a[0]}")}}'
        if name == "user":
            return f"${{local.{a[0]}}}" if a[0] in st.local_names else f"${{var.{a[0]}}}"
        if name == "env":
            return f"${{env({go_quote(a[0])})}}"
        simple = {
            "build": lambda: f"${{build.{a[0]}}}",
            "data": lambda: f"${{data.{a[0]}}}",
            "template_dir": lambda: "${path.root}",
            "pwd": lambda: "${path.cwd}",
            "packer_version": lambda: "${packer.version}",
            "uuid": lambda: "${uuidv4()}",
            "build_name": lambda: "${build.name}",
            "build_type": lambda: "${build.type}",
        }
        fn: Callable[[], str] = simple[name]
        return fn()

    def operand(self, op: Any) -> Any:
        kind = op[0]
        if kind == "lit":
            return op[1]
        if kind == "fn":
            return self.call(op[1], [])
        if kind == "pipe":
            return self.pipeline(op[1])
        raise _ExecError(f"can't evaluate {_operand_text(op)} without data")

    def pipeline(self, pipeline: Any) -> Any:
        value: Any = None
        piped = False
        for command in pipeline:
            first = command[0]
            if first[0] == "fn":
                args = [self.operand(o) for o in command[1:]] + ([value] if piped else [])
                value = self.call(first[1], args)
            else:
                if len(command) > 1 or piped:
                    raise _ExecError(f"can't give argument to non-function {_operand_text(first)}")
                value = self.operand(first)
            piped = True
        return value


def _escape_unknown(pieces: list[_Piece], known: set[str]) -> list[_Piece]:
    """Single-operand actions that are not calls (`{{ .Name }}`) stay as text, for the builder."""
    out: list[_Piece] = []
    for piece in pieces:
        if isinstance(piece, tuple):
            pipeline = piece[0]
            command = pipeline[0]
            if (
                len(pipeline) == 1
                and len(command) == 1
                and not (command[0][0] == "fn" and command[0][1] in known)
            ):
                out.append("{{ " + _operand_text(command[0]) + " }}")
                continue
        out.append(piece)
    return out


def _fallback(reason: str, text: str) -> str:
    if "unhandled" in reason:
        return f"\n# {reason}\n" + text
    return f"\n# could not parse template for following block: {go_quote(reason)}\n" + text


def _execute(text: str, run: _Run, place: str) -> str:
    known = _VARIABLE_FUNCS if run.variable_mode else set(_SIGNATURES)
    source = text
    try:
        try:
            pieces = parse(text, known)
        except _ParseError as exc:
            if 'unexpected "\\\\" in operand' not in str(exc) and '\\"' not in text:
                raise
            source = fix_quoting(text)
            pieces = parse(source, known)
    except _ParseError as exc:
        m = re.match(r"template: hcl2_upgrade:(\d+): (.*)", str(exc), re.S)
        where = _attribute(source, int(m.group(1)), place) if m else place
        run.state.issues.append(
            Issue(where, f"left as is, its {{{{ }}}} template cannot be read: {m.group(2) if m else exc}")
        )
        return _fallback(str(exc), source)
    out: list[str] = []
    for piece in _escape_unknown(pieces, known):
        if isinstance(piece, str):
            out.append(piece)
            continue
        pipeline, line, action = piece
        run.line = line
        try:
            value = run.pipeline(pipeline)
        except _ExecError as exc:
            reason = f'template: hcl2_upgrade:{line}: executing "hcl2_upgrade" at <{action}>: {exc}'
            run.state.issues.append(
                Issue(_attribute(text, line, place), f"could not convert {action}: {exc}")
            )
            return _fallback(reason, text)
        out.append(value if isinstance(value, str) else str(value))
    return "".join(out)


_ATTRIBUTE = re.compile(r"\s*([\w-]+)\s*=")


def _attribute(text: str, line: int, place: str) -> str:
    """`place.key` for the attribute on `line` of a generated block (one attribute a line)."""
    lines = text.split("\n")
    m = _ATTRIBUTE.match(lines[line - 1]) if 0 < line <= len(lines) else None
    return f"{place}.{m.group(1)}" if m else place


def transpose(text: str, state: UpgradeState, place: str) -> str:
    """Packer's transposeTemplatingCalls."""
    run = _Run(state, variable_mode=False)
    out = _execute(text, run, place)
    errors = run.unhandled
    for err in errors:
        state.issues.append(
            Issue(
                _attribute(text, err.line, place),
                f'"{err.call}" has no HCL2 equivalent: {err.spelled} left as is (manual upgrade: {err.instead})',
            )
        )
    if not errors:
        return out
    if len(errors) == 1:
        header = f"# 1 error occurred upgrading the following block:\n\t# {errors[0]}\n"
    else:
        points = [f"# {e}\n" for e in errors[:-1]] + [f"# {errors[-1]}"]
        header = f"# {len(errors)} errors occurred upgrading the following block:\n\t" + "\n\t".join(points)
    return "\n" + header + out


def variable_transpose(text: str, state: UpgradeState, place: str) -> tuple[bool, str]:
    """Packer's variableTransposeTemplatingCalls: (does the value need a local, the text)."""
    run = _Run(state, variable_mode=True)
    out = _execute(text, run, place)
    return run.is_local, out


def referenced_user_variables(texts: list[str]) -> list[str]:
    """Names used as {{ user `x` }} in any of the template's strings, so that each gets a variable
    block. Packer reads the whole file as one template knowing only `user`, and so finds none as
    soon as any other function appears; here each string is read on its own, any function allowed."""
    names: list[str] = []

    def walk(pipeline: Any) -> None:
        for command in pipeline:
            for op in command:
                if op[0] == "pipe":
                    walk(op[1])
            first, args = command[0], command[1:]
            if (
                first == ("fn", "user")
                and len(args) == 1
                and args[0][0] == "lit"
                and isinstance(args[0][1], str)
            ):
                names.append(args[0][1])

    for text in texts:
        try:
            pieces = parse(text, None)
        except _ParseError:
            continue
        for piece in pieces:
            if isinstance(piece, tuple):
                walk(piece[0])
    return list(dict.fromkeys(names))
