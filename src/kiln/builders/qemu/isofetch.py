"""The qemu builder's source: iso_url / iso_urls, iso_checksum, iso_target_path, iso_target_extension.

    path = fetch_iso(IsoRequest(urls, checksum, option="iso_url", work_dir=...), ui, cancel, log)

A local file (a path, `file:PATH` or a `file://` URL) is used in place, never copied, once its
checksum matches. An http(s) URL is downloaded, as in Packer, to `iso_target_path` or to kiln's
cache (`<cache dir>/iso/<sha1 of "type:hex">.<iso_target_extension>`; of the URL when the checksum
is `none`), through a `.part` file beside it that a cut connection or an interrupted build leaves
for the next attempt to resume with an HTTP Range request; the file takes its name (an atomic
rename) only once its checksum matches, so what is in the cache under a checksum's name is that
file. A file already cached under its checksum's name is used without a download. URLs are tried in
order (the next one after a failure); a lock file beside the target keeps two builds from writing
it at once.

`iso_checksum` is `type:hex` (md5, sha1, sha256, sha512), bare hex (its type by its length),
`file:PATH` or `file:URL` (a listing in `sha256sum` or BSD `SHA256 (name) = hex` form, in which
the ISO's file name is looked up), or `none` (a warning). `checksum_problem` and `url_problem` say
at validate time what is wrong with the options, without reading anything.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlparse

from kiln import paths
from kiln.core.progress import transfer_progress
from kiln.core.secrets import REDACTOR
from kiln.errors import BuildError, CancelledError

if TYPE_CHECKING:  # the HTTP client is imported when a download starts, not when options are validated
    import http.client
    import logging
    import urllib.request

    from kiln.core.cancel import CancelToken
    from kiln.core.ui import Ui

KINDS_BY_LENGTH = {32: "md5", 40: "sha1", 64: "sha256", 128: "sha512"}
LENGTHS = {kind: length for length, kind in KINDS_BY_LENGTH.items()}
NONE_WARNING = (
    "A checksum of 'none' was specified. Since ISO files are so big, a checksum is highly recommended."
)
CHUNK = 1 << 16
#: a connection that moves nothing for this long is cut (and resumed)
READ_TIMEOUT = 30.0
#: attempts on one URL in a row, each resuming where the last was cut
ATTEMPTS = 5
LISTING_MAX = 4 << 20


@dataclass(frozen=True)
class Checksum:
    kind: str  #: md5, sha1, sha256, sha512, or "none"
    hex: str = ""

    def __str__(self) -> str:
        return "none" if self.kind == "none" else f"{self.kind}:{self.hex}"

    def new(self) -> Any:
        return hashlib.new(self.kind) if self.kind != "none" else None


@dataclass(frozen=True)
class IsoRequest:
    urls: tuple[str, ...]
    checksum: str  #: as iso_checksum says it
    option: str  #: the option the URLs came from (iso_url or iso_urls), for errors
    work_dir: Path  #: relative paths are relative to it
    target_path: str = ""
    target_extension: str = "iso"


class _Failed(Exception):
    """One URL could not be used; the next is tried."""

    def __init__(self, reason: str, hint: str) -> None:
        super().__init__(reason)
        self.reason, self.hint = reason, hint


# -- validation (no I/O) ---------------------------------------------------------------------------


def parse_checksum(spec: str) -> Checksum | str:
    """A Checksum, or the listing a `file:` checksum names (str); ValueError says what is wrong."""
    text = spec.strip()
    if text.lower() == "none":
        return Checksum("none")
    if text.lower().startswith("file:"):
        listing = text if text[5:7] == "//" else text[5:].strip()  # file://./SUMS is a file URL itself
        if not listing or listing == "file://":
            raise ValueError('"file:" names no checksum file')
        return listing
    kind, _, value = text.rpartition(":")
    kind = kind.lower() or KINDS_BY_LENGTH.get(len(value), "")
    if not kind:
        raise ValueError(
            f'"{spec}" is not a checksum: a bare one is 32, 40, 64 or 128 hex digits (md5, sha1, sha256, sha512)'
        )
    if kind not in LENGTHS:
        raise ValueError(f'unknown checksum type "{kind}": one of md5, sha1, sha256, sha512, file, none')
    if not re.fullmatch(r"[0-9a-fA-F]+", value) or len(value) != LENGTHS[kind]:
        raise ValueError(f"a {kind} checksum is {LENGTHS[kind]} hex digits, not {value!r}")
    return Checksum(kind, value.lower())


def checksum_problem(spec: str) -> str | None:
    if not spec.strip():
        return 'a checksum must be specified ("sha256:HEX", "file:URL" or "none")'
    try:
        parse_checksum(spec)
    except ValueError as exc:
        return str(exc)
    if spec.lower().endswith(".iso") and not spec.lower().startswith("file:"):
        return ".iso is not a valid checksum ending"
    return None


def url_problem(url: str) -> str | None:
    scheme = urlparse(url).scheme.lower()
    if not url.strip():
        return "is empty"
    if len(scheme) > 1 and scheme not in ("file", "http", "https"):
        return f'"{url}": kiln fetches paths, file://, http:// and https:// URLs, not {scheme}://'
    return None


def local_path(url: str, work_dir: Path) -> Path | None:
    """The file a path or file: URL names (relative to work_dir), or None for an http(s) URL."""
    parsed = urlparse(url)
    scheme = parsed.scheme.lower()
    if scheme in ("http", "https"):
        return None
    # file:///abs, file://./relative (as Packer's docs write it) and file:relative
    rest = (url[7:] if url[5:7] == "//" else url[5:]) if scheme == "file" else url
    path = Path(unquote(rest) if scheme == "file" else rest)
    return path if path.is_absolute() else work_dir / path


# -- checksum listings ------------------------------------------------------------------------------

_BSD = re.compile(r"^(MD5|SHA1|SHA256|SHA512) ?\((.+)\) ?= ?([0-9a-fA-F]+)$", re.IGNORECASE)
_GNU = re.compile(r"^([0-9a-fA-F]{32,128})\s+[* ]?(.+)$")


def find_in_listing(text: str, name: str) -> Checksum | None:
    """The checksum a `sha256sum` (or BSD-style) listing gives for the file `name`."""
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    for line in lines:
        if match := _BSD.match(line):
            kind, listed, value = match.group(1).lower(), match.group(2), match.group(3)
        elif match := _GNU.match(line):
            listed, value = match.group(2).strip(), match.group(1)
            kind = KINDS_BY_LENGTH.get(len(value), "")
        else:
            continue
        if kind in LENGTHS and len(value) == LENGTHS[kind] and os.path.basename(listed.lstrip("*")) == name:
            return Checksum(kind, value.lower())
    alone = len(lines) == 1 and re.fullmatch(r"[0-9a-fA-F]+", lines[0])
    if alone and (kind := KINDS_BY_LENGTH.get(len(lines[0]), "")):  # a file holding the one checksum
        return Checksum(kind, lines[0].lower())
    return None


def resolve_checksum(request: IsoRequest, cancel: CancelToken) -> Checksum:
    parsed = parse_checksum(request.checksum)  # validated already
    if isinstance(parsed, Checksum):
        return parsed
    import http.client

    name = os.path.basename(unquote(urlparse(request.urls[0]).path))
    where = f"iso_checksum {request.checksum.strip()}"
    try:
        path = local_path(parsed, request.work_dir)
        if path is not None:
            with open(path, "rb") as handle:
                text = handle.read(LISTING_MAX).decode("utf-8", "replace")
        else:
            with _opener([]).open(parsed, timeout=READ_TIMEOUT) as response:
                text = response.read(LISTING_MAX).decode("utf-8", "replace")
    except (OSError, http.client.HTTPException) as exc:
        raise BuildError(
            f"{where}: cannot read it: {_reason(exc)}", "check the path or URL of the listing"
        ) from None
    cancel.check()
    found = find_in_listing(text, name)
    if found is None:
        raise BuildError(
            f"{where} lists no checksum for {name}",
            f'the listing needs a line "HEX  {name}" (sha256sum) or "SHA256 ({name}) = HEX"',
        )
    return found


# -- fetching --------------------------------------------------------------------------------------


def fetch_iso(request: IsoRequest, ui: Ui, cancel: CancelToken, log: logging.Logger) -> Path:
    """The ISO's path on this host, its checksum checked: a local file in place, or a download."""
    ui.say("Retrieving ISO")
    checksum = resolve_checksum(request, cancel)
    if checksum.kind == "none":
        ui.message(NONE_WARNING)
    failures: list[tuple[str, _Failed]] = []
    for url in request.urls:
        cancel.check()
        _register_url_secret(url)
        shown = _with_checksum(url, checksum)
        ui.say(f"Trying {url}")
        ui.say(f"Trying {shown}")  # Packer says both: the URL, then what go-getter is given
        try:
            path = _fetch_one(url, checksum, request, ui, cancel, log)
        except _Failed as exc:
            ui.say(f"Download failed {exc.reason}")
            failures.append((url, exc))
            continue
        ui.say(f"{shown} => {path}")
        return path
    if len(failures) == 1:
        url, failed = failures[0]
        raise BuildError(f"{request.option} {url}: {failed.reason}", failed.hint)
    tried = "; ".join(f"{url}: {failed.reason}" for url, failed in failures)
    raise BuildError(f"{request.option}: no URL could be used: {tried}", failures[-1][1].hint)


