"""compress: every format round-trips through the real tools (tar, gzip, xz, bzip2, zstd, lz4, unzip)."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kiln.components import Artifact
from kiln.errors import BuildError, CancelledError
from kiln.postprocessors import _codecs
from kiln.postprocessors.compress import CompressPostProcessor, Format, detect_format

from .conftest import Harness

Prepare = Callable[..., Any]


@pytest.fixture
def files(harness: Harness) -> list[str]:
    """A 3 MiB image of mixed content (random, text, zeros) and a small file, in a subfolder."""
    out = harness.ctx.work_dir / "output"
    out.mkdir()
    with (out / "disk.img").open("wb") as handle:
        for i in range(3):
            handle.write(os.urandom(300_000) + (b"line %d of a log\n" % i) * 30_000 + bytes(250_000))
    (out / "meta.txt").write_text("meta\n")
    return ["output/disk.img", "output/meta.txt"]


def run(cmd: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(cmd, shell=True, cwd=cwd, capture_output=True, check=True)


@pytest.mark.parametrize(
    ("output", "list_cmd"),
    [
        ("out.tar.gz", "tar -tzf out.tar.gz"),
        ("out.tgz", "tar -tzf out.tgz"),
        ("out.tar", "tar -tf out.tar"),
        ("out.tar.xz", "tar -tJf out.tar.xz"),
        ("out.tar.bz2", "tar -tjf out.tar.bz2"),
        ("out.tar.zst", "tar --zstd -tf out.tar.zst"),
        ("out.tar.lz4", "lz4 -dc out.tar.lz4 | tar -tf -"),
        ("unknown.ext", "tar -tzf unknown.ext"),  # Packer: unknown extension -> tar.gz under that name
    ],
)
def test_tar_formats_round_trip(
    harness: Harness, prepare: Prepare, files: list[str], output: str, list_cmd: str
) -> None:
    work = harness.ctx.work_dir
    pp = prepare(CompressPostProcessor, {"output": output})
    result = pp.post_process(harness.ctx, Artifact("null", files=files))
    assert result.artifact.files == [output] and not result.keep
    assert run(list_cmd, work).stdout.decode().split() == ["disk.img", "meta.txt"]
    extract = work / "extract"
    extract.mkdir()
    run(f"{list_cmd.replace(' -t', ' -x').replace('tar -tf -', 'tar -xf -')} -C extract", work)
    for name in files:
        assert (extract / Path(name).name).read_bytes() == (work / name).read_bytes()
    assert f"==> example: Archive {output} completed" in harness.stdout


@pytest.mark.parametrize(
    ("output", "decompress"),
    [
        ("disk.img.gz", "gzip -dc"),
        ("disk.img.xz", "xz -dc"),
        ("disk.img.bz2", "bzip2 -dc"),
        ("disk.img.zst", "zstd -dc"),
        ("disk.img.lz4", "lz4 -dc"),
    ],
)
def test_single_file_formats_round_trip(
    harness: Harness, prepare: Prepare, files: list[str], output: str, decompress: str
) -> None:
    work = harness.ctx.work_dir
    pp = prepare(CompressPostProcessor, {"output": output, "compression_level": 9})
    pp.post_process(harness.ctx, Artifact("null", files=files[:1]))
    assert run(f"{decompress} {output}", work).stdout == (work / files[0]).read_bytes()
    assert (work / output).stat().st_size < (work / files[0]).stat().st_size


def test_gzip_output_is_one_standard_member(harness: Harness, prepare: Prepare, files: list[str]) -> None:
    work = harness.ctx.work_dir
    prepare(CompressPostProcessor, {"output": "d.gz"}).post_process(
        harness.ctx, Artifact("null", files=files[:1])
    )
    run("gzip -t d.gz", work)
    listing = run("gzip -lv d.gz", work).stdout.decode()
    assert str((work / files[0]).stat().st_size) in listing  # the trailer's size is right
    single = run(f"gzip -6 -c {files[0]}", work).stdout
    assert (work / "d.gz").stat().st_size < len(single) * 1.02  # parallel blocks cost < 2%


def test_zip_round_trip(harness: Harness, prepare: Prepare, files: list[str]) -> None:
    work = harness.ctx.work_dir
    pp = prepare(CompressPostProcessor, {"output": "{{.BuildName}}.zip"})
    result = pp.post_process(harness.ctx, Artifact("null", files=files))
    assert result.artifact.files == ["example.zip"]
    run("unzip -q example.zip -d unzipped", work)
    for name in files:
        assert (work / "unzipped" / name).read_bytes() == (work / name).read_bytes()


def test_zip_member_names_stay_inside_the_extraction_folder(
    harness: Harness, prepare: Prepare, files: list[str]
) -> None:
    work = harness.ctx.work_dir
    (work / "sub").mkdir()
    pp = prepare(CompressPostProcessor, {"output": "sub/up.zip"})
    pp.post_process(
        harness.ctx, Artifact("null", files=["../work/output/meta.txt", str(work / "output" / "disk.img")])
    )
    names = run("unzip -Z1 sub/up.zip", work).stdout.decode().split()
    assert names == ["work/output/meta.txt", str(work / "output" / "disk.img").lstrip("/")]


def test_format_option_overrides_the_extension(harness: Harness, prepare: Prepare, files: list[str]) -> None:
    pp = prepare(CompressPostProcessor, {"output": "archive", "format": "tar.xz"})
    pp.post_process(harness.ctx, Artifact("null", files=files))
    assert run("xz -t archive && tar -tJf archive", harness.ctx.work_dir).stdout.decode().split() == [
        "disk.img",
        "meta.txt",
    ]


def test_several_files_need_an_archive_format(harness: Harness, prepare: Prepare, files: list[str]) -> None:
    pp = prepare(CompressPostProcessor, {"output": "x.gz"})
    with pytest.raises(
        BuildError, match=r"^Can only have 1 input file when not using tar/zip\. Found 2 files"
    ):
        pp.post_process(harness.ctx, Artifact("null", files=files))
    assert not (harness.ctx.work_dir / "x.gz").exists()


def test_default_output_name_and_keep(harness: Harness, prepare: Prepare, files: list[str]) -> None:
    result = prepare(CompressPostProcessor, {}).post_process(harness.ctx, Artifact("null", files=files))
    assert (
        result.artifact.files == ["packer_example_null"]
        and result.keep is False
        and result.force_override is False
    )
    run("tar -tzf packer_example_null", harness.ctx.work_dir)
    result.artifact.destroy()
    assert not (harness.ctx.work_dir / "packer_example_null").exists()


def test_bad_options_are_reported(prepare: Prepare) -> None:
    _, errors = prepare(CompressPostProcessor, {"format": "rar", "compression_level": -5}, expect_errors=True)
    assert [e.split(":")[0] for e in errors] == ["component.compression_level", "component.format"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.tar.gz", Format("tar", "gzip")),
        ("a.gz", Format("", "gzip")),
        ("a.zip", Format("zip", "")),
        ("a.tar", Format("tar", "")),
        ("a.tar.lz4", Format("tar", "lz4")),
        ("a.lz4", Format("", "lz4")),
        ("a.txz", Format("tar", "xz")),
        ("a.tar.zst", Format("tar", "zstd")),
        ("a.bz2", Format("", "bzip2")),
        ("packer_build", Format("tar", "gzip")),
        ("dir.v1/image", Format("tar", "gzip")),
    ],
)
def test_detect_format(name: str, expected: Format) -> None:
    assert detect_format(name) == expected


@pytest.mark.parametrize("output", ["slow.tar.xz", "slow.tar.gz"])
def test_cancel_stops_and_removes_the_partial_archive(
    harness: Harness, prepare: Prepare, output: str
) -> None:
    big = harness.ctx.work_dir / "big.img"
    with big.open("wb") as handle:
        for _ in range(48):
            handle.write(os.urandom(1 << 20))
    pp = prepare(CompressPostProcessor, {"output": output, "compression_level": 9})
    errors: list[BaseException] = []

    def go() -> None:
        try:
            pp.post_process(harness.ctx, Artifact("null", files=["big.img"]))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=go)
    thread.start()
    deadline = time.monotonic() + 10
    while not (harness.ctx.work_dir / output).exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    harness.ctx.cancel.cancel()
    thread.join(20)
    assert not thread.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], CancelledError)
    assert not (harness.ctx.work_dir / output).exists()


def test_cores_reports_at_least_one() -> None:
    assert _codecs.cores() >= 1
