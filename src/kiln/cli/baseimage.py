"""`kiln baseimage build NAME [--output DIR] [--format qcow2|raw] [--size 20G]`; NAME debian-12-installer
is kiln's Debian installer ISO (kiln.machines.installer)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from kiln.cli.args import Parser, wants_help
from kiln.errors import KilnError


def main(argv: list[str]) -> int:
    parser = Parser(
        prog="kiln baseimage",
        description="Build Debian base disk images, or kiln's Debian installer ISO, from Debian's packages.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build (or reuse from the cache) a base image")
    build.add_argument(
        "name", help="image to build: debian-12 (a disk) or debian-12-installer (an installer ISO)"
    )
    build.add_argument("--output", type=Path, help="copy the image into this folder as NAME.FORMAT")
    build.add_argument("--format", choices=("qcow2", "raw"), default="qcow2", help="default: qcow2")
    build.add_argument("--size", help="disk size, e.g. 4G (default) or 20G; the root grows at boot anyway")
    if wants_help(argv):
        parser.print_help()
        build.print_help()
        return 0
    from kiln.machines.baseimage import build_base_image
    from kiln.machines.installer import ISO_RECIPES, build_installer_iso

    try:
        args = parser.parse_args(argv)
        if args.name in ISO_RECIPES:
            if args.size is not None:
                raise KilnError(f"--size: {args.name} is an ISO, not a disk", "leave --size out")
            image = build_installer_iso(args.name)
            if args.output is not None:
                args.output.mkdir(parents=True, exist_ok=True)
                target = args.output / f"{args.name}.iso"
                shutil.copyfile(image, target.with_name(target.name + ".partial"))
                target.with_name(target.name + ".partial").replace(target)
                image = target
            print(image)
            return 0
        image = build_base_image(args.name, args.format, args.size)
        if args.output is not None:
            args.output.mkdir(parents=True, exist_ok=True)
            target = args.output / f"{args.name}.{args.format}"
            partial = target.with_name(target.name + ".partial")
            shutil.copyfile(image, partial) if args.format == "qcow2" else _sparse_copy(image, partial)
            partial.replace(target)
            image = target
    except KilnError as error:
        sys.stderr.write(f"Error: {error.render()}\n")
        return 1
    print(image)
    return 0


def _sparse_copy(source: Path, dest: Path) -> None:
    import subprocess

    subprocess.run(["cp", "--sparse=always", str(source), str(dest)], check=True)
