"""Builders as lists of steps, each with run and cleanup (Packer's multistep, typed).

`run_steps` runs the steps in order. Every step that *started* is cleaned up, in reverse order,
the failed one included, so a step must record each resource in its state the moment it exists.
Cleanup never raises: a cleanup that fails is reported with what the user must delete by hand, and
never hides the error that failed the build. The `-on-error` modes are handled here, around the
steps, not inside them; so is `-debug` pausing.

A builder's steps share a typed state object `S` (a dataclass of the builder's own), not a bag of
strings: what one step records, the next reads under the same type.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, TypeVar

from kiln.components import BuildContext, OnError
from kiln.errors import BuildError, CancelledError, KilnError

S = TypeVar("S")


class Step(Generic[S]):
    """One step of a builder. `name` is shown in -debug pauses and on-error messages."""

    name: str = ""

    def run(self, state: S, ctx: BuildContext) -> None:
        raise NotImplementedError

    def cleanup(self, state: S, ctx: BuildContext) -> None:
        """Undo what `run` did (also a partial run). Must not check for cancellation: it runs
        after a cancel too."""

    @property
    def label(self) -> str:
        return self.name or type(self).__name__


class Aborted(BuildError):
    """The user chose -on-error=abort (or [a] when asked): the build failed, nothing was cleaned up."""


class CleanupFailed(Exception):
    """Raise from a cleanup to say what is left; the message names the resource to delete by hand."""


def run_steps(steps: Sequence[Step[S]], state: S, ctx: BuildContext) -> None:
    """Run `steps`, then clean up every started step in reverse. Re-raises the first error."""
    started: list[Step[S]] = []
    error: BaseException | None = None
    abort = False
    for step in steps:
        if ctx.cancel.cancelled:
            error = CancelledError()
            break
        started.append(step)
        error, abort = _run_one(step, state, ctx)
        if error is not None:
            break
        ctx.pause(f"Pausing after run of step '{step.label}'. Press enter to continue.")
    if abort:
        ctx.ui.error(f"Step '{started[-1].label}' failed, aborting...")
        ctx.log.info("on-error=abort: skipping cleanup of %d step(s)", len(started))
        assert error is not None
        raise Aborted(str(error)) from error
    leftovers = cleanup_steps(started, state, ctx)
    if error is not None:
        if leftovers and isinstance(error, KilnError) and not error.hint:
            error.hint = "some resources could not be cleaned up (see above): delete them by hand"
        raise error


def _run_one(step: Step[S], state: S, ctx: BuildContext) -> tuple[BaseException | None, bool]:
    """Run one step, asking what to do on failure in -on-error=ask mode. Returns (error, abort)."""
    while True:
        try:
            ctx.log.debug("step %s: run", step.label)
            step.run(state, ctx)
            return None, False
        except CancelledError as exc:
            return exc, False
        except Exception as exc:
            if not isinstance(exc, KilnError):
                ctx.log.exception("step %s raised", step.label)
            message = str(exc) or type(exc).__name__
            ctx.ui.error(message)
            if ctx.on_error in (OnError.ABORT, OnError.RUN_CLEANUP_PROVISIONER):
                return exc, True
            if ctx.on_error is OnError.ASK and not ctx.cancel.cancelled:
                choice = _ask(step, message, ctx)
                if choice == "r":
                    continue
                return exc, choice == "a"
            return exc, False


def _ask(step: Step[S], message: str, ctx: BuildContext) -> str:
    prompt = (
        f"Step '{step.label}' failed\n"
        f"Error: {message}\n"
        "[c] Clean up and exit, [a] abort without cleanup, or [r] retry step (build may fail even if retry succeeds)?"
    )
    while True:
        try:
            answer = ctx.ui.ask(prompt).strip().lower()
        except EOFError:
            return "c"
        if answer[:1] in ("c", "a", "r"):
            return answer[:1]


def cleanup_steps(started: Sequence[Step[S]], state: S, ctx: BuildContext) -> list[str]:
    """Clean up started steps in reverse; return the messages of cleanups that failed."""
    leftovers: list[str] = []
    for step in reversed(started):
        ctx.pause(f"Pausing before cleanup of step '{step.label}'. Press enter to continue.")
        try:
            ctx.log.debug("step %s: cleanup", step.label)
            step.cleanup(state, ctx)
        except Exception as exc:
            ctx.log.debug("cleanup of %s failed", step.label, exc_info=True)
            message = f"Error cleaning up '{step.label}': {exc}"
            ctx.ui.error(message)
            leftovers.append(message)
    return leftovers
