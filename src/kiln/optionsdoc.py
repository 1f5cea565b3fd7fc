"""The options reference, made from what the components declare (kiln.config.describe): every
option's type, default, accepted values and meaning, the data a builder generates, and whether a
provisioner works on the machine. `kiln inspect -options TYPE` prints one component's part;
docs/options.md is the whole of it, written by `python -m kiln.optionsdoc > docs/options.md` (a
test checks that it is current)."""

from __future__ import annotations

import sys

from kiln import registry
from kiln.config import OptionInfo, describe

KINDS: tuple[tuple[str, dict[str, str]], ...] = (
    ("builder", registry.BUILDERS),
    ("provisioner", registry.PROVISIONERS),
    ("post-processor", registry.POST_PROCESSORS),
)

HEADER = """# Options of kiln's components

Made from the components' own declarations by `python -m kiln.optionsdoc > docs/options.md`;
`kiln inspect -options TYPE` shows one component. Options keep Packer's names and meaning; an
empty string given to an option with accepted values ("one of") means its default. Strings may use
the template's functions (``{{user `x`}}``).
"""


def component_text(kind: str, table: dict[str, str], name: str) -> str:
    """One component's options as a section of the reference."""
    cls = registry.load(table, name)
    assert cls is not None, name
    lines = [f"## {kind} `{name}`", ""]
    if kind == "builder":
        keys = ", ".join(f"``{{{{ build `{k}` }}}}``" for k in ("PackerRunUUID", *cls.generated_keys))
        lines += [f"Generated data: {keys}.", ""]
    elif kind == "provisioner":
        where = "on the machine, through its communicator" if cls.needs_communicator else "on this host"
        lines += [f"Runs {where}.", ""]
    options = describe(cls.Config)
    lines += [line for info in options for line in _option_lines(info)] if options else ["No options."]
    return "\n".join(lines) + "\n"


def _option_lines(info: OptionInfo, indent: str = "") -> list[str]:
    lines = [indent + _option_line(info)]
    for inner in info.fields:
        lines += _option_lines(inner, indent + "  ")
    return lines


def _option_line(info: OptionInfo) -> str:
    facts = [info.type]
    if info.required:
        facts.append("required")
    if info.secret:
        facts.append("secret")
    if info.default and info.default != "false":
        facts.append(f"default `{info.default}`")
    if info.choices:
        facts.append("one of " + ", ".join(f"`{c}`" for c in info.choices))
    if info.aliases:
        facts.append("also " + ", ".join(f"`{a}`" for a in info.aliases))
    line = f"- `{info.name}` ({'; '.join(facts)})"
    return f"{line}: {info.doc}" if info.doc else line


def options_text(type_name: str) -> str | None:
    """Every component called `type_name` (`file` is a builder and a provisioner), or None."""
    parts = [component_text(kind, table, type_name) for kind, table in KINDS if type_name in table]
    return "\n".join(parts) if parts else None


def known_types() -> list[str]:
    return sorted({name for _, table in KINDS for name in table})


def reference() -> str:
    sections = [component_text(kind, table, name) for kind, table in KINDS for name in sorted(table)]
    return HEADER + "\n" + "\n".join(sections)


if __name__ == "__main__":
    sys.stdout.write(reference())
