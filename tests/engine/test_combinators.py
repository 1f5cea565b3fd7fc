"""Sequence and Parallel: branches start at the same time, a failing branch cancels its siblings,
everything that started is cleaned up (in reverse, branches of a group together), the lines of
concurrent branches come in the plan's order, on-error modes and -debug pauses apply to the group,
and CleanupEarly runs cleanups before the end."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kiln.components import BuildContext, OnError
from kiln.engine.steps import Aborted, CleanupEarly, Parallel, Sequence, Step, run_steps
from kiln.errors import BuildError, CancelledError
from tests.engine.conftest import Terminal, make_ctx


@dataclass
class Log:
    events: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    barrier: threading.Barrier = field(default_factory=lambda: threading.Barrier(2, timeout=10))

    def add(self, event: str) -> None:
        with self.lock:
            self.events.append(event)

    def index(self, event: str) -> int:
        return self.events.index(event)


class Leaf(Step[Log]):
    """Says a line, optionally meets the other branch at the barrier, waits, or fails."""

    def __init__(
        self, name: str, *, meet: bool = False, wait: float = 0.0, fail: int = 0, say_after: float = 0.0
    ) -> None:
        self.name = name
        self.meet = meet
        self.wait = wait
        self.fail = fail
        self.say_after = say_after
        self.runs = 0

    def run(self, state: Log, ctx: BuildContext) -> None:
        self.runs += 1
        state.add(f"run {self.name}")
        if self.say_after:
            time.sleep(self.say_after)
        ctx.ui.say(f"line of {self.name}")
        if self.meet:
            state.barrier.wait()
        if self.wait:
            try:
                ctx.cancel.sleep(self.wait)
            except CancelledError:
                state.add(f"cancelled {self.name}")
                raise
        if self.runs <= self.fail:
            raise BuildError(f"{self.name} broke")

    def cleanup(self, state: Log, ctx: BuildContext) -> None:
        state.add(f"cleanup {self.name}")
        ctx.ui.say(f"cleaning {self.name}")


def test_branches_start_at_the_same_time(terminal: Terminal, tmp_path: Path) -> None:
    # Each branch waits at a barrier for the other: one after the other, the first would time out.
    log = Log()
    run_steps(
        Sequence(Parallel(Leaf("a", meet=True), Leaf("b", meet=True))), log, make_ctx(terminal, tmp_path)
    )
    assert {"run a", "run b", "cleanup a", "cleanup b"} == set(log.events)


def test_a_failing_branch_cancels_its_siblings(terminal: Terminal, tmp_path: Path) -> None:
    log = Log()
    slow = Leaf("slow", wait=60)
    began = time.monotonic()
    with pytest.raises(BuildError, match="fast broke"):
        run_steps(
            [Parallel(slow, Leaf("fast", fail=1, say_after=0.2)), Leaf("never")],
            log,
            make_ctx(terminal, tmp_path),
        )
    assert time.monotonic() - began < 10
    assert "cancelled slow" in log.events and "run never" not in log.events
    # both started, both cleaned up, the failed one included
    assert {"cleanup slow", "cleanup fast"} <= set(log.events)
    assert "==> test: fast broke" in terminal.text
    assert "Build was cancelled" not in terminal.text  # the sibling's cancellation is not an error of its own


def test_everything_that_started_is_cleaned_up_in_reverse(terminal: Terminal, tmp_path: Path) -> None:
    log = Log()
    plan = Sequence(
        Leaf("first"),
        Parallel(Leaf("side", wait=60), Sequence(Leaf("c"), Leaf("d", fail=1))),
        Leaf("never"),
    )
    with pytest.raises(BuildError, match="d broke"):
        run_steps(plan, log, make_ctx(terminal, tmp_path))
    cleaned = [e.split()[1] for e in log.events if e.startswith("cleanup")]
    assert sorted(cleaned) == ["c", "d", "first", "side"]
    assert log.index("cleanup d") < log.index("cleanup c")  # reverse within a branch
    assert cleaned[-1] == "first"  # what came before the group, after it
    assert "run never" not in log.events


def test_lines_of_concurrent_branches_come_in_plan_order(terminal: Terminal, tmp_path: Path) -> None:
    log = Log()
    # "late" says its line after "early" has said its own, but comes first in the plan.
    run_steps([Parallel(Leaf("late", say_after=0.5), Leaf("early"))], log, make_ctx(terminal, tmp_path))
    text = terminal.text
    assert text.index("line of late") < text.index("line of early")
    # in cleanup, the reverse: the last branch's lines first
    assert text.index("cleaning early") < text.index("cleaning late")


@pytest.mark.parametrize("mode", [OnError.ABORT, OnError.RUN_CLEANUP_PROVISIONER])
def test_abort_in_a_branch_skips_all_cleanup(mode: OnError, terminal: Terminal, tmp_path: Path) -> None:
    log = Log()
    plan = Sequence(Leaf("first"), Parallel(Leaf("side", wait=60), Sequence(Leaf("c"), Leaf("d", fail=1))))
    with pytest.raises(Aborted):
        run_steps(plan, log, make_ctx(terminal, tmp_path, mode))
    assert not [e for e in log.events if e.startswith("cleanup")]
    assert "Step 'd' failed, aborting..." in terminal.text  # the failing step, not the group


def test_ask_retry_runs_only_what_did_not_finish(tmp_path: Path) -> None:
    terminal = Terminal("r\n")
    log = Log()
    ok, flaky = Leaf("ok"), Leaf("flaky", fail=1)
    run_steps([Parallel(ok, flaky)], log, make_ctx(terminal, tmp_path, OnError.ASK))
    assert (ok.runs, flaky.runs) == (1, 2)
    assert "Step 'flaky' failed\nError: flaky broke" in terminal.text.replace("==> test: ", "")


@pytest.mark.parametrize(("answer", "error"), [("c\n", BuildError), ("a\n", Aborted)])
def test_ask_clean_up_or_abort_in_a_branch(answer: str, error: type[Exception], tmp_path: Path) -> None:
    terminal = Terminal(answer)
    log = Log()
    with pytest.raises(error):
        run_steps(
            [Leaf("first"), Parallel(Leaf("ok"), Leaf("bad", fail=5))],
            log,
            make_ctx(terminal, tmp_path, OnError.ASK),
        )
    assert ("cleanup bad" in log.events) is (error is BuildError)
    assert ("cleanup first" in log.events) is (error is BuildError)


def test_debug_pauses_once_for_a_group(tmp_path: Path) -> None:
    terminal = Terminal("\n" * 10)
    run_steps(
        [Leaf("first"), Parallel(Leaf("a"), Sequence(Leaf("b"), Leaf("c")), name="network")],
        Log(),
        make_ctx(terminal, tmp_path, debug=True),
    )
    pauses = [line for line in terminal.text.splitlines() if "Pausing" in line]
    assert pauses == [
        "Pausing after run of step 'first'. Press enter to continue.",
        "Pausing after run of step 'network'. Press enter to continue.",
        "Pausing before cleanup of step 'network'. Press enter to continue.",
        "Pausing before cleanup of step 'first'. Press enter to continue.",
    ]


def test_cancel_while_branches_run(terminal: Terminal, tmp_path: Path) -> None:
    log = Log()
    ctx = make_ctx(terminal, tmp_path)
    threading.Timer(0.3, ctx.cancel.cancel).start()
    with pytest.raises(CancelledError):
        run_steps([Parallel(Leaf("a", wait=60), Leaf("b", wait=60)), Leaf("never")], log, ctx)
    assert {"cancelled a", "cancelled b", "cleanup a", "cleanup b"} <= set(log.events)
    assert "run never" not in log.events


class Flagged(Step[Log]):
    """A cleanup that is safe to run twice: it remembers that it is done."""

    name = "address"

    def __init__(self, fail_first: bool = False) -> None:
        self.released = False
        self.fail_first = fail_first

    def run(self, state: Log, ctx: BuildContext) -> None:
        state.add("allocate")

    def cleanup(self, state: Log, ctx: BuildContext) -> None:
        if self.released:
            return
        if self.fail_first:
            self.fail_first = False
            raise RuntimeError("refused")
        self.released = True
        state.add("release")


@pytest.mark.parametrize("fail_first", [False, True])
def test_cleanup_early(fail_first: bool, terminal: Terminal, tmp_path: Path) -> None:
    log = Log()
    address = Flagged(fail_first)
    run_steps([address, CleanupEarly(address), Leaf("image")], log, make_ctx(terminal, tmp_path))
    if fail_first:  # reported, not fatal, and done at the end
        assert "Early cleanup of 'address' failed (tried again at the end): refused" in terminal.text
        assert log.events == ["allocate", "run image", "cleanup image", "release"]
    else:
        assert log.events == ["allocate", "release", "run image", "cleanup image"]
