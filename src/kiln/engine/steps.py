"""Builders as plans of steps, each with run and cleanup (Packer's multistep, typed, composable).

A plan is a `Sequence` of steps; a `Parallel` in it runs its branches at the same time:

    Sequence(
        StepPreValidate(),
        Parallel(StepKeyPair(), Sequence(StepVpc(), Parallel(StepVSwitch(), StepSecurityGroup()))),
        StepCreateInstance(),
        ...
    )

`run_steps` runs a plan. Every step that *started* is cleaned up, in reverse order, the failed one
included, so a step must record each resource in its state the moment it exists. The branches of a
`Parallel` that started are cleaned up at the same time (after what came later in the plan, before
what came earlier). Cleanup never raises: a cleanup that fails is reported with what the user must
delete by hand, and never hides the error that failed the build.

When a branch of a `Parallel` fails, its siblings are cancelled (their waits and backoff sleeps end
at once); the group waits for them all, so that each has recorded what it made, then fails with the
branch's error. The lines concurrent branches print appear in the plan's order, each branch's
together: a branch's lines are held until the branches before it have finished (in cleanup, the
branches after it), so a build prints the same lines in the same order however its API calls race.

The `-on-error` modes are handled here, around the steps, not inside them; so is `-debug` pausing
(after each step, and before each cleanup; a `Parallel` pauses once, as one step). On `[r]etry` a
group resumes: the steps that finished are not run again.

A builder's steps share a typed state object `S` (a dataclass of the builder's own), not a bag of
strings: what one step records, the next reads under the same type. Plans keep what they started,
so build one per run.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from kiln.components import BuildContext, OnError
from kiln.core.cancel import CancelToken
from kiln.core.ui import Ui
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


class _Group(Step[S]):
    """What Sequence and Parallel share: their steps, which of them started, finished, failed."""

    joiner = ", "

    def __init__(self, *steps: Step[S], name: str = "") -> None:
        self.steps = steps
        self.name = name
        self.started: list[Step[S]] = []
        self.done: set[int] = set()
        self.failed: Step[S] | None = None

    @property
    def label(self) -> str:
        return self.name or self.joiner.join(step.label for step in self.steps)

    def run(self, state: S, ctx: BuildContext) -> None:
        self.execute(state, ctx, handle=True)

    def cleanup(self, state: S, ctx: BuildContext) -> None:
        leftovers = self.clean(state, ctx)
        if leftovers:
            raise CleanupFailed("; ".join(leftovers))

    def execute(self, state: S, ctx: BuildContext, handle: bool) -> None:
        """Run the steps not yet done. `handle`: deal with a failing step's on-error mode here
        (False inside a Parallel's branch: the group's caller does, once the siblings stopped)."""
        raise NotImplementedError

    def clean(self, state: S, ctx: BuildContext) -> list[str]:
        """Clean up the steps that started; return the messages of cleanups that failed."""
        raise NotImplementedError

    def _start(self, index: int) -> Step[S]:
        step = self.steps[index]
        if step not in self.started:
            self.started.append(step)
        return step


class Sequence(_Group[S]):
    """Steps one after another."""

    def execute(self, state: S, ctx: BuildContext, handle: bool) -> None:
        for index in range(len(self.steps)):
            if index in self.done:
                continue
            if ctx.cancel.cancelled:
                self.failed = None
                raise CancelledError()
            step = self.failed = self._start(index)
            if isinstance(step, Sequence):
                step.execute(state, ctx, handle)  # its own steps are attempted (and paused after) one by one
            elif handle:
                _attempt(step, state, ctx)
                ctx.pause(f"Pausing after run of step '{step.label}'. Press enter to continue.")
            else:
                _execute(step, state, ctx, handle=False)
            self.done.add(index)
        self.failed = None

    def clean(self, state: S, ctx: BuildContext) -> list[str]:
        leftovers: list[str] = []
        for step in reversed(self.started):
            leftovers += _clean(step, state, ctx)
        return leftovers


class Parallel(_Group[S]):
    """Steps at the same time, each in a thread of its own."""

    joiner = " + "

    def execute(self, state: S, ctx: BuildContext, handle: bool) -> None:
        ctx.cancel.check()
        pending = [i for i in range(len(self.steps)) if i not in self.done]
        for index in pending:
            self._start(index)
        siblings = CancelToken()  # cancelled by the run's token, or by a failing branch
        forget = ctx.cancel.on_cancel(siblings.cancel)
        errors: dict[int, BaseException] = {}

        def branch(index: int) -> Callable[[BuildContext], None]:
            def body(bctx: BuildContext) -> None:
                try:
                    _execute(self.steps[index], state, bctx, handle=False)
                    self.done.add(index)
                except BaseException as exc:
                    errors[index] = exc
                    siblings.cancel()

            return body

        try:
            _concurrently(ctx, siblings, [(self.steps[i].label, branch(i)) for i in pending])
        finally:
            forget()
        failures = [(i, errors[i]) for i in sorted(errors)]
        real = [(i, e) for i, e in failures if not isinstance(e, CancelledError)]
        if not failures:
            self.failed = None
            return
        index, error = (real or failures)[0]
        self.failed = self.steps[index]
        for other_index, other in real[1:]:
            ctx.ui.error(f"Step '{self.steps[other_index].label}' failed too: {other}")
        raise error

    def clean(self, state: S, ctx: BuildContext) -> list[str]:
        order = list(reversed(self.started))
        if not order:
            return []
        ctx.pause(f"Pausing before cleanup of step '{self.label}'. Press enter to continue.")
        leftovers: list[list[str]] = [[] for _ in order]

        def branch(index: int) -> Callable[[BuildContext], None]:
            def body(bctx: BuildContext) -> None:
                leftovers[index] = _clean(order[index], state, bctx)

            return body

        _concurrently(ctx, ctx.cancel, [(step.label, branch(i)) for i, step in enumerate(order)])
        return [message for messages in leftovers for message in messages]


class CleanupEarly(Step[S]):
    """Run other steps' cleanups now, in the given order, instead of only at the end: what they made
    is of no more use (an address, once the image is being made). Their cleanups must be safe to run
    twice: they run again at the end, where they find nothing left to do, or retry what failed here."""

    def __init__(self, *steps: Step[S], name: str = "") -> None:
        self.steps = steps
        self.name = name or "CleanupEarly(" + ", ".join(step.label for step in steps) + ")"

    def run(self, state: S, ctx: BuildContext) -> None:
        for step in self.steps:
            try:
                step.cleanup(state, ctx)
            except Exception as exc:
                ctx.ui.error(f"Early cleanup of '{step.label}' failed (tried again at the end): {exc}")


def run_steps(steps: Step[S] | Iterable[Step[S]], state: S, ctx: BuildContext) -> None:
    """Run a plan (or a list of steps, in order), then clean up every started step in reverse.
    Re-raises the error that failed the build."""
    if isinstance(steps, Sequence):
        plan = steps
    else:
        plan = Sequence(steps) if isinstance(steps, Step) else Sequence(*steps)
    error: Exception | None = None
    try:
        plan.execute(state, ctx, handle=True)
    except Aborted:
        ctx.log.info("on-error=abort: skipping cleanup of %d step(s)", len(plan.started))
        raise
    except Exception as exc:
        error = exc
    leftovers = plan.clean(state, ctx)
    if error is not None:
        if leftovers and isinstance(error, KilnError) and not error.hint:
            error.hint = "some resources could not be cleaned up (see above): delete them by hand"
        raise error


def _execute(step: Step[S], state: S, ctx: BuildContext, handle: bool) -> None:
    ctx.log.debug("step %s: run", step.label)
    if isinstance(step, _Group):
        step.execute(state, ctx, handle)
    else:
        step.run(state, ctx)


def _failed_leaf(step: Step[S]) -> Step[S]:
    while isinstance(step, _Group) and step.failed is not None:
        step = step.failed
    return step


def _attempt(step: Step[S], state: S, ctx: BuildContext) -> None:
    """Run one step, and on failure do what -on-error says (asking in -on-error=ask mode)."""
    while True:
        try:
            _execute(step, state, ctx, handle=False)
            return
        except (CancelledError, Aborted):
            raise
        except Exception as exc:
            failed = _failed_leaf(step)
            if not isinstance(exc, KilnError):
                ctx.log.error("step %s raised", failed.label, exc_info=exc)
            message = str(exc) or type(exc).__name__
            ctx.ui.error(message)
            choice = "c"
            if ctx.on_error in (OnError.ABORT, OnError.RUN_CLEANUP_PROVISIONER):
                choice = "a"
            elif ctx.on_error is OnError.ASK and not ctx.cancel.cancelled:
                choice = _ask(failed, message, ctx)
            if choice == "r":
                continue
            if choice == "a":
                ctx.ui.error(f"Step '{failed.label}' failed, aborting...")
                raise Aborted(message) from exc
            raise


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


def _clean(step: Step[S], state: S, ctx: BuildContext) -> list[str]:
    if isinstance(step, _Group):
        return step.clean(state, ctx)
    ctx.pause(f"Pausing before cleanup of step '{step.label}'. Press enter to continue.")
    try:
        ctx.log.debug("step %s: cleanup", step.label)
        step.cleanup(state, ctx)
    except Exception as exc:
        ctx.log.debug("cleanup of %s failed", step.label, exc_info=True)
        message = f"Error cleaning up '{step.label}': {exc}"
        ctx.ui.error(message)
        return [message]
    return []


def _concurrently(
    ctx: BuildContext, cancel: CancelToken, jobs: list[tuple[str, Callable[[BuildContext], None]]]
) -> None:
    """Run each job in a thread of its own with a context of its own (`cancel`; lines in the jobs'
    order; no -debug pauses), and wait for all of them."""
    lines = _InOrder(ctx.ui, len(jobs))
    threads = []
    for index, (label, job) in enumerate(jobs):
        bctx = dataclasses.replace(ctx, cancel=cancel, ui=_HeldUi(lines, index), debug=False)

        def body(
            job: Callable[[BuildContext], None] = job, bctx: BuildContext = bctx, index: int = index
        ) -> None:
            try:
                job(bctx)
            finally:
                lines.finish(index)

        threads.append(threading.Thread(target=body, name=f"kiln-step-{label}", daemon=True))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


class _InOrder:
    """The lines of concurrent jobs in the jobs' order: job n's lines are shown as they come once
    jobs 0..n-1 have finished, and held until then."""

    def __init__(self, ui: Ui, count: int) -> None:
        self.ui = ui
        self.lock = threading.Lock()
        self.held: list[list[tuple[str, tuple[str, ...]]]] = [[] for _ in range(count)]
        self.finished = [False] * count
        self.current = 0

    def emit(self, index: int, method: str, args: tuple[str, ...]) -> None:
        with self.lock:
            if index == self.current:
                getattr(self.ui, method)(*args)
            else:
                self.held[index].append((method, args))

    def finish(self, index: int) -> None:
        with self.lock:
            self.finished[index] = True
            while self.current < len(self.held):
                for method, args in self.held[self.current]:
                    getattr(self.ui, method)(*args)
                self.held[self.current].clear()
                if not self.finished[self.current]:
                    break
                self.current += 1


class _HeldUi(Ui):
    """A job's Ui under _InOrder (questions go straight through)."""

    def __init__(self, lines: _InOrder, index: int) -> None:
        super().__init__(lines.ui.output)
        self.lines = lines
        self.index = index

    def say(self, message: str) -> None:
        self.lines.emit(self.index, "say", (message,))

    def message(self, message: str) -> None:
        self.lines.emit(self.index, "message", (message,))

    def error(self, message: str) -> None:
        self.lines.emit(self.index, "error", (message,))

    def machine(self, kind: str, *args: str) -> None:
        self.lines.emit(self.index, "machine", (kind, *args))

    def ask(self, query: str) -> str:
        return self.lines.ui.ask(query)
