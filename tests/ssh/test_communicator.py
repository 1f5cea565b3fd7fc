"""The SSH communicator against a real sshd: logins, commands, transfers, drops, bastions."""

from __future__ import annotations

import io
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import Captured, Server, SudoUser, needs_root

from kiln.communicators.base import Disconnected, RemoteCommand
from kiln.communicators.config import SSHConfig, validate_ssh_config
from kiln.communicators.connect import connect
from kiln.communicators.ssh import SSHCommunicator
from kiln.config import DecodeContext, decode
from kiln.errors import CancelledError, CommunicatorError


def test_key_login_runs_commands_and_streams_lines_in_order(comm: SSHCommunicator) -> None:
    out: list[str] = []
    err: list[str] = []
    status = comm.run(
        RemoteCommand(
            "echo one; echo two >&2; printf 'three\\r\\nfour'; exit 7",
            on_stdout=out.append,
            on_stderr=err.append,
        )
    )
    assert status == 7
    assert out == ["one", "three", "four"]
    assert err == ["two"]
    assert comm.host_key.startswith("ssh-ed25519 SHA256:")


def test_stdin_and_signal_exit_status(comm: SSHCommunicator) -> None:
    out: list[str] = []
    assert comm.run(RemoteCommand("tr a-z A-Z", stdin=b"hello\n", on_stdout=out.append)) == 0
    assert out == ["HELLO"]
    assert comm.run(RemoteCommand("kill -TERM $$")) == 128 + 15


@needs_root
def test_password_login(server: Server, test_user: SudoUser) -> None:
    cfg = server.config(ssh_username=test_user.name, ssh_password=test_user.password, ssh_private_key_file="")
    comm = SSHCommunicator(cfg)
    try:
        comm.connect(10)
        out: list[str] = []
        assert comm.run(RemoteCommand("id -un", on_stdout=out.append)) == 0
        assert out == [test_user.name]
    finally:
        comm.close()


@needs_root
def test_wrong_password_gives_up_after_handshake_attempts(
    server: Server, test_user: SudoUser, build: Captured
) -> None:
    cfg = server.config(
        ssh_username=test_user.name, ssh_password="wrong", ssh_private_key_file="", ssh_handshake_attempts=2
    )
    start = time.monotonic()
    with pytest.raises(CommunicatorError, match=r"SSH authentication failed: .*\(after 2 attempt"):
        connect(cfg, build.ctx)
    assert time.monotonic() - start < 15
    assert "wrong" not in build.out.getvalue() + build.err.getvalue()


def test_connect_prints_packers_lines_and_the_host_key(server: Server, build: Captured) -> None:
    comm = connect(server.config(), build.ctx)
    try:
        lines = build.lines()
        assert lines[:3] == [
            "==> test: Using ssh communicator to connect: 127.0.0.1",
            "==> test: Waiting for SSH to become available...",
            "==> test: Connected to SSH!",
        ]
        assert lines[3].startswith(
            f"    test: Accepted host key of 127.0.0.1:{server.port}: ssh-ed25519 SHA256:"
        )
    finally:
        comm.close()


@pytest.mark.parametrize(("banner_first", "within"), [(False, 15), (True, 10)])
def test_refused_at_first_then_accepted(
    server: Server, build: Captured, banner_first: bool, within: float
) -> None:
    """The machine is still booting: nothing listens for 2 s, then sshd starts; kiln logs in, also
    when it first waits for the banner with overlapping probes (`ready`)."""
    server.sshd.stop()
    starter = threading.Timer(2.0, server.sshd.start)
    starter.start()
    start = time.monotonic()
    try:
        comm = connect(
            server.config(ssh_timeout=30.0), build.ctx, ready=(lambda: True) if banner_first else None
        )
        try:
            lines: list[str] = []
            assert comm.run(RemoteCommand("echo ok", on_stdout=lines.append)) == 0
            assert lines == ["ok"]
        finally:
            comm.close()
    finally:
        starter.join()
    assert 1.9 <= time.monotonic() - start < within
    assert "==> test: Connected to SSH!" in build.lines()


def test_timeout_waiting_for_ssh(tmp_path: Path, server: Server, build: Captured) -> None:
    server.sshd.stop()
    with pytest.raises(CommunicatorError, match="Timeout waiting for SSH"):
        connect(server.config(ssh_timeout=1.5), build.ctx)


