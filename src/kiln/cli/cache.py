"""`kiln cache list` and `kiln cache prune [--keep N] [--older-than D]`: the build cache's layers
(kiln.cache.layers), shown and deleted. Everything in the cache folder can also be deleted by hand."""

from __future__ import annotations

import argparse
import sys
import time

from kiln.cli.args import Parser, wants_help

USAGE = "kiln cache list | kiln cache prune [--keep N] [--older-than D] [--dry-run]"


def _parser() -> argparse.ArgumentParser:
    parser = Parser(prog="kiln cache", usage=USAGE, description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="action")
    sub.add_parser("list", help="show the cached layers")
    prune = sub.add_parser("prune", help="delete cached layers (all of them, without --keep/--older-than)")
    prune.add_argument("--keep", "-keep", type=int, default=None, help="keep the N most recently used")
    prune.add_argument(
        "--older-than",
        "-older-than",
        dest="older_than",
        default="",
        help="delete those unused for D (e.g. 7d, 12h)",
    )
    prune.add_argument("--dry-run", "-dry-run", dest="dry_run", action="store_true", help="only list")
    return parser


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def _age(seconds: float) -> str:
    from kiln.duration import Duration

    return str(Duration(round(max(0.0, seconds))))


def _seconds(text: str) -> float:
    """A Go duration, also with days (7d)."""
    from kiln.duration import Duration
    from kiln.errors import KilnError

    try:
        if text.endswith("d") and text[:-1].replace(".", "", 1).isdigit():
            return float(text[:-1]) * 86400
        return float(Duration.parse(text))
    except ValueError:
        raise KilnError(f"--older-than {text!r}: not a duration", hint="e.g. 30m, 12h, 7d") from None


def main(argv: list[str]) -> int:
    from kiln.cache import layers
    from kiln.cache.keys import short
    from kiln.errors import KilnError

    parser = _parser()
    if wants_help(argv):
        parser.print_help()
        return 0
    try:
        args = parser.parse_args(argv)
        if args.action is None:
            raise KilnError("give list or prune", hint=f"usage: {USAGE}")
        now = time.time()
        found = sorted(layers.all_layers(), key=layers.used, reverse=True)
        if args.action == "list":
            total = sum(layer.size() for layer in found)
            for layer in found:
                what = f"after provisioner {layer.index} ({layer.label})" if layer.index else "finished disk"
                sys.stdout.write(
                    f"{short(layer.key)}  qemu  {_size(layer.size()):>9}  used {_age(now - layers.used(layer))} ago"
                    f"  {layer.template}: {what}\n"
                )
            sys.stdout.write(f"{len(found)} layer(s), {_size(total)} (in {layers.store_dir()})\n")
            return 0
        if args.keep is not None and args.keep < 0:
            raise KilnError("--keep must be 0 or more")
        doomed = list(found)
        if args.keep is not None:
            doomed = doomed[args.keep :]
        if args.older_than:
            limit = _seconds(args.older_than)
            doomed = [layer for layer in doomed if now - layers.used(layer) > limit]
        if args.dry_run:
            for layer in doomed:
                sys.stdout.write(f"would delete {short(layer.key)} ({layer.template})\n")
            return 0
        with layers.exclusive() as held:
            if not held:
                raise KilnError("a build is using the cache now", hint="prune again when it has finished")
            for layer in doomed:
                layers.delete(layer)
            removed = layers.remove_unused()
        freed = len([p for p in removed if p.suffix == ".qcow2"])
        sys.stdout.write(
            f"Deleted {len(doomed)} layer(s) ({freed} file(s)); {len(found) - len(doomed)} kept\n"
        )
        return 0
    except KilnError as exc:
        sys.stderr.write(f"Error: {exc.render()}\n")
        return 1
