"""Fixtures: a real OpenSSH sshd per test (tests/ssh/sshd_server.py), a client key, a non-root
user with a password and sudo (root only), and a BuildContext whose output lands in buffers."""

from __future__ import annotations

import io
import logging
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from sshd_server import Sshd, alive, descendants

from kiln.communicators.config import SSHConfig
from kiln.communicators.ssh import SSHCommunicator
from kiln.components import BuildContext
from kiln.core.cancel import CancelToken
from kiln.core.ui import BuildUi, Output
from kiln.template import InterpContext, render

IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="needs root (password logins, a test user, sudo)")


@dataclass
class Server:
    sshd: Sshd
    key: Path  #: a client private key the server accepts for every user
    user: str  #: the user the key logs in as (the current user)

    @property
    def port(self) -> int:
        return self.sshd.port

    def config(self, **options: object) -> SSHConfig:
        values: dict[str, object] = {
            "ssh_host": "127.0.0.1", "ssh_port": self.port, "ssh_username": self.user,
            "ssh_private_key_file": str(self.key), "ssh_timeout": 20.0,
        }  # fmt: skip
        values.update(options)
        return SSHConfig(**values)  # type: ignore[arg-type]


def _client_key(folder: Path) -> Path:
    key = folder / "client_ed25519"
    if not key.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    sshd = Sshd(tmp_path / "sshd")
    key = _client_key(tmp_path)
    sshd.authorized_keys.write_text(key.with_suffix(".pub").read_text())
    sshd.start()
    try:
        yield Server(sshd, key, subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip())
    finally:
        # The test may have restarted sshd: look at the listener running now.
        below = descendants(sshd.proc.pid) if sshd.proc else []
        sshd.stop()
    left = [pid for pid in below if alive(pid)]
    assert not left, f"processes of the test sshd outlived it: {left}"


@pytest.fixture
def bastion(tmp_path: Path, server: Server) -> Iterator[Server]:
    """A second sshd in front of `server`, accepting the same key."""
    sshd = Sshd(tmp_path / "bastion")
    sshd.authorized_keys.write_text(server.key.with_suffix(".pub").read_text())
    with sshd:
        yield Server(sshd, server.key, server.user)


@dataclass
class SudoUser:
    name: str
    password: str
    home: Path


@pytest.fixture
def test_user() -> Iterator[SudoUser]:
    """A non-root user with a password, allowed to sudo (with that password). Removed after."""
    if not IS_ROOT:
        pytest.skip("needs root to create a user")
    name = "kilnt" + secrets.token_hex(3)
    password = "pw-" + secrets.token_hex(8)
    sudoers = Path(f"/etc/sudoers.d/{name}")
    subprocess.run(["useradd", "-m", "-s", "/bin/sh", name], check=True)
    try:
        subprocess.run(["chpasswd"], input=f"{name}:{password}\n", text=True, check=True)
        sudoers.write_text(f"{name} ALL=(ALL) ALL\n")
        sudoers.chmod(0o440)
        yield SudoUser(name, password, Path(f"/home/{name}"))
    finally:
        sudoers.unlink(missing_ok=True)
        subprocess.run(["userdel", "-r", "-f", name], check=False, capture_output=True)


@dataclass
class Captured:
    ctx: BuildContext
    out: io.StringIO
    err: io.StringIO

    def lines(self) -> list[str]:
        return self.out.getvalue().splitlines()

    def errors(self) -> list[str]:
        return self.err.getvalue().splitlines()


@pytest.fixture
def build(tmp_path: Path) -> Captured:
    out, err = io.StringIO(), io.StringIO()
    ui = BuildUi(Output(out=out, err=err, inp=None), "test")
    ctx = BuildContext(
        name="test", builder_type="null", ui=ui, cancel=CancelToken(), log=logging.getLogger("kiln.test"),
        run_uuid="0", work_dir=tmp_path,
    )  # fmt: skip
    ctx.render = lambda text, data: render(
        text, InterpContext(build_name="test", build_type="null", data=data)
    )
    return Captured(ctx, out, err)


@pytest.fixture
def comm(server: Server) -> Iterator[SSHCommunicator]:
    c = SSHCommunicator(server.config())
    c.connect(10)
    try:
        yield c
    finally:
        c.close()
