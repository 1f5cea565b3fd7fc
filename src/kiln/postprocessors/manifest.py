"""The `manifest` post-processor: records each build's artifact in a JSON file, in Packer's format.

    {"builds": [{"name", "builder_type", "build_time", "files": [{"name", "size"}] | null,
                 "artifact_id", "packer_run_uuid", "custom_data": {...} | null}],
     "last_run_uuid": "..."}

Builds are appended to the file across runs. With `-force`, a file written by another run (a
different `last_run_uuid`) is started afresh; builds of the same run always add up. The bytes are
what Go's `json.MarshalIndent(v, "", "  ")` writes (no final newline, `<`, `>` and `&` as `\\u003c`
...), so tools that compare manifests byte for byte see no difference from Packer's. Secrets are
replaced by `<sensitive>` (written, per the above, as `\\u003csensitive\\u003e`).

Parallel builds of one run write the same file: a lock in this process and a `<output>.lock` file
(for other processes, as Packer does) keep each read-modify-write whole, and the file is replaced
atomically, so a reader never sees half a manifest.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiln import paths
from kiln.components import Artifact, BuildContext, PostProcessor, PostProcessResult
from kiln.config import Options, option
from kiln.core.secrets import redact
from kiln.errors import BuildError
from kiln.provisioners.shell_common import build_name

_LOCK = threading.Lock()
#: How long to wait for another process's `.lock` file before writing anyway (as Packer does).
LOCK_WAIT = 3.0


@dataclass
class ManifestConfig(Options):
    output: str = option("packer-manifest.json", doc="the manifest file")
    strip_path: bool = option(False, doc="record file names without their folder")
    strip_time: bool = option(False, doc="leave out build_time")
    custom_data: dict[str, str] | None = option(doc="extra data recorded with each build")  # noqa: RUF009


def go_json(value: Any) -> str:
    """JSON as Go's json.MarshalIndent(value, "", "  ") writes it."""
    text = json.dumps(value, indent=2, ensure_ascii=False)
    for char, escaped in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"),
                          ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):  # fmt: skip
        text = text.replace(char, escaped)
    return text


def normalize_entry(raw: Any) -> dict[str, Any]:
    """One build entry as Packer re-writes it after reading: known fields, in order, typed."""
    data = raw if isinstance(raw, dict) else {}
    entry: dict[str, Any] = {
        "name": str(data.get("name") or ""),
        "builder_type": str(data.get("builder_type") or ""),
    }
    build_time = data.get("build_time")
    if isinstance(build_time, int | float) and not isinstance(build_time, bool) and build_time:
        entry["build_time"] = int(build_time)
    files = data.get("files")
    if isinstance(files, list) and files:
        entry["files"] = [
            {"name": str(f.get("name") or ""), "size": int(f.get("size") or 0)}
            if isinstance(f, dict)
            else {"name": "", "size": 0}
            for f in files
        ]
    else:
        entry["files"] = None
    entry["artifact_id"] = str(data.get("artifact_id") or "")
    entry["packer_run_uuid"] = str(data.get("packer_run_uuid") or "")
    custom = data.get("custom_data")
    entry["custom_data"] = (
        {str(k): str(v) for k, v in sorted(custom.items())} if isinstance(custom, dict) else None
    )
    return entry


@contextmanager
def _file_lock(path: Path, ctx: BuildContext) -> Iterator[None]:
    lock = path.with_name(path.name + ".lock")
    created = False
    deadline = time.monotonic() + LOCK_WAIT
    while True:
        try:
            os.close(os.open(lock, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
            created = True
            break
        except FileExistsError:
            if time.monotonic() >= deadline:
                # A lock left by a killed process must not block every later build.
                ctx.log.warning("manifest: %s is still locked; writing anyway", lock)
                break
            ctx.cancel.sleep(0.1)
    try:
        yield
    finally:
        if created:
            lock.unlink(missing_ok=True)


def _valid_utf8(text: str) -> str:
    """A file name with bytes that are not UTF-8 (held as surrogates) shown as U+FFFD, as Go does."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


class ManifestPostProcessor(PostProcessor):
    Config = ManifestConfig

    def post_process(self, ctx: BuildContext, artifact: Artifact) -> PostProcessResult:
        config: ManifestConfig = self.config
        output = Path(config.output)
        if not output.is_absolute():
            output = ctx.work_dir / output
        entry = self._entry(ctx, artifact)
        try:
            output.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BuildError(f"Unable to write {config.output}: {exc.strerror or exc}") from exc
        with _LOCK, _file_lock(output, ctx):
            manifest = self._read(output, config.output)
            if ctx.force and manifest["last_run_uuid"] != ctx.run_uuid:
                manifest = {"builds": [], "last_run_uuid": ""}
            manifest["builds"].append(entry)
            manifest["last_run_uuid"] = ctx.run_uuid
            self._write(output, config.output, go_json(manifest))
        ctx.log.info("manifest: recorded %s in %s", ctx.name, output)
        # The manifest only records the artifact: it must never cause its deletion.
        return PostProcessResult(artifact, keep=True, force_override=True)

    def _entry(self, ctx: BuildContext, artifact: Artifact) -> dict[str, Any]:
        config: ManifestConfig = self.config
        files: list[dict[str, Any]] = []
        for name in artifact.files:
            path = Path(name) if Path(name).is_absolute() else ctx.work_dir / name
            try:
                size = path.stat().st_size
            except OSError:
                size = 0
            shown = _valid_utf8(os.path.basename(name) if config.strip_path else name)
            files.append({"name": redact(shown), "size": size})
        entry: dict[str, Any] = {"name": redact(build_name(ctx)), "builder_type": ctx.builder_type}
        if not config.strip_time:
            entry["build_time"] = int(time.time())
        entry["files"] = files or None
        entry["artifact_id"] = redact(artifact.id)
        entry["packer_run_uuid"] = ctx.run_uuid
        if artifact.cache_keys:  # kiln: the build cache's key after each provisioner
            entry["cache_keys"] = list(artifact.cache_keys)
        custom = config.custom_data
        entry["custom_data"] = (
            {k: redact(v) for k, v in sorted(custom.items())} if custom is not None else None
        )
        return entry

    @staticmethod
    def _read(path: Path, shown: str) -> dict[str, Any]:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            text = ""
        except OSError as exc:
            raise BuildError(f"Unable to open {shown} for reading: {exc.strerror or exc}") from exc
        if not text.strip():
            return {"builds": [], "last_run_uuid": ""}
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise BuildError(
                f"Unable to parse content from {shown}: {exc}",
                hint="the file is not a manifest: fix it, remove it, or choose another output",
            ) from exc
        if not isinstance(data, dict):
            raise BuildError(
                f"Unable to parse content from {shown}: not a JSON object", hint="remove the file"
            )
        builds = data.get("builds")
        return {
            "builds": [normalize_entry(b) for b in builds] if isinstance(builds, list) else [],
            "last_run_uuid": str(data.get("last_run_uuid") or ""),
        }

    @staticmethod
    def _write(path: Path, shown: str, text: str) -> None:
        try:
            with paths.atomic_file(path, 0o664) as handle:
                handle.write(text.encode("utf-8"))
        except OSError as exc:
            raise BuildError(
                f"Unable to write {shown}: {exc.strerror or exc}", paths.disk_hint(exc, path)
            ) from exc
