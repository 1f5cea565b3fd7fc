"""The `qemu` builder, as Packer's. With `disk_image = true`: copy the source disk (copy-on-write),
boot it under QEMU, connect over SSH, provision, shut down, convert the disk into the output image.
Without: boot the installer ISO onto blank disks, serve http_directory, type boot_command after
boot_wait (steps_iso), then connect to the installed system as above.

From a kiln base image no password or key is needed: the builder makes a temporary key pair and hands
its public key (and `user_data`) to the machine through the NoCloud seed, so `ssh_username = "root"`
is enough. Without `shutdown_command` the machine is powered off through ACPI (QMP
system_powerdown), where Packer pulls the plug: a clean shutdown never loses the guest's last writes.
"""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from kiln.builders.qemu.config import QemuConfig
from kiln.builders.qemu.state import QemuState
from kiln.cache import layers
from kiln.cache.keys import Source
from kiln.communicators.base import RemoteCommand
from kiln.components import Artifact, BuildContext, Builder
from kiln.config import DecodeContext
from kiln.engine.steps import Sequence, Step, run_steps
from kiln.errors import BuildError, CommunicatorError

if TYPE_CHECKING:  # both import what `kiln validate` need not load (asyncssh, the machine runners)
    from kiln.machines.qemu import VirtualMachine

BUILDER_ID = "transcend.qemu"


class StepOutputDir(Step[QemuState]):
    name = "StepOutputDir"

    def run(self, state: QemuState, ctx: BuildContext) -> None:
        if state.output_dir.exists():
            if not ctx.force:
                raise BuildError(
                    f"Output directory exists: {state.output_dir}",
                    "remove it, or use the -force flag to delete it",
                )
            shutil.rmtree(state.output_dir)
        state.output_dir.mkdir(parents=True)
        state.made_output = True

    def cleanup(self, state: QemuState, ctx: BuildContext) -> None:
        if state.made_output and not state.succeeded:
            ctx.ui.say("Deleting output directory...")
            shutil.rmtree(state.output_dir, ignore_errors=True)


class StepSource(Step[QemuState]):
    name = "StepDownload"

    def run(self, state: QemuState, ctx: BuildContext) -> None:
        from kiln.builders.qemu.isofetch import fetch_iso

        state.source = fetch_iso(state.config.iso_request(ctx.work_dir), ctx.ui, ctx.cancel, ctx.log)


class StepKey(Step[QemuState]):
    name = "StepSSHKeyGen"

    def run(self, state: QemuState, ctx: BuildContext) -> None:
        cfg = state.config
        if cfg.communicator != "ssh" or cfg.ssh_password or cfg.ssh_private_key_file or cfg.ssh_agent_auth:
            return
        from kiln.communicators.keys import TemporaryKeyPair

        ctx.ui.say(f"Creating temporary {cfg.ssh_temporary_key_pair_type} SSH key for instance...")
        state.key = TemporaryKeyPair.generate(
            cfg.ssh_temporary_key_pair_type, cfg.ssh_temporary_key_pair_bits
        )


