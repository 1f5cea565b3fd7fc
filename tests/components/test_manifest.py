"""manifest: Packer's file format, byte for byte, appended across runs."""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from kiln.components import Artifact
from kiln.core.secrets import REDACTOR
from kiln.errors import BuildError
from kiln.postprocessors.manifest import ManifestPostProcessor

from .conftest import Harness

Prepare = Callable[..., Any]

# What Packer writes for two null builds with strip_time (from Packer's own build tests).
PACKER_TWO_NULL_BUILDS = """{
  "builds": [
    {
      "name": "test",
      "builder_type": "null",
      "files": null,
      "artifact_id": "Null",
      "packer_run_uuid": "RUN1",
      "custom_data": null
    },
    {
      "name": "potato",
      "builder_type": "null",
      "files": null,
      "artifact_id": "Null",
      "packer_run_uuid": "RUN2",
      "custom_data": null
    }
  ],
  "last_run_uuid": "RUN2"
}"""


def test_two_runs_append_in_packers_format(harness: Harness, prepare: Prepare) -> None:
    pp = prepare(ManifestPostProcessor, {"output": "manifest.json", "strip_time": True})
    first = dataclasses.replace(harness.ctx, name="test", run_uuid="RUN1")
    second = dataclasses.replace(harness.ctx, name="potato", run_uuid="RUN2")
    result = pp.post_process(first, Artifact("null", id="Null"))
    assert result.keep and result.force_override
    pp.post_process(second, Artifact("null", id="Null"))
    assert (harness.ctx.work_dir / "manifest.json").read_text() == PACKER_TWO_NULL_BUILDS


def test_files_sizes_time_custom_data_and_strip_path(harness: Harness, prepare: Prepare) -> None:
    work = harness.ctx.work_dir
    (work / "out").mkdir()
    (work / "out" / "disk.qcow2").write_bytes(b"x" * 1234)
    raw = {"custom_data": {"b": "2", "a": "x & <y>"}, "strip_path": True}
    pp = prepare(ManifestPostProcessor, raw)
    pp.post_process(harness.ctx, Artifact("qemu", id="disk-1", files=["out/disk.qcow2", "out/missing"]))
    text = (work / "packer-manifest.json").read_text()
    assert '"a": "x \\u0026 \\u003cy\\u003e"' in text  # Go's HTML-safe escaping
    build = json.loads(text)["builds"][0]
    assert list(build) == [
        "name",
        "builder_type",
        "build_time",
        "files",
        "artifact_id",
        "packer_run_uuid",
        "custom_data",
    ]
    assert build["files"] == [{"name": "disk.qcow2", "size": 1234}, {"name": "missing", "size": 0}]
    assert build["custom_data"] == {"a": "x & <y>", "b": "2"} and list(build["custom_data"]) == ["a", "b"]
    assert isinstance(build["build_time"], int) and build["build_time"] > 1_600_000_000
    assert build["packer_run_uuid"] == harness.ctx.run_uuid


def test_same_run_appends_and_force_restarts_only_for_a_new_run(harness: Harness, prepare: Prepare) -> None:
    pp = prepare(ManifestPostProcessor, {})
    path = harness.ctx.work_dir / "packer-manifest.json"
    old = dataclasses.replace(harness.ctx, run_uuid="old-run")
    pp.post_process(old, Artifact("null", id="1"))
    forced = dataclasses.replace(harness.ctx, run_uuid="new-run", force=True)
    pp.post_process(forced, Artifact("null", id="2"))
    pp.post_process(forced, Artifact("null", id="3"))  # same run: kept, even with -force
    data = json.loads(path.read_text())
    assert [b["artifact_id"] for b in data["builds"]] == ["2", "3"]
    assert data["last_run_uuid"] == "new-run"
    unforced = dataclasses.replace(harness.ctx, run_uuid="third-run")
    pp.post_process(unforced, Artifact("null", id="4"))
    assert [b["artifact_id"] for b in json.loads(path.read_text())["builds"]] == ["2", "3", "4"]


def test_parallel_builds_all_land_in_the_file(harness: Harness, prepare: Prepare) -> None:
    pp = prepare(ManifestPostProcessor, {"output": "sub/dir/m.json"})
    threads = [
        threading.Thread(
            target=pp.post_process,
            args=(dataclasses.replace(harness.ctx, name=f"b{i}"), Artifact("null", id=str(i))),
        )
        for i in range(12)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    data = json.loads((harness.ctx.work_dir / "sub/dir/m.json").read_text())
    assert sorted(b["name"] for b in data["builds"]) == sorted(f"b{i}" for i in range(12))
    assert not (harness.ctx.work_dir / "sub/dir/m.json.lock").exists()


def test_secrets_are_redacted_in_the_manifest(harness: Harness, prepare: Prepare) -> None:
    secret = "s3cr3t-" + uuid.uuid4().hex
    REDACTOR.add(secret)
    pp = prepare(ManifestPostProcessor, {"custom_data": {"token": secret}})
    pp.post_process(harness.ctx, Artifact("null", id=f"image-{secret}"))
    text = (harness.ctx.work_dir / "packer-manifest.json").read_text()
    assert secret not in text
    build = json.loads(text)["builds"][0]
    assert build["custom_data"] == {"token": "<sensitive>"} and build["artifact_id"] == "image-<sensitive>"


def test_a_file_that_is_not_a_manifest_is_an_error(harness: Harness, prepare: Prepare) -> None:
    (harness.ctx.work_dir / "packer-manifest.json").write_text("{not json")
    pp = prepare(ManifestPostProcessor, {})
    with pytest.raises(BuildError, match=r"^Unable to parse content from packer-manifest.json: "):
        pp.post_process(harness.ctx, Artifact("null", id="x"))
    assert (harness.ctx.work_dir / "packer-manifest.json").read_text() == "{not json"


def test_existing_entries_are_rewritten_as_packer_would(harness: Harness, prepare: Prepare) -> None:
    path = harness.ctx.work_dir / "packer-manifest.json"
    path.write_text(
        json.dumps({"builds": [{"name": "a", "extra": 1, "build_time": 0}], "last_run_uuid": "r"})
    )
    prepare(ManifestPostProcessor, {"strip_time": True}).post_process(harness.ctx, Artifact("null", id="y"))
    first = json.loads(path.read_text())["builds"][0]
    assert first == {
        "name": "a",
        "builder_type": "",
        "files": None,
        "artifact_id": "",
        "packer_run_uuid": "",
        "custom_data": None,
    }


def test_hcl2_build_names_use_the_source_name(harness: Harness, prepare: Prepare) -> None:
    ctx = dataclasses.replace(harness.ctx, name="null.test")
    setattr(ctx, "build_name", "test")  # noqa: B010 - what the engine sets for HCL2 sources
    prepare(ManifestPostProcessor, {"strip_time": True}).post_process(ctx, Artifact("null", id="Null"))
    assert (
        json.loads((harness.ctx.work_dir / "packer-manifest.json").read_text())["builds"][0]["name"] == "test"
    )


def test_file_names_that_are_not_utf8_are_written_as_go_does(harness: Harness, prepare: Prepare) -> None:
    name = os.fsdecode(b"disk-\xff.img")
    (harness.ctx.work_dir / name).write_bytes(b"12")
    prepare(ManifestPostProcessor, {}).post_process(harness.ctx, Artifact("null", id="x", files=[name]))
    build = json.loads((harness.ctx.work_dir / "packer-manifest.json").read_text(encoding="utf-8"))["builds"][
        0
    ]
    assert build["files"] == [{"name": "disk-\ufffd.img", "size": 2}]
