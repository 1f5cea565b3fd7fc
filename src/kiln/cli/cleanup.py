"""`kiln cleanup`: delete the cloud resources an
interrupted or killed alicloud build left behind (and, with --stale, what its local machines left:
processes, mounts, loop devices, network namespaces).

Resources are found two ways: in the build's journal (`state_dir()/journal/<run-id>.json`, written
as each resource came to exist) and by their `kiln-run-id` tag (which also finds a resource whose
create call was answered after the build died). `--stale` takes every run that is provably over:
its process, when this host can look it up (same host, boot and pid namespace), is gone or a
zombie; otherwise its newest heartbeat (the `kiln-heartbeat` tag the build refreshes, and its
journal's) is older than `--older-than`. Runs skipped as alive are named, with why. Credentials come from the environment as for a build (ALICLOUD_* / ALIBABA_CLOUD_* variables,
ALICLOUD_PROFILE, ~/.aliyun/config.json); the endpoint is the one the build used.
"""

from __future__ import annotations

import argparse
import sys

from kiln.cli.args import Parser, wants_help

USAGE = "kiln cleanup [--run-id ID [--force] | --stale [--older-than D]] [--region R] [--dry-run]"


def _parser() -> argparse.ArgumentParser:
    parser = Parser(prog="kiln cleanup", usage=USAGE, description=__doc__.split("\n\n")[0])
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--run-id", "-run-id", dest="run_id", help="the run to clean up")
    which.add_argument("--stale", "-stale", action="store_true", help="every run whose build is gone")
    parser.add_argument(
        "--region", "-region", action="append", default=[], help="region to search by tag (repeatable)"
    )
    parser.add_argument("--dry-run", "-dry-run", dest="dry_run", action="store_true", help="only list")
    parser.add_argument(
        "--older-than",
        "-older-than",
        dest="older_than",
        default="30m",
        help="a run this host cannot look up is stale once its last heartbeat is this old (default 30m)",
    )
    parser.add_argument(
        "--force", "-force", action="store_true", help="--run-id: delete even if its heartbeat is recent"
    )
    return parser


def main(argv: list[str]) -> int:
    from kiln.errors import KilnError

    parser = _parser()
    if wants_help(argv):
        parser.print_help()
        return 0
    try:
        args = parser.parse_args(argv)
    except KilnError as exc:
        sys.stderr.write(f"Error: {exc.render()}\n")
        return 1
    if not args.run_id and not args.stale:
        sys.stderr.write(f"Error: give --run-id ID or --stale\n  usage: {USAGE}\n")
        return 1
    from kiln.alicloud.cleanup import Cleanup
    from kiln.config import Duration

    try:
        older_than = float(Duration.parse(args.older_than))
    except ValueError:
        older_than = -1.0
    if older_than < 0:
        sys.stderr.write(
            f"Error: --older-than {args.older_than!r} is not a duration\n  hint: for example 45m, 2h or 90s\n"
        )
        return 1

    if args.stale:
        # Local machines (processes, mounts, loop devices, network namespaces) of killed builds.
        if args.dry_run:
            _say("Dry run: local machines left by killed builds are not swept")
        else:
            from kiln.machines import sweep_stale

            for machine_id in sweep_stale():
                _say(f"Removed what machine {machine_id} left (processes, mounts, loop devices, namespace)")
            from kiln import runs

            for run_uuid in runs.sweep_stale():
                _say(f"Removed the private files (inline scripts) that killed run {run_uuid} left")
    try:
        job = Cleanup(
            regions=args.region,
            dry_run=args.dry_run,
            say=_say,
            error=_error,
            older_than=older_than,
            force=args.force,
        )
        failed = job.run_id(args.run_id) if args.run_id else job.stale()
    except KilnError as exc:
        sys.stderr.write(f"Error: {exc.render()}\n")
        return 1
    return 1 if failed else 0


def _say(line: str) -> None:
    from kiln.core.secrets import redact

    sys.stdout.write(redact(line) + "\n")
    sys.stdout.flush()


def _error(line: str) -> None:
    from kiln.core.secrets import redact

    sys.stderr.write(redact(line) + "\n")
    sys.stderr.flush()
