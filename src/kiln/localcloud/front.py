"""The listening socket's front: every connection starts here, then belongs to the aiohttp app.

A connection whose first request is `CONNECT host:443` for an Alibaba Cloud API name is answered
`200 Connection established`, then localcloud ends the TLS itself with a certificate its own CA
signed for that name (`tls.Authority`) and hands the decrypted stream to the app; a CONNECT for any
other host is refused and nothing is connected. Any other connection is handed to the app as it
is, with the bytes read so far: after the first few bytes of a connection this front costs nothing.

`ApiRequestHandler` is aiohttp's own request handler, except that a request it cannot parse (a bad
request line, a header or line too long, a bad header) is answered as an API error (Code, Message,
RequestId, HostId, in the Format or Accept the bytes read say) and logged in one line.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import uuid
from collections.abc import Callable
from typing import Any

from aiohttp import web, web_protocol
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong

from kiln.localcloud import errors, hosts, incoming
from kiln.localcloud.api.rpc import error_response
from kiln.localcloud.tls import Authority
from kiln.localcloud.wire import wants_xml

log = logging.getLogger("kiln.localcloud")

CONNECT = b"CONNECT "
MAX_CONNECT_HEAD = 16 * 1024
MAX_SEEN = 2 * incoming.MAX_QUERY
_ACCEPT = re.compile(r"\r\naccept:[ \t]*([^\r\n]*)", re.I)
_QUERY = re.compile(rb"^[^ ]* [^ ?]*\?([^ \r\n]*)")


class ApiRequestHandler(web_protocol.RequestHandler):
    """aiohttp's handler, answering what it cannot parse as the API does instead of in plain text."""

    _first: bytes = b""
    _last: bytes = b""

    def data_received(self, data: bytes) -> None:
        # Where Format or Accept can be found if parsing fails: the bytes seen last, or the start of
        # the connection (a request line too long comes in many reads).
        self._first = self._first or data[:65536]
        self._last = data
        super().data_received(data)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:
            raise ConnectionError("the response is sent already, the error cannot be")
        if isinstance(exc, LineTooLong):
            err = errors.REQUEST_LINE_TOO_LONG(" ".join((exc.message or "").split())[:200])
        elif isinstance(exc, HttpProcessingError):
            err = errors.MALFORMED_REQUEST(" ".join((exc.message or "").split())[:200])
        else:
            log.error("request from %s failed", request.remote, exc_info=exc)
            err = errors.INTERNAL_ERROR(type(exc).__name__ if exc else "")
        if isinstance(exc, HttpProcessingError):
            log.warning("request from %s refused: %s: %s", request.remote, err.code, err.message)
        xml = self._asked_xml(self._last if _QUERY.match(self._last) else self._first)
        request_id = str(uuid.uuid4()).upper()
        response = error_response(err, request_id, "localcloud", "", xml)
        response.force_close()
        return response

    @staticmethod
    def _asked_xml(data: bytes) -> bool:
        query, accept = _QUERY.match(data), _ACCEPT.search(data[:MAX_SEEN].decode("latin-1"))
        asked = incoming.asked_format(query.group(1)[:MAX_SEEN].decode("latin-1") if query else "")
        return wants_xml(asked, accept.group(1) if accept else "")


class Front(asyncio.Protocol):
    """One connection until it is known what it is: a CONNECT tunnel or an ordinary HTTP one."""

    def __init__(
        self,
        make_handler: Callable[[], ApiRequestHandler],
        authority: Authority,
        refusal: Callable[[str, int | None], str | None],
    ) -> None:
        self.make_handler = make_handler
        self.authority = authority
        self.refusal = refusal  # why a CONNECT to host:port is refused, None when it is not
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.tunnel: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.tunnel is not None:
            return  # decrypted bytes that came before the app took the tunnel: given to it then
        if len(self.buffer) < len(CONNECT) and CONNECT.startswith(self.buffer):
            return
        if not self.buffer.startswith(CONNECT):
            assert self.transport is not None
            self._hand_off(self.transport)
            return
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > MAX_CONNECT_HEAD:
                self._refuse(400, "Bad Request", "the CONNECT request's head is too long")
            return
        head, rest = self.buffer[:end].decode("latin-1"), self.buffer[end + 4 :]
        parts = head.split("\r\n", 1)[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            self._refuse(400, "Bad Request", f"{head.splitlines()[0][:200]!r} is not a CONNECT request")
            return
        host, port = hosts.split(parts[1])
        why = self.refusal(host, port)
        if why is not None:
            log.info("proxy: refused CONNECT %s: %s", parts[1][:200], why)
            self._refuse(403, "Forbidden", why)
            return
        if rest:
            self._refuse(400, "Bad Request", "data sent before the CONNECT was answered")
            return
        assert self.transport is not None
        self.transport.pause_reading()
        self.transport.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.buffer = b""
        self.tunnel = asyncio.get_running_loop().create_task(self._terminate_tls(host))

    async def _terminate_tls(self, host: str) -> None:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        try:
            context = self.authority.context(host)
            tls = await loop.start_tls(
                self.transport, self, context, server_side=True, ssl_handshake_timeout=30
            )
        except (TimeoutError, OSError, ssl.SSLError, ValueError) as err:
            log.info("proxy: TLS for %s with a client failed: %s", host, err or type(err).__name__)
            self.transport.close()
            return
        if tls is None:
            return  # the client left during the handshake
        self._hand_off(tls)

    def _hand_off(self, transport: asyncio.Transport) -> None:
        handler = self.make_handler()
        transport.set_protocol(handler)
        handler.connection_made(transport)
        data, self.buffer = self.buffer, b""
        if data:
            handler.data_received(data)

    def _refuse(self, status: int, reason: str, why: str) -> None:
        assert self.transport is not None
        body = f"localcloud: {why}\n".encode()
        self.transport.write(
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.tunnel is not None and not self.tunnel.done():
            self.tunnel.cancel()


def handler_factory(server: web.Server, **kwargs: Any) -> Callable[[], ApiRequestHandler]:
    """What makes the app's handler for one connection (the kwargs are the AppRunner's)."""
    loop = asyncio.get_running_loop()

    def make() -> ApiRequestHandler:
        return ApiRequestHandler(server, loop=loop, **kwargs)

    return make
