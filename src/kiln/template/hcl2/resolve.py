"""Evaluating an HCL2 template once its variables are known: variables (defaults < PKR_VAR_ env <
*.auto.pkrvars.* < -var-file < -var), validation rules, locals, `null` data sources, sources and
build blocks (with dynamic blocks) into the builders, provisioners and post-processors of the model."""

from __future__ import annotations

import glob
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from kiln.errors import TemplateError, TemplateProblems

from ..json_loader import _duration, _Problems
from ..model import ComponentSpec, Template
from .expr import Deferred, HclDiagnostic, HCLError, Scope, _str, compile_expression, evaluate, namespace
from .functions import make_functions
from .loader import HclState, blocks, is_block, labelled, parse_hcl_file, unquote

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
    def __init__(self, tpl: Template, environ: Mapping[str, str]) -> None:
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
        self.data[key] = {"input": config.get("input"), "output": config.get("input")}
        return self.data[key]


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
) -> dict[str, str]:
    from kiln.engine.secrets import REDACTOR

    ev = _Evaluator(tpl, environ)
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
            for piece in _strings(ev.values[name]):
                REDACTOR.add(piece)
        for rule in blocks(decl.get("validation")):
            try:
                ok = evaluate(rule.get("condition"), ev.scope())
            except TemplateError as exc:
                problems.append(f"variable {name}: validation: {exc.message}")
                continue
            if ok is not True:
                message = _text(evaluate(rule.get("error_message", '"invalid value"'), ev.literal_scope()))
                problems.append(f'Invalid value for variable "{name}": {message}')
    _collect_locals(ev, body, problems)
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
    _builds(ev, body, problems)
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


def _collect_locals(ev: _Evaluator, body: dict[str, list[Any]], problems: list[str]) -> None:
    for block in blocks(body.get("locals")):
        for name, raw in _strip_meta(block).items():
            if name in ev.locals_raw:
                problems.append(f'Duplicate local value: "{name}" is declared twice')
            ev.locals_raw[name] = raw
    for block in blocks(body.get("local")):
        for labels, lbody in labelled(block, 1):
            ev.locals_raw[labels[0]] = lbody.get("expression")
            if lbody.get("sensitive") is True:
                ev._computing.clear()


# ---------------------------------------------------------------------------------------------
# sources and builds


def _source_key(ref: str) -> str:
    for prefix in ("source.", "sources."):
        if ref.startswith(prefix):
            return ref[len(prefix) :]
    return ref


def _builds(ev: _Evaluator, body: dict[str, list[Any]], problems: list[Any]) -> None:
    tpl = ev.tpl
    sources: dict[str, dict[str, Any]] = {}
    for block in blocks(body.get("source")):
        for labels, sbody in labelled(block, 2):
            key = f"{labels[0]}.{labels[1]}"
            if key in sources:
                problems.append(f'Duplicate source "{key}"')
            sources[key] = sbody
    builds = blocks(body.get("build"))
    files = ev.state.files
    if not builds:
        problems.append(
            HclDiagnostic(
                "Missing build block",
                "",
                0,
                "A build block with one or more sources is required for executing a build.",
            )
        )
        return
    seen: set[str] = set()
    for bi, build in enumerate(builds):
        path = f"build[{bi}]"
        bname = _text(evaluate(build.get("name", '""'), ev.scope())) if "name" in build else ""
        refs = _build_sources(ev, build, path, problems)
        if not refs:
            file, line = _line_of(files, r"^[ \t]*build[ \t]*\{", bi)
            problems.append(
                HclDiagnostic(
                    "missing source reference", file, line, "a build block needs at least one source"
                )
            )
        named: list[tuple[str, str, str]] = []  # (full name, type, source name)
        for key, name_override, overrides in refs:
            if key not in sources:
                file, line = _line_of(files, r"^[ \t]*build[ \t]*\{", bi)
                problems.append(
                    HclDiagnostic(
                        f"Unknown source {key}", file, line, f"Known: [{', '.join(sorted(sources))}]"
                    )
                )
                continue
            stype, sname = key.split(".", 1)
            sname = name_override or sname
            full = f"{bname}.{stype}.{sname}" if bname else f"{stype}.{sname}"
            if full in seen:
                problems.append(f"{path}: duplicate build {full}")
                continue
            seen.add(full)
            scope = ev.scope(source=namespace("source", {"name": sname, "type": stype}),
                             build=_build_ns(bname))  # fmt: skip
            try:
                config = evaluate(_strip_meta(sources[key]), scope)
                config.update(overrides(scope))
            except TemplateError as exc:
                problems.append(f"source.{key}: {exc.message}")
                continue
            config.pop("name", None)
            tpl.builders.append(
                ComponentSpec(
                    type=stype, path=f"source.{key}", config=_plain(config), name=full, build_name=sname
                )
            )
            named.append((full, stype, sname))
        _provisioners(ev, build, path, named, bname, problems)
        _post_processors(ev, build, path, named, bname, problems)