class StepRun(Step[QemuState]):
    name = "StepRun"

    def run(self, state: QemuState, ctx: BuildContext) -> None:
        from kiln.builders.qemu.steps_iso import install_spec, vnc_display
        from kiln.machines import MachineSpec, Metadata
        from kiln.machines.qemu import VirtualMachine

        cfg = state.config
        install = None if cfg.disk_image else install_spec(state, ctx, vnc_display(cfg, ctx))
        assert state.source is not None
        user_data = cfg.user_data
        if cfg.user_data_file:
            user_data = (ctx.work_dir / cfg.user_data_file).read_text()
        spec = MachineSpec(
            image=state.backing or state.source,
            name="packer",
            cpus=cfg.cpus,
            memory_mb=cfg.memory,
            ssh_host="127.0.0.1",
            ssh_port=_port_in_range(cfg.ssh_host_port_min, cfg.ssh_host_port_max),
            metadata=Metadata(
                ssh_authorized_keys=(state.key.authorized_key_line,) if state.key else (),
                user_data=user_data or None,
            ),
            disk_size=(cfg.disk_size or None) if install is None else None,
            install=install,
            accelerator="auto" if cfg.accelerator in ("", "none") else cfg.accelerator,  # type: ignore[arg-type]
            disk_interface=cfg.disk_interface,
            net_device="virtio-net-pci" if cfg.net_device == "virtio-net" else cfg.net_device,
            qemu_args=tuple(tuple(arg) for arg in cfg.qemuargs),
        )
        ctx.ui.say("Copying hard drive..." if install is None else "Creating required virtual machine disks")
        state.machine = VirtualMachine(spec, disk=state.top)
        ctx.ui.say(f"Found port for communicator (SSH, WinRM, etc): {state.machine.ssh_port}.")
        ctx.ui.say(
            "Starting VM, booting disk image" if install is None else "Starting VM, booting from CD-ROM"
        )
        state.machine.start()
        ctx.log.info(
            "qemu: accelerator %s, console log %s", state.machine.accelerator, state.machine.console_log
        )
        if cfg.boot_wait > 0 and not cfg.boot_command:  # else StepTypeBootCommand waits
            ctx.ui.say(f"Waiting {cfg.boot_wait} for boot...")
            ctx.cancel.sleep(float(cfg.boot_wait))

    def cleanup(self, state: QemuState, ctx: BuildContext) -> None:
        if state.machine is not None:
            if state.machine.is_running():
                ctx.ui.say("Stopping the VM...")
            state.machine.destroy()
            state.machine = None


def vm(state: QemuState) -> VirtualMachine:
    assert state.machine is not None, "the VM is started by StepRun"
    return state.machine


def vm_alive(state: QemuState, ctx: BuildContext) -> Callable[[], str | None]:
    """For connect(): says what the VM runner did meanwhile (a stuck boot reset), and whether the
    VM still runs."""
    machine = vm(state)
    said: list[str] = []

    def alive() -> str | None:
        for note in machine.notes[len(said) :]:
            said.append(note)
            ctx.ui.message(f"The VM runner: {note}")
        return None if machine.still_booting() else "the VM stopped"

    return alive


def keep_console(state: QemuState, ctx: BuildContext) -> None:
    """The VM never answered: its console (what it showed while booting) is kept past its removal."""
    ctx.ui.message(f"The VM's console log is kept in {vm(state).keep_console()}")


class StepShutdown(Step[QemuState]):
    name = "StepShutdown"

    def run(self, state: QemuState, ctx: BuildContext) -> None:
        cfg, machine = state.config, vm(state)
        if cfg.shutdown_command and state.communicator is not None:
            ctx.ui.say("Gracefully halting virtual machine...")
            try:
                state.communicator.run(RemoteCommand(cfg.shutdown_command), ctx.cancel)
            except CommunicatorError as exc:
                ctx.log.debug("shutdown command ended the connection: %s", exc)
            deadline = time.monotonic() + float(cfg.shutdown_timeout)
            while machine.is_running():
                if time.monotonic() > deadline:
                    raise BuildError(
                        "Timeout while waiting for machine to shutdown.", "check shutdown_command"
                    )
                ctx.cancel.sleep(0.5)
        else:
            ctx.ui.say("Halting the virtual machine (ACPI power-off)...")
            machine.stop(graceful=True, timeout=float(cfg.shutdown_timeout))
        machine.kill()


class StepConvert(Step[QemuState]):
    name = "StepConvertDisk"

    def run(self, state: QemuState, ctx: BuildContext) -> None:
        cfg = state.config
        ctx.ui.say("Converting hard drive...")
        state.image = vm(state).save_image(
            state.output_dir / state.vm_name,
            cfg.format,  # type: ignore[arg-type]  # one of FORMATS (validate_qemu)
            compress=cfg.disk_compression,
        )
        state.succeeded = True


