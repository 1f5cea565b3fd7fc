"""Sources and build blocks of an HCL2 template into the model: one builder per (build, source), and
per-source copies of provisioners and post-processor chains (so that `source.name` is right in each),
each with `only` naming its build. Dynamic `source` and `provisioner` blocks are expanded here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kiln.errors import TemplateError

from ..json_loader import Problems, read_duration
from ..model import ComponentSpec
from .evaluator import Evaluator, line_of, source_key, strip_meta, to_text
from .expr import Deferred, HclDiagnostic, Scope, evaluate, namespace, to_str
from .loader import blocks, labelled, unquote


def build_components(ev: Evaluator, body: dict[str, list[Any]], problems: list[Any]) -> None:
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
        bname = to_text(evaluate(build.get("name", '""'), ev.scope())) if "name" in build else ""
        refs = _build_sources(ev, build, path, problems)
        if not refs:
            file, line = line_of(files, r"^[ \t]*build[ \t]*\{", bi)
            problems.append(
                HclDiagnostic(
                    "missing source reference", file, line, "a build block needs at least one source"
                )
            )
        named: list[tuple[str, str, str]] = []  # (full name, type, source name)
        for key, name_override, overrides in refs:
            if key not in sources:
                file, line = line_of(files, r"^[ \t]*build[ \t]*\{", bi)
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
                config = evaluate(strip_meta(sources[key]), scope)
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
    ev: Evaluator, build: dict[str, Any], path: str, problems: list[str]
) -> list[tuple[str, str, Overrides]]:
    refs: list[tuple[str, str, Overrides]] = []
    raw_refs = build.get("sources", []) or []
    if not isinstance(raw_refs, list):
        problems.append(f'{path}.sources: expected a list of source references such as ["source.null.x"]')
        raw_refs = []
    for ref in raw_refs:
        refs.append((source_key(unquote(ref)), "", lambda sc: {}))
    for block in blocks(build.get("source")):
        for labels, sbody in labelled(block, 1):
            body = strip_meta(sbody)
            name = to_text(evaluate(body.pop("name"), ev.scope())) if "name" in body else ""
            refs.append((source_key(labels[0]), name, _evaluator_of(body)))
    for block in blocks(build.get("dynamic")):
        for labels, dbody in labelled(block, 1):
            if labels[0] != "source":
                continue
            for key, name, overrides in _dynamic(ev, dbody, "source", path, problems):
                refs.append((key, name, overrides))
    return refs


def _dynamic(
    ev: Evaluator, dbody: dict[str, Any], kind: str, path: str, problems: list[str]
) -> list[tuple[str, str, Overrides]]:
    out: list[tuple[str, str, Overrides]] = []
    try:
        collection = evaluate(dbody.get("for_each"), ev.scope())
        labels = [unquote(x) for x in (dbody.get("labels") or [])]
    except TemplateError as exc:
        problems.append(f"{path}: dynamic {kind}: {exc.message}")
        return out
    iterator = unquote(dbody.get("iterator", kind))
    content = strip_meta(blocks(dbody.get("content"))[0]) if blocks(dbody.get("content")) else {}
    if not isinstance(collection, dict | list):
        problems.append(f"{path}: dynamic {kind}: for_each must be a map or a list")
        return out
    items = sorted(collection.items()) if isinstance(collection, dict) else list(enumerate(collection))
    for k, v in items:
        it = namespace(iterator, {"key": k, "value": v})
        try:
            body = dict(content)
            name = to_text(evaluate(body.pop("name"), ev.scope(**{iterator: it}))) if "name" in body else ""
        except TemplateError as exc:
            problems.append(f"{path}: dynamic {kind}: {exc.message}")
            continue
        key = source_key(labels[0]) if labels else ""

        def overrides(sc: Scope, b: dict[str, Any] = body, it: Any = it) -> dict[str, Any]:
            return dict(evaluate(b, sc.child(**{iterator: it})))

        out.append((key, name, overrides))
    return out


def _matches(names: list[str], full: str, stype: str, sname: str) -> bool:
    return any(source_key(n) in (full, f"{stype}.{sname}", sname) for n in names)


def _component_blocks(
    ev: Evaluator, build: dict[str, Any], kind: str, path: str, problems: list[str]
) -> list[tuple[str, Overrides]]:
    """(type, body-evaluator) for each `kind` block and dynamic `kind` block of a build."""
    out: list[tuple[str, Overrides]] = []
    for block in blocks(build.get(kind)):
        for labels, pbody in labelled(block, 1):
            out.append((labels[0], _evaluator_of(strip_meta(pbody))))
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
    return [to_str(v) for v in (value if isinstance(value, list) else [value])]


def _provisioners(
    ev: Evaluator, build: dict[str, Any], path: str, named: list[tuple[str, str, str]], bname: str,
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
    ev: Evaluator, build: dict[str, Any], path: str, named: list[tuple[str, str, str]], bname: str,
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
    ev: Evaluator, ptype: str, body: Overrides, path: str, full: str, stype: str, sname: str, bname: str,
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
    name = to_text(config.pop("name", "")) or ptype
    spec = ComponentSpec(type=ptype, path=path, config={}, name=name, only=[full])
    if provisioner:
        p = Problems()
        spec.pause_before = read_duration(config.pop("pause_before", None), f"{path}.pause_before", p)
        spec.timeout = read_duration(config.pop("timeout", None), f"{path}.timeout", p)
        cache = config.pop("cache", True)
        if isinstance(cache, bool):
            spec.cache = cache
        else:
            p.add(f"{path}.cache", f"expected true or false, got {cache!r}")
        retries = config.pop("max_retries", None)
        if retries is not None:
            try:
                spec.max_retries = int(to_str(retries))
            except ValueError:
                p.add(
                    f"{path}.max_retries", f'`max_retries` must be a valid integer, got "{to_str(retries)}"'
                )
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
