"""Steps: every started step is cleaned up in reverse, the failed one included; on-error modes;
a failing cleanup never hides the original error; cancellation."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kiln.components import BuildContext, OnError
from kiln.engine.steps import Aborted, Step, run_steps
from kiln.errors import BuildError, CancelledError
from tests.engine.conftest import Terminal, make_ctx


@dataclass
class Journal:
    events: list[str] = field(default_factory=list)
    fail_at: str = ""
    cleanup_fails: str = ""
    attempts: dict[str, int] = field(default_factory=dict)


class Recording(Step[Journal]):
    def __init__(self, name: str, fail_times: int = 0) -> None:
        self.name = name
        self.fail_times = fail_times

    def run(self, state: Journal, ctx: BuildContext) -> None:
        state.events.append(f"run {self.name}")
        state.attempts[self.name] = state.attempts.get(self.name, 0) + 1
        if state.fail_at == self.name and state.attempts[self.name] > self.fail_times:
            return
        if state.fail_at == self.name:
            raise BuildError(f"{self.name} broke")

    def cleanup(self, state: Journal, ctx: BuildContext) -> None:
        state.events.append(f"cleanup {self.name}")
        if state.cleanup_fails == self.name:
            raise RuntimeError(f"could not delete {self.name}-resource")


NAMES = ["keypair", "vpc", "instance", "image"]


def steps(fail_times: int = 10) -> list[Step[Journal]]:
    return [Recording(n, fail_times) for n in NAMES]


def test_success_cleans_up_every_step_in_reverse(terminal: Terminal, tmp_path: Path) -> None:
    journal = Journal()
    run_steps(steps(), journal, make_ctx(terminal, tmp_path))
    assert journal.events == [f"run {n}" for n in NAMES] + [f"cleanup {n}" for n in reversed(NAMES)]


@pytest.mark.parametrize("failing", NAMES)
def test_failure_at_each_step_cleans_up_started_steps_in_reverse(
    failing: str, terminal: Terminal, tmp_path: Path
) -> None:
    journal = Journal(fail_at=failing)
    with pytest.raises(BuildError, match=f"{failing} broke"):
        run_steps(steps(), journal, make_ctx(terminal, tmp_path))
    started = NAMES[: NAMES.index(failing) + 1]
    assert journal.events == [f"run {n}" for n in started] + [f"cleanup {n}" for n in reversed(started)]
    assert f"==> test: {failing} broke" in terminal.text


def test_failing_cleanup_does_not_hide_the_error_and_names_the_leftover(
    terminal: Terminal, tmp_path: Path
) -> None:
    journal = Journal(fail_at="image", cleanup_fails="vpc")
    with pytest.raises(BuildError, match="image broke") as info:
        run_steps(steps(), journal, make_ctx(terminal, tmp_path))
    # the cleanups after the failing one still ran
    assert journal.events[-4:] == ["cleanup image", "cleanup instance", "cleanup vpc", "cleanup keypair"]
    assert "Error cleaning up 'vpc': could not delete vpc-resource" in terminal.text
    assert info.value.hint and "by hand" in info.value.hint


def test_abort_skips_cleanup(terminal: Terminal, tmp_path: Path) -> None:
    journal = Journal(fail_at="instance")
    with pytest.raises(Aborted):
        run_steps(steps(), journal, make_ctx(terminal, tmp_path, OnError.ABORT))
    assert not [e for e in journal.events if e.startswith("cleanup")]
    assert "Step 'instance' failed, aborting..." in terminal.text


def test_run_cleanup_provisioner_mode_leaves_resources_like_abort(terminal: Terminal, tmp_path: Path) -> None:
    journal = Journal(fail_at="vpc")
    with pytest.raises(Aborted):
        run_steps(steps(), journal, make_ctx(terminal, tmp_path, OnError.RUN_CLEANUP_PROVISIONER))
    assert journal.events == ["run keypair", "run vpc"]


@pytest.mark.parametrize(
    ("answers", "expect_cleanup", "expect_error"),
    [("c\n", True, BuildError), ("a\n", False, Aborted), ("x\nc\n", True, BuildError)],
)
def test_ask_mode_clean_up_or_abort(
    answers: str, expect_cleanup: bool, expect_error: type[Exception], tmp_path: Path
) -> None:
    terminal = Terminal(answers)
    journal = Journal(fail_at="vpc")
    with pytest.raises(expect_error):
        run_steps(steps(), journal, make_ctx(terminal, tmp_path, OnError.ASK))
    assert ("cleanup vpc" in journal.events) is expect_cleanup
    assert "[c] Clean up and exit, [a] abort without cleanup, or [r] retry step" in terminal.text


def test_ask_mode_retry_succeeds(tmp_path: Path) -> None:
    terminal = Terminal("r\n")
    journal = Journal(fail_at="vpc")
    run_steps(steps(fail_times=1), journal, make_ctx(terminal, tmp_path, OnError.ASK))
    assert journal.events.count("run vpc") == 2
    assert journal.events[-1] == "cleanup keypair"


def test_ask_mode_without_input_cleans_up(tmp_path: Path) -> None:
    terminal = Terminal("")
    journal = Journal(fail_at="vpc")
    with pytest.raises(BuildError):
        run_steps(steps(), journal, make_ctx(terminal, tmp_path, OnError.ASK))
    assert "cleanup keypair" in journal.events


def test_cancel_during_a_step_cleans_up(terminal: Terminal, tmp_path: Path) -> None:
    ctx = make_ctx(terminal, tmp_path)

    class Waits(Step[Journal]):
        name = "wait"

        def run(self, state: Journal, ctx: BuildContext) -> None:
            state.events.append("run wait")
            ctx.cancel.cancel()  # as SIGINT would, from another thread
            ctx.cancel.sleep(30)

        def cleanup(self, state: Journal, ctx: BuildContext) -> None:
            state.events.append("cleanup wait")

    journal = Journal()
    with pytest.raises(CancelledError):
        run_steps([Recording("keypair"), Waits(), Recording("never")], journal, ctx)
    assert journal.events == ["run keypair", "run wait", "cleanup wait", "cleanup keypair"]


def test_debug_pauses_after_each_step_and_before_each_cleanup(tmp_path: Path) -> None:
    terminal = Terminal("\n" * 10)
    run_steps(steps()[:2], Journal(), make_ctx(terminal, tmp_path, debug=True))
    assert "Pausing after run of step 'keypair'. Press enter to continue." in terminal.text
    assert "Pausing before cleanup of step 'vpc'. Press enter to continue." in terminal.text


def test_every_registered_component_imports() -> None:
    from kiln import registry

    for table in (registry.BUILDERS, registry.PROVISIONERS, registry.POST_PROCESSORS):
        for type_name in table:
            assert registry.load(table, type_name) is not None, type_name
    assert registry.load(registry.BUILDERS, "no-such-builder") is None
