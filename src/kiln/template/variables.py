"""User variables of a JSON template: defaults < -var-file (in order) < -var (in order).

Values may use `{{env `X`}}` (only here) and other user variables (`{{user `other`}}`, in any order,
as long as they do not form a cycle). The values of sensitive variables are put in
`template.sensitive_values`; the caller registers them with the redactor before it prints anything.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence

from kiln import weak
from kiln.errors import TemplateError, TemplateProblems

from .interpolate import InterpContext, UnknownUserVariable, render
from .json_loader import read_source
from .jsonsyntax import loads
from .model import Template


def parse_var_flag(text: str) -> tuple[str, str]:
    """`-var 'name=value'` -> (name, value)."""
    name, sep, value = text.partition("=")
    if not sep:
        raise TemplateError(f"-var '{text}': No '=' value in arg", "write -var 'name=value'")
    if not name:
        raise TemplateError(f"-var '{text}': the variable name is empty", "write -var 'name=value'")
    return name, value


def load_var_file(path: str) -> dict[str, str]:
    """A JSON var file: an object of variable name -> string value."""
    data, source = read_source(path, what="var")
    raw = loads(data, source)
    if not isinstance(raw, dict):
        raise TemplateError(
            f"{source}: a var file must be a JSON object of name: value", '{"region": "cn-hangzhou"}'
        )
    problems = []
    values: dict[str, str] = {}
    for name, value in raw.items():
        if isinstance(value, str):
            values[name] = value
        else:
            problems.append(f"{name}: expected a string value, got {weak.type_name(value)}")
    if problems:
        raise TemplateProblems(source, problems, 'quote the value: "count": "3"')
    return values


def resolve_variables(
    template: Template,
    var_files: Sequence[str] = (),
    cli_vars: Iterable[tuple[str, str]] | Mapping[str, str] = (),
    environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The value of every user variable; raises TemplateError/TemplateProblems naming each
    problem (required and unset, -var for an undeclared variable, bad references). The values of
    sensitive variables go to template.sensitive_values."""
    if isinstance(cli_vars, Mapping):
        cli_vars = list(cli_vars.items())
    source = template.display_path
    values: dict[str, str | None] = {name: v.default for name, v in template.variables.items()}
    for path in var_files:
        values.update(load_var_file(path))
    cli_pairs = list(cli_vars)
    undeclared = sorted({name for name, _ in cli_pairs if name not in template.variables})
    if undeclared:
        raise TemplateProblems(
            source,
            [
                f'-var "{name}": the variable is not declared in the template\'s "variables"'
                for name in undeclared
            ],
            f'declare it: "variables": {{"{undeclared[0]}": ""}}',
        )
    for name, value in cli_pairs:
        values[name] = value
    missing = sorted(name for name, value in values.items() if value is None)
    if missing:
        raise TemplateProblems(
            source,
            [f"required variable not set: {name}" for name in missing],
            f"set it with -var '{missing[0]}=VALUE' or in a -var-file",
        )
    resolved = _render_all({k: v for k, v in values.items() if v is not None}, template, environ, source)
    sensitive = set(template.sensitive_variables) | {n for n, v in template.variables.items() if v.sensitive}
    template.sensitive_values.extend(resolved[name] for name in sorted(sensitive) if resolved.get(name))
    return resolved


def _render_all(
    raw: dict[str, str], template: Template, environ: Mapping[str, str] | None, source: str
) -> dict[str, str]:
    resolved: dict[str, str] = {}
    ctx = InterpContext(
        user_variables=resolved,
        template_dir=str(template.dir),
        allow_env=True,
        environ=environ if environ is not None else os.environ,
    )
    pending = dict(sorted(raw.items()))
    problems: list[str] = []
    while pending:
        progress = False
        waiting: dict[str, str] = {}
        for name, text in list(pending.items()):
            try:
                resolved[name] = render(text, ctx)
            except UnknownUserVariable as exc:
                if exc.name in pending and exc.name != name:
                    waiting[name] = exc.name
                    continue
                problems.append(
                    f"variables.{name}: uses user variable '{exc.name}', which is not defined"
                    if exc.name not in pending
                    else f"variables.{name}: refers to itself"
                )
            except TemplateError as exc:
                problems.append(f"variables.{name}: error interpolating default value: {exc}")
            del pending[name]
            progress = True
        if not progress:
            cycle = ", ".join(f"{n} -> {waiting[n]}" for n in sorted(waiting))
            problems.append(f"variables refer to each other in a cycle: {cycle}")
            break
    if problems:
        raise TemplateProblems(source, problems, "each variable may use variables that do not use it")
    return resolved
