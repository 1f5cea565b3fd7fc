"""Command-line flags the way Packer (Go's flag package) reads them: `-name value`, `-name=value`,
`--name=value`, boolean flags as `-force` or `-force=false`, repeatable flags, and `--` ending flags.
A bad flag is a one-line error naming it, never a traceback."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kiln.errors import KilnError


class FlagError(KilnError):
    pass


@dataclass
class Flag:
    name: str
    kind: str  # "bool" | "str" | "int" | "list"
    default: Any = None


@dataclass
class FlagSet:
    command: str
    flags: dict[str, Flag] = field(default_factory=dict)

    def add(self, name: str, kind: str, default: Any = None) -> None:
        self.flags[name] = Flag(name, kind, default)

    def parse_command(
        self, argv: list[str], usage: str, min_args: int = 1, max_args: int = 1
    ) -> tuple[dict[str, Any], list[str]] | int:
        """Parse a command's arguments. Returns (flags, arguments), or the exit code when there is
        nothing more to do: -h/-help printed the usage (0), or the flags or the number of arguments
        were wrong (1, with the error or the usage on stderr)."""
        import sys

        self.add("h", "bool", False)
        self.add("help", "bool", False)
        try:
            values, args = self.parse(argv)
        except FlagError as err:
            from kiln.cli.report import print_error

            print_error(err)
            return 1
        if values["h"] or values["help"]:
            sys.stdout.write(usage)
            return 0
        if not min_args <= len(args) <= max_args:
            sys.stderr.write(usage)
            return 1
        return values, args

    def parse(self, argv: list[str]) -> tuple[dict[str, Any], list[str]]:
        values: dict[str, Any] = {
            f.name: (list(f.default) if f.kind == "list" else f.default) for f in self.flags.values()
        }
        args = list(argv)
        positional: list[str] = []
        while args:
            arg = args.pop(0)
            if arg == "--":
                positional += args
                break
            if not arg.startswith("-") or arg == "-":
                positional.append(arg)
                positional += args  # Go's flag package stops at the first non-flag argument
                break
            name, eq, value = arg.lstrip("-").partition("=")
            flag = self.flags.get(name)
            if flag is None:
                raise FlagError(
                    f"flag provided but not defined: -{name}",
                    hint=f"run 'kiln {self.command} -help' for the flags",
                )
            if flag.kind == "bool":
                if not eq or value.lower() in ("1", "t", "true"):
                    values[name] = True
                elif value.lower() in ("0", "f", "false"):
                    values[name] = False
                else:
                    raise FlagError(f'invalid boolean value "{value}" for -{name}')
                continue
            if not eq:
                if not args:
                    raise FlagError(f"flag needs an argument: -{name}")
                value = args.pop(0)
            if flag.kind == "int":
                try:
                    values[name] = int(value)
                except ValueError:
                    raise FlagError(f'invalid value "{value}" for flag -{name}: not a number') from None
            elif flag.kind == "list":
                values[name].append(value)
            else:
                values[name] = value
        return values, positional


def split_list(values: list[str]) -> list[str]:
    """`-only=a,b -only=c` -> [a, b, c]."""
    return [item for value in values for item in value.split(",") if item]


def parse_var(text: str) -> tuple[str, str]:
    name, eq, value = text.partition("=")
    if not eq or not name:
        raise FlagError(f"-var '{text}': expected NAME=VALUE", hint="e.g. -var 'region=cn-beijing'")
    return name, value
