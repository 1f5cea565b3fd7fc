"""A full disk: every file kiln writes is whole or absent (never partial or empty), and the error
names the file and the disk it is on. A real small tmpfs, filled up."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kiln.alicloud.journal import Journal
from kiln.builders.file import FileBuilder
from kiln.components import Artifact
from kiln.errors import BuildError, KilnError
from kiln.postprocessors.checksum import ChecksumPostProcessor

from .conftest import Harness

Prepare = Callable[..., Any]

pytestmark = pytest.mark.root


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs mounted for the test (and unmounted after it, whatever happens)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def fill(disk: Path) -> None:
    """Leave the disk with no free block."""
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)


def test_file_builder_leaves_no_partial_artifact(
    harness: Harness, prepare: Prepare, small_disk: Path
) -> None:
    source = harness.ctx.work_dir / "big.bin"
    source.write_bytes(os.urandom(3 * 1024 * 1024))
    builder = prepare(FileBuilder, {"source": str(source), "target": str(small_disk / "out" / "big.bin")})
    with pytest.raises(BuildError) as caught:
        builder.run(harness.ctx)
    error = caught.value
    assert str(error).startswith(f"file builder: cannot copy {source} to {small_disk / 'out' / 'big.bin'}: ")
    assert "No space left on device" in str(error)
    assert (
        error.hint
        == f"the disk holding {small_disk / 'out'} (mounted at {small_disk}) is full: free space there"
    )
    assert list((small_disk / "out").iterdir()) == []  # no partial file, no temporary one


def test_checksum_leaves_no_empty_file(harness: Harness, prepare: Prepare, small_disk: Path) -> None:
    (harness.ctx.work_dir / "disk.raw").write_bytes(b"x" * 4096)
    fill(small_disk)
    pp = prepare(ChecksumPostProcessor, {"output": str(small_disk / "sums" / "{{.ChecksumType}}.checksum")})
    with pytest.raises(BuildError) as caught:
        pp.post_process(harness.ctx, Artifact("null", files=["disk.raw"]))
    assert "No space left on device" in str(caught.value), caught.value
    assert caught.value.hint and f"mounted at {small_disk}" in caught.value.hint
    assert list((small_disk / "sums").iterdir()) == []


def test_journal_error_names_its_file_and_disk(small_disk: Path) -> None:
    path = small_disk / "journal" / "run-1.json"
    journal = Journal("run-1", "cn-beijing", None, path)
    journal.created("vpc", "vpc-1", "cn-beijing")
    saved = path.read_bytes()
    fill(small_disk)
    with pytest.raises(KilnError) as caught:
        for i in range(2000):  # until the journal no longer fits in the blocks it had
            journal.created("vswitch", f"vsw-{i:04d}-" + "x" * 200, "cn-beijing")
    assert str(caught.value).startswith(f"cannot write the build journal {path}: No space left on device")
    assert caught.value.hint and f"mounted at {small_disk}" in caught.value.hint
    assert path.read_bytes().startswith(saved[:20])  # the last journal that fitted is still whole
    assert [p.name for p in path.parent.iterdir()] == ["run-1.json"]
