"""wait_for_banner: overlapping probes see sshd within about one interval, even when the earlier
connections were swallowed by a forwarder that accepts and stays silent (as QEMU's slirp does while
the guest boots)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest
from conftest import Captured, Server

from kiln.communicators.banner import MAX_PENDING, SLOW_INTERVAL, wait_for_banner
from kiln.communicators.config import SSHConfig
from kiln.communicators.connect import connect
from kiln.errors import CommunicatorError


class SilentThenSSH:
    """Accepts every connection on 127.0.0.1; connections made before `opens_at` get nothing ever
    (held open), later ones get an SSH banner at once."""

    def __init__(
        self, silent_for: float, banner: bytes = b"SSH-2.0-OpenSSH_9.2\r\n", banner_delay: float = 0.0
    ) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.opens_at = time.monotonic() + silent_for
        self.banner = banner
        self.banner_delay = banner_delay
        self.held: list[socket.socket] = []
        self.accepted = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            if time.monotonic() >= self.opens_at:
                if self.banner_delay:
                    threading.Timer(self.banner_delay, self._send, (conn,)).start()
                else:
                    conn.sendall(self.banner)
            self.held.append(conn)

    def _send(self, conn: socket.socket) -> None:
        try:
            conn.sendall(self.banner)
        except OSError:
            pass  # the client gave up on this attempt

    def close(self) -> None:
        self.listener.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def silent() -> Iterator[SilentThenSSH]:
    server = SilentThenSSH(silent_for=1.5)
    yield server
    server.close()


def test_real_sshd_banner_is_seen(server: Server) -> None:
    began = time.monotonic()
    assert wait_for_banner("127.0.0.1", server.port, timeout=10)
    assert time.monotonic() - began < 5


def test_swallowed_connections_do_not_delay_readiness(silent: SilentThenSSH) -> None:
    began = time.monotonic()
    assert wait_for_banner("127.0.0.1", silent.port, timeout=20)
    took = time.monotonic() - began
    # ready at 1.5 s: seen about one interval later, not after the swallowed attempts expired
    assert 1.4 < took < 3.0, took
    assert silent.accepted >= 4  # several attempts overlapped


def test_a_banner_slower_than_the_attempts_live_is_still_seen() -> None:
    """An emulated sshd may take longer to answer than an attempt first lives: attempts then live
    longer, and the banner is seen after a few of them, not never."""
    slow = SilentThenSSH(silent_for=0, banner_delay=1.2)
    try:
        began = time.monotonic()
        assert wait_for_banner("127.0.0.1", slow.port, timeout=20, attempt_timeout=1.0)
        assert time.monotonic() - began < 8
    finally:
        slow.close()
    # never more than MAX_PENDING open at once: a handful of expired attempts, not a flood
    assert slow.accepted <= MAX_PENDING + 8


def test_not_ssh_and_nothing_listening_are_not_ready() -> None:
    other = SilentThenSSH(silent_for=0, banner=b"HTTP/1.1 400 Bad Request\r\n\r\n")
    try:
        assert not wait_for_banner("127.0.0.1", other.port, timeout=1.0)
    finally:
        other.close()
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    began = time.monotonic()
    assert not wait_for_banner("127.0.0.1", port, timeout=1.0)
    assert time.monotonic() - began < 3


def test_stop_ends_the_wait(silent: SilentThenSSH) -> None:
    silent.opens_at = time.monotonic() + 3600
    began = time.monotonic()
    assert not wait_for_banner(
        "127.0.0.1", silent.port, timeout=60, stop=lambda: time.monotonic() - began > 0.5
    )
    assert time.monotonic() - began < 2


def test_connect_banner_first_stops_when_the_machine_is_gone(silent: SilentThenSSH, build: Captured) -> None:
    silent.opens_at = time.monotonic() + 3600
    cfg = SSHConfig(ssh_host="127.0.0.1", ssh_port=silent.port, ssh_username="root", ssh_timeout=60.0)
    began = time.monotonic()
    with pytest.raises(CommunicatorError, match="can no longer answer SSH: the VM stopped"):
        connect(cfg, build.ctx, alive=lambda: "the VM stopped" if time.monotonic() - began > 0.5 else None,
                ready=lambda: True)  # fmt: skip
    assert time.monotonic() - began < 3
    with pytest.raises(CommunicatorError, match="Timeout waiting for SSH"):
        connect(replace(cfg, ssh_timeout=1.0), build.ctx, ready=lambda: True)


def test_slow_probes_until_the_machine_says_sshd_listens(silent: SilentThenSSH) -> None:
    """Before the machine announces its sshd, one attempt per SLOW_INTERVAL (each would be queued in a
    user-mode forward and reach sshd later); once it has, fast probes find the banner at once."""
    silent.opens_at = time.monotonic() + 3600
    began = time.monotonic()
    said = began + SLOW_INTERVAL + 0.5
    accepted_when_said: list[int] = []

    def ready() -> bool:
        if time.monotonic() < said:
            return False
        if not accepted_when_said:
            accepted_when_said.append(silent.accepted)
            silent.opens_at = time.monotonic()
        return True

    assert wait_for_banner("127.0.0.1", silent.port, timeout=20, ready=ready)
    assert accepted_when_said == [2]  # at 0 s and at SLOW_INTERVAL, none between
    assert time.monotonic() - said < 1.0


def test_a_machine_that_never_says_is_still_found(silent: SilentThenSSH) -> None:
    began = time.monotonic()
    assert wait_for_banner("127.0.0.1", silent.port, timeout=20, ready=lambda: False)
    took = time.monotonic() - began
    assert SLOW_INTERVAL - 0.1 <= took < SLOW_INTERVAL + 1.0  # sshd answered at 1.5 s: the next slow attempt
    assert silent.accepted == 2
