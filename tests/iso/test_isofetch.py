"""ISO inputs: local files in place, downloads from a real HTTP server on 127.0.0.1 into the cache
(resumed after a cut connection or a killed run), every checksum form, and one-line errors naming the
option and the URL."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kiln.builders.qemu.isofetch import (
    Checksum,
    IsoRequest,
    checksum_problem,
    fetch_iso,
    find_in_listing,
    parse_checksum,
)
from kiln.errors import BuildError, CancelledError
from tests.iso.conftest import Blocks, FileServer, cancel_later

ISO = os.urandom(3 << 20) + b"end"  # 3 MiB and a bit: several progress quarters, several chunks
SHA256 = hashlib.sha256(ISO).hexdigest()


def request(blocks: Blocks, *urls: str, checksum: str = f"sha256:{SHA256}", **kw: str) -> IsoRequest:
    return IsoRequest(urls, checksum, "iso_urls" if len(urls) > 1 else "iso_url", blocks.work_dir, **kw)


def fetch(blocks: Blocks, req: IsoRequest) -> Path:
    return fetch_iso(req, blocks.ui, blocks.cancel, blocks.log)


def cached(checksum: str) -> Path:
    key = hashlib.sha1(checksum.encode()).hexdigest()
    return Path(os.environ["KILN_CACHE_DIR"]) / "iso" / f"{key}.iso"


def test_download_into_the_cache_then_reuse(blocks: Blocks, server: FileServer) -> None:
    server.behaviour.files["/debian.iso"] = ISO
    url = server.url("/debian.iso")
    path = fetch(blocks, request(blocks, url))
    assert path == cached(f"sha256:{SHA256}") and path.read_bytes() == ISO
    assert not path.with_name(path.name + ".part").exists()
    lines = blocks.text.splitlines()
    assert lines[0] == "==> qemu: Retrieving ISO"
    shown = f"{url}?checksum=sha256%3A{SHA256}"  # as Packer 1.6.6 prints it
    assert lines[1:3] == [f"==> qemu: Trying {url}", f"==> qemu: Trying {shown}"]
    assert "    qemu: Downloading debian.iso: 0 B of 3.0 MiB" in lines
    assert any(line.startswith("    qemu: Downloading debian.iso: 3.0 MiB in ") for line in lines)
    assert lines[-1] == f"==> qemu: {shown} => {path}"
    # a second build finds it under its checksum's name and asks the server nothing
    asked = len(server.behaviour.requests)
    assert fetch(blocks, request(blocks, url)) == path
    assert len(server.behaviour.requests) == asked
    assert f"Using the file already downloaded: {path}" in blocks.text


def test_a_cut_connection_is_resumed_with_a_range_request(blocks: Blocks, server: FileServer) -> None:
    server.behaviour.files["/a.iso"] = ISO
    server.behaviour.cut_after = 1_000_000
    path = fetch(blocks, request(blocks, server.url("/a.iso")))
    assert path.read_bytes() == ISO
    assert server.behaviour.requests == [("/a.iso", None), ("/a.iso", "bytes=1000000-")]
    assert "The download of a.iso was cut (" in blocks.text and "); resuming" in blocks.text
    assert "Downloading a.iso: 976.6 KiB of 3.0 MiB (resuming at 976.6 KiB)" in blocks.text


def test_a_part_left_by_an_interrupted_build_is_resumed(blocks: Blocks, server: FileServer) -> None:
    server.behaviour.files["/a.iso"] = ISO
    server.behaviour.stall_after = 500_000
    cancel_later(blocks.cancel, 1.0)
    started = time.monotonic()
    with pytest.raises(CancelledError):
        fetch(blocks, request(blocks, server.url("/a.iso")))
    assert time.monotonic() - started < 5  # a silent server does not hold Ctrl-C
    part = cached(f"sha256:{SHA256}").with_name(cached(f"sha256:{SHA256}").name + ".part")
    assert part.stat().st_size == 500_000 and not cached(f"sha256:{SHA256}").exists()
    blocks.cancel.__init__()  # type: ignore[misc]  # a new build
    path = fetch(blocks, request(blocks, server.url("/a.iso")))
    assert path.read_bytes() == ISO and not part.exists()
    assert server.behaviour.requests[-1] == ("/a.iso", "bytes=500000-")


def test_a_server_without_ranges_starts_over(blocks: Blocks, server: FileServer) -> None:
    server.behaviour.files["/a.iso"] = ISO
    server.behaviour.ranges = False
    server.behaviour.cut_after = 700_000
    path = fetch(blocks, request(blocks, server.url("/a.iso")))
    assert path.read_bytes() == ISO  # the 200 answer to a Range request rewrote the part whole
    assert [r for _, r in server.behaviour.requests] == [None, "bytes=700000-"]


def test_a_mismatch_is_one_line_naming_the_option_and_url(blocks: Blocks, server: FileServer) -> None:
    server.behaviour.files["/a.iso"] = ISO
    wrong = "0" * 64
    url = server.url("/a.iso")
    with pytest.raises(BuildError) as caught:
        fetch(blocks, request(blocks, url, checksum=wrong))
    err = caught.value
    assert str(err) == (
        f"iso_url {url}: iso_checksum does not match: the sha256 of {url} is {SHA256}, not {wrong}"
    )
    assert err.hint == "fix iso_checksum, or the file at that URL has changed"
    target = cached(f"sha256:{wrong}")
    assert not target.exists() and not target.with_name(target.name + ".part").exists()
    assert f"Checksum did not match, removing {target}.part" in blocks.text


def test_urls_are_tried_in_order(blocks: Blocks, server: FileServer, tmp_path: Path) -> None:
    server.behaviour.files["/good.iso"] = ISO
    dead = FileServer()
    dead_url = dead.url("/x.iso")
    dead.close()  # nothing listens there now
    missing = server.url("/missing.iso")
    path = fetch(blocks, request(blocks, dead_url, missing, server.url("/good.iso")))
    assert path.read_bytes() == ISO
    assert "Download failed Connection refused" in blocks.text
    assert "Download failed HTTP 404 Not Found" in blocks.text
    with pytest.raises(BuildError) as caught:
        fetch(blocks, request(blocks, dead_url, missing, checksum="md5:" + "1" * 32))
    assert str(caught.value) == (
        f"iso_urls: no URL could be used: {dead_url}: Connection refused; {missing}: HTTP 404 Not Found"
    )
    assert "\n" not in str(caught.value)


def test_local_files_are_used_in_place(blocks: Blocks, tmp_path: Path) -> None:
    iso = blocks.work_dir / "images" / "my.iso"
    iso.parent.mkdir()
    iso.write_bytes(ISO)
    for url in ("images/my.iso", str(iso), iso.as_uri(), "file:images/my.iso", "file://./images/my.iso"):
        assert fetch(blocks, request(blocks, url)) == iso, url
    assert not (Path(os.environ["KILN_CACHE_DIR"]) / "iso").exists()  # nothing copied
    with pytest.raises(BuildError) as caught:
        fetch(blocks, request(blocks, "nope.iso"))
    assert str(caught.value) == f"iso_url nope.iso: no such file: {blocks.work_dir / 'nope.iso'}"
    assert caught.value.hint and "relative" in caught.value.hint
    with pytest.raises(BuildError, match=r"iso_checksum does not match: the md5 of images/my\.iso is"):
        fetch(blocks, request(blocks, "images/my.iso", checksum="a" * 32))


@pytest.mark.parametrize("kind", ["md5", "sha1", "sha256", "sha512"])
def test_every_checksum_type_with_and_without_prefix(blocks: Blocks, kind: str) -> None:
    (blocks.work_dir / "x.iso").write_bytes(ISO)
    digest = hashlib.new(kind, ISO).hexdigest()
    for spec in (f"{kind}:{digest}", digest, f"{kind.upper()}:{digest.upper()}"):
        assert fetch(blocks, request(blocks, "x.iso", checksum=spec)).name == "x.iso"
    assert parse_checksum(digest) == Checksum(kind, digest)


def test_checksum_listings_local_and_over_http(blocks: Blocks, server: FileServer) -> None:
    server.behaviour.files["/dist/debian.iso"] = ISO
    md5 = hashlib.md5(ISO).hexdigest()
    gnu = f"{'f' * 64}  other.iso\n{SHA256} *debian.iso\n"
    bsd = f"MD5 (other.iso) = {'e' * 32}\nMD5 (debian.iso) = {md5}\n"
    (blocks.work_dir / "SHA256SUMS").write_text(gnu)
    server.behaviour.files["/dist/MD5SUMS"] = bsd.encode()
    url = server.url("/dist/debian.iso")
    for spec in ("file:SHA256SUMS", "file://./SHA256SUMS", f"file:{server.url('/dist/MD5SUMS')}"):
        path = fetch(blocks, request(blocks, url, checksum=spec))
        assert path.read_bytes() == ISO, spec
    assert find_in_listing(bsd, "debian.iso") == Checksum("md5", md5)
    assert find_in_listing(f"{SHA256}\n", "whatever.iso") == Checksum("sha256", SHA256)
    (blocks.work_dir / "EMPTY").write_text(f"{SHA256}  else.iso\n")
    with pytest.raises(BuildError, match=r"^iso_checksum file:EMPTY lists no checksum for debian.iso$"):
        fetch(blocks, request(blocks, url, checksum="file:EMPTY"))
    with pytest.raises(BuildError, match=r"^iso_checksum file:NOPE: cannot read it: No such file"):
        fetch(blocks, request(blocks, url, checksum="file:NOPE"))


def test_target_path_as_a_file_and_as_a_folder(blocks: Blocks, server: FileServer) -> None:
    server.behaviour.files["/a.iso"] = ISO
    url = server.url("/a.iso")
    as_file = fetch(blocks, request(blocks, url, target_path="keep/debian.img"))
    assert as_file == blocks.work_dir / "keep" / "debian.img" and as_file.read_bytes() == ISO
    key = hashlib.sha1(f"sha256:{SHA256}".encode()).hexdigest()
    in_folder = fetch(blocks, request(blocks, url, target_path="isos", target_extension="ISO"))
    assert in_folder == blocks.work_dir / "isos" / f"{key}.iso"


def test_checksum_none_warns_and_downloads(blocks: Blocks, server: FileServer) -> None:
    server.behaviour.files["/a.iso"] = ISO
    path = fetch(blocks, request(blocks, server.url("/a.iso"), checksum="none"))
    assert path.read_bytes() == ISO
    assert "A checksum of 'none' was specified." in blocks.text
    assert path == cached(server.url("/a.iso"))  # keyed by its URL


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("", "a checksum must be specified"),
        ("abc", "is not a checksum: a bare one is 32, 40, 64 or 128 hex digits"),
        ("crc32:1234", 'unknown checksum type "crc32"'),
        ("sha256:" + "a" * 63, "a sha256 checksum is 64 hex digits"),
        ("md5:" + "g" * 32, "a md5 checksum is 32 hex digits"),
        ("file:", '"file:" names no checksum file'),
    ],
)
def test_bad_checksums_are_refused(spec: str, problem: str) -> None:
    found = checksum_problem(spec)
    assert found is not None and problem in found
    assert checksum_problem("none") is None and checksum_problem("file:http://h/SUMS") is None


def test_validate_names_the_options(tmp_path: Path) -> None:
    builder = {"type": "qemu", "disk_image": True, "ssh_username": "root"}
    cases = [
        ({"iso_checksum": "none"}, "One of iso_url or iso_urls must be specified"),
        (
            {"iso_url": "a.iso", "iso_urls": ["b.iso"], "iso_checksum": "none"},
            "Only one of iso_url or iso_urls must be specified",
        ),
        (
            {"iso_url": "a.iso", "iso_checksum": "sha256:123"},
            "builders[0].iso_checksum: a sha256 checksum is 64",
        ),
        (
            {"iso_urls": ["a.iso", "ftp://h/a.iso"], "iso_checksum": "none"},
            'builders[0].iso_urls[1]: "ftp://h/a.iso": kiln fetches paths, file://, http:// and https:// URLs',
        ),
    ]
    for extra, expected in cases:
        (tmp_path / "t.json").write_text(json.dumps({"builders": [{**builder, **extra}]}))
        done = subprocess.run(
            [sys.executable, "-m", "kiln", "validate", "t.json"], cwd=tmp_path, capture_output=True, text=True
        )
        assert done.returncode == 1, extra
        assert expected in done.stdout + done.stderr, done.stdout + done.stderr
        assert "Traceback" not in done.stderr
