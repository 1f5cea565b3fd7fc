"""Real machines on one host: Debian base images, a QEMU VM runner and a namespace runner.

The API other parts of kiln use (stable):

    from kiln.machines import MachineSpec, Metadata, create_machine, sweep_stale
    from kiln.machines.baseimage import build_base_image

    image = build_base_image("debian-12")            # cached by recipe: instant the second time
    spec = MachineSpec(
        image=image,                                 # raw or qcow2; never modified
        name="build1", cpus=2, memory_mb=1024,
        ssh_host="127.0.0.1", ssh_port=0,            # 127.0.0.0/8; 0 picks a free port
        metadata=Metadata(ssh_authorized_keys=(pubkey,), hostname="build1", user_data="#!/bin/sh\n..."),
    )
    with create_machine(spec, runner="vm") as machine:   # or runner="namespace" (root only)
        machine.start()
        machine.wait_for_ssh(timeout=120)            # ssh root@machine.ssh_host -p machine.ssh_port
        ...
        machine.stop(graceful=True, timeout=60)      # ACPI power-off / container poweroff, then kill
        machine.save_image(Path("out.qcow2"), "qcow2")   # a standalone image either runner can boot
    # leaving the block destroys the machine: processes, mounts, namespaces and files are gone

`Machine` also has `kill()`, `is_running()`, `disk_path`, `console_log`, `work_dir`, `id`, `runner`.
`sweep_stale()` removes what machines of killed kiln processes left (call it at start-up).

Metadata reaches the machine as a NoCloud seed (files `meta-data` and `user-data`): a vfat disk
labelled CIDATA for VMs, a read-only folder bound at /run/kiln/seed for namespace machines. Inside
the base image a small shell agent (kiln-agent.service) reads it instead of cloud-init: cloud-init
is a Python program that costs several seconds per boot under TCG emulation and pulls ~100 MB of
packages, while all kiln needs is keys, a hostname, a user-data script and growing the root
partition. The seed format is cloud-init's, so an image with cloud-init installed reads it too.
"""

from __future__ import annotations

from typing import Literal

from kiln.machines.spec import Accelerator, ImageFormat, Machine, MachineSpec, Metadata
from kiln.machines.state import sweep_stale

Runner = Literal["vm", "namespace"]

__all__ = [
    "Accelerator",
    "ImageFormat",
    "Machine",
    "MachineSpec",
    "Metadata",
    "Runner",
    "create_machine",
    "sweep_stale",
]


def create_machine(spec: MachineSpec, runner: Runner = "vm") -> Machine:
    """A machine for `spec`, not yet started. The namespace runner needs root."""
    if runner == "namespace":
        from kiln.machines.nspawn import NamespaceMachine

        return NamespaceMachine(spec)
    from kiln.machines.qemu import VirtualMachine

    return VirtualMachine(spec)
