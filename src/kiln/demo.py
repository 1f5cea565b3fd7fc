"""The main job of the quick start (`./dev demo`): the seed's build, for real, on this machine.

1. build (or reuse from the cache) the Debian 12 base image that localcloud offers as a public image;
2. start localcloud in the background (namespace machines as root, QEMU VMs otherwise);
3. `kiln build -force examples/alicloud/redis.json` against it, exactly as against Alibaba Cloud;
4. prove the image: kiln starts an instance from it (skip_create_image) and runs `redis-cli ping`,
   which must answer PONG;
5. stop localcloud (its state, with the new image, stays under the state folder).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from kiln.paths import state_dir

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "examples" / "alicloud" / "redis.json"


def say(message: str) -> None:
    sys.stdout.write(
        f"\033[1m==> demo: {message}\033[0m\n" if sys.stdout.isatty() else f"==> demo: {message}\n"
    )
    sys.stdout.flush()


def kiln(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run kiln, showing its output live, and keep the output for checks."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "kiln", *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        lines.append(line)
    return subprocess.CompletedProcess(proc.args, proc.wait(), "".join(lines), "")


def main() -> int:
    from kiln.localcloud import start

    runner = "light" if os.geteuid() == 0 else "vm"
    say("building the Debian 12 base image from Debian's packages (cached after the first run)")
    if kiln("baseimage", "build", "debian-12").returncode != 0:
        return 1
    cloud_state = state_dir() / "demo" / "localcloud"
    say(
        f"starting localcloud ({'namespace machines' if runner == 'light' else 'QEMU VMs'}), state in {cloud_state}"
    )
    with start(cloud_state, runner=runner, timeout=900) as cloud:
        env = dict(
            os.environ,
            ALICLOUD_ACCESS_KEY=cloud.access_key_id,
            ALICLOUD_SECRET_KEY=cloud.secret,
            ALICLOUD_REGION=cloud.region,
            KILN_ALICLOUD_ENDPOINT=cloud.url,
        )
        say(f"localcloud answers at {cloud.url}; running: kiln build -force {TEMPLATE.relative_to(ROOT)}")
        built = kiln("build", "-force", str(TEMPLATE), env=env)
        if built.returncode != 0:
            say("the build failed")
            return 1
        match = re.search(r"^cn-beijing: (m-[A-Za-z0-9]+)$", built.stdout, re.M)
        if not match:
            say("the build printed no image id")
            return 1
        image = match.group(1)
        say(f"image {image} created; proving it: an instance started from it must answer redis-cli ping")
        check = json.loads(TEMPLATE.read_text())
        check["builders"][0].update(source_image=image, image_name="demo-check", skip_create_image=True)
        check["provisioners"] = [
            {"type": "shell", "inline": ["systemctl is-system-running --wait >/dev/null; redis-cli ping"]}
        ]
        with tempfile.TemporaryDirectory(prefix="kiln-demo-") as tmp:
            path = Path(tmp) / "check.json"
            path.write_text(json.dumps(check, indent=2))
            proved = kiln("build", str(path), env=env)
        if proved.returncode != 0 or "alicloud-ecs: PONG" not in proved.stdout:
            say("the new image did not answer PONG")
            return 1
    say(f"done: image {image} runs redis (redis-cli ping -> PONG); every temporary resource was released")
    return 0


if __name__ == "__main__":
    sys.exit(main())
