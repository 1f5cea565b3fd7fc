"""Disk image files as qemu-img sees them: what format a file really is, and converting between the
formats a cloud imports (raw, VHD, qcow2).

The format is read from the file (`qemu-img info`), never from its name. qemu-img probes a dynamic
VHD by the copy of its footer at the start of the file; a fixed VHD has its footer only at the end
(what Azure and Alibaba's import tools write), so that footer is looked for too.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from kiln.errors import MachineError
from kiln.machines import command

#: the import formats by their API name, and qemu-img's name for each
QEMU_NAMES = {"RAW": "raw", "VHD": "vpc", "QCOW2": "qcow2"}
API_NAMES = {qemu: api for api, qemu in QEMU_NAMES.items()}

_VHD_COOKIE = b"conectix"


@dataclass(frozen=True)
class DiskInfo:
    format: str  #: qemu-img's name: raw, vpc, qcow2, vmdk...
    virtual_size: int  #: bytes the guest sees
    file_size: int  #: bytes of the file

    @property
    def api_format(self) -> str | None:
        """RAW, VHD or QCOW2 (None: a format the cloud does not import)."""
        return API_NAMES.get(self.format)


def _fixed_vhd(path: Path, size: int) -> bool:
    if size < 512:
        return False
    with open(path, "rb") as handle:
        handle.seek(size - 512)
        return handle.read(8) == _VHD_COOKIE


def probe(path: Path) -> DiskInfo:
    """The format and sizes of the disk image at `path`; MachineError if qemu-img cannot read it."""
    argv = ["qemu-img", "info", "--output=json", "-U", str(path)]
    info = json.loads(command.output(argv, f"reading the disk image {path}"))
    size = os.stat(path).st_size
    fmt = str(info.get("format", "raw"))
    if fmt == "raw" and _fixed_vhd(path, size):
        return DiskInfo("vpc", size - 512, size)
    return DiskInfo(fmt, int(info.get("virtual-size", size)), size)


def convert(source: Path, source_format: str, dest: Path, dest_format: str) -> Path:
    """Write `source` (qemu-img's format name) to `dest` in `dest_format`, whole or not at all.

    A VHD is written dynamic (qemu-img's default); raw and qcow2 keep holes sparse."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    argv = ["qemu-img", "convert", "-f", source_format, "-O", dest_format, str(source), str(partial)]
    try:
        command.run(argv, f"converting {source.name} to {dest_format}", hint="check free space")
    except MachineError:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, dest)
    return dest
