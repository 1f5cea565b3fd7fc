"""Public addresses: each EIP or public IP is its own loopback address whose port 22 leads to the instance.

A listener on `<address>:22` looks up, at each connection, where the instance's sshd is right now,
so an address can be associated before the instance starts and survives its restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from kiln.localcloud.backend import Endpoint

log = logging.getLogger("kiln.localcloud")

Resolver = Callable[[], Endpoint | None]


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


class Forwarder:
    def __init__(self, port: int = 22) -> None:
        self.port = port
        self._servers: dict[str, asyncio.Server] = {}

    async def open(self, address: str, resolve: Resolver) -> bool:
        """Listen on address:port; False (and a log line) if the port cannot be bound."""
        await self.close(address)

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
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