def test_waiting_stops_when_the_machine_is_gone(server: Server, build: Captured) -> None:
    server.sshd.stop()
    answers = iter([None, None, "the VM stopped"])
    start = time.monotonic()
    with pytest.raises(CommunicatorError, match="can no longer answer SSH: the VM stopped"):
        connect(server.config(ssh_timeout=60.0), build.ctx, alive=lambda: next(answers))
    assert time.monotonic() - start < 30


def test_waiting_is_cancellable(server: Server, build: Captured) -> None:
    server.sshd.stop()
    threading.Timer(0.5, build.ctx.cancel.cancel).start()
    start = time.monotonic()
    with pytest.raises(CancelledError):
        connect(server.config(ssh_timeout=60.0), build.ctx)
    assert time.monotonic() - start < 5


def test_dropped_connection_raises_disconnected_and_next_use_reconnects(
    server: Server, comm: SSHCommunicator
) -> None:
    threading.Timer(0.5, server.sshd.kill_sessions).start()
    with pytest.raises(Disconnected):
        comm.run(RemoteCommand("sleep 30"))
    out: list[str] = []
    assert comm.run(RemoteCommand("echo back", on_stdout=out.append)) == 0
    assert out == ["back"]


def test_bastion_hop(server: Server, bastion: Server) -> None:
    cfg = server.config(
        ssh_bastion_host="127.0.0.1", ssh_bastion_port=bastion.port, ssh_bastion_username=bastion.user,
        ssh_bastion_private_key_file=str(bastion.key),
    )  # fmt: skip
    comm = SSHCommunicator(cfg)
    try:
        comm.connect(10)
        out: list[str] = []
        assert comm.run(RemoteCommand("echo through", on_stdout=out.append)) == 0
        assert out == ["through"]
        # The session really goes through the bastion: without it, the connection is gone.
        bastion.sshd.stop()
        comm.config.ssh_timeout = 1.0  # type: ignore[assignment]
        with pytest.raises(CommunicatorError):
            comm.run(RemoteCommand("true"))
    finally:
        comm.close()


@pytest.mark.parametrize("method", ["scp", "sftp"])
def test_upload_download_byte_for_byte(server: Server, tmp_path: Path, method: str) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    remote = tmp_path / "remote.bin"
    comm = SSHCommunicator(server.config(ssh_file_transfer_method=method))
    try:
        comm.upload(str(remote), io.BytesIO(data), 0o640)
        assert remote.read_bytes() == data
        assert remote.stat().st_mode & 0o777 == 0o640
        back = io.BytesIO()
        comm.download(str(remote), back)
        assert back.getvalue() == data
        with pytest.raises(CommunicatorError, match="upload to /nonexistent/dir/x failed"):
            comm.upload("/nonexistent/dir/x", io.BytesIO(b"x"))
        with pytest.raises(CommunicatorError):
            comm.download("/nonexistent/file", io.BytesIO())
    finally:
        comm.close()


def make_tree(root: Path) -> None:
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "script.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "script.sh").chmod(0o755)
    (root / "secret").write_bytes(os.urandom(1000))
    (root / "secret").chmod(0o600)
    (root / "sub" / "deeper" / "data.bin").write_bytes(os.urandom(200_000))
    (root / "sub" / "empty").mkdir()
    (root / "link").symlink_to("sub/deeper/data.bin")
    (root / "abs-link").symlink_to("/etc/hostname")
    (root / ("n" * 120)).write_text("a long name\n")


def assert_same_tree(a: Path, b: Path) -> None:
    names_a = sorted(str(p.relative_to(a)) for p in a.rglob("*"))
    names_b = sorted(str(p.relative_to(b)) for p in b.rglob("*"))
    assert names_a == names_b
    for name in names_a:
        pa, pb = a / name, b / name
        assert pa.is_symlink() == pb.is_symlink(), name
        if pa.is_symlink():
            assert os.readlink(pa) == os.readlink(pb), name
        elif pa.is_file():
            assert pa.read_bytes() == pb.read_bytes(), name
            assert pa.stat().st_mode & 0o777 == pb.stat().st_mode & 0o777, name