def _with_checksum(url: str, checksum: Checksum) -> str:
    """The URL as Packer prints it: with the checksum as a query parameter, unless it is none."""
    if checksum.kind == "none":
        return url
    return f"{url}{'&' if '?' in url else '?'}checksum={quote(str(checksum), safe='')}"


def _fetch_one(
    url: str, checksum: Checksum, request: IsoRequest, ui: Ui, cancel: CancelToken, log: logging.Logger
) -> Path:
    path = local_path(url, request.work_dir)
    if path is not None:
        if not path.is_file():
            raise _Failed(
                f"no such file: {path}", "check the path (a relative one is relative to where kiln runs)"
            )
        log.debug("iso: using %s in place", path)
        _verify_file(path, checksum, url, cancel)
        return path
    target = _target(url, checksum, request)
    target.parent.mkdir(parents=True, exist_ok=True)
    with _locked(target, cancel):
        if checksum.kind != "none" and target.is_file():
            try:
                _verify_file(target, checksum, url, cancel)
            except _Failed:
                log.debug("iso: %s in the cache does not match %s; downloading again", target, checksum)
                target.unlink()
            else:
                ui.message(f"Using the file already downloaded: {target}")
                return target
        part = target.with_name(target.name + ".part")
        _download(url, part, checksum, ui, cancel, log)
        os.replace(part, target)
    return target


