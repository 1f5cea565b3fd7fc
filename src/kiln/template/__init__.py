"""Templates: loading (legacy JSON; HCL2 later), validation, variables and the `{{ }}` engine.

The public surface, used by `kiln build/validate/inspect`:

    load_template(path) -> Template          parse only (all `validate -syntax-only` needs)
    validate_template(template)              whole-template checks, min_packer_version
    resolve_variables(template, var_files, cli_vars, environ) -> dict[str, str]
    parse_var_flag("name=value") -> (name, value)
    InterpContext, render(text, ctx)

Everything a user can get wrong raises kiln.errors.TemplateError (TemplateProblems for several).
Loaders and the variable resolver are imported on first use.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence

from kiln.errors import TemplateError

from .interpolate import InterpContext, render
from .model import ComponentSpec, Template, Variable

__all__ = [
    "ComponentSpec",
    "InterpContext",
    "Template",
    "TemplateError",
    "Variable",
    "load_template",
    "parse_var_flag",
    "render",
    "resolve_variables",
    "validate_template",
]


def is_hcl2(path: str) -> bool:
    """Whether `path` names HCL2 templates: a folder, a .pkr.hcl or a .pkr.json file."""
    return path != "-" and (os.path.isdir(path) or path.endswith((".pkr.hcl", ".pkr.json")))


def load_template(path: str) -> Template:
    """Read and parse a template ("-": standard input)."""
    if is_hcl2(path):
        raise TemplateError(
            f"{path}: HCL2 templates are not supported yet",
            "use a legacy JSON template (a .json file) for now",
        )
    from .json_loader import load_json_template

    return load_json_template(path)


def validate_template(template: Template, version: str | None = None) -> None:
    """Packer's whole-template checks; `version` overrides the Packer version compared with
    min_packer_version (kiln.PACKER_COMPATIBLE_VERSION by default)."""
    from .json_loader import validate_template as check

    check(template, version)


def resolve_variables(
    template: Template,
    var_files: Sequence[str] = (),
    cli_vars: Iterable[tuple[str, str]] | Mapping[str, str] = (),
    environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    from .variables import resolve_variables as resolve

    return resolve(template, var_files, cli_vars, environ)


def parse_var_flag(text: str) -> tuple[str, str]:
    from .variables import parse_var_flag as parse

    return parse(text)
