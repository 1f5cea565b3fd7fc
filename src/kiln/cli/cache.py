"""`kiln cache list` and `kiln cache prune [--keep N] [--older-than D]`: the build cache's layers
(kiln.cache.layers), shown and deleted; with `--region R` also the cloud's cache images (tagged
kiln-cache-key, kiln.alicloud.cacheimages) and the snapshots they are made of, with the credentials
a build uses (ALICLOUD_* variables, profiles; KILN_ALICLOUD_ENDPOINT for localcloud). Everything in
the cache folder can also be deleted by hand."""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kiln.cli.args import Parser, wants_help

USAGE = "kiln cache list [--region R] | kiln cache prune [--keep N] [--older-than D] [--region R] [--dry-run]"


def _parser() -> argparse.ArgumentParser:
    parser = Parser(prog="kiln cache", usage=USAGE, description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="action")
    listing = sub.add_parser("list", help="show the cached layers")
    prune = sub.add_parser("prune", help="delete cached layers (all of them, without --keep/--older-than)")
    for each in (listing, prune):
        each.add_argument(
            "--region", "-region", action="append", default=[], help="also the cloud's cache images there"
        )
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


@dataclass
class Entry:
    """A local layer or a cloud cache image, as list and prune show them."""

    key: str
    where: str  #: "qemu", or the cloud region
    size: int
    used: float
    what: str
    delete: Callable[[], None]

    @classmethod
    def local(cls, layer: Any) -> Entry:
        from kiln.cache import layers

        what = f"after provisioner {layer.index} ({layer.label})" if layer.index else "finished disk"
        return cls(
            layer.key, "qemu", layer.size(), layers.used(layer), f"{layer.template}: {what}",
            lambda: layers.delete(layer),
        )  # fmt: skip


def cloud_entries(region: str) -> list[Entry]:
    import calendar

    from kiln.alicloud import cacheimages
    from kiln.alicloud.access import AccessConfig
    from kiln.alicloud.client import AlicloudClient

    access = AccessConfig()
    access.apply_environment()
    client = AlicloudClient(access, region)
    entries = []
    for image in cacheimages.find(client):
        if not str(image.get("ImageName", "")).startswith(cacheimages.NAME_PREFIX):
            continue  # a build's output image (it carries its final key): an artifact, not a layer
        image_id = str(image["ImageId"])
        created = str(image.get("CreationTime", ""))
        try:
            used = float(calendar.timegm(time.strptime(created[:19], "%Y-%m-%dT%H:%M:%S")))
        except ValueError:
            used = time.time()
        size = int(image.get("Size") or 0) << 30
        key = cacheimages.tags_of(image).get(cacheimages.CACHE_TAG, "")
        what = f"image {image_id} {image.get('ImageName', '')}"
        entries.append(
            Entry(key, region, size, used, what, functools.partial(cacheimages.delete, client, image_id))
        )
    return entries


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
        found = [Entry.local(layer) for layer in layers.all_layers()]
        for region in args.region:
            found += cloud_entries(region)
        found.sort(key=lambda e: e.used, reverse=True)
        if args.action == "list":
            for entry in found:
                sys.stdout.write(
                    f"{short(entry.key)}  {entry.where:<10}  {_size(entry.size):>9}  used {_age(now - entry.used)} ago"
                    f"  {entry.what}\n"
                )
            total = sum(e.size for e in found)
            sys.stdout.write(f"{len(found)} layer(s), {_size(total)} here (in {layers.store_dir()})\n")
            return 0
        if args.keep is not None and args.keep < 0:
            raise KilnError("--keep must be 0 or more")
        doomed = list(found)
        if args.keep is not None:
            doomed = doomed[args.keep :]
        if args.older_than:
            limit = _seconds(args.older_than)
            doomed = [e for e in doomed if now - e.used > limit]
        if args.dry_run:
            for entry in doomed:
                sys.stdout.write(f"would delete {short(entry.key)} ({entry.where}: {entry.what})\n")
            return 0
        for entry in doomed:
            entry.delete()
        removed = layers.remove_unused()
        freed = len([p for p in removed if p.suffix == ".qcow2"])
        sys.stdout.write(
            f"Deleted {len(doomed)} layer(s) ({freed} local file(s)); {len(found) - len(doomed)} kept\n"
        )
        return 0
    except KilnError as exc:
        sys.stderr.write(f"Error: {exc.render()}\n")
        return 1
