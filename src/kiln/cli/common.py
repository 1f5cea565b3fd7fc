"""What the template commands (build, validate, inspect) share: common flags, loading the template
with its variables (and registering its secrets), logging setup. Errors are printed by
kiln.cli.report."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any

from kiln.cli.flags import FlagSet, parse_var
from kiln.core.secrets import REDACTOR


def add_template_flags(flags: FlagSet) -> None:
    flags.add("var", "list", [])
    flags.add("var-file", "list", [])
    flags.add("only", "list", [])
    flags.add("except", "list", [])
    flags.add("machine-readable", "bool", False)


@dataclass
class Loaded:
    template: Any
    variables: dict[str, str]


def load(path: str, values: dict[str, Any], evaluate_datasources: bool = True) -> Loaded:
    from kiln.template import load_template, resolve_variables, validate_template

    template = load_template(path)
    validate_template(template)
    cli_vars = [parse_var(v) for v in values["var"]]
    variables = resolve_variables(
        template,
        list(values["var-file"]),
        cli_vars,
        dict(os.environ),
        evaluate_datasources=evaluate_datasources,
    )
    REDACTOR.add(*template.sensitive_values)
    return Loaded(template, variables)


def setup_logging() -> None:
    """PACKER_LOG=1 / KILN_LOG=1 turn on the debug log (stderr, or PACKER_LOG_PATH / KILN_LOG_PATH)."""
    import logging

    class RedactingFilter(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            record.msg = REDACTOR.redact(record.getMessage())
            record.args = None
            if record.exc_info and record.exc_info[1] is not None:
                record.exc_text = REDACTOR.redact(logging.Formatter().formatException(record.exc_info))
                record.exc_info = None
            return True

    enabled = any(os.environ.get(v, "") not in ("", "0") for v in ("KILN_LOG", "PACKER_LOG"))
    path = os.environ.get("KILN_LOG_PATH") or os.environ.get("PACKER_LOG_PATH")
    logger = logging.getLogger("kiln")
    logger.handlers.clear()
    if not enabled:
        logger.addHandler(logging.NullHandler())
        logger.setLevel(logging.CRITICAL + 1)
        logger.propagate = False
        return
    handler: logging.Handler = logging.FileHandler(path) if path else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s [%(levelname)s] %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
