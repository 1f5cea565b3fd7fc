"""HCL2 templates (a .pkr.hcl file or a folder of them) into the same `Template` model.

`load_hcl2_template` parses the files and checks their block structure (all `validate -syntax-only`
does). Everything that depends on variable values (locals, data sources, sources, builds, dynamic
blocks) is evaluated by `resolve_hcl2` once the variables are known; it fills `template.builders`,
`provisioners` and `post_processors`: one builder per (build block, source), named `TYPE.NAME` or
`BUILD.TYPE.NAME`, and per-source copies of each provisioner and post-processor chain, each with
`only` naming its build, so that `source.name` is right in each of them.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kiln.errors import TemplateError, TemplateProblems

from ..model import Template, Variable

TOP_BLOCKS = ("packer", "variable", "variables", "locals", "local", "source", "build", "data")
#: where in a build block each child block goes
_BUILD_CHILDREN = ("source", "provisioner", "post-processor", "post-processors", "error-cleanup-provisioner",
                   "dynamic")  # fmt: skip


@dataclass
class HclState:
    files: list[str]
    body: dict[str, list[Any]]
    required_version: str = ""
    resolved: bool = False
    #: names set by var files without a variable block (Packer warns about them)
    undeclared: list[str] = field(default_factory=list)


def unquote(text: Any) -> str:
    if isinstance(text, str) and len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    return str(text)


def blocks(items: Any) -> list[dict[str, Any]]:
    """python-hcl2 gives a block type's blocks as a list of dicts."""
    if isinstance(items, dict):
        return [items]
    return [b for b in items if isinstance(b, dict)] if isinstance(items, list) else []


def labelled(block: dict[str, Any], depth: int) -> list[tuple[list[str], dict[str, Any]]]:
    """Unwrap `{"label1": {"label2": body}}` into ([label1, label2], body) pairs."""
    if depth == 0:
        return [([], block)]
    out: list[tuple[list[str], dict[str, Any]]] = []
    for key, inner in block.items():
        if key.startswith("__"):
            continue
        if not isinstance(inner, dict):
            raise TemplateError(f"block needs {depth} label(s), got an attribute {unquote(key)!r}")
        for labels, body in labelled(inner, depth - 1):
            out.append(([unquote(key), *labels], body))
    return out


def _marked(body: dict[str, Any]) -> bool:
    # the marker sits in the innermost body, under the labels
    return bool(body.get("__is_block__")) or any(isinstance(v, dict) and _marked(v) for v in body.values())


def is_block(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) and _marked(v) for v in value)


def _files(path: str) -> tuple[list[str], Path]:
    if os.path.isdir(path):
        found = sorted(glob.glob(os.path.join(path, "*.pkr.hcl")))
        found += sorted(glob.glob(os.path.join(path, "*.pkr.json")))
        if not found:
            raise TemplateError(
                f"{path}: no .pkr.hcl files in this folder", "a folder template holds NAME.pkr.hcl files"
            )
        return found, Path(os.path.abspath(path))
    if not os.path.exists(path):
        raise TemplateError(f"{path}: no such template file", f"the current folder is {os.getcwd()}")
    return [path], Path(os.path.abspath(path)).parent


def parse_hcl_file(path: str, what: str = "template") -> dict[str, Any]:
    if path.endswith(".json"):
        from .jsonsyntax import load_pkr_json

        return load_pkr_json(path, what)
    import hcl2

    from ..source import read_text
    from .fmt import HclSyntaxError, check_nesting

    text, _ = read_text(path, what)
    try:
        check_nesting(text, path)
    except HclSyntaxError as exc:
        raise TemplateError(exc.message, "blocks and brackets nest a few levels in real templates") from None
    try:
        parsed = hcl2.loads(text)
    except Exception as exc:  # the parser's errors (lark) carry line and column; keep its words
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        line = getattr(exc, "line", None)
        col = getattr(exc, "column", None)
        where = f" at line {line}, column {col}" if line else ""
        raise TemplateError(f"{path}: HCL syntax error{where}: {excerpt(first)}") from None
    if not isinstance(parsed, dict):
        raise TemplateError(f"{path}: not an HCL body")
    return parsed


def excerpt(text: str, limit: int = 200) -> str:
    """`text`, cut to `limit` characters (a parser's message may quote a megabyte-long token)."""
    return text if len(text) <= limit else text[:limit] + f"... ({len(text) - limit} more characters)"


def load_hcl2_template(path: str) -> Template:
    files, folder = _files(path)
    body: dict[str, list[Any]] = {}
    problems: list[str] = []
    for file in files:
        parsed = parse_hcl_file(file)
        for key, value in parsed.items():
            if key.startswith("__"):
                continue
            if key not in TOP_BLOCKS:
                problems.append(
                    f'{file}: Unsupported block type: blocks of type "{key}" are not expected here'
                )
                continue
            if not is_block(value):
                problems.append(
                    f'{file}: Unsupported argument: an argument named "{key}" is not expected here'
                )
                continue
            body.setdefault(key, []).extend(value)
    tpl = Template(path=Path(os.path.abspath(path)), dir=folder, kind="hcl2", source=path)
    state = HclState(files=files, body=body)
    tpl.hcl = state
    for block in blocks(body.get("packer")):
        for key, value in block.items():
            if key.startswith("__"):
                continue
            if key == "required_version":
                state.required_version = unquote(value)
            elif key != "required_plugins":
                problems.append(
                    f'packer: Unsupported argument: an argument named "{key}" is not expected here'
                )
    try:
        _declare_variables(tpl, body)
    except TemplateError as exc:
        problems.append(exc.message)
    if problems:
        raise TemplateProblems(path, problems)
    return tpl


def _declare_variables(tpl: Template, body: dict[str, list[Any]]) -> None:
    for block in blocks(body.get("variable")):
        for labels, vbody in labelled(block, 1):
            name = labels[0]
            if name in tpl.variables:
                raise TemplateError(f'Duplicate variable: a variable named "{name}" was already declared')
            default = vbody.get("default", _NO_DEFAULT)
            tpl.variables[name] = Variable(
                name=name,
                default=None if default is _NO_DEFAULT else _display(default),
                sensitive=vbody.get("sensitive") is True,
                description=unquote(vbody.get("description", "")),
            )
    for block in blocks(body.get("variables")):
        for name, default in block.items():
            if not name.startswith("__"):
                tpl.variables[name] = Variable(name=name, default=_display(default))


_NO_DEFAULT = object()


def _display(raw: Any) -> str:
    if raw is None:
        return ""
    if isinstance(raw, str):
        return unquote(raw)
    return str(raw)
