"""Public addresses: each EIP or public IP is its own loopback address whose port 22 leads to the instance.

A listener on `<address>:22` looks up, at each connection, where the instance's sshd is right now,
so an address can be associated before the instance starts and survives its restarts; and asks
whether the instance's security groups admit a connection from the caller's address right now, so a
rule change applies to the next connection (those already open go on, as on the cloud). A connection
the rules refuse is reset at once: the cloud drops its packets, where a client waits for its timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import Callable

from kiln.localcloud.backend import Endpoint

log = logging.getLogger("kiln.localcloud")

Resolver = Callable[[], Endpoint | None]
Admit = Callable[[str, int], bool]  #: (caller's address, port) -> whether the connection is let in


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (no lingering FIN handshake): the client hears at once it is not let in."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()


class Forwarder:
    def __init__(self, port: int = 22) -> None:
        self.port = port
        self._servers: dict[str, asyncio.Server] = {}

    async def open(self, address: str, resolve: Resolver, admit: Admit | None = None) -> bool:
        """Listen on address:port; False (and a log line) if the port cannot be bound."""
        await self.close(address)

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            peer = writer.get_extra_info("peername")
            if admit is not None and not admit(str(peer[0]) if peer else "", self.port):
                _reset(writer)
                return
            target = resolve()
            if target is None:
                writer.close()
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(target.host, target.port)
            except OSError:
                writer.close()
                return
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

        try:
            self._servers[address] = await asyncio.start_server(
                handle, address, self.port, reuse_address=True
            )
        except OSError as err:
            log.warning("cannot listen on %s:%d for SSH forwarding: %s", address, self.port, err)
            return False
        return True

    async def close(self, address: str) -> None:
        server = self._servers.pop(address, None)
        if server is not None:
            server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1.0)

    async def close_all(self) -> None:
        for address in list(self._servers):
            await self.close(address)

    def addresses(self) -> list[str]:
        return sorted(self._servers)
