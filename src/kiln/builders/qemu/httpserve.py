"""http_directory / http_content: the files a guest's installer fetches (a preseed, a kickstart, an
install script), served for the build's lifetime.

    server = HttpServer(directory, content, bind="0.0.0.0", port_min=8000, port_max=9000, log=log)
    port = server.start()          # a free port of the range, tried in random order (as Packer)
    ...
    server.close()                 # the listener and every request thread are gone when it returns

(or `with serve(...) as server:`). The guest reaches it at 10.0.2.2 under QEMU's user-mode network
(GUEST_HOST_IP: `{{ .HTTPIP }}`). http_directory is served as Packer's Go http.FileServer serves it
(files, folder listings, index.html), never outside the folder; http_content maps paths
(`/preseed.cfg`) to text, and a path it lacks is a 404 that says which paths there are. Packer
refuses both at once (`validate_http`). Every request is a line of the debug log (KILN_LOG), and
with `-debug` a line of the build's output too.

The standard library's threaded HTTP server is enough here: an installer makes a handful of
requests, and a thread needs no event loop of its own beside the build's (aiohttp would).
"""

from __future__ import annotations

import contextlib
import errno
import posixpath
import random
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kiln.errors import BuildError

if TYPE_CHECKING:
    import logging

#: where a guest on QEMU's user-mode network reaches this host
GUEST_HOST_IP = "10.0.2.2"
#: a request that sends nothing for this long is dropped, so close() never waits on a silent guest
REQUEST_TIMEOUT = 30.0
_OPEN_LOCK = threading.Lock()


def validate_http(
    directory: str, content: Mapping[str, str], port_min: int, port_max: int
) -> list[tuple[str, str]]:
    """(option, problem) for each problem with the HTTP options, as Packer says them."""
    problems = []
    if directory and content:
        problems.append(
            (
                "http_content",
                "http_content cannot be used in conjunction with http_directory: "
                "serve the files with http_content (file() reads one) or from the folder",
            )
        )
    if port_min > port_max:
        problems.append(("http_port_min", "http_port_min must be less than http_port_max"))
    if not (0 < port_min < 65536 and 0 < port_max < 65536):
        problems.append(("http_port_min", "http_port_min and http_port_max must be ports (1-65535)"))
    for path in content:
        if not path.startswith("/"):
            problems.append((f"http_content.{path}", f'"{path}" is not a path: it starts with "/"'))
    return problems


class _Handler(SimpleHTTPRequestHandler):
    server_version = "kiln"
    timeout = REQUEST_TIMEOUT
    content: Mapping[str, str] | None = None
    report: Callable[[str], None] = staticmethod(lambda line: None)

    def setup(self) -> None:
        super().setup()
        with _OPEN_LOCK:
            self.server.open_requests.add(self.connection)  # type: ignore[attr-defined]

    def finish(self) -> None:
        with _OPEN_LOCK:
            self.server.open_requests.discard(self.connection)  # type: ignore[attr-defined]
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        self.report(f"{self.address_string()} {format % args}")

    def do_GET(self) -> None:
        if self.content is None:
            super().do_GET()
            return
        body = self._content()
        if body is not None:
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        if self.content is None:
            super().do_HEAD()
            return
        self._content()

    def _content(self) -> bytes | None:
        assert self.content is not None
        path = posixpath.normpath(self.path.split("?", 1)[0].split("#", 1)[0])
        text = self.content.get(path)
        if text is None:
            known = ", ".join(sorted(self.content))
            self.send_error(404, f"{path} not found", f"{path} not found. http_content has: {known}")
            return None
        body = text.encode()
        self.send_response(200)
        self.send_header("Content-Type", self.guess_type(path))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        return body


class HttpServer:
    """The build's HTTP server; start() picks the port, close() stops everything it started."""

    def __init__(
        self,
        directory: Path | None,
        content: Mapping[str, str],
        *,
        bind: str = "0.0.0.0",
        port_min: int = 8000,
        port_max: int = 9000,
        log: logging.Logger,
        show: Callable[[str], None] | None = None,
    ) -> None:
        self.directory, self.content, self.bind = directory, dict(content), bind
        self.port_min, self.port_max = port_min, port_max
        self.log, self.show = log, show
        self.port = 0
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def wanted(self) -> bool:
        """Whether there is anything to serve (Packer starts no server, and HTTPPort is 0, without)."""
        return bool(self.directory) or bool(self.content)

    def _report(self, line: str) -> None:
        self.log.debug("http: %s", line)
        if self.show is not None:
            self.show(f"HTTP: {line}")

    def start(self) -> int:
        if self.directory is not None and not self.directory.is_dir():
            raise BuildError(
                f"http_directory {self.directory}: no such folder", "create it, or fix http_directory"
            )
        attrs: dict[str, Any] = {"report": staticmethod(self._report)}
        if self.content:
            attrs["content"] = self.content
        handler = type("Handler", (_Handler,), attrs)
        factory = partial(handler, directory=str(self.directory or "/nonexistent"))
        ports = list(range(self.port_min, self.port_max + 1))
        random.shuffle(ports)
        last: OSError | None = None
        for port in ports:
            try:
                httpd = ThreadingHTTPServer((self.bind, port), factory)
            except OSError as exc:
                if exc.errno not in (errno.EADDRINUSE, errno.EACCES):
                    raise BuildError(
                        f"http_bind_address {self.bind}: cannot listen there: {exc.strerror}",
                        "give an address of this host, or 0.0.0.0",
                    ) from None
                last = exc
                continue
            break
        else:
            raise BuildError(
                f"Error finding port: no free port between http_port_min {self.port_min} and "
                f"http_port_max {self.port_max} on {self.bind} ({last.strerror if last else 'empty range'})",
                "widen the range",
            )
        httpd.daemon_threads = False  # close() joins the request threads
        httpd.open_requests = set()  # type: ignore[attr-defined]  # what close() cuts
        self._httpd, self.port = httpd, port
        self._thread = threading.Thread(target=httpd.serve_forever, name=f"http-{port}", daemon=True)
        self._thread.start()
        self.log.debug("http: serving %s on %s:%d", self.directory or "http_content", self.bind, port)
        return port

    def close(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        with _OPEN_LOCK:
            for sock in httpd.open_requests:  # type: ignore[attr-defined]  # a guest still connected
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        httpd.server_close()  # closes the socket and joins the request threads
        if self._thread is not None:
            self._thread.join()
            self._thread = None


@contextlib.contextmanager
def serve(directory: Path | None, content: Mapping[str, str], **kwargs: Any) -> Iterator[HttpServer]:
    server = HttpServer(directory, content, **kwargs)
    if server.wanted:
        server.start()
    try:
        yield server
    finally:
        server.close()
