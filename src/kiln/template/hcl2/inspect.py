"""`inspect` of an HCL2 template, in Packer's words: variables and locals with their values
(`<unknown>` when not set, `<sensitive>` for sensitive ones), then each build's sources,
provisioners and post-processor chains. Nothing is run or validated."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from kiln.errors import TemplateError

from ..model import Template
from .evaluator import Evaluator, source_key, strip_meta
from .expr import Scope, evaluate, namespace, num_text
from .loader import blocks, labelled, unquote
from .resolve import collect_variables, declarations, sensitive_strings


class _Unknown(Exception):
    """An expression read a variable that has no value."""


class _InspectEvaluator(Evaluator):
    def scope(self, **extra: Any) -> Scope:
        def unknown(name: str) -> Any:
            raise _Unknown(name)

        scope = super().scope(**extra)
        scope.variables["var"] = namespace("var", self.values, unknown)
        return scope


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _hcl(value: Any, sensitive: bool, indent: int = 0) -> str:
    pad = " " * indent
    if isinstance(value, str):
        return _quote("<sensitive>" if sensitive else value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return num_text(value)
    if isinstance(value, list):
        if not value:
            return "[]"
        items = "".join(f"{pad}  {_hcl(v, sensitive, indent + 2)},\n" for v in value)
        return f"[\n{items}{pad}]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = "".join(f"{pad}  {_quote(k)} = {_hcl(v, sensitive, indent + 2)}\n" for k, v in value.items())
        return f"{{\n{items}{pad}}}"
    return _quote(str(value))


def _printable(value: Any, sensitive: bool, known: bool) -> str:
    if not known:
        text = "<unknown>"
    elif isinstance(value, str):
        text = "<sensitive>" if sensitive else value
    else:
        text = _hcl(value, sensitive)
    return _quote(text)


def inspect_hcl2(
    tpl: Template,
    var_files: Sequence[str] = (),
    cli_vars: Iterable[tuple[str, str]] = (),
    environ: Mapping[str, str] | None = None,
) -> str:
    """The whole text `packer inspect` prints for an HCL2 template."""
    import os

    env = environ if environ is not None else os.environ
    ev = _InspectEvaluator(tpl, env)
    body = ev.state.body
    decls = declarations(body)
    problems: list[Any] = []
    collect_variables(ev, decls, var_files, cli_vars, env, problems)
    # the command prints this text through the redactor, as it prints everything
    tpl.sensitive_values.extend(sensitive_strings(decls, ev.values))
    if problems:
        raise TemplateError(str(problems[0]), f"in {tpl.display_path}")
    out = ["Packer Inspect: HCL2 mode\n\n", "> input-variables:\n\n"]
    for name in sorted(decls):
        sensitive = decls[name].get("sensitive") is True
        out.append(f"var.{name}: {_printable(ev.values.get(name), sensitive, name in ev.values)}\n")
    out.append("\n> local-variables:\n\n")
    for block in blocks(body.get("locals")):
        ev.locals_raw.update(strip_meta(block))
    sensitive_locals = set()
    for block in blocks(body.get("local")):
        for labels, lbody in labelled(block, 1):
            ev.locals_raw[labels[0]] = lbody.get("expression")
            if lbody.get("sensitive") is True:
                sensitive_locals.add(labels[0])
    for block in blocks(body.get("data")):
        for labels, dbody in labelled(block, 2):
            ev.data_raw[(labels[0], labels[1])] = dbody
    for name in sorted(ev.locals_raw):
        try:
            value, known = ev.local(name), True
        except _Unknown:
            value, known = None, False
        except TemplateError:
            value, known = None, False
        sensitive = name in sensitive_locals
        if sensitive and known:
            tpl.sensitive_values.extend(sensitive_strings({name: {"sensitive": True}}, {name: value}))
        out.append(f"local.{name}: {_printable(value, sensitive, known)}\n")
    out.append("\n")
    out.append(_builds(ev, body))
    out.append("\n")
    return "".join(out)


def _literal(ev: Evaluator, raw: Any) -> str:
    try:
        value = evaluate(raw, ev.scope())
    except (TemplateError, _Unknown):
        return unquote(raw)
    return value if isinstance(value, str) else unquote(raw)


def _component(ev: Evaluator, labels: list[str], body: dict[str, Any]) -> str:
    name = _literal(ev, body["name"]) if "name" in body else ""
    return f"{labels[0]}.{name}" if name else labels[0]


def _builds(ev: Evaluator, body: dict[str, list[Any]]) -> str:
    out = ["> builds:\n"]
    for i, build in enumerate(blocks(body.get("build"))):
        name = _literal(ev, build["name"]) if "name" in build else ""
        out.append(f"\n  > {name or f'<unnamed build {i}>'}:\n")
        if "description" in build:
            description = _literal(ev, build["description"])
            if description:
                out.append(f"\n  > Description: {description}\n")
        out.append("\n    sources:\n")
        sources = [source_key(unquote(ref)) for ref in build.get("sources", []) or [] if isinstance(ref, str)]
        for block in blocks(build.get("source")):
            sources += [source_key(labels[0]) for labels, _ in labelled(block, 1)]
        if not sources:
            out.append("\n      <no source>\n")
        out += [f"\n      {s}\n" for s in sources]
        out.append("\n    provisioners:\n\n")
        provisioners = [_component(ev, labels, pbody) for block in blocks(build.get("provisioner"))
                        for labels, pbody in labelled(block, 1)]  # fmt: skip
        if not provisioners:
            out.append("      <no provisioner>\n")
        out += [f"      {p}\n" for p in provisioners]
        out.append("\n    post-processors:\n")
        chains = [[_component(ev, labels, pbody)] for block in blocks(build.get("post-processor"))
                  for labels, pbody in labelled(block, 1)]  # fmt: skip
        for group in blocks(build.get("post-processors")):
            chains.append([_component(ev, labels, pbody) for block in blocks(group.get("post-processor"))
                           for labels, pbody in labelled(block, 1)])  # fmt: skip
        if not chains:
            out.append("\n      <no post-processor>\n")
        for j, chain in enumerate(chains):
            out.append(f"\n      {j}:\n")
            out += [f"        {p}\n" for p in chain]
    return "".join(out)
