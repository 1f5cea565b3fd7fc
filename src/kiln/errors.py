"""Errors a user can cause or meet, each a one-line message with an optional hint.

Everything raised to the command line is a `KilnError`; the CLI prints `Error: <message>` and the
hint, never a traceback.
"""

from __future__ import annotations


class KilnError(Exception):
    """An error meant for the user: a one-line message and an optional hint."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message

    def render(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class TemplateError(KilnError):
    """A template, variable file or flag is malformed or invalid."""


class BuildError(KilnError):
    """A step of a build failed."""


class CancelledError(KilnError):
    """The build was cancelled (SIGINT/SIGTERM, or a step told to stop)."""

    def __init__(self, message: str = "Build was cancelled.") -> None:
        super().__init__(message)


class CommunicatorError(KilnError):
    """Connecting to, or talking with, the machine being built failed."""


class MachineError(KilnError):
    """Building a base image, or starting, stopping or saving a local machine failed."""


class CloudError(KilnError):
    """A cloud API call failed (after retries)."""


class TemplateProblems(TemplateError):
    """Every problem found in a template at once, each a line naming its place
    (`builders[1].type: ...`, `line 5, column 6`)."""

    def __init__(self, source: str, problems: list[str], hint: str | None = None) -> None:
        self.source = source
        self.problems = list(problems)
        count = len(self.problems)
        head = f"{source}: {count} error(s) occurred" if count > 1 else f"{source}: {self.problems[0]}"
        super().__init__(head, hint)

    def __str__(self) -> str:
        """The head and, for several problems, one `* problem` line each (as Packer's multierror
        reads): what a build that fails on them prints."""
        if len(self.problems) == 1:
            return self.message
        return "\n".join([f"{self.message}:", "", *(f"* {p}" for p in self.problems)])

    def render(self) -> str:
        if len(self.problems) == 1:
            return super().render()
        return str(self) + (f"\n  hint: {self.hint}" if self.hint else "")
