"""Reading the files a user names (templates, var files, `fmt` paths, `file()`): regular files only,
up to a size cap, each problem one line naming the file.

A FIFO would block the read until some other process writes to it (forever, usually), and a device
such as /dev/zero never ends; both are refused before any byte is read. Standard input ("-") is
read up to the same cap.
"""

from __future__ import annotations

import os
import stat
import sys

from kiln.errors import TemplateError

#: The largest file kiln reads as a template, a var file or a file() argument. Real templates are
#: kilobytes; the cap keeps a wrong path (a disk image, a log) from filling memory.
MAX_BYTES = 16 * 1024 * 1024
#: How deep objects, arrays, blocks and brackets may nest in a template or var file. kiln walks
#: them recursively (decoding, rendering, upgrading); real templates nest a handful of levels.
MAX_NESTING = 64

_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _size(count: int) -> str:
    return f"{count / (1024 * 1024):.1f} MB" if count >= 1024 * 1024 else f"{count} bytes"


def _too_large(name: str, what: str, size: str) -> TemplateError:
    return TemplateError(
        f"{name}: the {what} file is {size}; kiln reads {what} files of at most {_size(MAX_BYTES)}",
        "check that the path names the file you meant",
    )


def special_kind(mode: int) -> str:
    """What a file that is not a regular one is, in words: "a folder", "a FIFO (named pipe)"..."""
    if stat.S_ISDIR(mode):
        return "a folder"
    return next((words for test, words in _KINDS if test(mode)), "not a regular file")


def _not_regular(name: str, mode: int, what: str) -> TemplateError:
    if stat.S_ISDIR(mode):
        return TemplateError(
            f"{name}: is a folder, not a {what} file",
            "JSON templates are single files; a folder is read as HCL2 templates"
            if what == "template"
            else f"give kiln the path of a {what} file",
        )
    return TemplateError(
        f"{name}: is {special_kind(mode)}, not a regular {what} file",
        "kiln reads regular files only, not pipes or devices",
    )


def read_bytes(path: str, what: str = "template") -> tuple[bytes, str]:
    """The bytes of `path` ("-": standard input, up to MAX_BYTES) and the name to show for it."""
    if path == "-":
        data = sys.stdin.buffer.read(MAX_BYTES + 1)
        if len(data) > MAX_BYTES:
            raise _too_large("<stdin>", what, f"more than {_size(MAX_BYTES)}")
        return data, "<stdin>"
    try:
        # stat first: opening a FIFO or a device can block or act on the device
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            raise _not_regular(path, mode, what)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise TemplateError(
            f"{path}: no such {what} file", f"check the path; the current folder is {os.getcwd()}"
        ) from None
    except OSError as exc:
        raise TemplateError(f"{path}: cannot read {what} file: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):  # replaced between the stat and the open
            raise _not_regular(path, info.st_mode, what)
        if info.st_size > MAX_BYTES:
            raise _too_large(path, what, _size(info.st_size))
        chunks: list[bytes] = []
        total = 0
        while total <= MAX_BYTES:
            chunk = os.read(fd, min(1 << 20, MAX_BYTES + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > MAX_BYTES:  # it grew while being read
            raise _too_large(path, what, f"more than {_size(MAX_BYTES)}")
        return b"".join(chunks), path
    except OSError as exc:
        raise TemplateError(f"{path}: cannot read {what} file: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def read_text(path: str, what: str = "template") -> tuple[str, str]:
    """`read_bytes`, decoded as UTF-8 (an error naming the line of the first bad byte), with
    `\r\n` and `\r` read as `\n` (as Python's text files read them)."""
    data, name = read_bytes(path, what)
    try:
        return data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n"), name
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise TemplateError(
            f"{name}: line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})",
            f"save the {what} file as UTF-8",
        ) from None
