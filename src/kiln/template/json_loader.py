"""Loading a legacy JSON template into the `Template` model.

Two levels, as in Packer: `load_json_template` parses (JSON syntax, duplicate keys, root keys, the
shape of every component) and is all that `validate -syntax-only` runs; `validate_template` then
checks what needs the whole template (at least one builder, only/except/override naming builders that
exist, min_packer_version). Each level reports every problem it finds at once, each with its path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from kiln import weak
from kiln.errors import TemplateError, TemplateProblems

from .jsonsyntax import loads
from .model import ComponentSpec, Template, Variable

ROOT_KEYS = (
    "description", "min_packer_version", "variables", "sensitive-variables", "builders",
    "provisioners", "post-processors", "error-cleanup-provisioner", "push",
)  # fmt: skip
_PROVISIONER_KEYS = ("type", "only", "except", "override", "pause_before", "max_retries", "timeout", "cache")
_PP_KEYS = ("type", "name", "only", "except", "keep_input_artifact")


def read_source(path: str, what: str = "template") -> tuple[bytes, str]:
    """The bytes of `path` ("-": standard input) and the name to show for it."""
    from .source import read_bytes

    return read_bytes(path, what)


def load_json_template(path: str) -> Template:
    data, source = read_source(path)
    raw = loads(data, source)
    if path == "-":
        tpl_path, tpl_dir = None, Path.cwd()
    else:
        tpl_path = Path(os.path.abspath(path))
        tpl_dir = tpl_path.parent
    return parse_template(raw, source, tpl_path, tpl_dir)


class MinVersionError(TemplateError):
    """The template needs a newer Packer than the one kiln is compatible with (Packer prints this
    one as "Error: \n\n<message>\n\n\n")."""


class Problems:
    """Every problem found, each a line naming its place (`builders[1].type: ...`)."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.items.append(f"{path}: {message}" if path else message)


def _names(value: Any, path: str, problems: Problems, weakly: bool) -> list[str]:
    """only/except: a list of builder names (weak decoding also takes a single name)."""
    if value is None:
        return []
    if weakly and not isinstance(value, list):
        value = [value]
    if not isinstance(value, list):
        problems.add(path, f"expected a list of builder names, got {weak.type_name(value)}")
        return []
    names: list[str] = []
    for i, item in enumerate(value):
        text = weak.to_str(item) if weakly else (item if isinstance(item, str) else None)
        if text is None:
            problems.add(f"{path}[{i}]", f"expected a builder name (string), got {weak.type_name(item)}")
        else:
            names.append(text)
    return names


def read_duration(value: Any, path: str, problems: Problems) -> float:
    """A provisioner's pause_before / timeout in seconds (0 when unset); a problem goes to `problems`."""
    if value is None:
        return 0.0
    try:
        return float(weak.template_duration(value))
    except ValueError as exc:
        problems.add(path, str(exc))
        return 0.0


def parse_template(raw: Any, source: str, path: Path | None, folder: Path) -> Template:
    problems = Problems()
    tpl = Template(path=path, dir=folder, kind="json", source=source)
    if not isinstance(raw, dict):
        raise TemplateError(
            f"{source}: a template must be a JSON object, got {weak.type_name(raw)}",
            'start from {"builders": [{"type": "null", "communicator": "none"}]}',
        )
    for key in sorted(raw):
        if key.startswith("_"):
            if not isinstance(raw[key], str):
                problems.add(key, "a root level comment must be a string")
        elif key not in ROOT_KEYS:
            problems.add("", f"Unknown root level key in template: '{key}'")
    for key in ("description", "min_packer_version"):
        value = raw.get(key)
        if value is not None and not isinstance(value, str):
            problems.add(key, f"expected a string, got {weak.type_name(value)}")
    description = raw.get("description")
    tpl.description = description if isinstance(description, str) else ""
    version = raw.get("min_packer_version")
    tpl.min_version = version if isinstance(version, str) else ""
    _variables(raw, tpl, problems)
    _builders(raw.get("builders"), tpl, problems)
    _provisioners(raw.get("provisioners"), tpl, problems)
    _post_processors(raw.get("post-processors"), tpl, problems)
    cleanup = raw.get("error-cleanup-provisioner")
    if cleanup is not None:
        tpl.error_cleanup_provisioner = _provisioner(cleanup, "error-cleanup-provisioner", problems)
    push = raw.get("push")
    if push is not None and not isinstance(push, dict):
        problems.add("push", f"expected an object, got {weak.type_name(push)}")
    if problems.items:
        raise TemplateProblems(source, problems.items)
    return tpl


