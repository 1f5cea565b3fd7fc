"""`kiln validate [options] TEMPLATE`: check a template, reporting every problem at once."""

from __future__ import annotations

import sys

from kiln.cli.common import add_template_flags, load
from kiln.cli.flags import FlagSet, split_list
from kiln.cli.report import print_error
from kiln.errors import KilnError

HELP = """Usage: kiln validate [options] TEMPLATE

  Checks the template is valid by parsing the template and also
  checking the configuration with the various builders, provisioners, etc.

  If it is not valid, the errors will be shown and the command will exit
  with a non-zero exit status. If it is valid, it will exit with a zero
  exit status.

Options:

  -syntax-only           Only check syntax. Do not verify config of the template.
  -except=foo,bar,baz    Validate all builds other than these.
  -only=foo,bar,baz      Validate only these builds.
  -machine-readable      Produce machine-readable output.
  -var 'key=value'       Variable for templates, can be used multiple times.
  -var-file=path         JSON file containing user variables, can be used multiple times.
"""


def main(argv: list[str]) -> int:
    flags = FlagSet("validate")
    add_template_flags(flags)
    flags.add("syntax-only", "bool", False)
    flags.add("evaluate-datasources", "bool", False)
    flags.add("no-warn-undeclared-var", "bool", False)
    parsed = flags.parse_command(argv, HELP)
    if isinstance(parsed, int):
        return parsed
    values, args = parsed
    try:
        if values["syntax-only"]:
            from kiln.template import load_template

            load_template(args[0])
            sys.stdout.write("Syntax-only check passed. Everything looks okay.\n")
            return 0
        from kiln.engine.prepare import prepare_builds

        loaded = load(args[0], values, evaluate_datasources=bool(values["evaluate-datasources"]))
        prepare_builds(
            loaded.template, loaded.variables, split_list(values["only"]), split_list(values["except"])
        )
    except KilnError as err:
        print_error(err)
        return 1
    if not values["no-warn-undeclared-var"]:
        from kiln.template import undeclared_variable_warning

        for name in loaded.template.undeclared_variables:
            sys.stdout.write(undeclared_variable_warning(name))
        if loaded.template.undeclared_variables:
            sys.stdout.write("\n")
    sys.stdout.write("The configuration is valid.\n")
    return 0