def _target(url: str, checksum: Checksum, request: IsoRequest) -> Path:
    key = hashlib.sha1((url if checksum.kind == "none" else str(checksum)).encode()).hexdigest()
    extension = (request.target_extension or "iso").lower()
    if not request.target_path:
        return paths.cache_dir() / "iso" / f"{key}.{extension}"
    target = Path(request.target_path)
    target = target if target.is_absolute() else request.work_dir / target
    if not target.suffix:  # a folder, as in Packer: the cache's name inside it
        return target / f"{key}.{extension}"
    return target


@contextlib.contextmanager
def _locked(target: Path, cancel: CancelToken) -> Iterator[None]:
    with open(target.with_name(target.name + ".lock"), "a") as lock:
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                cancel.sleep(0.5)  # another build downloads it
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _verify_file(path: Path, checksum: Checksum, url: str, cancel: CancelToken) -> None:
    digest = checksum.new()
    if digest is None:
        return
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            cancel.check()
    _compare(digest.hexdigest(), checksum, url)


def _compare(got: str, checksum: Checksum, url: str) -> None:
    if got != checksum.hex:
        raise _Failed(
            f"iso_checksum does not match: the {checksum.kind} of {url} is {got}, not {checksum.hex}",
            "fix iso_checksum, or the file at that URL has changed",
        )


