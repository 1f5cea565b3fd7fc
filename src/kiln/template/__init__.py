"""Templates: loading (legacy JSON; HCL2 .pkr.hcl files and folders), validation, variables and the `{{ }}` engine.

The public surface, used by `kiln build/validate/inspect`:

    load_template(path) -> Template          parse only (all `validate -syntax-only` needs)
    validate_template(template)              whole-template checks, min_packer_version (HCL2:
                                             required_version; HCL2's other checks need the
                                             variables, so resolve_variables makes them)
    resolve_variables(template, var_files, cli_vars, environ) -> dict[str, str]
                                             (and template.sensitive_values, for the caller to
                                             register with kiln.core.secrets)
    parse_var_flag("name=value") -> (name, value)
    inspect_hcl2(template, var_files, cli_vars, environ) -> str     `inspect` text of HCL2
    undeclared_variable_warning(name) -> str     for each template.undeclared_variables
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
    "inspect_hcl2",
    "load_template",
    "parse_var_flag",
    "render",
    "resolve_variables",
    "undeclared_variable_warning",
    "validate_template",
]


def is_hcl2(path: str) -> bool:
    """Whether `path` names HCL2 templates: a folder, a .pkr.hcl or a .pkr.json file."""
    return path != "-" and (os.path.isdir(path) or path.endswith((".pkr.hcl", ".pkr.json")))


def load_template(path: str) -> Template:
    """Read and parse a template ("-": standard input)."""
    if is_hcl2(path):
        from .hcl2 import load_hcl2_template

        try:
            return load_hcl2_template(path)
        except (TypeError, ValueError, KeyError, AttributeError, IndexError, RecursionError) as exc:
            raise _unexpected(path, exc) from None
    from .json_loader import load_json_template

    return load_json_template(path)


def validate_template(template: Template, version: str | None = None) -> None:
    """Packer's whole-template checks; `version` overrides the Packer version compared with
    min_packer_version (kiln.PACKER_COMPATIBLE_VERSION by default)."""
    if template.kind == "hcl2":
        from .hcl2 import check_required_version

        if template.hcl is not None and template.hcl.required_version:
            check_required_version(template.hcl.required_version, version)
        return
    from .json_loader import validate_template as check

    check(template, version)


def resolve_variables(
    template: Template,
    var_files: Sequence[str] = (),
    cli_vars: Iterable[tuple[str, str]] | Mapping[str, str] = (),
    environ: Mapping[str, str] | None = None,
    *,
    evaluate_datasources: bool = True,
) -> dict[str, str]:
    """The variables' values. HCL2: also evaluates locals, data sources and builds into
    template.builders/provisioners/post_processors; with evaluate_datasources=False (validate
    without --evaluate-datasources) data source outputs are "<unknown>"."""
    if template.kind == "hcl2":
        import os

        from .hcl2 import resolve_hcl2

        pairs = list(cli_vars.items()) if isinstance(cli_vars, Mapping) else list(cli_vars)
        try:
            return resolve_hcl2(
                template,
                var_files,
                pairs,
                environ if environ is not None else os.environ,
                evaluate_datasources,
            )
        except (TypeError, ValueError, KeyError, AttributeError, IndexError, RecursionError) as exc:
            raise _unexpected(template.display_path, exc) from None
    from .variables import resolve_variables as resolve

    return resolve(template, var_files, cli_vars, environ)


def inspect_hcl2(
    template: Template,
    var_files: Sequence[str] = (),
    cli_vars: Iterable[tuple[str, str]] | Mapping[str, str] = (),
    environ: Mapping[str, str] | None = None,
) -> str:
    """The text `packer inspect` prints for an HCL2 template (from "Packer Inspect: HCL2 mode" to the
    last newline); unset variables show as <unknown> instead of failing."""
    from .hcl2.inspect import inspect_hcl2 as inspect

    pairs = list(cli_vars.items()) if isinstance(cli_vars, Mapping) else list(cli_vars)
    try:
        return inspect(template, var_files, pairs, environ)
    except (TypeError, ValueError, KeyError, AttributeError, IndexError, RecursionError) as exc:
        raise _unexpected(template.display_path, exc) from None


def undeclared_variable_warning(name: str) -> str:
    """Packer's warning for a var-file value that no variable block declares (HCL2); print it, then
    an empty line, before the command's result."""
    return (
        "Warning: Undefined variable\n\n"
        f'The variable "{name}" was set but was not declared as an input variable.\n'
        f'To declare variable "{name}" place this block in one of your .pkr.hcl files,\n'
        "such as variables.pkr.hcl\n\n"
        f'variable "{name}" {{\n  type    = string\n  default = null\n}}\n\n'
    )


def _unexpected(path: str, exc: Exception) -> TemplateError:
    # HCL2 support covers what templates commonly use; a construct it does not expect must still
    # end in a message, not a traceback.
    return TemplateError(
        f"{path}: cannot evaluate this HCL2 template ({type(exc).__name__}: {exc})",
        "this construct is not supported by kiln yet; please report it with the template",
    )


def parse_var_flag(text: str) -> tuple[str, str]:
    from .variables import parse_var_flag as parse

    return parse(text)