@pytest.mark.parametrize("method", ["scp", "sftp", "scp-python-tar"])
def test_folders_keep_modes_and_symlinks(
    server: Server, tmp_path: Path, method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if method == "scp-python-tar":  # a machine without GNU tar packs with Python's tarfile
        from kiln.communicators import transfer

        monkeypatch.setattr(transfer, "_gnu_tar", lambda: "")
        method = "scp"
    src = tmp_path / "src"
    make_tree(src)
    comm = SSHCommunicator(server.config(ssh_file_transfer_method=method))
    try:
        comm.upload_dir(str(tmp_path / "remote" / "new"), src)
        assert_same_tree(src, tmp_path / "remote" / "new")
        comm.download_dir(str(tmp_path / "remote" / "new"), tmp_path / "back")
        assert_same_tree(src, tmp_path / "back")
    finally:
        comm.close()


def test_validation_reports_every_problem() -> None:
    dctx = DecodeContext()
    raw = {
        "ssh_port": 70000, "ssh_file_transfer_method": "rsync", "ssh_temporary_key_pair_type": "dsa",
        "ssh_private_key_file": "/nonexistent/key", "ssh_bastion_host": "b",
    }  # fmt: skip
    cfg = decode(SSHConfig, raw, "builders[0]", dctx)
    validate_ssh_config(cfg, dctx, "builders[0]", needs_host=True)
    text = "\n".join(dctx.errors)
    for needle in ("ssh_host must be specified", "ssh_username must be specified", "70000", "rsync", "dsa",
                   "/nonexistent/key", "ssh_bastion_username"):  # fmt: skip
        assert needle in text


def test_pty_merges_stderr_into_stdout(server: Server) -> None:
    comm = SSHCommunicator(server.config(ssh_pty=True))
    try:
        out: list[str] = []
        assert (
            comm.run(RemoteCommand("tty >/dev/null && echo has-tty; echo err >&2", on_stdout=out.append)) == 0
        )
        assert out == ["has-tty", "err"]
    finally:
        comm.close()


def test_silent_dead_peer_is_detected_by_read_write_timeout(server: Server) -> None:
    """A machine that vanishes without closing TCP (power cut): keep-alives go unanswered."""
    import signal

    from sshd_server import descendants

    comm = SSHCommunicator(server.config(ssh_keep_alive_interval=0.5, ssh_read_write_timeout=2.0))
    try:
        comm.connect(10)
        assert server.sshd.proc is not None

        def freeze() -> None:
            for pid in descendants(server.sshd.proc.pid):  # type: ignore[union-attr]
                os.kill(pid, signal.SIGSTOP)

        threading.Timer(0.5, freeze).start()
        start = time.monotonic()
        with pytest.raises(Disconnected):
            comm.run(RemoteCommand("sleep 60"))
        assert time.monotonic() - start < 10
    finally:
        comm.close()


def test_cancel_stops_a_running_command(comm: SSHCommunicator) -> None:
    from kiln.core.cancel import CancelToken

    token = CancelToken()
    pids: list[int] = []
    threading.Timer(0.5, token.cancel).start()
    start = time.monotonic()
    with pytest.raises(CancelledError):
        comm.run(
            RemoteCommand("echo $$; exec sleep 30", on_stdout=lambda line: pids.append(int(line))), token
        )
    assert time.monotonic() - start < 5
    # the command is left to the machine (sshd takes no signal for a root session, and a command
    # without a terminal gets no SIGHUP): end it here, so the test's sshd leaves no process behind
    assert pids, "the command never started"
    os.kill(pids[0], 9)


class SlowStream(io.RawIOBase):
    """An endless stream that trickles (not a regular file: it is read outside the event loop)."""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        time.sleep(0.01)
        buffer[: len(buffer)] = b"x" * len(buffer)
        return len(buffer)


def test_cancel_stops_an_upload(server: Server, tmp_path: Path) -> None:
    from kiln.core.cancel import CancelToken

    comm = SSHCommunicator(server.config())
    token = CancelToken()
    threading.Timer(0.5, token.cancel).start()
    start = time.monotonic()
    try:
        with pytest.raises(CancelledError):
            comm.upload(str(tmp_path / "endless"), io.BufferedReader(SlowStream(), 65536), cancel=token)  # type: ignore[arg-type]
        assert time.monotonic() - start < 10
        out: list[str] = []
        assert comm.run(RemoteCommand("echo still usable", on_stdout=out.append)) == 0
        assert out == ["still usable"]
    finally:
        comm.close()
