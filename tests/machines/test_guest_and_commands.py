"""The host programs machines run (one runner: logged, a failure quoting stderr's tail) and the files
kiln puts into its base images (package data, checked by shellcheck when it is installed)."""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

import pytest

from kiln.errors import MachineError
from kiln.machines import command, guestfiles

SCRIPT = "for n in 1 2 3 4 5; do echo line-$n >&2; done; echo out; exit 3"


def test_a_failed_command_says_what_failed_with_the_tail_of_its_stderr(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="kiln.machines")
    with pytest.raises(MachineError) as info:
        command.run(["sh", "-c", SCRIPT], "making the thing")
    assert info.value.message == "making the thing failed (exit code 3): line-3 | line-4 | line-5"
    assert info.value.hint == f"the command was: sh -c '{SCRIPT}'"
    assert f"making the thing: sh -c '{SCRIPT}'" in caplog.text  # every command is logged


def test_unchecked_commands_and_output() -> None:
    done = command.run(["sh", "-c", SCRIPT], "probing", check=False)
    assert done.returncode == 3 and done.stdout == "out\n"
    assert command.output(["printf", "  a b \\n"], "printing") == "a b"


def test_a_missing_program_names_its_package() -> None:
    with pytest.raises(MachineError) as info:
        command.run(["qemu-img-that-is-not-there"], "converting")
    assert "converting failed: qemu-img-that-is-not-there is not installed" in info.value.message
    error = command.missing(["mkfs.vfat", "-C"], "making the seed disk")
    assert error.message == "making the seed disk failed: mkfs.vfat is not installed"
    assert error.hint == "apt-get install dosfstools"


def test_a_streamed_command_hands_over_its_lines_and_fails_with_the_last(tmp_path: Path) -> None:
    lines: list[str] = []
    with pytest.raises(MachineError, match=r"mmdebstrap failed \(exit code 3\): .*line-5 \| out$"):
        command.stream(["sh", "-c", SCRIPT], "mmdebstrap", lines.append)
    assert sorted(lines) == ["line-1", "line-2", "line-3", "line-4", "line-5", "out"]


def test_a_spawned_program_appends_to_its_log(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    log.write_text("before\n")
    proc = command.spawn(["sh", "-c", "echo started; echo oops >&2"], "starting", log)
    assert proc.wait(timeout=10) == 0
    assert log.read_text() == "before\nstarted\noops\n"


def test_guest_files_are_package_data_with_their_modes() -> None:
    agent = guestfiles.GUEST / "files/usr/lib/kiln/kiln-agent"
    assert guestfiles.FILES["usr/lib/kiln/kiln-agent"] == (agent.read_text(), 0o755)
    assert guestfiles.FILES["etc/systemd/system/kiln-agent.service"][1] == 0o644
    assert guestfiles.EARLY_FILES["etc/initramfs-tools/hooks/kiln"][1] == 0o755
    assert guestfiles.MAKE_DISK.startswith("#!/bin/sh\n")
    assert guestfiles.READY_LINE == "kiln-agent: sshd is listening"


def shell_scripts() -> list[Path]:
    return sorted(
        path
        for path in guestfiles.GUEST.rglob("*")
        if path.is_file() and path.read_text().startswith("#!/bin/sh")
    )


@pytest.mark.skipif(
    shutil.which("shellcheck") is None, reason="shellcheck is not installed (apt-get install shellcheck)"
)
def test_guest_shell_scripts_pass_shellcheck() -> None:
    scripts = shell_scripts()
    assert [p.name for p in scripts] == [
        "kiln", "kiln-agent", "finish-tree.sh", "init", "udhcpc.script", "make-disk.sh"
    ]  # fmt: skip
    done = subprocess.run(["shellcheck", "--shell=sh", *map(str, scripts)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
