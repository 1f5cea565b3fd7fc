"""Wait for an SSH server's banner with overlapping connection attempts.

Behind a user-mode port forward (QEMU's slirp, slirp4netns) a connection is accepted at once, then
hangs while the guest has no address or no sshd yet: a single attempt with a timeout wastes up to its
whole timeout after sshd came up, and a short timeout aborts the slow banner of an emulated sshd. So
a new connection is opened every `interval`, each kept open for up to `attempt_timeout` (10% longer
after each attempt that expired, so that a banner slower than that is still seen), and the first one
to bring `SSH-` wins: readiness is seen within about `interval` of sshd answering.

At most MAX_PENDING attempts are open at once: once the guest has its address the forwarder hands
every pending connection to sshd together, and sshd starts dropping connections at random beyond 10
unauthenticated ones (MaxStartups), which could hit the real login that follows; each one is also an
sshd process the booting guest must start.
"""

from __future__ import annotations

import contextlib
import errno
import selectors
import socket
import time
from collections.abc import Callable

MAX_PENDING = 6


def pending_socket(fileobj: object) -> socket.socket:
    assert isinstance(fileobj, socket.socket)
    return fileobj


def wait_for_banner(
    host: str,
    port: int,
    timeout: float,
    stop: Callable[[], bool] | None = None,
    interval: float = 0.4,
    attempt_timeout: float = 2.5,
) -> bool:
    """True once a server at host:port sends an SSH banner; False after `timeout` seconds, or as soon
    as `stop()` (asked a few times a second) returns True."""
    deadline = time.monotonic() + timeout
    try:
        family, kind, proto, _name, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except OSError:
        return False
    selector = selectors.DefaultSelector()
    pending: dict[socket.socket, tuple[float, bytes]] = {}
    next_attempt = 0.0
    last_stop_check = 0.0

    def drop(sock: socket.socket) -> None:
        selector.unregister(sock)
        pending.pop(sock, None)
        sock.close()

    try:
        while True:
            now = time.monotonic()
            if now >= deadline:
                return False
            if stop is not None and now - last_stop_check >= 0.2:
                last_stop_check = now
                if stop():
                    return False
            for sock, (opened, _seen) in list(pending.items()):
                if now - opened > attempt_timeout:
                    drop(sock)
                    # a banner slower than the attempts live must still be seen: let later ones live longer
                    attempt_timeout *= 1.1
            if now >= next_attempt and len(pending) < MAX_PENDING:
                next_attempt = now + interval
                sock = socket.socket(family, kind, proto)
                sock.setblocking(False)
                code = sock.connect_ex(address)
                if code in (0, errno.EINPROGRESS):
                    pending[sock] = (now, b"")
                    selector.register(sock, selectors.EVENT_READ)
                else:
                    sock.close()  # refused at once: nothing listens yet
            wait = max(0.0, min(next_attempt, deadline) - time.monotonic())
            for key, _events in selector.select(min(wait, 0.2)):
                sock = pending_socket(key.fileobj)
                try:
                    data = sock.recv(8)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    drop(sock)  # refused or reset: the forwarder found nothing listening
                    continue
                if not data:
                    drop(sock)
                    continue
                opened, seen = pending[sock]
                seen += data
                if seen.startswith(b"SSH-"):
                    return True
                if len(seen) >= 4 or not b"SSH-".startswith(seen):
                    drop(sock)  # something that is not an SSH server
                else:
                    pending[sock] = (opened, seen)
    finally:
        for sock in list(pending):
            with contextlib.suppress(OSError):
                sock.close()
        selector.close()
