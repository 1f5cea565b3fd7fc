"""argparse as kiln's argparse-style commands (cleanup, baseimage, localcloud) use it: Packer's
single-dash `-help` anywhere on the line prints the usage, and a bad argument is one line with a
hint (a KilnError), never argparse's usage dump and exit 2."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any, NoReturn

from kiln.errors import KilnError

HELP_FLAGS = ("-h", "-help", "--help")


def wants_help(argv: Sequence[str]) -> bool:
    return any(arg in HELP_FLAGS for arg in argv)


class Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["add_help"] = False  # -h, -help and --help are answered before parsing
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        command = " ".join(self.prog.split()[:2])  # `kiln localcloud serve` -> `kiln localcloud`
        raise KilnError(f"{self.prog}: {message}", f"see `{command} -help`")
