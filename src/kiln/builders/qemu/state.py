"""What the qemu builder's steps share (builder.py's plan, cache.py's steps)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from kiln.builders.qemu.config import QemuConfig
from kiln.cache import layers
from kiln.communicators.base import Communicator

if TYPE_CHECKING:  # both import what `kiln validate` need not load (asyncssh, the machine runners)
    from kiln.communicators.keys import TemporaryKeyPair
    from kiln.machines.qemu import VirtualMachine


@dataclass
class QemuState:
    config: QemuConfig
    output_dir: Path
    vm_name: str
    source: Path | None = None
    key: TemporaryKeyPair | None = None
    machine: VirtualMachine | None = None
    communicator: Communicator | None = None
    image: Path | None = None
    cd: Path | None = None  #: cd_files' ISO (StepExtraDisks)
    floppy: Path | None = None  #: floppy_files' image
    http_port: int = 0  #: where StepHTTPServer serves (`{{ .HTTPPort }}`), 0 without
    succeeded: bool = False
    made_output: bool = False
    notes: list[str] = field(default_factory=list)
    #: with the build cache (builders/qemu/cache.py): the disk the VM's overlay is made over (a
    #: cached layer; None: the source), the overlay itself in the store, the layer below it now
    backing: Path | None = None
    top: Path | None = None
    below: layers.Layer | None = None
    run_files: layers.RunFiles | None = None