def _variables(raw: dict[str, Any], tpl: Template, problems: Problems) -> None:
    variables = raw.get("variables")
    if variables is not None and not isinstance(variables, dict):
        problems.add("variables", f"expected an object of name: default, got {weak.type_name(variables)}")
        variables = None
    sensitive = raw.get("sensitive-variables")
    names: list[str] = []
    if sensitive is not None:
        if not isinstance(sensitive, list):
            problems.add("sensitive-variables", f"expected a list of names, got {weak.type_name(sensitive)}")
        else:
            for i, item in enumerate(sensitive):
                if isinstance(item, str):
                    names.append(item)
                else:
                    problems.add(f"sensitive-variables[{i}]", f"expected a name, got {weak.type_name(item)}")
    tpl.sensitive_variables = names
    for name, default in (variables or {}).items():
        if default is not None and not isinstance(default, str):
            problems.add(
                f"variables.{name}",
                f"expected a string default (or null for a required variable), got {weak.type_name(default)}",
            )
            continue
        tpl.variables[name] = Variable(name=name, default=default, sensitive=name in names)


def _list(value: Any, key: str, problems: Problems) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        problems.add(key, f"expected a list, got {weak.type_name(value)}")
        return []
    return value


def _builders(value: Any, tpl: Template, problems: Problems) -> None:
    seen: set[str] = set()
    for i, item in enumerate(_list(value, "builders", problems)):
        path = f"builders[{i}]"
        if not isinstance(item, dict):
            problems.add(path, f"expected an object, got {weak.type_name(item)}")
            continue
        btype = weak.to_str(item.get("type", ""))
        name = weak.to_str(item.get("name", ""))
        if btype is None:
            problems.add(f"{path}.type", f"expected a string, got {weak.type_name(item['type'])}")
            continue
        if name is None:
            problems.add(f"{path}.name", f"expected a string, got {weak.type_name(item['name'])}")
            continue
        if not btype:
            problems.add(path, "missing 'type'")
            continue
        name = name or btype
        if name in seen:
            problems.add(
                f"{path}.name",
                f"builder with name '{name}' already exists",
            )
            continue
        seen.add(name)
        config = {k: v for k, v in item.items() if k not in ("type", "name")}
        tpl.builders.append(ComponentSpec(type=btype, path=path, config=config, name=name))


def _provisioners(value: Any, tpl: Template, problems: Problems) -> None:
    for i, item in enumerate(_list(value, "provisioners", problems)):
        spec = _provisioner(item, f"provisioners[{i}]", problems)
        if spec is not None:
            tpl.provisioners.append(spec)


def _provisioner(item: Any, path: str, problems: Problems) -> ComponentSpec | None:
    if not isinstance(item, dict):
        problems.add(path, f"expected an object, got {weak.type_name(item)}")
        return None
    before = len(problems.items)
    ptype = weak.to_str(item.get("type", ""))
    if ptype is None:
        problems.add(f"{path}.type", f"expected a string, got {weak.type_name(item['type'])}")
    elif not ptype:
        problems.add(path, "missing 'type'")
    only = _names(item.get("only"), f"{path}.only", problems, weakly=True)
    except_ = _names(item.get("except"), f"{path}.except", problems, weakly=True)
    override: dict[str, dict[str, Any]] = {}
    raw_override = item.get("override")
    if raw_override is not None:
        if not isinstance(raw_override, dict):
            problems.add(f"{path}.override", f"expected an object, got {weak.type_name(raw_override)}")
        else:
            for name, cfg in raw_override.items():
                if not isinstance(cfg, dict):
                    problems.add(f"{path}.override.{name}", f"expected an object, got {weak.type_name(cfg)}")
                else:
                    override[name] = cfg
    pause = read_duration(item.get("pause_before"), f"{path}.pause_before", problems)
    timeout = read_duration(item.get("timeout"), f"{path}.timeout", problems)
    retries, retries_text = 0, ""
    raw_retries = item.get("max_retries")
    if raw_retries is not None:
        text = weak.to_str(raw_retries)
        if text is None:
            problems.add(f"{path}.max_retries", f"expected a number, got {weak.type_name(raw_retries)}")
        elif "{{" in text:
            retries_text = text
        elif text:
            parsed = weak.parse_int(text)
            if parsed is None:
                problems.add(f"{path}.max_retries", f'`max_retries` must be a valid integer, got "{text}"')
            retries = parsed or 0
    cache = _cache_flag(item.get("cache"), f"{path}.cache", problems)
    if len(problems.items) != before or not ptype:
        return None
    config = {k: v for k, v in item.items() if k not in _PROVISIONER_KEYS}
    return ComponentSpec(
        type=ptype, path=path, config=config, only=only, except_=except_, override=override,
        pause_before=pause, timeout=timeout, max_retries=retries, max_retries_text=retries_text,
        cache=cache,
    )  # fmt: skip


