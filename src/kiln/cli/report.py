"""Printing an error the way Packer does: `Error: message` and the hint, one `* problem` line each
for many problems, redacted."""

from __future__ import annotations

import sys
from typing import TextIO

from kiln.core.secrets import REDACTOR
from kiln.errors import KilnError, TemplateProblems


def print_error(err: KilnError, stream: TextIO | None = None) -> None:
    """`Error: message` (+ hint); for many problems, one `* problem` line each."""
    stream = stream or sys.stderr
    from kiln.template.hcl2.runtime import HclDiagnostic
    from kiln.template.json_loader import MinVersionError

    if isinstance(err, HclDiagnostic):
        text = "Error: " + err.packer_text()
    elif isinstance(err, MinVersionError):
        # Packer prints this one as a diagnostic without a summary; scripts match on it.
        text = f"Error: \n\n{err.message}\n\n"
    elif isinstance(err, TemplateProblems) and len(err.problems) > 1:
        text = "Error: " + err.render()
    else:
        text = f"Error: {err.message}"
        if err.hint:
            text += f"\n  hint: {err.hint}"
    stream.write(bounded(REDACTOR.redact(text)) + "\n")
    stream.flush()


#: The longest line an error prints: a message quoting a huge value shows the start of it.
MAX_ERROR_LINE = 1000


def bounded(text: str) -> str:
    """`text` with each line cut to MAX_ERROR_LINE characters (redact before cutting, or a cut
    secret would no longer be recognised)."""
    lines = text.split("\n")
    return "\n".join(
        line if len(line) <= MAX_ERROR_LINE
        else f"{line[:MAX_ERROR_LINE]}... ({len(line) - MAX_ERROR_LINE} more characters)"
        for line in lines
    )  # fmt: skip
