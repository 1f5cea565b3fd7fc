"""The transfer progress bar: a tqdm bar on a real terminal (a pty), plain lines elsewhere, redacted
and thread-safe; `kiln validate` never imports tqdm."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from kiln.core.progress import format_size, transfer_progress
from kiln.core.secrets import MASK, REDACTOR
from kiln.core.ui import BuildUi, Output
from tests.engine.conftest import Terminal

MiB = 1 << 20


def test_plain_lines_at_quarters_and_a_summary(terminal: Terminal) -> None:
    ui = BuildUi(terminal.output(), "qemu")
    with transfer_progress(ui, "Downloading a.iso", total=8 * MiB) as advance:
        for _ in range(64):
            advance(MiB // 8)
    lines = terminal.out.getvalue().splitlines()
    assert lines[:4] == [
        "    qemu: Downloading a.iso: 0 B of 8.0 MiB",
        "    qemu: Downloading a.iso: 2.0 MiB of 8.0 MiB (25%)",
        "    qemu: Downloading a.iso: 4.0 MiB of 8.0 MiB (50%)",
        "    qemu: Downloading a.iso: 6.0 MiB of 8.0 MiB (75%)",
    ]
    assert lines[4].startswith("    qemu: Downloading a.iso: 8.0 MiB in ") and lines[4].endswith("/s)")
    assert len(lines) == 5
    assert "\r" not in terminal.out.getvalue()


def test_resumed_and_unknown_total(terminal: Terminal) -> None:
    ui = BuildUi(terminal.output(), "qemu")
    with transfer_progress(ui, "Resuming", total=4 * MiB, initial=3 * MiB) as advance:
        advance(MiB)
    with transfer_progress(ui, "Unknown", total=None) as advance:
        advance(1536)
    lines = terminal.out.getvalue().splitlines()
    assert lines[0] == "    qemu: Resuming: 3.0 MiB of 4.0 MiB (resuming at 3.0 MiB)"
    assert lines[1].startswith("    qemu: Resuming: 1.0 MiB in ")  # what this run moved
    assert lines[2] == "    qemu: Unknown: 0 B"
    assert lines[3].startswith("    qemu: Unknown: 1.5 KiB in ")


def test_failure_says_where_it_stopped(terminal: Terminal) -> None:
    ui = BuildUi(terminal.output(), "qemu")
    with pytest.raises(OSError), transfer_progress(ui, "Up", total=2048) as advance:
        advance(1024)
        raise OSError("cut")
    assert terminal.out.getvalue().splitlines()[-1] == "    qemu: Up: stopped at 1.0 KiB of 2.0 KiB"


def test_machine_readable_and_redacted(terminal: Terminal) -> None:
    REDACTOR.add("s3cr3t-token")
    ui = BuildUi(terminal.output(machine_readable=True), "qemu")
    with transfer_progress(ui, "Downloading http://h/?t=s3cr3t-token", total=10) as advance:
        advance(10)
    text = terminal.out.getvalue()
    assert "s3cr3t-token" not in text and MASK in text
    assert all(line.split(",")[2:4] == ["ui", "message"] for line in text.splitlines())


def test_thread_safe_count(terminal: Terminal) -> None:
    ui = BuildUi(terminal.output(), "oss")
    total = 8 * 5000 * 7
    with transfer_progress(ui, "Uploading", total=total) as advance:
        threads = [threading.Thread(target=lambda: [advance(7) for _ in range(5000)]) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    lines = terminal.out.getvalue().splitlines()
    assert len(lines) == 5  # start, 25%, 50%, 75%, summary: each quarter said exactly once
    assert lines[-1].startswith(f"    oss: Uploading: {format_size(total)} in ")


def _read_all(fd: int) -> bytes:
    data = b""
    while select.select([fd], [], [], 0.2)[0]:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    return data


def test_bar_on_a_real_terminal_is_drawn_redacted_and_cleared() -> None:
    REDACTOR.add("hunter22")
    master, slave = os.openpty()
    try:
        with os.fdopen(slave, "w", closefd=True) as tty:
            ui = BuildUi(Output(out=tty, err=tty, inp=None), "qemu")
            with transfer_progress(ui, "Get user:hunter22@host", total=4 * MiB) as advance:
                for _ in range(4):
                    time.sleep(0.25)  # past tqdm's mininterval, so each step is drawn
                    advance(MiB)
            ui.message("after")
            drawn = _read_all(master).decode()
    finally:
        os.close(master)
    assert "\r" in drawn and "100%" in drawn and "4.00M" in drawn  # tqdm's own bar
    assert "hunter22" not in drawn and MASK in drawn
    assert "qemu: Get user:" in drawn
    # the bar is cleared (leave=False) and one plain summary line stays, then the next line
    assert drawn.rstrip().splitlines()[-1].strip() == "qemu: after"
    assert "qemu: Get user:" + MASK + "@host: 4.0 MiB in " in drawn


def test_validate_does_not_import_tqdm(tmp_path: Path) -> None:
    template = tmp_path / "t.json"
    template.write_text(json.dumps({"builders": [{"type": "null", "communicator": "none"}]}))
    probe = (
        "import sys; from kiln.cli import main; code = main(['validate', sys.argv[1]]); "
        "assert 'tqdm' not in sys.modules, 'tqdm imported'; sys.exit(code)"
    )
    result = subprocess.run([sys.executable, "-c", probe, str(template)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
