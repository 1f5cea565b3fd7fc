"""Start localcloud as a background process (the alicloud builder's quick start, tests, benchmarks).

    with start(state_dir, runner="none") as cloud:
        Config(access_key_id=cloud.access_key_id, access_key_secret=cloud.secret,
               endpoint=cloud.endpoint, protocol="http", region_id=cloud.region)

The server picks a free port itself (`--listen 127.0.0.1:0`) and reports it in server.json, so there is
no race between choosing a port and binding it. It is stopped by its pid only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from kiln.errors import KilnError
from kiln.localcloud.profile import LatencyProfile


@dataclass
class LocalCloudProcess:
    pid: int
    url: str
    port: int
    state_dir: Path
    access_key_id: str
    secret: str = field(repr=False)
    region: str = "cn-beijing"
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def endpoint(self) -> str:
        """host:port, what the Tea SDK's Config(endpoint=...) wants."""
        return self.url.removeprefix("http://")

    def alive(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (machines are stopped, state kept), then SIGKILL after `timeout`."""
        self._signal(signal.SIGTERM)
        if not self._wait(timeout):
            self.kill()

    def kill(self) -> None:
        """kill -9: what a crash looks like; the state survives it."""
        self._signal(signal.SIGKILL)
        self._wait(10.0)

    def _signal(self, sig: signal.Signals) -> None:
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            pass

    def _wait(self, timeout: float) -> bool:
        if self.process is not None:
            try:
                self.process.wait(timeout)
                return True
            except subprocess.TimeoutExpired:
                return False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                return True
            time.sleep(0.05)
        return False

    def __enter__(self) -> LocalCloudProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start(
    state_dir: Path,
    runner: str = "light",
    profile: LatencyProfile | str | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    timeout: float = 60.0,
) -> LocalCloudProcess:
    """Start `kiln localcloud serve` in the background and return once it answers HTTP."""
    from kiln.localcloud.service import endpoint_file, first_key, open_store
    from kiln.localcloud.store import private_file

    store = open_store(state_dir)  # makes the first key now, so the caller can read it
    key = first_key(store)
    store.close()
    endpoint_file(state_dir).unlink(missing_ok=True)
    rendered = profile.render() if isinstance(profile, LatencyProfile) else (profile or "fast")
    command = [
        sys.executable,
        "-m",
        "kiln",
        "localcloud",
        "serve",
        "--listen",
        f"{host}:{port}",
        "--state",
        str(state_dir),
        "--runner",
        runner,
        "--profile",
        rendered,
    ]
    log = os.fdopen(private_file(state_dir / "server.log", os.O_WRONLY | os.O_APPEND), "ab")
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
    )
    log.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise KilnError(
                f"localcloud exited at start (code {process.returncode})", f"see {state_dir / 'server.log'}"
            )
        try:
            info = json.loads(endpoint_file(state_dir).read_text())
        except (OSError, ValueError):
            info = None
        if info and info.get("pid") == process.pid:
            url = str(info["url"])
            try:
                with urllib.request.urlopen(url + "/console/state", timeout=2) as answer:
                    if answer.status == 200:
                        return LocalCloudProcess(
                            pid=process.pid,
                            url=url,
                            port=int(info["port"]),
                            state_dir=state_dir,
                            access_key_id=key.access_key_id,
                            secret=key.secret,
                            region=str(info.get("region", "cn-beijing")),
                            process=process,
                        )
            except OSError:
                pass
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    raise KilnError(f"localcloud did not answer within {timeout:.0f} s", f"see {state_dir / 'server.log'}")
