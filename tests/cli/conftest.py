from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


class Kiln:
    """Runs the real `kiln` command line in a folder of its own."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.env = {
            k: v for k, v in os.environ.items() if not k.startswith(("PACKER_", "KILN_LOG", "PKR_VAR_"))
        }
        self.env["KILN_STATE_DIR"] = str(cwd / ".state")
        self.env["KILN_CACHE_DIR"] = str(cwd / ".cache")

    def template(self, data: dict[str, Any], name: str = "template.json") -> Path:
        path = self.cwd / name
        path.write_text(json.dumps(data, indent=2))
        return path

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "kiln", *args]

    def __call__(
        self, *args: str, stdin: str = "", env: dict[str, str] | None = None, timeout: float = 120
    ) -> Result:
        proc = subprocess.run(
            self.argv(*args),
            cwd=self.cwd,
            env={**self.env, **(env or {})},
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv(*args),
            cwd=self.cwd,
            env={**self.env, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )


@pytest.fixture
def kiln(tmp_path: Path) -> Iterator[Kiln]:
    yield Kiln(tmp_path)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie waiting for its parent counts as gone
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
