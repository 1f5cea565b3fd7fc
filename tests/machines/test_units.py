"""Fast checks of the machine API's validation and of NoCloud seeds (no machine booted)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from kiln.errors import MachineError
from kiln.machines import MachineSpec, Metadata
from kiln.machines.baseimage import parse_size
from kiln.machines.hostkey import new_host_key
from kiln.machines.seed import (
    EarlyNetwork,
    Extras,
    bundle,
    seed_files,
    write_seed_bundle,
    write_seed_disk,
)


def test_parse_size() -> None:
    assert parse_size("4G") == 4 << 30
    assert parse_size("512M") == 512 << 20
    assert parse_size("20GiB") == 20 << 30
    with pytest.raises(MachineError, match="not a size"):
        parse_size("big")


def test_spec_rejects_non_loopback_address(tmp_path: Path) -> None:
    image = tmp_path / "disk.raw"
    image.write_bytes(b"\0" * 512)
    with pytest.raises(MachineError, match="not a loopback address") as caught:
        MachineSpec(image=image, ssh_host="10.0.0.5").validate()
    assert caught.value.hint and "127.0.0.0/8" in caught.value.hint
    with pytest.raises(MachineError, match="no such file"):
        MachineSpec(image=tmp_path / "missing.qcow2").validate()


def test_seed_meta_data_and_validation() -> None:
    files = seed_files(Metadata(ssh_authorized_keys=("ssh-ed25519 AAAA k1",), hostname="web-1"), "m-1")
    assert (
        files["meta-data"]
        == "instance-id: m-1\nlocal-hostname: web-1\npublic-keys:\n  - ssh-ed25519 AAAA k1\n"
    )
    with pytest.raises(MachineError, match="host name"):
        seed_files(Metadata(hostname="bad name"), "m-1")
    with pytest.raises(MachineError, match="not an OpenSSH public key"):
        seed_files(Metadata(ssh_authorized_keys=("-----BEGIN OPENSSH PRIVATE KEY-----",)), "m-1")


def test_seed_disk_is_a_cidata_vfat(tmp_path: Path) -> None:
    files = seed_files(Metadata(hostname="h1", user_data="#!/bin/sh\ntrue\n"), "m-2")
    disk = write_seed_disk(files, tmp_path / "seed.img")
    label = subprocess.run(["mlabel", "-s", "-i", str(disk), "::"], capture_output=True, text=True)
    assert "CIDATA" in label.stdout
    content = subprocess.run(["mtype", "-i", str(disk), "::meta-data"], capture_output=True, text=True)
    assert "local-hostname: h1" in content.stdout


def test_seed_carries_a_private_host_key(tmp_path: Path) -> None:
    host_key = new_host_key()
    assert host_key.public.startswith("ssh-ed25519 ")
    disk = write_seed_disk(seed_files(Metadata(), "m-3", Extras(host_key)), tmp_path / "seed.img")
    assert disk.stat().st_mode & 0o777 == 0o600
    copied = tmp_path / "key"
    subprocess.run(["mcopy", "-n", "-i", str(disk), "::ssh_host_ed25519_key", str(copied)], check=True)
    copied.chmod(0o600)
    # the file in the seed is an OpenSSH private key whose public half is the one kiln knows
    derived = subprocess.run(
        ["ssh-keygen", "-y", "-f", str(copied)], capture_output=True, text=True, check=True
    )
    assert derived.stdout.split()[:2] == host_key.public.split()[:2]
    folder = tmp_path / "seed.d"
    assert {p.name: p.stat().st_mode & 0o777 for p in folder.iterdir()} == {
        "meta-data": 0o600, "user-data": 0o600, "ssh_host_ed25519_key": 0o600,
    }  # fmt: skip
    assert "ssh_host_ed25519_key" not in seed_files(Metadata(), "m-3")


def test_seed_early_network_is_one_line_the_agent_splits() -> None:
    files = seed_files(Metadata(), "m-4", Extras(network=EarlyNetwork()))
    lines = [line for line in files["early-network"].splitlines() if not line.startswith("#")]
    assert lines == ["eth0 10.0.2.15 10.0.2.2 10.0.2.3"]
    assert "early-network" not in seed_files(Metadata(), "m-4", Extras(new_host_key()))


def _agent_read_bundle(disk: Path, out: Path) -> subprocess.CompletedProcess[str]:
    """Run the image's agent (its functions, under dash as in the guest) to read a bundle disk."""
    from kiln.machines.guestfiles import AGENT

    functions = AGENT[: AGENT.index('case "${1:-boot}" in')]
    script = functions + "SEED=$2\ndev=$1\nread_bundle\n"
    return subprocess.run(
        ["dash", "-c", script, "agent", str(disk), str(out)], capture_output=True, text=True, check=False
    )


