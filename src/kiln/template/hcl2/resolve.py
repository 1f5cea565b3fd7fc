"""Evaluating an HCL2 template once its variables are known: variables (defaults < PKR_VAR_ env <
*.auto.pkrvars.* < -var-file < -var), validation rules, locals, `null` data sources, sources and
build blocks (with dynamic blocks) into the builders, provisioners and post-processors of the model."""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from kiln.errors import TemplateError, TemplateProblems

from ..model import Template
from .builds import build_components
from .evaluator import Evaluator, line_of, strip_meta, to_text
from .expr import Deferred, HclDiagnostic, compile_expression, evaluate, to_str
from .loader import blocks, is_block, labelled, parse_hcl_file


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
        return to_str(value)
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


def declarations(body: dict[str, list[Any]]) -> dict[str, dict[str, Any]]:
    decls: dict[str, dict[str, Any]] = {}
    for block in blocks(body.get("variable")):
        for labels, vbody in labelled(block, 1):
            decls[labels[0]] = vbody
    for block in blocks(body.get("variables")):
        for name, default in strip_meta(block).items():
            decls[name] = {"default": default}
    return decls


def collect_variables(
    ev: Evaluator,
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
    ev = Evaluator(tpl, environ, evaluate_datasources)
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
    tpl.sensitive_values.extend(sensitive_strings(decls, ev.values))
    for name, decl in decls.items():
        for rule in blocks(decl.get("validation")):
            try:
                ok = evaluate(rule.get("condition"), ev.scope())
            except TemplateError as exc:
                problems.append(f"variable {name}: validation: {exc.message}")
                continue
            if ok is not True:
                message = to_text(evaluate(rule.get("error_message", '"invalid value"'), ev.literal_scope()))
                problems.append(f'Invalid value for variable "{name}": {message}')
    sensitive_locals = _collect_locals(ev, body, problems)
    for block in blocks(body.get("data")):
        for labels, dbody in labelled(block, 2):
            ev.data_raw[(labels[0], labels[1])] = dbody
    for name in list(ev.locals_raw):
        if name not in ev.locals:
            try:
                ev.local(name)
            except TemplateError as exc:
                file, line = line_of(
                    ev.state.files, rf'^[ \t]*({re.escape(name)}[ \t]*=|local[ \t]+"{re.escape(name)}")'
                )
                where = f" (on {file} line {line})" if line else ""
                problems.append(f"local.{name}{where}: {exc.message}")
    if problems:
        _raise(tpl, problems)
    for name in sensitive_locals:
        tpl.sensitive_values.extend(_strings(ev.locals.get(name)))
    build_components(ev, body, problems)
    if problems:
        _raise(tpl, problems)
    ev.state.resolved = True
    return {name: to_text(value) for name, value in ev.values.items()}


def _raise(tpl: Template, problems: list[Any]) -> None:
    texts = [str(p) for p in problems]
    if len(problems) == 1:
        if isinstance(problems[0], HclDiagnostic):
            raise problems[0]
        raise TemplateError(texts[0], f"in {tpl.display_path}")
    raise TemplateProblems(tpl.display_path, texts)


def sensitive_strings(decls: Mapping[str, Mapping[str, Any]], values: Mapping[str, Any]) -> list[str]:
    """The strings in the values of the variables declared `sensitive = true`."""
    return [
        piece
        for name, decl in decls.items()
        if decl.get("sensitive") is True and values.get(name) not in (None, "")
        for piece in _strings(values[name])
    ]


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    return [] if value is None else [to_str(value)]


def _cli_value(text: str, decl: dict[str, Any], ev: Evaluator) -> Any:
    type_text = _type_text(decl.get("type"))
    # Without a type, HCL infers it from the default: only a list or map default makes the value
    # an expression; otherwise it is the text as given.
    if type_text == "string" or (not type_text and not isinstance(decl.get("default"), list | dict)):
        return text
    try:
        return compile_expression(text)(ev.literal_scope())
    except TemplateError:
        return text


def _var_file(path: str, ev: Evaluator) -> dict[str, Any]:
    if path.endswith(".json"):
        from ..jsonsyntax import loads
        from ..source import read_bytes

        data, source = read_bytes(path, what="var")
        raw = loads(data, source)
        if not isinstance(raw, dict):
            raise TemplateError(f"{path}: a var file must be a JSON object of name: value")
        return raw
    parsed = parse_hcl_file(path, what="var")
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


def _collect_locals(ev: Evaluator, body: dict[str, list[Any]], problems: list[Any]) -> set[str]:
    """Gather the locals' expressions; returns the names of the sensitive ones."""
    sensitive: set[str] = set()
    for block in blocks(body.get("locals")):
        for name, raw in strip_meta(block).items():
            if name in ev.locals_raw:
                problems.append(f'Duplicate local value: "{name}" is declared twice')
            ev.locals_raw[name] = raw
    for block in blocks(body.get("local")):
        for labels, lbody in labelled(block, 1):
            ev.locals_raw[labels[0]] = lbody.get("expression")
            if lbody.get("sensitive") is True:
                sensitive.add(labels[0])
    return sensitive
