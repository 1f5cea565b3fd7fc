"""Secret redaction for every output channel: UI, machine-readable lines, log file, errors, manifest.

Every value a template marks sensitive (`sensitive-variables`, HCL `sensitive = true`) and every option
a component declares secret (`option(secret=True)`: access keys, passwords) is registered here and
replaced by `<sensitive>` wherever kiln writes text. A multi-line secret is also hidden line by line,
because tools print such values one line at a time.

Short secrets: a secret of fewer than 4 characters would match everywhere (a one-character password
"a" would mask every "a" of the output, a known Packer bug), so such a secret is hidden only where it
stands as a whole token, between non-alphanumeric characters (`pin=123` -> `pin=<sensitive>`); inside
a word it stays visible (the README says so among kiln's differences from Packer).
"""

from __future__ import annotations

import re
import threading

MASK = "<sensitive>"
MIN_LENGTH = 4


class Redactor:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def add(self, *values: str) -> None:
        with self._lock:
            for value in values:
                if not isinstance(value, str):
                    continue
                for piece in {value, *value.splitlines()}:
                    piece = piece.strip("\r")
                    if not piece.strip():
                        continue
                    self._secrets.add(piece)
            self._pattern = self._compile()

    def _compile(self) -> re.Pattern[str] | None:
        if not self._secrets:
            return None
        # Longest first, so that a secret containing another is masked whole.
        parts = []
        for secret in sorted(self._secrets, key=len, reverse=True):
            escaped = re.escape(secret)
            parts.append(
                escaped if len(secret) >= MIN_LENGTH else rf"(?<![A-Za-z0-9]){escaped}(?![A-Za-z0-9])"
            )
        return re.compile("|".join(parts))

    def redact(self, text: str) -> str:
        pattern = self._pattern
        if pattern is None or not text:
            return text
        return pattern.sub(MASK, text)

    def clear(self) -> None:
        with self._lock:
            self._secrets.clear()
            self._pattern = None

    @property
    def secrets(self) -> frozenset[str]:
        return frozenset(self._secrets)


#: The process-wide redactor: every writer of text in kiln passes through it.
REDACTOR = Redactor()


def redact(text: str) -> str:
    return REDACTOR.redact(text)
