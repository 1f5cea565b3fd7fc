"""`kiln fmt [options] PATH|-`: rewrite HCL2 templates (.pkr.hcl) and variable files (.pkrvars.hcl)
in Packer's canonical layout. Exit 0 when done, 3 with -check when a file needs formatting, 1 on
an error (unreadable file, syntax error)."""

from __future__ import annotations

import os
import sys

from kiln.cli.flags import FlagSet
from kiln.cli.report import print_error
from kiln.errors import KilnError

USAGE = """Usage: kiln fmt [options] [TEMPLATE]

  Rewrites all HCL2 configuration files (.pkr.hcl and .pkrvars.hcl) in the given folder, or the
  given file, to the canonical format. "-" reads standard input and writes standard output.

Options:
  -check        Check if the input is formatted. Exit status will be 0 if all input is properly
                formatted and 3 otherwise.
  -diff         Display diffs of formatting changes
  -write=false  Don't write to source files (always disabled with -check)
  -recursive    Also process files in subdirectories. By default, only the given folder (or
                current folder) is processed.
"""

_SUFFIXES = (".pkr.hcl", ".pkrvars.hcl")


def _files(path: str, recursive: bool) -> list[str]:
    if not os.path.isdir(path):
        if not path.endswith(_SUFFIXES):
            raise KilnError(
                f"Cannot tell whether {path} contains HCL2 configuration data",
                hint="kiln fmt formats files named *.pkr.hcl or *.pkrvars.hcl",
            )
        return [path]
    found: list[str] = []
    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        if os.path.isdir(full):
            if recursive and not os.path.islink(full):  # a link to a parent would loop forever
                found += _files(full, recursive)
        elif name.endswith(_SUFFIXES):
            found.append(full)
    return found


def _diff(name: str, before: str, after: str) -> str:
    import difflib

    lines = difflib.unified_diff(
        before.splitlines(True), after.splitlines(True), f"old/{name}", f"new/{name}"
    )
    return "".join(lines)


def _line(text: str, number: int) -> str:
    lines = text.splitlines()
    return lines[number - 1] if 0 < number <= len(lines) else ""


def _format(text: str, name: str) -> str:
    from kiln.template.hcl2.fmt import HclSyntaxError, check_syntax, format_hcl

    check_syntax(text, name)
    # The structure is sound; expressions are checked by the parser kiln loads templates with.
    import hcl2

    try:
        hcl2.loads(text)
    except Exception as exc:  # lark's errors carry line and column
        from kiln.template.hcl2.loader import excerpt

        line = int(getattr(exc, "line", 0) or 0)
        words = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise HclSyntaxError("Invalid expression", excerpt(words), name, line, _line(text, line)) from None
    return format_hcl(text)


def main(argv: list[str]) -> int:
    flags = FlagSet("fmt")
    flags.add("check", "bool", False)
    flags.add("diff", "bool", False)
    flags.add("write", "bool", True)
    flags.add("recursive", "bool", False)
    parsed = flags.parse_command(argv, USAGE, min_args=0)
    if isinstance(parsed, int):
        return parsed
    values, args = parsed
    path = args[0] if args else "."
    write = values["write"] and not values["check"]
    from kiln.template.hcl2.fmt import HclSyntaxError
    from kiln.template.source import read_text

    try:
        if path == "-":
            text, _ = read_text("-", "HCL")
            out = _format(text, "<stdin>")
            if values["diff"] and out != text:
                sys.stdout.write(_diff("<stdin>", text, out))
            elif not values["check"]:
                sys.stdout.write(out)
            return 3 if values["check"] and out != text else 0
        changed = 0
        for name in _files(path, values["recursive"]):
            text, _ = read_text(name, "HCL")
            out = _format(text, name)
            if out == text:
                continue
            changed += 1
            sys.stdout.write(name + "\n")
            if write:
                with open(name, "w", encoding="utf-8") as f:
                    f.write(out)
            if values["diff"]:
                sys.stdout.write(_diff(name, text, out))
        sys.stdout.flush()
        return 3 if values["check"] and changed else 0
    except HclSyntaxError as err:
        sys.stdout.flush()
        sys.stderr.write(err.packer_text())
        return 1
    except KilnError as err:
        print_error(err)
        return 1
