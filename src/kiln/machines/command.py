"""Running the host programs machines need (qemu-img, sfdisk, losetup, mount, ip, mkfs.vfat,
mmdebstrap...): one place that logs each command and turns a failure into a MachineError that says
what failed and quotes the end of the program's stderr."""

from __future__ import annotations

import logging
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path

from kiln.errors import MachineError

log = logging.getLogger("kiln.machines")

#: how many of a failed program's last stderr lines its error quotes
TAIL_LINES = 3
#: what to install for a program that is missing
PACKAGES = {
    "qemu-img": "qemu-utils",
    "mkfs.vfat": "dosfstools",
    "mcopy": "mtools",
    "debugfs": "e2fsprogs",
    "sfdisk": "fdisk",
    "mmdebstrap": "mmdebstrap",
    "grub-mkimage": "grub-pc-bin grub-common",
    "slirp4netns": "slirp4netns",
    "systemd-nspawn": "systemd-container",
}


def tail(text: str, lines: int = TAIL_LINES) -> str:
    """The last non-empty lines of a program's output, on one line."""
    kept = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(kept[-lines:])


def missing(argv: list[str], what: str) -> MachineError:
    package = PACKAGES.get(argv[0], argv[0])
    return MachineError(f"{what} failed: {argv[0]} is not installed", f"apt-get install {package}")


def run(
    argv: list[str],
    what: str,
    *,
    hint: str | None = None,
    env: dict[str, str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run `argv` to its end, its output captured. A program that is missing, or (with `check`)
    exits with a non-zero code, raises MachineError("<what> failed: <stderr's tail>", hint); without
    `check` the caller reads the result (best-effort cleanup, probes)."""
    log.debug("%s: %s", what, shlex.join(argv))
    try:
        done = subprocess.run(argv, capture_output=True, text=True, errors="replace", check=False, env=env)
    except FileNotFoundError:
        raise missing(argv, what) from None
    if done.returncode != 0:
        log.debug("%s: exit code %d: %s", what, done.returncode, tail(done.stderr or done.stdout))
        if check:
            raise MachineError(
                f"{what} failed (exit code {done.returncode}): {tail(done.stderr or done.stdout)}",
                hint or f"the command was: {shlex.join(argv)}",
            )
    return done


def output(argv: list[str], what: str, *, hint: str | None = None) -> str:
    """What `argv` prints on stdout, stripped; MachineError as run() if it fails."""
    return run(argv, what, hint=hint).stdout.strip()


def stream(
    argv: list[str],
    what: str,
    on_line: Callable[[str], None],
    *,
    hint: str | None = None,
    env: dict[str, str] | None = None,
) -> None:
    """Run a long program, handing each line of its output (stdout and stderr) to `on_line` as it
    comes; a failure raises MachineError as run() does, quoting the last lines."""
    log.debug("%s: %s", what, shlex.join(argv))
    last: list[str] = []
    try:
        proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace", env=env
        )
    except FileNotFoundError:
        raise missing(argv, what) from None
    with proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            last = [*last[-15:], line]
            on_line(line)
        code = proc.wait()
    if code != 0:
        raise MachineError(
            f"{what} failed (exit code {code}): {tail(chr(10).join(last), 5)}",
            hint or f"the command was: {shlex.join(argv)}",
        )


def spawn(argv: list[str], what: str, output: Path) -> subprocess.Popen[bytes]:
    """Start a program that runs beside kiln (a VM, a container, slirp4netns), its output appended to
    `output`, in a session of its own: a Ctrl-C meant for kiln must not kill the machine mid-cleanup."""
    log.debug("%s: %s", what, shlex.join(argv))
    with open(output, "ab") as sink:
        try:
            return subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=sink, stderr=sink, start_new_session=True
            )
        except FileNotFoundError:
            raise missing(argv, what) from None
