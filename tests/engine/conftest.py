from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiln.components import BuildContext, OnError
from kiln.core.cancel import CancelToken
from kiln.core.secrets import REDACTOR
from kiln.core.ui import BuildUi, Output


class Terminal:
    """Buffers standing in for the terminal: what kiln printed, and what the user types."""

    def __init__(self, answers: str = "") -> None:
        self.out = io.StringIO()
        self.err = io.StringIO()
        self.inp = io.StringIO(answers)

    def output(self, **kw: bool) -> Output:
        return Output(out=self.out, err=self.err, inp=self.inp, **kw)

    @property
    def text(self) -> str:
        return self.out.getvalue() + self.err.getvalue()


@pytest.fixture
def terminal() -> Terminal:
    return Terminal()


@pytest.fixture(autouse=True)
def clean_redactor() -> Iterator[None]:
    REDACTOR.clear()
    yield
    REDACTOR.clear()


def make_ctx(
    terminal: Terminal, tmp_path: Path, on_error: OnError = OnError.CLEANUP, debug: bool = False
) -> BuildContext:
    return BuildContext(
        name="test",
        builder_type="null",
        ui=BuildUi(terminal.output(), "test"),
        cancel=CancelToken(),
        log=logging.getLogger("kiln.test"),
        run_uuid="00000000-0000-0000-0000-000000000000",
        work_dir=tmp_path,
        on_error=on_error,
        debug=debug,
    )
