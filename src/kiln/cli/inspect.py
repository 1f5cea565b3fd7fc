"""`kiln inspect TEMPLATE`: show a template's variables, builders and provisioners."""

from __future__ import annotations

import sys

from kiln.cli.common import add_template_flags
from kiln.cli.flags import FlagSet
from kiln.cli.report import print_error
from kiln.core.secrets import MASK, REDACTOR
from kiln.errors import KilnError

HELP = """Usage: kiln inspect TEMPLATE
       kiln inspect -options TYPE

  Inspects a template, parsing and outputting the components a template
  defines. This does not validate the contents of a template (other than
  basic syntax by necessity).

Options:

  -machine-readable  Machine-readable output
  -options TYPE      List the options of the builder, provisioner or
                     post-processor TYPE (e.g. qemu, shell) instead
"""

NOTE = """
Note: If your build names contain user variables or template
functions such as 'timestamp', these are processed at build time,
and therefore only show in their raw form here."""


def main(argv: list[str]) -> int:
    flags = FlagSet("inspect")
    add_template_flags(flags)
    flags.add("options", "str", "")
    parsed = flags.parse_command(argv, HELP, min_args=0)
    if isinstance(parsed, int):
        return parsed
    values, args = parsed
    if values["options"] and not args:
        return show_options(str(values["options"]))
    if len(args) != 1 or values["options"]:
        sys.stderr.write(HELP)
        return 1
    from kiln.core.ui import Output, Ui

    try:
        from kiln.template import load_template

        template = load_template(args[0])
    except KilnError as err:
        print_error(err)
        return 1
    if template.kind == "hcl2":
        import os

        from kiln.cli.flags import parse_var
        from kiln.template import inspect_hcl2

        try:
            text = inspect_hcl2(
                template, values["var-file"], [parse_var(v) for v in values["var"]], os.environ
            )
        except KilnError as err:
            REDACTOR.add(*template.sensitive_values)
            print_error(err)
            return 1
        REDACTOR.add(*template.sensitive_values)
        sys.stdout.write(REDACTOR.redact(text))
        return 0
    ui = Ui(Output(machine_readable=bool(values["machine-readable"])))
    inspect_json(template, ui)
    return 0


def show_options(type_name: str) -> int:
    """`-options TYPE`: what the component declares about its options (kiln.optionsdoc)."""
    from kiln.optionsdoc import known_types, options_text

    text = options_text(type_name)
    if text is None:
        print_error(
            KilnError(f'-options: no component is called "{type_name}"', "known: " + ", ".join(known_types()))
        )
        return 1
    sys.stdout.write(text)
    return 0


def inspect_json(template: object, ui: object) -> None:
    from kiln.core.ui import Ui
    from kiln.template.model import Template

    assert isinstance(template, Template) and isinstance(ui, Ui)
    ui.say("Packer Inspect: JSON mode")
    variables = template.variables
    sensitive = set(template.sensitive_variables)
    if not variables:
        ui.say("Variables:\n")
        ui.say("  <No variables>")
    else:
        required = sorted(n for n, v in variables.items() if v.required)
        if required:
            ui.say("Required variables:\n")
            for name in required:
                ui.machine("template-variable", name, "", "1")
                ui.say("  " + name)
            ui.say("")
        ui.say("Optional variables and their defaults:\n")
        width = max(len(n) for n in variables)
        for name in sorted(variables):
            var = variables[name]
            if var.required:
                continue
            default = MASK if name in sensitive or var.sensitive else (var.default or "")
            ui.machine("template-variable", name, default, "0")
            ui.say(f"  {name.ljust(width)} = {default}")
    ui.say("")
    ui.say("Builders:\n")
    if not template.builders:
        ui.say("  <No builders>")
    else:
        width = max(len(b.name) for b in template.builders)
        for spec in sorted(template.builders, key=lambda b: b.name):
            line = f"  {spec.name.ljust(width)}"
            if spec.name != spec.type:
                line += f" ({spec.type})"
            ui.machine("template-builder", spec.name, spec.type)
            ui.say(line)
    ui.say("")
    ui.say("Provisioners:\n")
    if not template.provisioners:
        ui.say("  <No provisioners>")
    else:
        for spec in template.provisioners:
            ui.machine("template-provisioner", spec.type)
            ui.say(f"  {spec.type}")
    ui.say(NOTE)