def test_agent_reads_the_seed_bundle_back_byte_for_byte(tmp_path: Path) -> None:
    files = {
        "meta-data": "instance-id: i-1\nlocal-hostname: h\n",
        "user-data": "#!/bin/sh\n.\n..two dots\n  spaced \\ back\\slash\r\n\nend\nfile x\n",
        "empty": "",
        "ssh_host_ed25519_key": new_host_key().private,
    }
    data = bundle(files)
    assert data is not None and len(data) % 4096 == 0
    disk = tmp_path / "seed.kiln"
    disk.write_bytes(data)
    out = tmp_path / "out"
    out.mkdir()
    done = _agent_read_bundle(disk, out)
    assert done.returncode == 0, done.stderr
    assert {path.name: path.read_bytes().decode() for path in out.iterdir()} == files
    assert all(path.stat().st_mode & 0o777 == 0o600 for path in out.iterdir())


def test_seed_bundle_refuses_what_lines_cannot_carry(tmp_path: Path) -> None:
    assert bundle({"user-data": "\x1f\x8b\0gzip"}) is None
    assert bundle({"user-data": "no final newline"}) is None
    assert not write_seed_bundle(seed_files(Metadata(user_data="#!/bin/sh\ntrue"), "m-5"), tmp_path / "b")
    assert not (tmp_path / "b").exists()
    # a name that would leave the seed folder is refused by the agent
    disk = tmp_path / "bad.kiln"
    disk.write_bytes(b"kiln-seed 1\nfile ../escape\nx\n.\nend\n")
    out = tmp_path / "out"
    out.mkdir()
    done = _agent_read_bundle(disk, out)
    assert done.returncode == 1 and "not a kiln bundle" in done.stderr
    assert not (tmp_path / "escape").exists() and not list(out.iterdir())


def test_console_last_line_and_kept_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kiln.machines.qemu import VirtualMachine

    monkeypatch.setenv("KILN_STATE_DIR", str(tmp_path / "state"))
    image = tmp_path / "disk.raw"
    image.write_bytes(b"\0" * 512)
    machine = VirtualMachine(MachineSpec(image=image, name="quiet"))
    assert machine.last_console_line() == ""  # never started: no console at all
    kept = machine.keep_console()
    assert kept.read_bytes() == b""
    # a console as a booting Linux writes it: CRs, colour escapes, a blank tail
    machine.console_log.write_bytes(
        b"SeaBIOS\r\n[  OK  ] Started \x1b[0;1;39mkiln-agent.service\x1b[0m.\r\n"
        b'You are in emergency mode. After logging in, type "journalctl -xb"\r\n\r\n  \r\n'
    )
    assert machine.last_console_line().startswith("You are in emergency mode.")
    machine.console_log.write_bytes(b"[  OK  ] Started \x1b[0;1;39mkiln-agent.service\x1b[0m.\n" + b"x" * 300)
    assert machine.last_console_line() == "x" * 160
    kept = machine.keep_console()
    machine.destroy()
    assert not machine.work_dir.exists()
    assert kept == tmp_path / "state" / "logs" / f"{machine.id}.console.log"
    assert kept.read_bytes().endswith(b"x" * 300) and kept.stat().st_mode & 0o777 == 0o600


