"""Evaluating an HCL2 template once its variables are known: variables (defaults < PKR_VAR_ env <
*.auto.pkrvars.* < -var-file < -var), validation rules, locals, `null` data sources, sources and
build blocks (with dynamic blocks) into the builders, provisioners and post-processors of the model."""

from __future__ import annotations

import glob
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from kiln.errors import TemplateError, TemplateProblems

from ..model import Template
from .expr import Deferred, HclDiagnostic, HCLError, Scope, _str, compile_expression, evaluate, namespace
from .functions import make_functions
from .loader import HclState, blocks, is_block, labelled, parse_hcl_file

_PROV_META = ("only", "except", "override", "pause_before", "max_retries", "timeout", "name")
_PP_META = ("only", "except", "name", "keep_input_artifact")


def _strip_meta(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if not k.startswith("__")}


def _type_text(raw: Any) -> str:
    if raw is None:
        return ""
    text = str(raw)
    if text.startswith("${") and text.endswith("}"):
        text = text[2:-1]
    return text.replace(" ", "")


def _convert(value: Any, type_text: str, name: str) -> Any:
    if value is None or not type_text or type_text == "any" or isinstance(value, Deferred):
        return value
    if type_text == "string":
        if isinstance(value, list | dict):
            raise TemplateError(f'Invalid value for variable "{name}": string required')
        return _str(value)
    if type_text == "number":
        try:
            return (
                value
                if isinstance(value, int | float) and not isinstance(value, bool)
                else (int(value) if str(value).lstrip("-").isdigit() else float(value))
            )
        except (TypeError, ValueError):
            raise TemplateError(f'Invalid value for variable "{name}": a number is required') from None
    if type_text == "bool":
        if isinstance(value, bool):
            return value
        if value in ("true", "false"):
            return value == "true"
        raise TemplateError(f'Invalid value for variable "{name}": a bool is required')
    if type_text.startswith(("list(", "set(", "tuple(")) and not isinstance(value, list):
        raise TemplateError(f'Invalid value for variable "{name}": list required')
    if type_text.startswith(("map(", "object(")) and not isinstance(value, dict):
        raise TemplateError(f'Invalid value for variable "{name}": map required')
    return value


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list | dict):
        return json.dumps(value)
    return _str(value) if value is not None else ""


class _Evaluator:
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
            "local": namespace("local", self.locals, self._local),
            "data": namespace("data", {}, self._data_type),
            "path": self.path,
            "packer": self.packer,
        }
        names.update(extra)
        return Scope(names, self.functions)

    def _local(self, name: str) -> Any:
        if name not in self.locals_raw:
            raise HCLError(f'Unsupported attribute: no local value named "{name}" has been declared')
        if name in self._computing:
            chain = " -> ".join([*self._computing[self._computing.index(name) :], name])
            raise HCLError(f"local values refer to each other in a cycle: {chain}")
        self._computing.append(name)
        try:
            self.locals[name] = evaluate(self.locals_raw[name], self.scope())
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
        config = evaluate(_strip_meta(body), self.scope())
        # Not run (validate without --evaluate-datasources): its output is unknown, as in Packer.
        output = config.get("input") if self.evaluate_datasources else UNKNOWN
        self.data[key] = {"input": config.get("input"), "output": output}
        return self.data[key]


#: how a value that is not known (a data source not run) reads in a component's config
UNKNOWN = "<unknown>"


def declarations(body: dict[str, list[Any]]) -> dict[str, dict[str, Any]]:
    decls: dict[str, dict[str, Any]] = {}
    for block in blocks(body.get("variable")):
        for labels, vbody in labelled(block, 1):
            decls[labels[0]] = vbody
    for block in blocks(body.get("variables")):
        for name, default in _strip_meta(block).items():
            decls[name] = {"default": default}
    return decls


def collect_variables(
    ev: _Evaluator,
    decls: dict[str, dict[str, Any]],
    var_files: Sequence[str],
    cli_vars: Iterable[tuple[str, str]],
    environ: Mapping[str, str],
    problems: list[Any],
) -> None:
    """Set ev.values from defaults < PKR_VAR_ < auto var files < -var-file < -var; a variable that
    none of them sets stays absent."""
    tpl = ev.tpl

    def setting(name: str, value: Any, where: str) -> None:
        try:
            ev.values[name] = _convert(value, _type_text(decls[name].get("type")), name)
        except TemplateError as exc:
            problems.append(f"{where}: {exc.message}")

    for name, decl in decls.items():
        if "default" in decl:
            try:
                setting(name, evaluate(decl["default"], ev.literal_scope()), f"variable {name}")
            except TemplateError as exc:
                problems.append(f"variable {name}: default: {exc.message}")
        env_value = environ.get(f"PKR_VAR_{name}")
        if env_value is not None:
            setting(name, _cli_value(env_value, decl, ev), f"PKR_VAR_{name}")
    auto: list[str] = []
    if os.path.isdir(tpl.source or str(tpl.path)):  # only a folder template reads its auto var files
        auto = sorted(glob.glob(os.path.join(str(tpl.dir), "*.auto.pkrvars.hcl")))
        auto += sorted(glob.glob(os.path.join(str(tpl.dir), "*.auto.pkrvars.json")))
    for path in [*auto, *var_files]:
        for name, value in _var_file(path, ev).items():
            if name in decls:
                setting(name, value, path)
            elif name not in tpl.undeclared_variables:
                tpl.undeclared_variables.append(name)
    for name, text in cli_vars:
        if name not in decls:
            problems.append(
                f'Undefined -var variable: A "{name}" variable was passed in the command line but was not '
                f'found in known variables. To declare variable "{name}", place this block in one of your '
                ".pkr.hcl files, such as variables.pkr.hcl"
            )
            continue
        setting(name, _cli_value(text, decls[name], ev), f"-var {name}")