def _download(
    url: str, part: Path, checksum: Checksum, ui: Ui, cancel: CancelToken, log: logging.Logger
) -> None:
    """Download url into part (resuming what it holds), retrying while each attempt makes progress;
    part holds the whole file with a matching checksum when this returns, and is gone if it did not match."""
    name = os.path.basename(unquote(urlparse(url).path)) or url
    connections: list[socket.socket] = []
    remove = cancel.on_cancel(lambda: _cut(connections))
    try:
        for attempt in range(1, ATTEMPTS + 1):
            have = part.stat().st_size if part.exists() else 0
            try:
                _attempt(url, part, have, name, ui, cancel, log, connections)
                break
            except _Retry as retry:
                cancel.check()
                if attempt == ATTEMPTS or not retry.moved:
                    raise _Failed(
                        retry.reason, "check the URL, or that its server is up and reachable"
                    ) from None
                log.debug(
                    "iso: %s was cut after %d bytes (%s); resuming", url, have + retry.moved, retry.reason
                )
                ui.message(f"The download of {name} was cut ({retry.reason}); resuming")
    finally:
        remove()
    cancel.check()
    digest = checksum.new()
    if digest is not None:
        with open(part, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        try:
            _compare(digest.hexdigest(), checksum, url)
        except _Failed:
            ui.say(f"Checksum did not match, removing {part}")
            part.unlink(missing_ok=True)
            raise


class _Retry(Exception):
    def __init__(self, reason: str, moved: int) -> None:
        super().__init__(reason)
        self.reason, self.moved = reason, moved


def _attempt(
    url: str,
    part: Path,
    have: int,
    name: str,
    ui: Ui,
    cancel: CancelToken,
    log: logging.Logger,
    connections: list[socket.socket],
) -> None:
    import http.client
    import urllib.error
    import urllib.request

    headers = {"User-Agent": "kiln", "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    moved = 0
    try:
        response = _opener(connections).open(
            urllib.request.Request(url, headers=headers), timeout=READ_TIMEOUT
        )
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the part is already whole
            log.debug("iso: %s answered 416 to bytes=%d-: the part is complete", url, have)
            return
        raise _Failed(f"HTTP {exc.code} {exc.reason}", "check the URL") from None
    except (OSError, http.client.HTTPException) as exc:
        cancel.check()
        raise _Failed(_reason(exc), "check the URL, or that its server is up and reachable") from None
    with response:
        resumed = have and response.status == 206
        length = response.headers.get("Content-Length")
        total = (int(length) + (have if resumed else 0)) if length and length.isdigit() else None
        log.debug(
            "iso: GET %s (%s): %s, %s bytes", url, headers.get("Range", "whole"), response.status, length
        )
        with (
            open(part, "ab" if resumed else "wb") as out,
            transfer_progress(ui, f"Downloading {name}", total, have if resumed else 0) as advance,
        ):
            try:
                while chunk := response.read1(CHUNK):
                    cancel.check()
                    out.write(chunk)
                    moved += len(chunk)
                    advance(len(chunk))
            except CancelledError:
                raise
            except OSError as exc:
                if cancel.cancelled:
                    raise CancelledError() from None
                hint = paths.disk_hint(exc, part)
                if hint is not None:
                    raise BuildError(f"cannot write {part}: {exc.strerror}", hint) from None
                raise _Retry(_reason(exc), moved) from None
            except http.client.HTTPException as exc:
                raise _Retry(_reason(exc), moved) from None
        cancel.check()
        if total is not None and part.stat().st_size < total:
            raise _Retry(f"the connection closed after {part.stat().st_size} of {total} bytes", moved)


def _reason(exc: BaseException) -> str:
    import http.client
    import urllib.error

    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        exc = exc.reason if isinstance(exc.reason, BaseException) else exc
    if isinstance(exc, socket.timeout | TimeoutError):
        return f"no data for {READ_TIMEOUT:.0f}s"
    if isinstance(exc, http.client.IncompleteRead):
        return f"the connection closed after {len(exc.partial)} more bytes"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror if exc.errno != errno.ENOENT else f"{exc.strerror}: {exc.filename}"
    return str(exc) or type(exc).__name__


def _register_url_secret(url: str) -> None:
    password = urlparse(url).password
    if password:
        REDACTOR.add(unquote(password))


def _cut(sockets: list[socket.socket]) -> None:
    """On cancel: wake a read blocked on a silent server."""
    for sock in list(sockets):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _opener(sockets: list[socket.socket]) -> urllib.request.OpenerDirector:
    """urllib's HTTP(S) handling, keeping each socket it connects so that a cancel can cut it
    (urllib hands the socket to the response and forgets it)."""
    import http.client
    import urllib.request

    def tracked(cls: type[http.client.HTTPConnection]) -> Any:
        class Tracked(cls):  # type: ignore[valid-type,misc]
            def connect(self) -> None:
                super().connect()
                sockets.append(self.sock)

        return Tracked

    class TrackingHandler(urllib.request.HTTPHandler, urllib.request.HTTPSHandler):
        def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
            return self.do_open(tracked(http.client.HTTPConnection), req)

        def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
            context = self._context  # type: ignore[attr-defined]  # HTTPSHandler's own
            return self.do_open(tracked(http.client.HTTPSConnection), req, context=context)

    return urllib.request.build_opener(TrackingHandler())
