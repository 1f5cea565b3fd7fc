"""`kiln version`."""

from __future__ import annotations

import sys

HELP = """Usage: kiln version

  Prints the kiln version, and the Packer version whose templates it runs.
"""


def main(argv: list[str]) -> int:
    from kiln import PACKER_COMPATIBLE_VERSION, __version__

    if argv and argv[0] in ("-h", "-help", "--help"):
        sys.stdout.write(HELP)
        return 0
    if argv:
        sys.stderr.write(f"kiln version: takes no arguments (got {argv[0]!r})\n")
        return 1
    sys.stdout.write(f"Kiln v{__version__} (Packer {PACKER_COMPATIBLE_VERSION} compatible)\n")
    return 0