def _build_ns(bname: str) -> Any:
    return namespace("build", {"name": bname}, lambda key: Deferred(f"build `{key}`"))


def _plain(value: Any) -> Any:
    """Deferred values become their `{{ }}` text: the build renders them."""
    if isinstance(value, Deferred):
        return str(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


Overrides = Callable[[Scope], dict[str, Any]]


def _evaluator_of(body: dict[str, Any]) -> Overrides:
    def run(sc: Scope) -> dict[str, Any]:
        return dict(evaluate(body, sc))

    return run


def _build_sources(
    ev: _Evaluator, build: dict[str, Any], path: str, problems: list[str]
) -> list[tuple[str, str, Overrides]]:
    refs: list[tuple[str, str, Overrides]] = []
    raw_refs = build.get("sources", []) or []
    if not isinstance(raw_refs, list):
        problems.append(f'{path}.sources: expected a list of source references such as ["source.null.x"]')
        raw_refs = []
    for ref in raw_refs:
        refs.append((_source_key(unquote(ref)), "", lambda sc: {}))
    for block in blocks(build.get("source")):
        for labels, sbody in labelled(block, 1):
            body = _strip_meta(sbody)
            name = _text(evaluate(body.pop("name"), ev.scope())) if "name" in body else ""
            refs.append((_source_key(labels[0]), name, _evaluator_of(body)))
    for block in blocks(build.get("dynamic")):
        for labels, dbody in labelled(block, 1):
            if labels[0] != "source":
                continue
            for key, name, overrides in _dynamic(ev, dbody, "source", path, problems):
                refs.append((key, name, overrides))
    return refs


def _dynamic(
    ev: _Evaluator, dbody: dict[str, Any], kind: str, path: str, problems: list[str]
) -> list[tuple[str, str, Overrides]]:
    out: list[tuple[str, str, Overrides]] = []
    try:
        collection = evaluate(dbody.get("for_each"), ev.scope())
        labels = [unquote(x) for x in (dbody.get("labels") or [])]
    except TemplateError as exc:
        problems.append(f"{path}: dynamic {kind}: {exc.message}")
        return out
    iterator = unquote(dbody.get("iterator", kind))
    content = _strip_meta(blocks(dbody.get("content"))[0]) if blocks(dbody.get("content")) else {}
    if not isinstance(collection, dict | list):
        problems.append(f"{path}: dynamic {kind}: for_each must be a map or a list")
        return out
    items = sorted(collection.items()) if isinstance(collection, dict) else list(enumerate(collection))
    for k, v in items:
        it = namespace(iterator, {"key": k, "value": v})
        try:
            body = dict(content)
            name = _text(evaluate(body.pop("name"), ev.scope(**{iterator: it}))) if "name" in body else ""
        except TemplateError as exc:
            problems.append(f"{path}: dynamic {kind}: {exc.message}")
            continue
        key = _source_key(labels[0]) if labels else ""

        def overrides(sc: Scope, b: dict[str, Any] = body, it: Any = it) -> dict[str, Any]:
            return dict(evaluate(b, sc.child(**{iterator: it})))

        out.append((key, name, overrides))
    return out


def _matches(names: list[str], full: str, stype: str, sname: str) -> bool:
    return any(_source_key(n) in (full, f"{stype}.{sname}", sname) for n in names)


def _component_blocks(
    ev: _Evaluator, build: dict[str, Any], kind: str, path: str, problems: list[str]
) -> list[tuple[str, Overrides]]:
    """(type, body-evaluator) for each `kind` block and dynamic `kind` block of a build."""
    out: list[tuple[str, Overrides]] = []
    for block in blocks(build.get(kind)):
        for labels, pbody in labelled(block, 1):
            out.append((labels[0], _evaluator_of(_strip_meta(pbody))))
    for block in blocks(build.get("dynamic")):
        for labels, dbody in labelled(block, 1):
            if labels[0] == kind:
                for ptype, _, overrides in _dynamic(ev, dbody, kind, path, problems):
                    out.append((ptype, overrides))
    return out


def _meta_names(config: dict[str, Any], key: str) -> list[str]:
    value = config.pop(key, None)
    if value is None:
        return []
    return [_str(v) for v in (value if isinstance(value, list) else [value])]


def _provisioners(
    ev: _Evaluator, build: dict[str, Any], path: str, named: list[tuple[str, str, str]], bname: str,
    problems: list[str],
) -> None:  # fmt: skip
    specs = _component_blocks(ev, build, "provisioner", path, problems)
    cleanup = _component_blocks(ev, build, "error-cleanup-provisioner", path, problems)
    for i, (ptype, body) in enumerate(specs + cleanup[:1]):
        is_cleanup = i >= len(specs)
        ppath = f"{path}.error-cleanup-provisioner" if is_cleanup else f"{path}.provisioner[{i}]"
        for full, stype, sname in named:
            spec = _component(ev, ptype, body, ppath, full, stype, sname, bname, problems, provisioner=True)
            if spec is None:
                continue
            if is_cleanup:
                if ev.tpl.error_cleanup_provisioner is None:
                    ev.tpl.error_cleanup_provisioner = spec
            else:
                ev.tpl.provisioners.append(spec)


def _post_processors(
    ev: _Evaluator, build: dict[str, Any], path: str, named: list[tuple[str, str, str]], bname: str,
    problems: list[str],
) -> None:  # fmt: skip
    chains: list[list[tuple[str, Overrides]]] = [
        [pp] for pp in _component_blocks(ev, build, "post-processor", path, problems)
    ]
    for block in blocks(build.get("post-processors")):
        chains.append(_component_blocks(ev, block, "post-processor", path, problems))
    for ci, chain in enumerate(chains):
        for full, stype, sname in named:
            specs = []
            for j, (ptype, body) in enumerate(chain):
                spec = _component(ev, ptype, body, f"{path}.post-processors[{ci}][{j}]", full, stype, sname,
                                  bname, problems, provisioner=False)  # fmt: skip
                if spec is not None:
                    specs.append(spec)
            if specs:
                ev.tpl.post_processors.append(specs)


def _component(
    ev: _Evaluator, ptype: str, body: Overrides, path: str, full: str, stype: str, sname: str, bname: str,
    problems: list[str], provisioner: bool,
) -> ComponentSpec | None:  # fmt: skip
    scope = ev.scope(source=namespace("source", {"name": sname, "type": stype}), build=_build_ns(bname))
    try:
        config = body(scope)
    except TemplateError as exc:
        problems.append(f"{path}: {exc.message}")
        return None
    only = _meta_names(config, "only")
    except_ = _meta_names(config, "except")
    if only and except_:
        problems.append(f"{path}: only one of 'only' or 'except' may be specified")
        return None
    if (only and not _matches(only, full, stype, sname)) or _matches(except_, full, stype, sname):
        return None
    name = _text(config.pop("name", "")) or ptype
    spec = ComponentSpec(type=ptype, path=path, config={}, name=name, only=[full])
    if provisioner:
        p = _Problems()
        spec.pause_before = _duration(config.pop("pause_before", None), f"{path}.pause_before", p)
        spec.timeout = _duration(config.pop("timeout", None), f"{path}.timeout", p)
        retries = config.pop("max_retries", None)
        if retries is not None:
            try:
                spec.max_retries = int(_str(retries))
            except ValueError:
                p.add(f"{path}.max_retries", f"`max_retries` must be a valid integer, got {retries!r}")
        override = config.pop("override", None) or {}
        for key, value in override.items() if isinstance(override, dict) else []:
            if _matches([key], full, stype, sname) and isinstance(value, dict):
                spec.override[full] = _plain(value)
        problems.extend(p.items)
        if p.items:
            return None
    else:
        keep = config.pop("keep_input_artifact", None)
        spec.keep_input_artifact = keep if isinstance(keep, bool) else None
    spec.config = _plain(config)
    return spec
