"""Everything kiln prints goes through here: human lines, `-machine-readable` lines, colors,
`-timestamp-ui`, and secret redaction. One lock makes every line atomic, so parallel builds never
interleave inside a line.

The sink (`Output`) is injected, so tests give it string buffers and never touch the real terminal.
`Ui` is what components talk to: `say` (a step starts: `==> NAME: msg`), `message` (detail or remote
output: `    NAME: msg`), `error`, `machine` (machine-readable events), `ask`.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TextIO

from kiln.core.secrets import REDACTOR

RESET = "\033[0m"
COLORS = {
    "red": "31", "green": "32", "yellow": "33", "blue": "34", "magenta": "35", "cyan": "36",
}  # fmt: skip
#: Colours given to builds in turn, as Packer does.
BUILD_COLORS = ("green", "cyan", "magenta", "yellow", "blue")


def visible_line(raw: bytes) -> str:
    """A line of a program's output as a terminal would show it: progress that redraws itself with
    carriage returns (apt's "Reading database ... 5%") keeps only its last state."""
    text = raw.rstrip(b"\r\n").decode("utf-8", "replace")
    return text.rsplit("\r", 1)[-1]


def machine_escape(arg: str) -> str:
    return arg.replace(",", "%!(PACKER_COMMA)").replace("\r", "\\r").replace("\n", "\\n")


@dataclass
class Output:
    """The one place that writes to the terminal (or to the buffers a test gives it)."""

    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    inp: TextIO | None = field(default_factory=lambda: sys.stdin)
    color: bool = False
    timestamps: bool = False
    machine_readable: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def write_lines(
        self, text: str, *, to_err: bool = False, color: str | None = None, bold: bool = False
    ) -> None:
        text = REDACTOR.redact(text)
        lines = text.split("\n")
        stream = self.err if to_err else self.out
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) + ": " if self.timestamps else ""
        if self.color and color:
            start = f"\033[{'1' if bold else '0'};{COLORS[color]}m"
            rendered = "".join(f"{stamp}{start}{line}{RESET}\n" for line in lines)
        else:
            rendered = "".join(f"{stamp}{line}\n" for line in lines)
        with self._lock:
            try:
                stream.write(rendered)
                stream.flush()
            except (BrokenPipeError, ValueError):
                pass

    def write_raw(self, text: str) -> None:
        """Write text as it is (a progress bar's redraw: carriage returns, no newline), redacted,
        under the one lock so that it never lands inside another line."""
        text = REDACTOR.redact(text)
        with self._lock:
            try:
                self.out.write(text)
                self.out.flush()
            except (BrokenPipeError, ValueError):
                pass

    def machine(self, target: str, kind: str, *args: str) -> None:
        fields = [str(int(time.time())), target, kind, *(machine_escape(REDACTOR.redact(a)) for a in args)]
        with self._lock:
            try:
                self.out.write(",".join(fields) + "\n")
                self.out.flush()
            except (BrokenPipeError, ValueError):
                pass

    def read_line(self, prompt: str) -> str:
        self.write_lines(prompt)
        if self.inp is None:
            raise EOFError("no input available")
        line = self.inp.readline()
        if not line:
            raise EOFError("no input available")
        return line.rstrip("\n")


class Ui:
    """Output of the run as a whole (no build prefix)."""

    def __init__(self, output: Output) -> None:
        self.output = output

    def say(self, message: str) -> None:
        if self.output.machine_readable:
            self.output.machine("", "ui", "say", message)
        else:
            self.output.write_lines(message, bold=True)

    def message(self, message: str) -> None:
        if self.output.machine_readable:
            self.output.machine("", "ui", "message", message)
        else:
            self.output.write_lines(message)

    def error(self, message: str) -> None:
        if self.output.machine_readable:
            self.output.machine("", "ui", "error", message)
        else:
            self.output.write_lines(message, to_err=True, color="red", bold=True)

    def machine(self, kind: str, *args: str) -> None:
        if self.output.machine_readable:
            self.output.machine("", kind, *args)

    def ask(self, query: str) -> str:
        if self.output.machine_readable:
            raise EOFError("cannot ask for input in machine-readable mode")
        return self.output.read_line(query)


class BuildUi(Ui):
    """Output of one build: every line carries the build's name (and colour)."""

    def __init__(self, output: Output, name: str, color: str = "green") -> None:
        super().__init__(output)
        self.name = name
        self.color = color

    def _prefixed(self, marker: str, message: str) -> str:
        return "\n".join(f"{marker}{self.name}: {line}" for line in message.split("\n"))

    def say(self, message: str) -> None:
        text = self._prefixed("==> ", message)
        if self.output.machine_readable:
            self.output.machine("", "ui", "say", text)
        else:
            self.output.write_lines(text, color=self.color, bold=True)

    def message(self, message: str) -> None:
        text = self._prefixed("    ", message)
        if self.output.machine_readable:
            self.output.machine("", "ui", "message", text)
        else:
            self.output.write_lines(text, color=self.color)

    def error(self, message: str) -> None:
        text = self._prefixed("==> ", message)
        if self.output.machine_readable:
            self.output.machine("", "ui", "error", text)
        else:
            self.output.write_lines(text, to_err=True, color="red", bold=True)

    def machine(self, kind: str, *args: str) -> None:
        if self.output.machine_readable:
            self.output.machine(self.name, kind, *args)
