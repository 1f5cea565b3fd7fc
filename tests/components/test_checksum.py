"""checksum: files that sha256sum -c / md5sum -c accept."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from typing import Any

import pytest

from kiln.components import Artifact
from kiln.postprocessors.checksum import ChecksumPostProcessor

from .conftest import Harness

Prepare = Callable[..., Any]


@pytest.fixture
def disks(harness: Harness) -> list[str]:
    out = harness.ctx.work_dir / "output"
    out.mkdir()
    (out / "disk.raw").write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    (out / "notes.txt").write_text("hello\n")
    return ["output/disk.raw", "output/notes.txt"]


def test_default_md5_file_checks_with_md5sum(harness: Harness, prepare: Prepare, disks: list[str]) -> None:
    pp = prepare(ChecksumPostProcessor, {})
    result = pp.post_process(harness.ctx, Artifact("null", files=disks))
    name = "packer_example_null_md5.checksum"
    assert result.artifact.files == [*disks, name]
    assert result.keep and result.force_override
    lines = (harness.ctx.work_dir / name).read_text().splitlines()
    assert [line.split("\t")[1] for line in lines] == ["disk.raw", "notes.txt"]
    check = subprocess.run(
        ["md5sum", "-c", f"../{name}"], cwd=harness.ctx.work_dir / "output", capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout == "disk.raw: OK\nnotes.txt: OK\n"


@pytest.mark.parametrize("kind", ["sha1", "sha224", "sha256", "sha384", "sha512"])
def test_each_sha_type_checks_with_its_tool(
    harness: Harness, prepare: Prepare, disks: list[str], kind: str
) -> None:
    pp = prepare(
        ChecksumPostProcessor,
        {"checksum_types": [kind, "md5"], "output": "output/{{.BuildName}}.{{.ChecksumType}}"},
    )
    result = pp.post_process(harness.ctx, Artifact("null", files=disks))
    assert result.artifact.files[-2:] == [f"output/example.{kind}", "output/example.md5"]
    for tool, file in ((f"{kind}sum", f"example.{kind}"), ("md5sum", "example.md5")):
        check = subprocess.run(
            [tool, "--strict", "-c", file],
            cwd=harness.ctx.work_dir / "output",
            capture_output=True,
            text=True,
        )
        assert check.returncode == 0 and check.stdout.count(": OK") == 2, check.stdout + check.stderr


def test_second_run_appends_and_a_changed_file_fails_the_check(
    harness: Harness, prepare: Prepare, disks: list[str]
) -> None:
    pp = prepare(ChecksumPostProcessor, {"checksum_types": "sha256", "output": "output/SHA256SUMS"})
    first = pp.post_process(harness.ctx, Artifact("null", files=disks[:1]))
    second = pp.post_process(harness.ctx, Artifact("null", files=disks[1:]))
    assert first.artifact.files == [disks[0], "output/SHA256SUMS"]
    assert second.artifact.files == [disks[1]]  # the file existed: Packer lists it only once
    sums = harness.ctx.work_dir / "output" / "SHA256SUMS"
    assert len(sums.read_text().splitlines()) == 2
    (harness.ctx.work_dir / disks[0]).write_bytes(b"tampered")
    check = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=sums.parent, capture_output=True, text=True)
    assert check.returncode == 1 and "disk.raw: FAILED" in check.stdout and "notes.txt: OK" in check.stdout


def test_unknown_type_is_reported(prepare: Prepare) -> None:
    _, errors = prepare(ChecksumPostProcessor, {"checksum_types": ["sha256", "crc32"]}, expect_errors=True)
    assert errors == [
        "component.checksum_types[1]: Unrecognized checksum type: crc32 (use one of md5, sha1, sha224, sha256, sha384, sha512)"
    ]


def test_destroying_the_new_artifact_removes_its_files(
    harness: Harness, prepare: Prepare, disks: list[str]
) -> None:
    result = prepare(ChecksumPostProcessor, {}).post_process(harness.ctx, Artifact("null", files=disks))
    result.artifact.destroy()
    assert not any((harness.ctx.work_dir / f).exists() for f in result.artifact.files)


def test_file_names_that_are_not_utf8_are_written_byte_for_byte(harness: Harness, prepare: Prepare) -> None:
    raw = b"disk-\xff.img"
    (harness.ctx.work_dir / os.fsdecode(raw)).write_bytes(b"data")
    pp = prepare(ChecksumPostProcessor, {"checksum_types": ["sha256"], "output": "SUMS"})
    pp.post_process(harness.ctx, Artifact("null", files=[os.fsdecode(raw)]))
    assert (harness.ctx.work_dir / "SUMS").read_bytes().endswith(b"\t" + raw + b"\n")
    check = subprocess.run(["sha256sum", "-c", "SUMS"], cwd=harness.ctx.work_dir, capture_output=True)
    assert check.returncode == 0, check.stdout + check.stderr
