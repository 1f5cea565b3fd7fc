"""HCL2 templates written in JSON syntax (.pkr.json), turned into the shape python-hcl2 gives for
native syntax, so that the rest of the loader reads both alike. Which keys are blocks (and how many
labels they take) comes from Packer's schema; a repeated key merges, as HCL's JSON syntax allows."""

from __future__ import annotations

import json
from typing import Any

from kiln.errors import TemplateError

from ..jsonsyntax import check_nesting

#: block type -> number of labels, per enclosing block ("" is the file's top level)
SCHEMA: dict[str, dict[str, int]] = {
    "": {"packer": 0, "variable": 1, "variables": 0, "locals": 0, "local": 1, "source": 2, "build": 0,
         "data": 2},
    "build": {"source": 1, "provisioner": 1, "post-processor": 1, "post-processors": 0,
              "error-cleanup-provisioner": 1, "dynamic": 1},
    "post-processors": {"post-processor": 1},
    "variable": {"validation": 0},
    "dynamic": {"content": 0},
}  # fmt: skip


class _Pairs(list[tuple[str, Any]]):
    """An object whose keys may repeat."""


def _hook(pairs: list[tuple[str, Any]]) -> _Pairs:
    return _Pairs(pairs)


def load_pkr_json(path: str, what: str = "template") -> dict[str, Any]:
    from ..source import read_bytes

    data, source = read_bytes(path, what)
    try:
        text = data.decode("utf-8", errors="replace")
        check_nesting(data, text, source)
        raw = json.loads(text, object_pairs_hook=_hook)
    except json.JSONDecodeError as exc:
        raise TemplateError(
            f"{source}: JSON syntax error at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    except RecursionError:
        raise TemplateError(f"{source}: JSON nests too deeply") from None
    if not isinstance(raw, _Pairs):
        raise TemplateError(f"{source}: an HCL2 JSON template must be a JSON object")
    return _body(raw, "", source)


def _quoted(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{escaped}"'


def _value(value: Any) -> Any:
    if isinstance(value, str):
        return _quoted(value)
    if isinstance(value, list):
        return [_value(v) for v in value]
    if isinstance(value, _Pairs):
        return {k: _value(v) for k, v in value}
    return value


def _instances(value: Any, source: str, key: str) -> list[_Pairs]:
    if isinstance(value, _Pairs):
        return [value]
    if isinstance(value, list) and all(isinstance(v, _Pairs) for v in value):
        return list(value)
    raise TemplateError(f'{source}: "{key}" must be an object (a block), got {type(value).__name__}')


def _labelled(value: _Pairs, labels: int, kind: str, source: str) -> list[dict[str, Any]]:
    if labels == 0:
        return [_body(value, kind, source)]
    out: list[dict[str, Any]] = []
    for label, inner in value:
        for instance in _instances(inner, source, label):
            for nested in _labelled(instance, labels - 1, kind, source):
                out.append({f'"{label}"': nested})
    return out


def _body(pairs: _Pairs, kind: str, source: str) -> dict[str, Any]:
    schema = SCHEMA.get(kind, {})
    body: dict[str, Any] = {"__is_block__": True} if kind else {}
    for key, value in pairs:
        if key.startswith("//"):
            continue  # HCL JSON comments
        if key in schema:
            blocks = body.setdefault(key, [])
            for instance in _instances(value, source, key):
                blocks.extend(_labelled(instance, schema[key], key, source))
        else:
            body[key] = _value(value)
    return body
