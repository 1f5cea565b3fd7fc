"""The qemu builder's steps for an installer ISO (disk_image = false), besides what disk-image builds
do: the HTTP server for http_directory / http_content (Packer's StepHTTPServer), the machine booted
from the ISO onto blank disks (the `Install` spec of kiln.machines.qemu_install), and the boot command
typed after boot_wait (StepTypeBootCommand), through QMP."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import TYPE_CHECKING

from kiln.builders.qemu.config import QemuConfig
from kiln.builders.qemu.state import QemuState
from kiln.components import BuildContext
from kiln.engine.steps import Step
from kiln.errors import BuildError

if TYPE_CHECKING:
    from kiln.builders.qemu.httpserve import HttpServer
    from kiln.machines.spec import Install

#: the first display number's port (QEMU's -vnc :N listens on 5900 + N)
VNC_BASE_PORT = 5900


class StepHTTPServer(Step[QemuState]):
    """Serve http_directory / http_content for the build's lifetime (nothing without them: HTTPPort 0)."""

    name = "StepHTTPServer"

    def __init__(self) -> None:
        self.server: HttpServer | None = None

    def run(self, state: QemuState, ctx: BuildContext) -> None:
        from kiln.builders.qemu.httpserve import HttpServer

        cfg = state.config
        directory = Path(cfg.http_directory) if cfg.http_directory else None
        if directory is not None and not directory.is_absolute():
            directory = ctx.work_dir / directory
        server = HttpServer(
            directory,
            cfg.http_content,
            bind=cfg.http_bind_address,
            port_min=cfg.http_port_min,
            port_max=cfg.http_port_max,
            log=ctx.log,
            show=ctx.ui.message if ctx.debug else None,
        )
        if not server.wanted:
            return
        ctx.ui.say("Starting HTTP server on port " + str(server.start()))
        self.server = server
        state.http_port = server.port

    def cleanup(self, state: QemuState, ctx: BuildContext) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.close()


class StepExtraDisks(Step[QemuState]):
    """cd_files / cd_content and floppy_files / floppy_dirs / floppy_content: the CD and the floppy made
    in the run's scratch folder (kiln.builders.qemu.extradisks), removed when the build ends."""

    name = "StepCreateCdrom"

    def run(self, state: QemuState, ctx: BuildContext) -> None:
        from kiln.builders.qemu.extradisks import CdSpec, FloppySpec, make_cd, make_floppy

        cfg = state.config
        cd = CdSpec(cfg.cd_files, cfg.cd_content, cfg.cd_label)
        floppy = FloppySpec(cfg.floppy_files, cfg.floppy_dirs, cfg.floppy_content, cfg.floppy_label)
        if cd.wanted or floppy.wanted:
            scratch = ctx.scratch_dir()
            state.cd = make_cd(cd, ctx.work_dir, scratch, ctx.ui)
            state.floppy = make_floppy(floppy, ctx.work_dir, scratch, ctx.ui)

    def cleanup(self, state: QemuState, ctx: BuildContext) -> None:
        from kiln.builders.qemu.extradisks import remove

        remove(state.cd, state.floppy)
        state.cd = state.floppy = None


def install_spec(state: QemuState, ctx: BuildContext, vnc: str) -> Install:
    """What an ISO build's machine boots besides the ISO: blank disks, firmware, the CD's interface."""
    from kiln.machines.spec import Install

    cfg = state.config

    def path(option: str, value: str) -> Path | None:
        if not value:
            return None
        found = Path(value) if Path(value).is_absolute() else ctx.work_dir / value
        if not found.is_file():
            raise BuildError(f"{option} {value}: no such file", "apt-get install ovmf, or fix the path")
        return found

    code = path("efi_firmware_code", cfg.efi_firmware_code)
    variables = path("efi_firmware_vars", cfg.efi_firmware_vars)
    if cfg.efi_boot and code is None:
        from kiln.machines.qemu_install import OVMF_CODE, OVMF_VARS

        code, variables = OVMF_CODE, variables or OVMF_VARS
    return Install(
        disk_size=cfg.blank_disk_size(cfg.disk_size),
        disk_format=cfg.format,
        extra_disks=tuple(cfg.blank_disk_size(size) for size in cfg.disk_additional_size),
        cdroms=(state.cd,) if state.cd else (),
        floppy=state.floppy,
        cdrom_interface=cfg.cdrom_interface,
        machine_type=cfg.machine_type or "pc",
        efi_code=code,
        efi_vars=variables,
        vnc=vnc,
        watch_stalls=bool(cfg.boot_command),  # without it a human types, at their own pace
    )


def vnc_display(cfg: QemuConfig, ctx: BuildContext) -> str:
    """headless = false: a VNC server to watch the screen on (kiln opens no window), as
    "ADDRESS:DISPLAY" on a free port of vnc_port_min..max; headless: none (QMP types the keys)."""
    if cfg.headless:
        return ""
    for port in range(max(cfg.vnc_port_min, VNC_BASE_PORT), cfg.vnc_port_max + 1):
        with socket.socket() as sock:
            try:
                sock.bind((cfg.vnc_bind_address, port))
            except OSError:
                continue
        ctx.ui.message(
            "kiln opens no window: to view the screen of the VM, connect via VNC without a password to "
            f"vnc://{cfg.vnc_bind_address}:{port}"
        )
        return f"{cfg.vnc_bind_address}:{port - VNC_BASE_PORT}"
    raise BuildError(
        f"no free port between vnc_port_min {cfg.vnc_port_min} and vnc_port_max {cfg.vnc_port_max}",
        "widen the range, or set headless = true",
    )


class StepTypeBootCommand(Step[QemuState]):
    """Wait boot_wait, then type boot_command (its `{{ .HTTPIP }}`, `{{ .HTTPPort }}`, `{{ .Name }}`
    rendered) into the VM through QMP key events."""

    name = "StepTypeBootCommand"

    def run(self, state: QemuState, ctx: BuildContext) -> None:
        from kiln.builders.qemu import bootcommand
        from kiln.builders.qemu.httpserve import GUEST_HOST_IP
        from kiln.machines.qemu import QMP

        cfg = state.config
        if not cfg.boot_command:
            return
        machine = state.machine
        assert machine is not None, "the VM is started by StepRun"
        if cfg.boot_wait > 0:
            ctx.ui.say(f"Waiting {cfg.boot_wait} for boot...")
            ctx.cancel.sleep(float(cfg.boot_wait))
        lines = bootcommand.render(
            cfg.boot_command, ctx.render, GUEST_HOST_IP, state.http_port, state.vm_name
        )
        try:
            actions = bootcommand.parse(lines)
        except bootcommand.BootCommandError as exc:
            raise BuildError(
                f"boot_command[{exc.line}] column {exc.column}: {exc.problem}", exc.hint
            ) from None
        intervals = bootcommand.Intervals.resolve(
            float(cfg.boot_key_interval), float(cfg.boot_keygroup_interval)
        )
        ctx.ui.say("Typing the boot command...")
        qmp = QMP(machine.qmp_path)
        try:
            bootcommand.type_actions(qmp, actions, intervals, ctx.cancel, ctx.log)
        finally:
            qmp.close()
        ctx.log.info("qemu: boot command typed")
