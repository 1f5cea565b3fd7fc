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

Closing an attempt does not end it inside the forwarder: a connection the guest could not take yet
(no address) stays queued there and reaches sshd later, however long ago the prober gave up on it.
A boot of a minute would queue a hundred of them, and sshd meets them all at once (measured: sshd
throttling at MaxStartups, the first real login dropped). So a machine that says when its sshd
listens (`ready`: kiln's agent writes a line on the console) is probed slowly until it has said so:
one attempt every SLOW_INTERVAL, which still finds an image that never says it.
"""

from __future__ import annotations

import contextlib
import errno
import selectors
import socket
import time
from collections.abc import Callable

MAX_PENDING = 6
#: between attempts while a machine has not said yet that its sshd listens (see `ready`)
SLOW_INTERVAL = 3.0


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
    ready: Callable[[], bool] | None = None,
) -> bool:
    """True once a server at host:port sends an SSH banner; False after `timeout` seconds, or as soon
    as `stop()` (asked a few times a second) returns True. `ready`, also asked a few times a second,
    says whether the machine has announced that its sshd listens: until then one attempt is made
    every SLOW_INTERVAL, after it (or without `ready`) one every `interval`."""
    deadline = time.monotonic() + timeout
    try:
        family, kind, proto, _name, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except OSError:
        return False
    selector = selectors.DefaultSelector()
    pending: dict[socket.socket, tuple[float, bytes]] = {}
    next_attempt = 0.0
    last_check = 0.0
    slow = ready is not None and not ready()

    def drop(sock: socket.socket) -> None:
        selector.unregister(sock)
        pending.pop(sock, None)
        sock.close()

    try:
        while True:
            now = time.monotonic()
            if now >= deadline:
                return False
            if now - last_check >= 0.2:
                last_check = now
                if stop is not None and stop():
                    return False
                if slow and ready is not None and ready():
                    slow, next_attempt = False, now  # it says sshd listens: try at once
            for sock, (opened, _seen) in list(pending.items()):
                if now - opened > (SLOW_INTERVAL if slow else attempt_timeout):
                    drop(sock)
                    if not slow:
                        # a banner slower than the attempts live must still be seen: let later ones live longer
                        attempt_timeout *= 1.1
            if now >= next_attempt and len(pending) < (1 if slow else MAX_PENDING):
                next_attempt = now + (SLOW_INTERVAL if slow else interval)
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
