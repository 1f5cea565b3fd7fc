"""The evaluator of an HCL2 template: the scope its expressions see (`var`, `local`, `data`, `path`,
`packer`), locals computed on first use (and cycles among them reported), `null` data sources, and the
helpers the resolver, the build blocks and `inspect` share."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any

from kiln.errors import TemplateError

from ..model import Template
from ..source import read_text
from .expr import HCLError, Scope, evaluate, namespace, to_str
from .functions import make_functions
from .loader import HclState


def strip_meta(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if not k.startswith("__")}


def to_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list | dict):
        return json.dumps(value)
    return to_str(value) if value is not None else ""


class Evaluator:
    def __init__(self, tpl: Template, environ: Mapping[str, str], evaluate_datasources: bool = True) -> None:
        self.evaluate_datasources = evaluate_datasources
        self.tpl = tpl
        self.state: HclState = tpl.hcl
        self.functions = make_functions(environ, str(tpl.dir))
        self.values: dict[str, Any] = {}
        self.locals_raw: dict[str, Any] = {}
        self.locals: dict[str, Any] = {}
        self.data_raw: dict[tuple[str, str], dict[str, Any]] = {}
        self.data: dict[str, dict[str, Any]] = {}
        self._computing: list[str] = []
        self._failed: dict[str, TemplateError] = {}
        given = tpl.source or str(tpl.path)
        root = given if os.path.isdir(given) else (os.path.dirname(given) or ".")
        self.path = namespace("path", {"root": root, "cwd": os.getcwd()})
        from kiln import PACKER_COMPATIBLE_VERSION

        self.packer = namespace("packer", {"version": PACKER_COMPATIBLE_VERSION})

    def literal_scope(self) -> Scope:
        return Scope({"path": self.path, "packer": self.packer}, self.functions)

    def scope(self, **extra: Any) -> Scope:
        names = {
            "var": namespace("var", self.values),
            "local": namespace("local", self.locals, self.local),
            "data": namespace("data", {}, self._data_type),
            "path": self.path,
            "packer": self.packer,
        }
        names.update(extra)
        return Scope(names, self.functions)

    def local(self, name: str) -> Any:
        if name not in self.locals_raw:
            raise HCLError(f'Unsupported attribute: no local value named "{name}" has been declared')
        if name in self._computing:
            chain = " -> ".join([*self._computing[self._computing.index(name) :], name])
            raise HCLError(f"local values refer to each other in a cycle: {chain}")
        if name in self._failed:  # once: every local that uses it would evaluate it again
            raise self._failed[name]
        self._computing.append(name)
        try:
            self.locals[name] = evaluate(self.locals_raw[name], self.scope())
        except TemplateError as exc:
            self._failed[name] = exc
            raise
        finally:
            self._computing.pop()
        return self.locals[name]

    def _data_type(self, dtype: str) -> Any:
        names = {name for (t, name) in self.data_raw if t == dtype}
        if not names:
            raise HCLError(f'no data source of type "{dtype}" is declared')
        return namespace(f"data.{dtype}", {}, lambda name: self._data(dtype, name))

    def _data(self, dtype: str, name: str) -> Any:
        key = f"{dtype}.{name}"
        if key in self.data:
            return self.data[key]
        body = self.data_raw.get((dtype, name))
        if body is None:
            raise HCLError(f'no data source "data.{key}" is declared')
        if dtype != "null":
            raise HCLError(f'data source type "{dtype}" is not supported by kiln (only "null")')
        config = evaluate(strip_meta(body), self.scope())
        # Not run (validate without --evaluate-datasources): its output is unknown, as in Packer.
        output = config.get("input") if self.evaluate_datasources else UNKNOWN
        self.data[key] = {"input": config.get("input"), "output": output}
        return self.data[key]


#: how a value that is not known (a data source not run) reads in a component's config
UNKNOWN = "<unknown>"


def line_of(files: list[str], pattern: str, nth: int = 0) -> tuple[str, int]:
    """The file and line of the `nth` match of `pattern` (a regex) in the template's files."""

    regex = re.compile(pattern, re.M)
    count = 0
    for file in files:
        try:
            text = read_text(file)[0]
        except TemplateError:
            continue
        for m in regex.finditer(text):
            if count == nth:
                return file, text.count("\n", 0, m.start()) + 1
            count += 1
    return (files[0] if files else ""), 0


def source_key(ref: str) -> str:
    for prefix in ("source.", "sources."):
        if ref.startswith(prefix):
            return ref[len(prefix) :]
    return ref