def plan(cfg: QemuConfig, ctx: BuildContext) -> Sequence[QemuState]:
    from kiln.builders.connect import StepCleanupTempKeys, StepConnect, StepProvision  # loads asyncssh
    from kiln.builders.qemu import cache
    from kiln.builders.qemu.steps_iso import StepExtraDisks, StepHTTPServer, StepTypeBootCommand

    if ctx.cache is not None and ctx.cache.final_hit:
        return Sequence(StepOutputDir(), StepSource(), cache.StepFromCache())
    return Sequence(
        StepOutputDir(),
        StepSource(),
        cache.StepCacheLayers(),
        StepKey(),
        StepExtraDisks(),
        StepHTTPServer(),
        StepRun(),
        StepTypeBootCommand(),
        StepConnect(
            cfg,
            host=lambda s: vm(s).ssh_host,
            port=lambda s: vm(s).ssh_port,
            private_key=lambda s: s.key,
            alive=vm_alive,
            # QEMU's port forward accepts long before the guest answers: wait for sshd's banner, after
            # kiln's agent said it listens (base images); an installed system says nothing of the kind
            ready=(lambda s: vm(s).announced_ssh) if cfg.disk_image else (lambda s: lambda: True),
            failed=keep_console,  # the VM (and its folder) goes in cleanup
        ),
        cache.StepForgetCachedKeys(),
        StepProvision(checkpoint=cache.checkpoint),
        StepCleanupTempKeys(cfg, key=lambda s: s.key),
        StepShutdown(),
        StepConvert(),
        cache.StepKeepFinal(),
    )


class QemuBuilder(Builder):
    Config = QemuConfig
    generated_keys = ("ID",)
    cache_default = True

    def cache_source(self, ctx: BuildContext) -> Source:
        """The source's checksum (iso_checksum, a listing's line read), or with iso_checksum none
        a local file's content digest (remembered by path, size and mtime, so a large disk is read
        once); an http(s) URL without a checksum is known by its URL only."""
        from kiln.builders.qemu import isofetch
        from kiln.cache.keys import disk_digest

        request = self.config.iso_request(ctx.work_dir)
        checksum = isofetch.resolve_checksum(request, ctx.cancel)
        url = request.urls[0]
        if checksum.kind != "none":
            return Source(f"{url} ({checksum})", f"checksum {checksum}")
        path = isofetch.local_path(url, ctx.work_dir)
        if path is None:
            return Source(f"{url} (no checksum: known by its URL)", f"url {url}")
        if not path.is_file():
            raise BuildError(
                f"{request.option} {url}: no such file", "build one: kiln baseimage build debian-12"
            )
        return Source(f"disk {path}", f"sha256:{disk_digest(path)}")

    def cache_has(self, key: str) -> bool:
        return layers.find(key) is not None

    def cache_artifact_exists(self, artifact: str) -> bool:
        return bool(artifact) and Path(artifact).is_file()

    def validate(self, dctx: DecodeContext, path: str) -> None:
        self.config.validate_qemu(dctx, path)

    def run(self, ctx: BuildContext) -> Artifact | None:
        from kiln.machines import sweep_stale

        sweep_stale()
        cfg: QemuConfig = self.config
        base = ctx.name.rsplit(".", 1)[-1]
        output = Path(cfg.output_directory or f"output-{base}")
        state = QemuState(
            cfg, output if output.is_absolute() else ctx.work_dir / output, cfg.vm_name or f"packer-{base}"
        )
        run_steps(plan(cfg, ctx), state, ctx)
        assert state.image is not None
        ctx.generated["ID"] = state.vm_name
        out = state.output_dir

        def destroy() -> None:
            shutil.rmtree(out, ignore_errors=True)

        return Artifact(
            BUILDER_ID,
            id=state.vm_name,
            files=[str(state.image)],
            string=f"VM files in directory: {cfg.output_directory or out.name}",
            state={"diskName": state.vm_name, "diskType": cfg.format, "diskSize": cfg.disk_size},
            destroy=destroy,
        )


def _port_in_range(low: int, high: int) -> int:
    for port in range(low, high + 1):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise BuildError(f"no free port between ssh_host_port_min {low} and max {high}", "widen the range")
