"""Every test gets a state folder of its own, so no test ever touches (or leaves anything in) a
user's ~/.local/state/kiln; fixtures that need a particular one set it after this."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def private_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "kiln-state"
    monkeypatch.setenv("KILN_STATE_DIR", str(path))
    return path
