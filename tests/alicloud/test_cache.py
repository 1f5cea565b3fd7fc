"""The build cache with the alicloud-ecs builder against localcloud's namespace machines (one test:
each instance costs a boot): off by default; with -cache, a cold build makes an image of the
running instance after each provisioner; an unchanged rebuild takes the image its image_name names
and starts no instance; -if-changed skips; an edit of the last provisioner starts from the cached
image and reruns only it, and its image holds every effect; `kiln cleanup --stale` leaves the cache
images; `kiln cache list/prune --region` show and delete them with their snapshots, leaving
nothing else behind."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from kiln.localcloud import LocalCloudProcess

from .conftest import REGION, SEED_BUILDER, inventory, kiln, leaks, template
from .test_machine import machines_cloud, user_env

pytestmark = [pytest.mark.machine, pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(1500)]

__all__ = ["machines_cloud"]


def ran(output: str) -> list[int]:
    return [int(m) for m in re.findall(r"Provisioner (\d) \([a-z-]+\): running: ", output)]


def image_of(output: str) -> str:
    found = re.search(rf"^{REGION}: (m-[a-z0-9]+)$", output, re.M)
    assert found, output
    return found.group(1)


def test_alicloud_build_cache(machines_cloud: LocalCloudProcess, tmp_path: Path) -> None:
    cloud = machines_cloud
    env = user_env(cloud, tmp_path)
    env["KILN_CACHE_DIR"] = str(tmp_path / "cache")
    before = inventory(cloud)
    (tmp_path / "two.txt").write_text("two\n")
    provisioners = [
        {"type": "shell", "inline": ["echo one > /root/one"]},
        {"type": "file", "source": "two.txt", "destination": "/root/two.txt"},
        {"type": "shell", "inline": ["echo {{user `three`}} > /root/three"]},
    ]
    path = template(tmp_path, {**SEED_BUILDER, "image_name": "cached-app"}, provisioners)
    data = json.loads(path.read_text())
    data["variables"]["three"] = "three"
    path.write_text(json.dumps(data))

    def build(*flags: str, ok: bool = True) -> str:
        done = kiln("build", *flags, path.name, env=env, cwd=tmp_path, timeout=900)
        output = done.stdout + done.stderr
        assert (done.returncode == 0) == ok, output[-6000:]
        assert cloud.secret not in output
        return output

    # off by default (intermediate images cost money on the real cloud)
    plan = kiln("plan", path.name, env=env, cwd=tmp_path)
    assert "The build cache is off (-cache turns it on): every provisioner would run" in plan.stdout, (
        plan.stdout
    )
    plan = kiln("plan", "-cache", path.name, env=env, cwd=tmp_path)
    assert plan.stdout.count(": would run: no cache for source image ") == 3, plan.stdout + plan.stderr

    out = build("-cache")
    assert ran(out) == [1, 2, 3] and out.count("Cached the instance after provisioner") == 3, out
    first = image_of(out)

    # unchanged: the image image_name names is the artifact; no instance
    out = build("-cache")
    assert ran(out) == [] and out.count(": cache hit (key ") == 3, out
    assert f"Every provisioner is cached: image {first} (cached-app)" in out
    assert "Creating instance" not in out and "Connected to SSH" not in out
    assert image_of(out) == first
    out = build("-cache", "-if-changed")
    assert "Skipping the build: nothing changed since the last one" in out, out

    # the last provisioner edited: the instance starts from the image cached after provisioner 2
    plan = kiln("plan", "-cache", "-var", "three=THREE", path.name, env=env, cwd=tmp_path)
    assert plan.stdout.count("cache hit") == 2 and "would run: provisioner 3 changed" in plan.stdout, (
        plan.stdout
    )
    out = build("-cache", "-force", "-var", "three=THREE")
    assert ran(out) == [3], out
    assert re.search(r"Starting from the cached image m-[a-z0-9]+ after provisioner 2", out), out
    second = image_of(out)
    assert second != first

    # the cache images are not leftovers
    swept = kiln("cleanup", "--stale", "--region", REGION, env=env, cwd=tmp_path)
    assert swept.returncode == 0, swept.stdout + swept.stderr
    listed = kiln("cache", "list", "--region", REGION, env=env, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.count(f"  {REGION}  ") == 4, listed.stdout  # after 1, 2, 3 and the edited 3

    # the result holds every provisioner's effect
    check = {**SEED_BUILDER, "image_name": "unused", "source_image": second, "skip_create_image": True}
    proof = template(
        tmp_path, check, [{"type": "shell", "inline": ["cat /root/one /root/two.txt /root/three"]}]
    )
    proved = kiln("build", str(proof), env=env, cwd=tmp_path, timeout=600)
    assert proved.returncode == 0, proved.stdout + proved.stderr
    assert "alicloud-ecs: one\n" in proved.stdout and "alicloud-ecs: two\n" in proved.stdout
    assert "alicloud-ecs: THREE\n" in proved.stdout, proved.stdout

    pruned = kiln("cache", "prune", "--region", REGION, env=env, cwd=tmp_path)
    assert pruned.returncode == 0, pruned.stdout + pruned.stderr
    assert "Deleted 4 layer(s)" in pruned.stdout, pruned.stdout
    assert leaks(cloud, before, kept={second}) == {}
