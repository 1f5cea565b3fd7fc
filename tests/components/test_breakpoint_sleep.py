"""breakpoint and sleep: waiting for the user, waiting for time, and both giving way to cancel."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from kiln.errors import CancelledError
from kiln.provisioners.breakpoint import BreakpointProvisioner
from kiln.provisioners.sleep import SleepProvisioner

from .conftest import Harness

Prepare = Callable[..., Any]


def test_breakpoint_waits_for_enter(harness: Harness, prepare: Prepare) -> None:
    assert isinstance(harness.ctx.ui.output.inp, io.StringIO)
    harness.ctx.ui.output.inp = io.StringIO("\n")
    prov = prepare(BreakpointProvisioner, {"note": "check the disk"})
    prov.provision(harness.ctx, None)
    assert '==> example: Pausing at breakpoint provisioner with note "check the disk".' in harness.stdout
    assert "Press enter to continue." in harness.stdout
    assert harness.ctx.ui.output.inp.read() == ""  # the line was consumed


def test_breakpoint_without_input_continues(harness: Harness, prepare: Prepare) -> None:
    prepare(BreakpointProvisioner, {}).provision(harness.ctx, None)
    assert "==> example: Pausing at breakpoint provisioner.\n" in harness.stdout


@pytest.mark.parametrize(
    ("raw", "line"),
    [
        ({"disable": True}, "==> example: Breakpoint provisioner disabled; continuing..."),
        (
            {"disable": "true", "note": "n"},
            '==> example: Breakpoint provisioner with note "n" disabled; continuing...',
        ),
    ],
)
def test_disabled_breakpoint_says_so(
    harness: Harness, prepare: Prepare, raw: dict[str, Any], line: str
) -> None:
    prepare(BreakpointProvisioner, raw).provision(harness.ctx, None)
    assert line in harness.stdout
    assert "Press enter" not in harness.stdout


class BlockingInput(io.StringIO):
    """Standard input nobody types into: readline blocks until released."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def readline(self, size: int | None = -1) -> str:  # type: ignore[override]
        self.release.wait(30)
        return "\n"


def test_cancel_ends_a_breakpoint(harness: Harness, prepare: Prepare) -> None:
    blocking = BlockingInput()
    harness.ctx.ui.output.inp = blocking
    prov = prepare(BreakpointProvisioner, {})
    timer = threading.Timer(0.3, harness.ctx.cancel.cancel)
    timer.start()
    started = time.monotonic()
    try:
        with pytest.raises(CancelledError):
            prov.provision(harness.ctx, None)
    finally:
        blocking.release.set()
        timer.join()
    assert time.monotonic() - started < 5


def test_sleep_sleeps_its_duration(harness: Harness, prepare: Prepare) -> None:
    prov = prepare(SleepProvisioner, {"duration": "300ms"})
    started = time.monotonic()
    prov.provision(harness.ctx, None)
    assert 0.29 <= time.monotonic() - started < 3
    assert harness.stdout == ""


def test_cancel_wakes_a_sleep(harness: Harness, prepare: Prepare) -> None:
    prov = prepare(SleepProvisioner, {"duration": "2m"})
    timer = threading.Timer(0.2, harness.ctx.cancel.cancel)
    timer.start()
    started = time.monotonic()
    with pytest.raises(CancelledError):
        prov.provision(harness.ctx, None)
    timer.join()
    assert time.monotonic() - started < 5


def test_sleep_rejects_bad_durations(prepare: Prepare) -> None:
    _, errors = prepare(SleepProvisioner, {"duration": "soon"}, expect_errors=True)
    assert len(errors) == 1 and errors[0].startswith("component.duration: invalid duration")
    _, errors = prepare(SleepProvisioner, {"duration": "-1s"}, expect_errors=True)
    assert errors == ["component.duration: must not be negative, got -1s"]