def resolve_hcl2(
    tpl: Template,
    var_files: Sequence[str],
    cli_vars: Iterable[tuple[str, str]],
    environ: Mapping[str, str],
    evaluate_datasources: bool = True,
) -> dict[str, str]:
    ev = _Evaluator(tpl, environ, evaluate_datasources)
    body = ev.state.body
    decls = declarations(body)
    problems: list[Any] = []
    collect_variables(ev, decls, var_files, cli_vars, environ, problems)
    for name in decls:
        if name not in ev.values:
            problems.append(
                f'Unset variable "{name}": A used variable must be set or have a default value; see '
                "https://packer.io/docs/templates/hcl_templates/syntax for details."
            )
    if problems:
        _raise(tpl, problems)
    for name, decl in decls.items():
        if decl.get("sensitive") is True and ev.values.get(name) not in (None, ""):
            tpl.sensitive_values.extend(_strings(ev.values[name]))
        for rule in blocks(decl.get("validation")):
            try:
                ok = evaluate(rule.get("condition"), ev.scope())
            except TemplateError as exc:
                problems.append(f"variable {name}: validation: {exc.message}")
                continue
            if ok is not True:
                message = _text(evaluate(rule.get("error_message", '"invalid value"'), ev.literal_scope()))
                problems.append(f'Invalid value for variable "{name}": {message}')
    sensitive_locals = _collect_locals(ev, body, problems)
    for block in blocks(body.get("data")):
        for labels, dbody in labelled(block, 2):
            ev.data_raw[(labels[0], labels[1])] = dbody
    for name in list(ev.locals_raw):
        if name not in ev.locals:
            try:
                ev._local(name)
            except TemplateError as exc:
                problems.append(f"local.{name}: {exc.message}")
    if problems:
        _raise(tpl, problems)
    for name in sensitive_locals:
        tpl.sensitive_values.extend(_strings(ev.locals.get(name)))
    from .builds import build_components

    build_components(ev, body, problems)
    if problems:
        _raise(tpl, problems)
    ev.state.resolved = True
    return {name: _text(value) for name, value in ev.values.items()}


def _raise(tpl: Template, problems: list[Any]) -> None:
    texts = [str(p) for p in problems]
    if len(problems) == 1:
        if isinstance(problems[0], HclDiagnostic):
            raise problems[0]
        raise TemplateError(texts[0], f"in {tpl.display_path}")
    raise TemplateProblems(tpl.display_path, texts)


def _line_of(files: list[str], pattern: str, nth: int = 0) -> tuple[str, int]:
    """The file and line of the `nth` match of `pattern` (a regex) in the template's files."""

    regex = re.compile(pattern, re.M)
    count = 0
    for file in files:
        try:
            with open(file, encoding="utf-8") as f:
                text = f.read()
        except OSError:
            continue
        for m in regex.finditer(text):
            if count == nth:
                return file, text.count("\n", 0, m.start()) + 1
            count += 1
    return (files[0] if files else ""), 0


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    return [] if value is None else [_str(value)]


def _cli_value(text: str, decl: dict[str, Any], ev: _Evaluator) -> Any:
    type_text = _type_text(decl.get("type"))
    # Without a type, HCL infers it from the default: only a list or map default makes the value
    # an expression; otherwise it is the text as given.
    if type_text == "string" or (not type_text and not isinstance(decl.get("default"), list | dict)):
        return text
    try:
        return compile_expression(text)(ev.literal_scope())
    except TemplateError:
        return text


def _var_file(path: str, ev: _Evaluator) -> dict[str, Any]:
    if not os.path.isfile(path):
        raise TemplateError(f"{path}: no such var file", f"the current folder is {os.getcwd()}")
    if path.endswith(".json"):
        from ..json_loader import read_source
        from ..jsonsyntax import loads

        data, source = read_source(path, what="var")
        raw = loads(data, source)
        if not isinstance(raw, dict):
            raise TemplateError(f"{path}: a var file must be a JSON object of name: value")
        return raw
    parsed = parse_hcl_file(path)
    out: dict[str, Any] = {}
    for name, raw in parsed.items():
        if name.startswith("__"):
            continue
        if is_block(raw):
            raise TemplateError(f'{path}: blocks are not allowed in a var file ("{name}")')
        try:
            out[name] = evaluate(raw, ev.literal_scope())
        except TemplateError as exc:
            raise TemplateError(f"{path}: {name}: {exc.message}") from None
    return out


def _collect_locals(ev: _Evaluator, body: dict[str, list[Any]], problems: list[Any]) -> set[str]:
    """Gather the locals' expressions; returns the names of the sensitive ones."""
    sensitive: set[str] = set()
    for block in blocks(body.get("locals")):
        for name, raw in _strip_meta(block).items():
            if name in ev.locals_raw:
                problems.append(f'Duplicate local value: "{name}" is declared twice')
            ev.locals_raw[name] = raw
    for block in blocks(body.get("local")):
        for labels, lbody in labelled(block, 1):
            ev.locals_raw[labels[0]] = lbody.get("expression")
            if lbody.get("sensitive") is True:
                sensitive.add(labels[0])
    return sensitive


def _source_key(ref: str) -> str:
    for prefix in ("source.", "sources."):
        if ref.startswith(prefix):
            return ref[len(prefix) :]
    return ref
