"""`kiln hcl2_upgrade [options] TEMPLATE.json`: write the HCL2 equivalent of a legacy JSON template
(TEMPLATE.json.pkr.hcl unless -output-file). Unlike Packer, it lists every part it could not convert,
with its place in the template; -strict makes such a partial conversion exit 2."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

from kiln.cli.flags import FlagSet
from kiln.cli.report import print_error
from kiln.errors import KilnError

USAGE = """Usage: kiln hcl2_upgrade [options] TEMPLATE

  Will transform your JSON template into an HCL2 configuration.

Options:

  -output-file=path    Set output file name. By default this will be the
                       TEMPLATE name with ".pkr.hcl" appended to it. To be a
                       valid Packer HCL template, it must have the suffix
                       ".pkr.hcl"
  -with-annotations    Add helper annotation comments to the file to help new
                       HCL2 users understand the template format.
  -strict              Exit 2 when some part of the template could not be
                       converted (the file is still written).
"""


def main(argv: list[str]) -> int:
    flags = FlagSet("hcl2_upgrade")
    flags.add("output-file", "str", "")
    flags.add("with-annotations", "bool", False)
    flags.add("strict", "bool", False)
    parsed = flags.parse_command(argv, USAGE)
    if isinstance(parsed, int):
        return parsed
    values, args = parsed
    path = args[0]
    output = values["output-file"] or path + ".pkr.hcl"

    from kiln.registry import BUILDERS
    from kiln.template.hcl2.upgrade import upgrade
    from kiln.template.json_loader import parse_template, read_source
    from kiln.template.jsonsyntax import loads

    try:
        data, source = read_source(path)
        raw = loads(data, source)
        template = parse_template(raw, source, None, Path.cwd())
        result = upgrade(
            template,
            raw,
            annotations=values["with-annotations"],
            builtin_builders=set(BUILDERS),
        )
    except KilnError as err:
        print_error(err)
        return 1
    try:
        folder = os.path.dirname(output)
        if folder:
            os.makedirs(folder, exist_ok=True)
        mode = os.stat(output).st_mode if os.path.exists(output) else stat.S_IFREG
        if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISDIR(mode):  # would block, or fail
            from kiln.template.source import special_kind

            print_error(KilnError(f"{output}: is {special_kind(mode)}", "choose another -output-file"))
            return 1
        with open(output, "w", encoding="utf-8") as f:
            f.write(result.text)
    except OSError as exc:
        print_error(KilnError(f"{output}: cannot write: {exc.strerror}", "choose another -output-file"))
        return 1
    for message in result.errors:
        sys.stderr.write(f"Error: {message}\n")
    if result.issues:
        sys.stderr.write(
            f"Warning: {len(result.issues)} part(s) of {path} could not be converted to HCL2; "
            f"they are marked with comments in {output}:\n"
        )
        for issue in result.issues:
            sys.stderr.write(f"  * {issue.place}: {issue.message}\n")
    code = 1 if result.errors else (2 if result.issues and values["strict"] else 0)
    state = "Created" if result.errors or result.issues else "Successfully created"
    sys.stdout.write(f"{state} {output}. Exit {code}\n")
    return code