@pytest.mark.machine
def test_a_stuck_boot_is_reset_and_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real VM that never answers: a blank disk, where the firmware reads the disk once and then waits
    (tries the network, then waits a minute), so its disks see no activity; and its QEMU frozen at
    first (SIGSTOP: QMP does not answer either). The runner restarts the frozen QEMU, then resets the
    stuck firmware, keeps what QEMU showed of each stall, and the error names the kept console."""
    import os
    import signal

    from kiln.machines import create_machine, qemu

    monkeypatch.setenv("KILN_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("KILN_BOOT_STALL_SECONDS", "3")
    image = tmp_path / "blank.raw"
    image.write_bytes(b"\0" * (1 << 20))
    with create_machine(MachineSpec(image=image, name="blank", kernel_boot=False), "vm") as machine:
        assert isinstance(machine, qemu.VirtualMachine)
        machine.start()
        assert machine.proc is not None
        frozen = machine.proc.pid
        os.kill(frozen, signal.SIGSTOP)
        with pytest.raises(
            MachineError, match=r"no SSH on 127\.0\.0\.1:\d+ after 35 s, 2 stuck boot"
        ) as caught:
            machine.wait_for_ssh(35)
        assert machine.resets == qemu.BOOT_RESETS == 2
        assert machine.proc.pid != frozen and machine.is_running()
    with pytest.raises(ProcessLookupError):
        os.kill(frozen, 0)
    logs = tmp_path / "state" / "logs"
    kept = logs / f"{machine.id}.console.log"
    assert caught.value.hint == f"see its console log {kept}"
    assert kept.is_file() and not machine.work_dir.exists()
    assert "restarted QEMU" in machine.notes[0] and "reset the VM" in machine.notes[1]
    assert "QEMU did not answer QMP" in (logs / f"{machine.id}.stall-1.txt").read_text()
    report = (logs / f"{machine.id}.stall-2.txt").read_text()
    assert "reset 2" in report and "CPU#0" in report and "CPU#1" in report, report
    assert "'status': 'running'" in report


def test_announced_ssh_reads_only_this_start_of_the_console(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kiln.machines.guestfiles import AGENT, READY_LINE
    from kiln.machines.qemu import VirtualMachine

    assert f'READY_LINE="{READY_LINE}"' in AGENT  # the agent writes what the runner looks for
    monkeypatch.setenv("KILN_STATE_DIR", str(tmp_path / "state"))
    image = tmp_path / "disk.raw"
    image.write_bytes(b"\0" * 512)
    machine = VirtualMachine(MachineSpec(image=image, name="said"))
    log = machine.console_log
    log.write_bytes(f"an earlier start\r\n{READY_LINE}\r\n".encode())
    machine._console_begins()  # a new start appends after it (as the namespace runner's log does)
    assert not machine.announced_ssh()
    half = len(READY_LINE) // 2
    with open(log, "ab") as out:
        out.write(b"Debian GNU/Linux 12\r\n" + READY_LINE[:half].encode())
        out.flush()
        assert not machine.announced_ssh()
        out.write(READY_LINE[half:].encode() + b"\r\n")  # the rest of the line, read on the next call
    assert machine.announced_ssh()
    log.write_bytes(b"")  # the log started afresh: the next start is read from its beginning
    machine._console_begins()
    assert not machine.announced_ssh()
    log.write_bytes(f"{READY_LINE}\n".encode())
    assert machine.announced_ssh()


def test_boot_stall_seconds_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kiln.machines.qemu import STALL_SECONDS, VirtualMachine, stall_seconds

    monkeypatch.delenv("KILN_BOOT_STALL_SECONDS", raising=False)
    assert stall_seconds() == STALL_SECONDS == 60
    monkeypatch.setenv("KILN_BOOT_STALL_SECONDS", "0")
    assert stall_seconds() == 0  # never reset
    monkeypatch.setenv("KILN_BOOT_STALL_SECONDS", "120.5")
    assert stall_seconds() == 120.5
    for bad in ("soon", "-5", "nan"):
        monkeypatch.setenv("KILN_BOOT_STALL_SECONDS", bad)
        with pytest.raises(MachineError, match=r"KILN_BOOT_STALL_SECONDS=.* is not a number of seconds"):
            stall_seconds()
    # a machine refuses to start with it, before QEMU runs
    monkeypatch.setenv("KILN_STATE_DIR", str(tmp_path / "state"))
    image = tmp_path / "blank.raw"
    image.write_bytes(b"\0" * (1 << 20))
    machine = VirtualMachine(MachineSpec(image=image, name="bad", kernel_boot=False))
    with pytest.raises(MachineError, match="KILN_BOOT_STALL_SECONDS='nan'"):
        machine.start()
    assert machine.proc is None
    machine.destroy()


def test_the_sweep_keeps_a_kept_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine whose owner died is swept: its folder goes, but the disk MachineSpec.keep_disk named."""
    import json

    from kiln.machines import state

    monkeypatch.setenv("KILN_STATE_DIR", str(tmp_path / "state"))
    dead = subprocess.Popen(["true"])
    dead.wait()
    for name, keep in (("kept", True), ("gone", False)):
        work = tmp_path / name
        (work / "upper" / "root").mkdir(parents=True)
        (work / "upper" / "root" / "data").write_text("written")
        (work / "console.log").write_text("boot")
        record = state.Record(name, "namespace", work, work / "upper" if keep else None)
        record.data.update(owner_pid=dead.pid, owner_start=None)
        record.path.write_text(json.dumps(record.data))
    assert sorted(state.sweep_stale()) == ["gone", "kept"]
    assert (tmp_path / "kept" / "upper" / "root" / "data").read_text() == "written"
    assert sorted(p.name for p in (tmp_path / "kept").iterdir()) == ["upper"]
    assert not (tmp_path / "gone").exists()
