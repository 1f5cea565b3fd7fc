"""`kiln build [options] TEMPLATE`: run the builds a template defines."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from kiln.cli.common import add_template_flags, load, setup_logging
from kiln.cli.flags import FlagSet, split_list
from kiln.cli.report import print_error
from kiln.errors import KilnError

HELP = """Usage: kiln build [options] TEMPLATE

  Will execute multiple builds in parallel as defined in the template.
  The various artifacts created by the template will be outputted.
  TEMPLATE is a legacy JSON template file, or - to read it from standard input.

Options:

  -cache, -no-cache             Take what earlier builds made from the build cache, and keep what
                                this one makes. (Default: on for qemu, off for alicloud-ecs)
  -color=false                  Disable color output. (Default: color when writing to a terminal)
  -debug                        Debug mode enabled for builds: pause after each step.
  -except=foo,bar,baz           Run all builds and post-processors other than these.
  -only=foo,bar,baz             Build only the specified builds.
  -force                        Force a build to continue if artifacts exist, deletes existing artifacts.
  -if-changed                   Skip a build whose final cache key is the one the last build made,
                                when its artifact still exists.
  -machine-readable             Produce machine-readable output.
  -on-error=[cleanup|abort|ask|run-cleanup-provisioner]
                                If the build fails do: clean up (default), abort, ask, or
                                run-cleanup-provisioner.
  -parallel-builds=1            Number of builds to run in parallel. 0 means no limit (Default: 0)
  -timestamp-ui                 Enable prefixing of each ui output with an RFC3339 timestamp.
  -var 'key=value'              Variable for templates, can be used multiple times.
  -var-file=path                JSON file containing user variables, can be used multiple times.

Environment:

  KILN_LOG=1 (or PACKER_LOG=1)  Write a debug log to stderr, or to KILN_LOG_PATH (PACKER_LOG_PATH).
"""


def flagset() -> FlagSet:
    flags = FlagSet("build")
    add_template_flags(flags)
    flags.add("cache", "bool", False)
    flags.add("no-cache", "bool", False)
    flags.add("if-changed", "bool", False)
    flags.add("color", "bool", True)
    flags.add("debug", "bool", False)
    flags.add("force", "bool", False)
    flags.add("on-error", "str", "cleanup")
    flags.add("parallel-builds", "int", 0)
    flags.add("parallel", "bool", True)  # deprecated in Packer, accepted
    flags.add("timestamp-ui", "bool", False)
    flags.add("warn-on-undeclared-var", "bool", False)
    flags.add("ignore-prerelease-plugins", "bool", False)
    return flags


def main(argv: list[str]) -> int:
    from kiln.components import OnError

    parsed = flagset().parse_command(argv, HELP)
    if isinstance(parsed, int):
        return parsed
    values, args = parsed
    try:
        on_error = OnError(values["on-error"])
    except ValueError:
        print_error(
            KilnError(
                f'invalid value "{values["on-error"]}" for flag -on-error',
                hint="use one of: cleanup, abort, ask, run-cleanup-provisioner",
            )
        )
        return 1
    if values["cache"] and values["no-cache"]:
        print_error(KilnError("-cache and -no-cache cannot both be given", hint="give one of them"))
        return 1
    if values["parallel-builds"] < 0:
        print_error(KilnError("-parallel-builds must be 0 (no limit) or more"))
        return 1
    setup_logging()
    return run(args[0], values, on_error)


def run(path: str, values: dict[str, object], on_error: object) -> int:
    from kiln.components import OnError
    from kiln.core.ui import Output
    from kiln.engine.prepare import prepare_builds
    from kiln.engine.run import RunOptions, run_builds

    assert isinstance(on_error, OnError)
    only = split_list(values["only"])  # type: ignore[arg-type]
    except_ = split_list(values["except"])  # type: ignore[arg-type]
    machine = bool(values["machine-readable"])
    try:
        loaded = load(path, values)
        unknown: dict[str, str] = {}
        builds = prepare_builds(
            loaded.template, loaded.variables, only, except_, unknown, force=bool(values["force"])
        )
    except KilnError as err:
        print_error(err)
        return 1
    if not builds and not unknown:
        print_error(
            KilnError(
                "No builds to run",
                hint="the template defines no builder, or -only/-except excluded every build",
            )
        )
        return 1
    color = bool(values["color"]) and not machine and sys.stdout.isatty() and "NO_COLOR" not in os.environ
    output = Output(color=color, timestamps=bool(values["timestamp-ui"]), machine_readable=machine)
    options = RunOptions(
        parallel_builds=int(values["parallel-builds"]),  # type: ignore[call-overload]
        on_error=on_error,
        debug=bool(values["debug"]),
        force=bool(values["force"]),
        work_dir=Path.cwd(),
        cache=True if values["cache"] else False if values["no-cache"] else None,
        if_changed=bool(values["if-changed"]),
    )
    return run_builds(builds, output, options, failed=unknown)
