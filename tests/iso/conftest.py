"""Fixtures for the qemu builder's ISO blocks: a real HTTP server on 127.0.0.1 that serves files with
Range support and can cut a connection or go silent on purpose, and what a build's blocks are given
(a Ui writing into buffers, a cancel token, a logger)."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from kiln.core.cancel import CancelToken
from kiln.core.ui import BuildUi
from tests.engine.conftest import Terminal


@dataclass
class Behaviour:
    files: dict[str, bytes] = field(default_factory=dict)
    cut_after: int | None = None  #: the next GET sends this many bytes, then closes the connection
    stall_after: int | None = None  #: the next GET sends this many bytes, then says nothing
    ranges: bool = True  #: honour Range requests
    requests: list[tuple[str, str | None]] = field(default_factory=list)  #: (path, Range header)


class FileServer:
    def __init__(self) -> None:
        self.behaviour = Behaviour()
        self.stop = threading.Event()
        behaviour, stop = self.behaviour, self.stop

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                rng = self.headers.get("Range")
                behaviour.requests.append((self.path, rng))
                body = behaviour.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                start = 0
                if rng and behaviour.ranges and (m := re.fullmatch(r"bytes=(\d+)-", rng)):
                    start = int(m.group(1))
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                data = body[start:]
                if behaviour.cut_after is not None:
                    data, behaviour.cut_after = data[: behaviour.cut_after], None
                    self.wfile.write(data)
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if behaviour.stall_after is not None:
                    head, behaviour.stall_after = data[: behaviour.stall_after], None
                    self.wfile.write(head)
                    self.wfile.flush()
                    stop.wait(60)
                    return
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def server() -> Iterator[FileServer]:
    srv = FileServer()
    yield srv
    srv.close()


@dataclass
class Blocks:
    terminal: Terminal
    ui: BuildUi
    cancel: CancelToken
    log: logging.Logger
    work_dir: Path

    @property
    def text(self) -> str:
        return self.terminal.text


@pytest.fixture
def blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Blocks:
    monkeypatch.setenv("KILN_CACHE_DIR", str(tmp_path / "cache"))
    terminal = Terminal()
    work = tmp_path / "work"
    work.mkdir()
    return Blocks(
        terminal, BuildUi(terminal.output(), "qemu"), CancelToken(), logging.getLogger("kiln.test"), work
    )


def cancel_later(token: CancelToken, seconds: float) -> threading.Thread:
    def run() -> None:
        time.sleep(seconds)
        token.cancel()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread
