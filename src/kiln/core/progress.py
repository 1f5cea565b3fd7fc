"""A progress bar for transfers (downloads, uploads).

    with transfer_progress(ui, "Downloading debian.iso", total=size) as advance:
        for chunk in chunks:
            advance(len(chunk))

On a terminal (and not `-machine-readable`) it draws a bar with tqdm, imported only then: `kiln
validate` never loads it. Otherwise it prints a few plain lines through the Ui (at the start, at each
quarter of a known total or every 30 s of an unknown one, and at the end), so logs, pipes and the
machine-readable stream get a record instead of carriage returns. Either way the line it ends with is
a plain one through the Ui (what was moved, how fast), and everything it writes is redacted. `advance`
may be called from several threads at once (the parts of a parallel upload).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from kiln.core.ui import BuildUi, Output, Ui

if TYPE_CHECKING:
    from tqdm import tqdm

#: a plain line every this many seconds when the total is unknown
PLAIN_EVERY_SECONDS = 30.0


def format_size(nbytes: float) -> str:
    """1536 -> "1.5 KiB", as tqdm's bar says it."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(nbytes) < 1024 or unit == "TiB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    raise AssertionError("unreachable")


def draws_bar(ui: Ui) -> bool:
    """A bar is drawn only on an interactive terminal, never in machine-readable mode."""
    out = ui.output.out
    isatty = getattr(out, "isatty", None)
    return not ui.output.machine_readable and callable(isatty) and bool(isatty())


class _BarStream:
    """What tqdm writes to: the Output, through its lock and the redactor."""

    def __init__(self, output: Output) -> None:
        self._output = output

    def write(self, text: str) -> int:
        self._output.write_raw(text)
        return len(text)

    def flush(self) -> None:
        pass  # write_raw flushes


class _Progress:
    def __init__(self, ui: Ui, label: str, total: int | None, initial: int) -> None:
        self.ui, self.label, self.total = ui, label, total
        self.initial = self.done = initial
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._next_quarter = 1 + (4 * initial // total if total else 0)
        self._next_time = self.started + PLAIN_EVERY_SECONDS
        self._bar: tqdm[Any] | None = None
        if draws_bar(ui):
            from tqdm import tqdm

            prefix = f"    {ui.name}: " if isinstance(ui, BuildUi) else ""
            self._bar = tqdm(
                desc=prefix + label,
                total=total,
                initial=initial,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                file=_BarStream(ui.output),  # type: ignore[arg-type]  # a file-like writer
                leave=False,
                dynamic_ncols=True,
                mininterval=0.2,
            )
        else:
            of = f" of {format_size(total)}" if total is not None else ""
            resumed = f" (resuming at {format_size(initial)})" if initial else ""
            ui.message(f"{label}: {format_size(initial)}{of}{resumed}")

    def advance(self, nbytes: int) -> None:
        line = None
        with self._lock:
            self.done += nbytes
            if self._bar is not None:
                self._bar.update(nbytes)
                return
            if self.total:
                quarter = min(4, 4 * self.done // self.total)
                if quarter >= self._next_quarter and quarter < 4:
                    self._next_quarter = quarter + 1
                    line = f"{self.label}: {format_size(self.done)} of {format_size(self.total)} ({25 * quarter}%)"
            elif time.monotonic() >= self._next_time:
                self._next_time = time.monotonic() + PLAIN_EVERY_SECONDS
                line = f"{self.label}: {format_size(self.done)}"
        if line is not None:
            self.ui.message(line)

    def close(self, failed: bool) -> None:
        with self._lock:
            if self._bar is not None:
                self._bar.close()
                self._bar = None
            moved = self.done - self.initial
            seconds = max(time.monotonic() - self.started, 1e-6)
        rate = f"{format_size(moved / seconds)}/s"
        if failed:
            of = f" of {format_size(self.total)}" if self.total is not None else ""
            self.ui.message(f"{self.label}: stopped at {format_size(self.done)}{of}")
        else:
            self.ui.message(f"{self.label}: {format_size(moved)} in {seconds:.1f}s ({rate})")


@contextmanager
def transfer_progress(
    ui: Ui, label: str, total: int | None, initial: int = 0
) -> Iterator[Callable[[int], None]]:
    """Show the progress of a transfer of `total` bytes (None: unknown) of which `initial` are
    already there (a resumed download); yields `advance(nbytes)`, safe to call from any thread."""
    progress = _Progress(ui, label, total, initial)
    try:
        yield progress.advance
    except BaseException:
        progress.close(failed=True)
        raise
    progress.close(failed=False)
