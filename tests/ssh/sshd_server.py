"""A throw-away OpenSSH sshd for tests and benchmarks: its own host key, config and port on 127.0.0.1.

Started in the foreground (`-D`) and stopped by pid. sshd forks a child per connection that leaves
its process group, so `stop()` walks /proc for every descendant of the listener and kills those by
pid too: a test that leaves a session (or a `sleep` started in one) behind does not leak it.
"""

from __future__ import annotations

import contextlib
import ctypes
import getpass
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
SFTP_SERVER = next(
    (p for p in ("/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server", "/usr/libexec/sftp-server")
     if os.path.exists(p)),
    "internal-sftp",
)  # fmt: skip
PRIVSEP_DIR = Path("/run/sshd")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def descendants(pid: int) -> list[int]:
    """Every live process below `pid` (children first found, grandchildren after)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _die_with_parent() -> None:
    """In the child: get SIGKILL if the test process dies (killed, say), so sshd cannot outlive it.
    Only for sshd started by the main thread: the signal follows the starting *thread*."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def alive(pid: int) -> bool:
    """Whether `pid` is a live process (not gone, not a zombie)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


_alive = alive


def _any_sshd_running() -> bool:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if Path(f"/proc/{entry}/comm").read_text().strip() == "sshd" and alive(int(entry)):
                    return True
    return False


class Sshd:
    """One sshd. `authorized_keys` holds the public keys accepted for every user."""

    def __init__(self, workdir: Path, port: int | None = None, extra: str = "") -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.host_key = self.dir / "host_ed25519"
        self.authorized_keys = self.dir / "authorized_keys"
        self.config = self.dir / "sshd_config"
        self.log = self.dir / "sshd.log"
        self.home = self.dir / "home"
        self.home.mkdir(exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None
        self._made_privsep = False
        if not self.host_key.exists():
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.host_key)], check=True
            )
        self.authorized_keys.touch(mode=0o600)
        root = os.geteuid() == 0
        lines = [
            f"Port {self.port}",
            "ListenAddress 127.0.0.1",
            f"HostKey {self.host_key}",
            f"PidFile {self.dir / 'sshd.pid'}",
            # The user's own file first, so that ssh_clear_authorized_keys has something to clear.
            f"AuthorizedKeysFile .ssh/authorized_keys {self.authorized_keys}",
            "StrictModes no",
            "UsePAM no",
            f"PasswordAuthentication {'yes' if root else 'no'}",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin yes",
            "AllowTcpForwarding yes",
            "AllowAgentForwarding yes",
            "MaxStartups 100:30:200",
            "MaxSessions 100",
            "LogLevel VERBOSE",
            f"Subsystem sftp {SFTP_SERVER}",
            "AcceptEnv LANG LC_*",
            extra,
            # Sessions of the user running the tests get a home of their own: the host's real
            # ~/.bashrc (which bash reads for ssh commands) may be slow or hang on a lock, and a
            # test must not touch the real ~/.ssh. Other users (a test user) keep their own home.
            f"Match User {getpass.getuser()}",
            f"    SetEnv HOME={self.home}",
        ]
        self.config.write_text("\n".join(lines) + "\n")

    def start(self) -> Sshd:
        if os.geteuid() == 0 and not PRIVSEP_DIR.exists():
            PRIVSEP_DIR.mkdir(mode=0o755)
            self._made_privsep = True
        log = open(self.log, "ab")  # noqa: SIM115 - handed to the child
        try:
            self.proc = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(self.config)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                preexec_fn=_die_with_parent if threading.current_thread() is threading.main_thread() else None,
            )  # fmt: skip
        finally:
            log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {self.log.read_text()[-2000:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("sshd did not start listening")

    def kill_sessions(self) -> None:
        """Drop every open connection (each per-connection sshd and what runs under it)."""
        if self.proc is not None:
            self._kill(descendants(self.proc.pid))

    @staticmethod
    def _kill(pids: list[int]) -> None:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            below = descendants(proc.pid)
            proc.kill()
            proc.wait()
            self._kill(below)
            # SIGKILL is not instant: wait until the processes are really gone (or zombies).
            deadline = time.monotonic() + 10
            while any(_alive(pid) for pid in below) and time.monotonic() < deadline:
                time.sleep(0.02)
        # /run/sshd is shared by every sshd on the machine (another test's may be running): it is
        # removed only when this one made it and no sshd is left.
        if self._made_privsep and not _any_sshd_running():
            with contextlib.suppress(OSError):
                PRIVSEP_DIR.rmdir()
            self._made_privsep = False

    def __enter__(self) -> Sshd:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
