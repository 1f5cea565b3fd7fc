"""Running the selected builds: in parallel (bounded by -parallel-builds), each with its own
prefixed UI and colour; SIGINT/SIGTERM cancel every build, which then cleans up; then Packer's
end-of-run summary, in human or machine-readable form."""

from __future__ import annotations

import logging
import signal
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from kiln import runs
from kiln.components import Artifact, BuildContext, OnError
from kiln.core.cancel import CancelToken
from kiln.core.ui import BUILD_COLORS, BuildUi, Output, Ui
from kiln.engine.build import run_build
from kiln.engine.prepare import Build
from kiln.errors import CancelledError, KilnError

log = logging.getLogger("kiln")


@dataclass
class RunOptions:
    parallel_builds: int = 0
    on_error: OnError = OnError.CLEANUP
    debug: bool = False
    force: bool = False
    work_dir: Path = field(default_factory=Path.cwd)
    cache: bool | None = None  #: -cache / -no-cache (None: each builder's default)
    if_changed: bool = False


def format_duration(seconds: float) -> str:
    """`1 minute 2 seconds`, `3 seconds 150 milliseconds`: the first two non-zero units, as Packer prints."""
    micro = round(seconds * 1_000_000)
    units = [
        ("hour", 3_600_000_000), ("minute", 60_000_000), ("second", 1_000_000),
        ("millisecond", 1_000), ("microsecond", 1),
    ]  # fmt: skip
    parts: list[str] = []
    for name, size in units:
        count, micro = divmod(micro, size)
        if count:
            parts.append(f"{count} {name}{'s' if count != 1 else ''}")
        if len(parts) == 2:
            break
    return " ".join(parts) or "0 seconds"


class SignalCancel:
    """Turns the first SIGINT/SIGTERM into a cancel of the run; later ones only say cleanup is running."""

    def __init__(self, ui: Ui, token: CancelToken) -> None:
        self.ui = ui
        self.token = token
        self._previous: dict[int, object] = {}

    def __enter__(self) -> SignalCancel:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if not self.token.cancelled:
            self.ui.error("Cancelling build after receiving interrupt")
            self.token.cancel()
        else:
            self.ui.error("Cleanup is running; kiln will exit when it is done")

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]


def run_builds(
    builds: list[Build], output: Output, options: RunOptions, failed: dict[str, str] | None = None
) -> int:
    """Run the builds; print each one's outcome and the summary. Returns the exit code.
    `failed`: builds that could not even be created (name -> why), reported as errored."""
    ui = Ui(output)
    for name, why in (failed or {}).items():
        ui.error(f"Failed to initialize build '{name}': {why}")
    token = CancelToken()
    run_uuid = str(uuid.uuid4())
    uis = {b.name: BuildUi(output, b.name, BUILD_COLORS[i % len(BUILD_COLORS)]) for i, b in enumerate(builds)}
    for build in builds:
        if not output.machine_readable:
            output.write_lines(
                f"{build.name}: output will be in this color.", color=uis[build.name].color, bold=True
            )
    if not output.machine_readable:
        output.write_lines("")
    results: dict[str, list[Artifact]] = {}
    errors: dict[str, str] = dict(failed or {})
    lock = threading.Lock()
    started = time.monotonic()

    def one(build: Build) -> None:
        bui = uis[build.name]
        ctx = BuildContext(
            name=build.name,
            builder_type=build.builder_type,
            ui=bui,
            cancel=token,
            log=log.getChild(build.name),
            run_uuid=run_uuid,
            work_dir=options.work_dir,
            on_error=options.on_error,
            debug=options.debug,
            force=options.force,
            build_name=build.build_name,
            cache_mode=options.cache,
            if_changed=options.if_changed,
        )
        t0 = time.monotonic()
        try:
            if token.cancelled:
                raise CancelledError()
            artifacts = run_build(build, ctx)
        except Exception as exc:
            if not isinstance(exc, KilnError):
                log.exception("build %s failed", build.name)
            message = str(exc) or type(exc).__name__
            with lock:
                errors[build.name] = message
            ui.error(
                f"Build '{build.name}' errored after {format_duration(time.monotonic() - t0)}: {message}"
            )
            if isinstance(exc, KilnError) and exc.hint:
                ui.error(f"  hint: {exc.hint}")
            return
        with lock:
            results[build.name] = artifacts
        if artifacts:
            ui.say(f"Build '{build.name}' finished after {format_duration(time.monotonic() - t0)}.")
        else:
            ui.say(
                f"Build '{build.name}' finished after {format_duration(time.monotonic() - t0)}"
                " but did not generate any artifacts."
            )

    workers = 1 if options.debug else (options.parallel_builds or len(builds) or 1)
    runs.sweep_stale()  # what killed runs left here (their inline scripts)
    try:
        with (
            SignalCancel(ui, token),
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix="build") as pool,
        ):
            futures = [pool.submit(one, b) for b in builds]
            for future in futures:
                # Waiting with a timeout keeps the main thread responsive to signals.
                while not future.done():
                    time.sleep(0.05)
                future.result()
    finally:
        runs.remove(run_uuid)
    ui.say(f"\n==> Wait completed after {format_duration(time.monotonic() - started)}")
    if token.cancelled:
        ui.error("Cleanly cancelled builds after being interrupted.")
        return 1
    print_summary(ui, output, builds, results, errors)
    return 1 if errors else 0


def print_summary(
    ui: Ui, output: Output, builds: list[Build], results: dict[str, list[Artifact]], errors: dict[str, str]
) -> None:
    if errors:
        ui.machine("error-count", str(len(errors)))
        ui.error("\n==> Some builds didn't complete successfully and had errors:")
        order = [b.name for b in builds]
        for name in sorted(errors, key=lambda n: order.index(n) if n in order else -1):
            BuildUi(output, name).machine("error", errors[name])
            ui.error(f"--> {name}: {errors[name]}")
    if any(results.values()):
        ui.say("\n==> Builds finished. The artifacts of successful builds are:")
        for build in builds:
            artifacts = results.get(build.name)
            if not artifacts:
                continue
            target = BuildUi(output, build.name)
            target.machine("artifact-count", str(len(artifacts)))
            for i, artifact in enumerate(artifacts):
                index = str(i)
                target.machine("artifact", index, "builder-id", artifact.builder_id)
                target.machine("artifact", index, "id", artifact.id)
                target.machine("artifact", index, "string", artifact.string())
                target.machine("artifact", index, "files-count", str(len(artifact.files)))
                for fi, path in enumerate(artifact.files):
                    target.machine("artifact", index, "file", str(fi), path)
                target.machine("artifact", index, "end")
                ui.say(f"--> {build.name}: {artifact.string()}")
    else:
        ui.say("\n==> Builds finished but no artifacts were created.")
