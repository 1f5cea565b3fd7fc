"""kiln's command line: `kiln COMMAND [options]`.

Each command lives in its own module `kiln.cli.<name>` with `main(argv: list[str]) -> int` and is
imported only when it runs, so that `kiln version` and `kiln validate` start fast.
"""

from __future__ import annotations

import sys

# command name -> (module, one-line synopsis)
COMMANDS: dict[str, tuple[str, str]] = {
    "build": ("kiln.cli.build", "build image(s) from template"),
    "validate": ("kiln.cli.validate", "check that a template is valid"),
    "plan": (
        "kiln.cli.plan",
        "show which provisioners a build would take from the cache, and why the rest run",
    ),
    "cache": ("kiln.cli.cache", "list and prune the build cache"),
    "inspect": ("kiln.cli.inspect", "see components of a template"),
    "version": ("kiln.cli.version", "prints the kiln version"),
    "cleanup": ("kiln.cli.cleanup", "delete what an interrupted or killed build left behind"),
    "baseimage": ("kiln.cli.baseimage", "build Debian base disk images from packages"),
    "localcloud": ("kiln.cli.localcloud", "run the local Alibaba Cloud (ECS, VPC, OSS) emulator"),
    "fmt": ("kiln.cli.fmt", "rewrites HCL2 config files to canonical format"),
    "hcl2_upgrade": ("kiln.cli.hcl2_upgrade", "transform a JSON template into an HCL2 configuration"),
}

USAGE = """Usage: kiln [--version] [--help] <command> [<args>]

Available commands are:
{commands}
"""


def usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = [f"    {name.ljust(width)}    {synopsis}" for name, (_, synopsis) in COMMANDS.items()]
    return USAGE.format(commands="\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "-help", "--help", "help"):
        sys.stderr.write(usage())
        return 0 if args else 127
    # Packer's global flag, given before the command: pass it on to the command.
    globals_ = [a for a in args[:1] if a in ("-machine-readable", "--machine-readable")]
    while args and args[0] in ("-machine-readable", "--machine-readable"):
        args = args[1:]
    if not args:
        sys.stderr.write(usage())
        return 127
    if args[0] in ("-v", "-version", "--version"):
        args = ["version"]
    if globals_ and args[0] in ("build", "validate", "inspect", "plan"):
        args = [args[0], "-machine-readable", *args[1:]]
    name = args[0]
    entry = COMMANDS.get(name)
    if entry is None:
        sys.stderr.write(f"kiln: unknown command {name!r}\n\n{usage()}")
        return 127
    import importlib

    module = importlib.import_module(entry[0])
    try:
        code: int = module.main(args[1:])
    except KeyboardInterrupt:
        sys.stderr.write("Interrupted.\n")
        return 1
    except BrokenPipeError:
        return 1
    return code
