"""http_directory / http_content served over real HTTP on 127.0.0.1: files, content, 404s, no way out
of the folder, a log line per request, a port from the range, and nothing left after close()."""

from __future__ import annotations

import http.client
import logging
import socket
import threading
import time
from pathlib import Path

import pytest

from kiln.builders.qemu.httpserve import HttpServer, serve, validate_http
from kiln.errors import BuildError


def get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_directory_served_and_nothing_outside(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "http"
    (root / "sub").mkdir(parents=True)
    (root / "install.sh").write_text("echo installing\n")
    (root / "sub" / "preseed.cfg").write_text("d-i foo\n")
    (tmp_path / "secret.txt").write_text("not for the guest")
    shown: list[str] = []
    caplog.set_level(logging.DEBUG, logger="kiln.test")
    threads_before = threading.active_count()
    with serve(
        root,
        {},
        bind="127.0.0.1",
        port_min=18000,
        port_max=18100,
        log=logging.getLogger("kiln.test"),
        show=shown.append,
    ) as server:
        assert 18000 <= server.port <= 18100
        assert get(server.port, "/install.sh") == (200, b"echo installing\n")
        assert get(server.port, "/sub/preseed.cfg") == (200, b"d-i foo\n")
        for escape in ("/../secret.txt", "/sub/../../secret.txt", "/%2e%2e/secret.txt", "/..%2fsecret.txt"):
            status, body = get(server.port, escape)
            assert b"not for the guest" not in body and status == 404, escape
        assert get(server.port, "/nope")[0] == 404
        port = server.port
    assert any('"GET /install.sh HTTP/1.1" 200' in line for line in shown), shown
    assert any("http: 127.0.0.1" in r.message and "/sub/preseed.cfg" in r.message for r in caplog.records)
    # closed: nothing listens, no thread is left
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2)
    assert threading.active_count() == threads_before


def test_content_served_with_a_helpful_404(tmp_path: Path) -> None:
    content = {"/preseed.cfg": "d-i passwd/root-password password r00t\n", "/ks/a.cfg": "x"}
    server = HttpServer(
        None, content, bind="127.0.0.1", port_min=18200, port_max=18300, log=logging.getLogger("t")
    )
    server.start()
    try:
        assert get(server.port, "/preseed.cfg") == (200, content["/preseed.cfg"].encode())
        assert get(server.port, "/ks//a.cfg?x=1") == (200, b"x")  # path.Clean, as Packer's MapServer
        status, body = get(server.port, "/preseed")
        assert status == 404 and b"http_content has: /ks/a.cfg, /preseed.cfg" in body
    finally:
        server.close()
    server.close()  # twice is harmless


def test_port_range_taken_and_a_slow_client_does_not_hold_close(tmp_path: Path) -> None:
    holders = []
    for port in (18400, 18401):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen()
        holders.append(sock)
    try:
        with pytest.raises(
            BuildError, match="no free port between http_port_min 18400 and http_port_max 18401"
        ):
            HttpServer(
                tmp_path, {}, bind="127.0.0.1", port_min=18400, port_max=18401, log=logging.getLogger("t")
            ).start()
        server = HttpServer(
            tmp_path, {}, bind="127.0.0.1", port_min=18400, port_max=18402, log=logging.getLogger("t")
        )
        assert server.start() == 18402
        idle = socket.create_connection(("127.0.0.1", 18402))  # connects, sends nothing
        assert get(18402, "/")[0] == 200  # a listing, as Go's FileServer
        started = time.monotonic()
        server.close()
        assert time.monotonic() - started < 3  # the silent connection was cut, not waited for
        assert idle.recv(1) == b""
        idle.close()
    finally:
        for sock in holders:
            sock.close()


def test_missing_directory_and_bad_options(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match=r"^http_directory .*/nope: no such folder$"):
        HttpServer(tmp_path / "nope", {}, bind="127.0.0.1", log=logging.getLogger("t")).start()
    assert not HttpServer(None, {}, log=logging.getLogger("t")).wanted
    problems = dict(validate_http("http", {"/a": "x", "b": "y"}, 9000, 8000))
    assert "cannot be used in conjunction with http_directory" in problems["http_content"]
    assert problems["http_port_min"] == "http_port_min must be less than http_port_max"
    assert problems["http_content.b"] == '"b" is not a path: it starts with "/"'
    assert validate_http("", {}, 8000, 9000) == []
