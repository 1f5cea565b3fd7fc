"""UI lines, machine-readable format, and redaction in every channel."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from kiln.core.secrets import MASK, REDACTOR
from kiln.core.ui import BuildUi, Ui
from kiln.engine.run import format_duration
from tests.engine.conftest import Terminal


def test_build_prefix_on_every_line(terminal: Terminal) -> None:
    ui = BuildUi(terminal.output(), "alicloud-ecs")
    ui.say("Creating vpc\nsecond line")
    ui.message("Found image ID: m-1")
    assert terminal.out.getvalue() == (
        "==> alicloud-ecs: Creating vpc\n==> alicloud-ecs: second line\n    alicloud-ecs: Found image ID: m-1\n"
    )


def test_machine_readable_escapes_commas_and_newlines(terminal: Terminal) -> None:
    ui = BuildUi(terminal.output(machine_readable=True), "null")
    ui.say("a,b\nc")
    ui.machine("artifact", "0", "id", "x,y")
    lines = terminal.out.getvalue().splitlines()
    assert lines[0].split(",", 1)[1] == ",ui,say,==> null: a%!(PACKER_COMMA)b\\n==> null: c"
    assert lines[1].split(",", 1)[1] == "null,artifact,0,id,x%!(PACKER_COMMA)y"
    assert lines[0].split(",")[0].isdigit()


def test_colors_only_when_enabled(terminal: Terminal) -> None:
    BuildUi(terminal.output(color=True), "b", "cyan").say("hi")
    assert terminal.out.getvalue() == "\033[1;36m==> b: hi\033[0m\n"


def test_timestamps(terminal: Terminal) -> None:
    Ui(terminal.output(timestamps=True)).say("x")
    assert terminal.out.getvalue()[:4].isdigit() and terminal.out.getvalue().endswith("Z: x\n")


def test_parallel_writers_never_interleave_inside_a_line(terminal: Terminal) -> None:
    output = terminal.output()
    uis = [BuildUi(output, f"build{i}") for i in range(4)]

    def spam(ui: BuildUi) -> None:
        for n in range(300):
            ui.message(f"line {n} " + "x" * 200)

    threads = [threading.Thread(target=spam, args=(ui,)) for ui in uis]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = terminal.out.getvalue().splitlines()
    assert len(lines) == 1200
    for line in lines:
        assert line.startswith("    build") and line.endswith("x" * 200) and line.count("line") == 1


def test_secrets_redacted_in_ui_machine_and_log(terminal: Terminal, tmp_path: Path) -> None:
    REDACTOR.add("s3cr3t-value", "multi-line-1\nmulti-line-2")
    BuildUi(terminal.output(), "b").say("key=s3cr3t-value and multi-line-2")
    BuildUi(terminal.output(machine_readable=True), "b").machine("error", "s3cr3t-value")
    assert "s3cr3t" not in terminal.text and "multi-line-2" not in terminal.text
    assert terminal.text.count(MASK) == 3

    from kiln.cli.common import setup_logging

    log_path = tmp_path / "log"
    import os

    os.environ["KILN_LOG"] = "1"
    os.environ["KILN_LOG_PATH"] = str(log_path)
    try:
        setup_logging()
        logging.getLogger("kiln.x").info("connecting with %s", "s3cr3t-value")
        try:
            raise ValueError("boom s3cr3t-value")
        except ValueError:
            logging.getLogger("kiln.x").exception("failed")
        for handler in logging.getLogger("kiln").handlers:
            handler.flush()
    finally:
        del os.environ["KILN_LOG"], os.environ["KILN_LOG_PATH"]
        setup_logging()
    text = log_path.read_text()
    assert "connecting with <sensitive>" in text and "boom <sensitive>" in text
    assert "s3cr3t" not in text


@pytest.mark.parametrize(
    ("secret", "text", "expected"),
    [
        ("a", "a build of a", f"{MASK} build of {MASK}"),  # whole tokens only
        ("a", "banana", "banana"),
        ("123", "pin=123 and 41234", f"pin={MASK} and 41234"),
        ("longsecret", "xlongsecretx", f"x{MASK}x"),
    ],
)
def test_short_secrets_only_hidden_as_whole_tokens(secret: str, text: str, expected: str) -> None:
    REDACTOR.add(secret)
    assert REDACTOR.redact(text) == expected


def test_the_redactor_promises_what_the_readme_says(capsys: pytest.CaptureFixture[str]) -> None:
    """The README says a short secret is hidden only as a whole token, and no more: the redactor
    warns of nothing (registering one prints nothing) and its documentation claims no warning."""
    import kiln.core.secrets

    REDACTOR.add("pw1")
    assert capsys.readouterr() == ("", "")
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert (
        "hidden only where it stands as a whole token" in readme
        and "warn" not in readme.split("whole token")[1][:200]
    )
    assert "warn" not in (kiln.core.secrets.__doc__ or "")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (62.0, "1 minute 2 seconds"),
        (1.0151, "1 second 15 milliseconds"),
        (0.0005, "500 microseconds"),
        (3600, "1 hour"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        (b"plain\n", "plain"),
        (b"dos line\r\n", "dos line"),
        (b"(Reading database ... 5%\r(Reading database ... 100%\rdone.\n", "done."),
        (b"caf\xc3\xa9\n", "café"),
    ],
)
def test_visible_line_keeps_what_a_terminal_shows(raw: bytes, shown: str) -> None:
    from kiln.core.ui import visible_line

    assert visible_line(raw) == shown
