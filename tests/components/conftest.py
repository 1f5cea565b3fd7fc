"""A real BuildContext for component tests: output goes to string buffers through the real Ui
(so redaction and prefixes apply), the work folder is a temporary one."""

from __future__ import annotations

import io
import logging
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kiln.components import BuildContext, Component
from kiln.config import DecodeContext
from kiln.core.cancel import CancelToken
from kiln.core.secrets import REDACTOR
from kiln.core.ui import BuildUi, Output


@dataclass
class Harness:
    ctx: BuildContext
    out: io.StringIO
    err: io.StringIO

    @property
    def stdout(self) -> str:
        return self.out.getvalue()

    @property
    def stderr(self) -> str:
        return self.err.getvalue()


def simple_render(text: str, data: Mapping[str, Any]) -> str:
    """Enough of the template engine for `{{.Name}}` fields: the engine's own renderer is tested
    elsewhere; components only need the fields they pass filled in."""
    for key, value in data.items():
        for form in (f"{{{{.{key}}}}}", f"{{{{ .{key} }}}}"):
            text = text.replace(form, str(value))
    return text


@pytest.fixture
def harness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    monkeypatch.setenv("KILN_STATE_DIR", str(tmp_path / "state"))  # the run's folder goes there
    out, err = io.StringIO(), io.StringIO()
    output = Output(out=out, err=err, inp=io.StringIO(""))
    work = tmp_path / "work"
    work.mkdir()
    ctx = BuildContext(
        name="example",
        builder_type="null",
        ui=BuildUi(output, "example"),
        cancel=CancelToken(),
        log=logging.getLogger("kiln.test.components"),
        run_uuid=str(uuid.uuid4()),
        work_dir=work,
        render=simple_render,
    )
    yield Harness(ctx, out, err)
    REDACTOR.clear()


@pytest.fixture
def prepare() -> Callable[..., Any]:
    """Decode and validate a component's config as the engine does; fail the test on problems."""

    def _prepare(cls: type[Component], raw: Mapping[str, Any], *, expect_errors: bool = False) -> Any:
        component = cls()
        dctx = DecodeContext()
        component.prepare(raw, dctx, "component")
        if expect_errors:
            return component, dctx.errors
        assert dctx.errors == []
        return component

    return _prepare
