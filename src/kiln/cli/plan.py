"""`kiln plan [options] TEMPLATE`: which provisioners a build would take from the build cache and
which it would run, and why, without starting anything (in the spirit of `terraform plan`)."""

from __future__ import annotations

import sys
from pathlib import Path

from kiln.cli.common import add_template_flags, load
from kiln.cli.flags import FlagSet, split_list
from kiln.cli.report import print_error
from kiln.errors import KilnError

HELP = """Usage: kiln plan [options] TEMPLATE

  Shows, for each build, which provisioners the build cache already holds (cache hit) and which
  would run, with the reason (a changed script, an earlier provisioner that changed, no cache for
  the source...). Nothing is started, created or changed.

Options:

  -cache, -no-cache      Plan as `kiln build` would with this flag. (Default: each builder's own)
  -except=foo,bar,baz    Plan all builds other than these.
  -only=foo,bar,baz      Plan only these builds.
  -machine-readable      Produce machine-readable output.
  -var 'key=value'       Variable for templates, can be used multiple times.
  -var-file=path         JSON file containing user variables, can be used multiple times.
"""


def main(argv: list[str]) -> int:
    flags = FlagSet("plan")
    add_template_flags(flags)
    flags.add("cache", "bool", False)
    flags.add("no-cache", "bool", False)
    parsed = flags.parse_command(argv, HELP)
    if isinstance(parsed, int):
        return parsed
    values, args = parsed
    from kiln.components import BuildContext
    from kiln.core.cancel import CancelToken
    from kiln.core.ui import BuildUi, Output
    from kiln.engine import cacheplan
    from kiln.engine.prepare import prepare_builds

    try:
        loaded = load(args[0], values)
        builds = prepare_builds(
            loaded.template, loaded.variables, split_list(values["only"]), split_list(values["except"])
        )
    except KilnError as err:
        print_error(err)
        return 1
    output = Output(color=False, machine_readable=bool(values["machine-readable"]))
    import logging

    for build in builds:
        ui = BuildUi(output, build.name)
        ctx = BuildContext(
            name=build.name,
            builder_type=build.builder_type,
            ui=ui,
            cancel=CancelToken(),
            log=logging.getLogger("kiln").getChild(build.name),
            run_uuid="plan",
            work_dir=Path.cwd(),
            build_name=build.build_name,
            cache_mode=True if values["cache"] else False if values["no-cache"] else None,
        )
        try:
            found = cacheplan.make_plan(build, ctx)
        except KilnError as err:
            print_error(err)
            return 1
        if found is None:
            why = (
                "off (-cache turns it on)"
                if not cacheplan.enabled(build, ctx)
                else "not kept by this builder"
            )
            ui.say(f"The build cache is {why}: every provisioner would run")
            for index, prov in enumerate(build.provisioners, 1):
                ui.say(f"Provisioner {index} ({prov.type}): would run")
                ui.machine("plan", str(index), "run", "", "cache off")
            continue
        ran = 0
        for decision in found.decisions:
            text = decision.line().replace(": running: ", ": would run: ")
            ui.say(text)
            ui.machine(
                "plan",
                str(decision.index),
                "hit" if decision.hit else "run",
                decision.key or "",
                decision.cause,
            )
            ran += 0 if decision.hit else 1
        if found.final_hit:
            ui.say("Nothing would run: the finished disk is in the cache (no machine is started)")
        elif not ran:
            ui.say("No provisioner would run; the machine would start from the last cached one")
        else:
            ui.say(f"{ran} of {len(found.decisions)} provisioner(s) would run")
        if unchanged := cacheplan.unchanged(build, found):
            ui.say(f"-if-changed would skip this build: its artifact {unchanged} is current")
    sys.stdout.flush()
    return 0