def _cache_flag(value: Any, path: str, problems: Problems) -> bool:
    """A provisioner's `cache` (true unless false is given)."""
    if value is None:
        return True
    parsed = value if isinstance(value, bool) else weak.parse_bool(weak.to_str(value) or "")
    if parsed is None:
        problems.add(path, f"expected true or false, got {weak.type_name(value)} {value!r}")
        return True
    return parsed


def _post_processors(value: Any, tpl: Template, problems: Problems) -> None:
    for i, item in enumerate(_list(value, "post-processors", problems)):
        path = f"post-processors[{i}]"
        if isinstance(item, str | dict):
            elements = [(path, item)]
        elif isinstance(item, list):
            elements = []
            for j, inner in enumerate(item):
                if isinstance(inner, list):
                    problems.add(f"{path}[{j}]", "sequence not allowed to be nested in a sequence")
                elif isinstance(inner, str | dict):
                    elements.append((f"{path}[{j}]", inner))
                else:
                    problems.add(f"{path}[{j}]", f"unknown format: {weak.type_name(inner)}")
        else:
            problems.add(
                path, f"bad format: expected a name, an object or an array, got {weak.type_name(item)}"
            )
            continue
        chain = [spec for p, e in elements if (spec := _post_processor(e, p, problems)) is not None]
        if chain:
            tpl.post_processors.append(chain)


def _post_processor(item: str | dict[str, Any], path: str, problems: Problems) -> ComponentSpec | None:
    if isinstance(item, str):
        item = {"type": item}
    before = len(problems.items)
    values: dict[str, str] = {}
    for key in ("type", "name"):
        value = item.get(key, "")
        if not isinstance(value, str):
            problems.add(f"{path}.{key}", f"expected a string, got {weak.type_name(value)}")
        values[key] = value if isinstance(value, str) else ""
    keep = item.get("keep_input_artifact")
    if keep is not None and not isinstance(keep, bool):
        problems.add(f"{path}.keep_input_artifact", f"expected true or false, got {weak.type_name(keep)}")
        keep = None
    only = _names(item.get("only"), f"{path}.only", problems, weakly=False)
    except_ = _names(item.get("except"), f"{path}.except", problems, weakly=False)
    if "type" in values and not values["type"] and len(problems.items) == before:
        problems.add(path, "type is required")
    if len(problems.items) != before:
        return None
    config = {k: v for k, v in item.items() if k not in _PP_KEYS}
    return ComponentSpec(
        type=values["type"], path=path, config=config, name=values["name"] or values["type"],
        only=only, except_=except_, keep_input_artifact=keep,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Whole-template checks (Packer's Template.Validate and min_packer_version)


def validate_template(tpl: Template, version: str | None = None) -> None:
    """Raise TemplateProblems listing every whole-template problem, or, once those pass, a
    TemplateError when the template needs a newer Packer than the one kiln is compatible with."""
    problems = Problems()
    builders = {b.name for b in tpl.builders}
    if not tpl.builders:
        problems.add("builders", "at least one builder must be defined")
    components = [("", p) for p in tpl.provisioners] + [("", p) for c in tpl.post_processors for p in c]
    for _, spec in components:
        if spec.only and spec.except_:
            problems.add(spec.path, "only one of 'only' or 'except' may be specified")
            continue
        for key, names in (("only", spec.only), ("except", spec.except_)):
            for name in names:
                if name not in builders:
                    problems.add(f"{spec.path}.{key}", f"'{key}' specified builder '{name}' not found")
        for name in spec.override:
            if name not in builders:
                problems.add(f"{spec.path}.override", f"override '{name}' doesn't exist")
    if problems.items:
        raise TemplateProblems(tpl.display_path, problems.items, _known(builders))
    if tpl.min_version:
        check_min_version(tpl.min_version, version)


def _known(builders: set[str]) -> str | None:
    if not builders:
        return 'add a builder, e.g. {"type": "null", "communicator": "none"}'
    return "builder names are: " + ", ".join(sorted(builders))


def check_min_version(minimum: str, version: str | None = None) -> None:
    from kiln import PACKER_COMPATIBLE_VERSION

    from .version import parse_version

    actual = parse_version(version or PACKER_COMPATIBLE_VERSION)
    assert actual is not None
    wanted = parse_version(minimum)
    if wanted is None:
        raise TemplateError(
            f"min_version is invalid: Malformed version: {minimum}",
            'write min_packer_version as a version such as "1.7.0"',
        )
    if actual.key < wanted.key:
        raise MinVersionError(f"This template requires Packer version {wanted} or higher; using {actual}")
