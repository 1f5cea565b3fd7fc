"""The build cache with the qemu builder, end to end in real VMs (one test: every boot costs minutes
under TCG): a cold build caches each provisioner; an unchanged rebuild runs none and starts no
machine; -if-changed skips; an edit of the last provisioner reruns only it; an edit of the file
provisioner 2 uploads reruns 2..4; a failed provisioner, fixed, resumes at it; -no-cache gives the
same disk; `kiln plan` says beforehand what each build then does; each output holds every effect,
and the resumed one boots; `kiln cache list/prune` show and delete the layers."""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from kiln.machines import MachineSpec, Metadata, create_machine
from tests.machines.conftest import ssh_ok

pytestmark = [pytest.mark.machine, pytest.mark.slow]


def kiln(*args: str, cwd: Path, timeout: float = 1200) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kiln", *args], cwd=cwd, capture_output=True, text=True,
        env=os.environ.copy(), timeout=timeout,
    )  # fmt: skip


def build(cwd: Path, n: int, *flags: str, four: str = "four", ok: bool = True) -> str:
    done = kiln("build", *flags, "-var", f"n={n}", "-var", f"four={four}", "cache.json", cwd=cwd)
    output = done.stdout + done.stderr
    assert (done.returncode == 0) == ok, output[-6000:]
    return output


def plan(cwd: Path, n: int, four: str = "four") -> list[tuple[str, str]]:
    """(hit|run, cause) per provisioner, from `kiln plan -machine-readable`."""
    done = kiln("plan", "-machine-readable", "-var", f"n={n}", "-var", f"four={four}", "cache.json", cwd=cwd)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [line.split(",") for line in done.stdout.splitlines() if ",plan," in line]
    return [(row[4], row[6].replace("%!(PACKER_COMMA)", ",")) for row in rows]


def ran(output: str) -> list[int]:
    return [int(m) for m in re.findall(r"Provisioner (\d) \([a-z]+\): running: ", output)]


def read_files(image: Path, tmp: Path, names: list[str]) -> dict[str, str]:
    """Files of the image's root file system, read with debugfs (no boot)."""
    raw = tmp / "read.raw"
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(image), str(raw)], check=True)
    try:
        mbr = raw.read_bytes()[:512]
        start = struct.unpack_from("<I", mbr, 446 + 8)[0] * 512
        out = {}
        for name in names:
            done = subprocess.run(
                ["debugfs", "-R", f"cat {name}", f"{raw}?offset={start}"], capture_output=True, text=True
            )
            out[name] = done.stdout
        return out
    finally:
        raw.unlink()


EFFECTS = ["/root/one", "/root/data.txt", "/root/three", "/root/four"]


@pytest.mark.timeout(3000)
def test_the_build_cache_runs_only_what_changed(base_image: Path, tmp_path: Path, ssh_key: Path) -> None:
    (tmp_path / "files").mkdir()
    (tmp_path / "scripts").mkdir()
    (tmp_path / "files/data.txt").write_text("data v1\n")
    three = tmp_path / "scripts/three.sh"
    three.write_text("#!/bin/sh\nset -e\n{ cat /root/data.txt; echo three; } > /root/three\n")
    template = {
        "variables": {"n": "0", "four": "four"},
        "builders": [{
            "type": "qemu", "disk_image": True, "iso_url": str(base_image), "iso_checksum": "none",
            "output_directory": "out-{{user `n`}}", "vm_name": "disk.qcow2", "disk_interface": "nvme",
            "ssh_username": "root", "ssh_timeout": "15m", "boot_wait": "0s", "memory": 768,
            "ssh_temporary_key_pair_type": "ed25519",
            # this test's own keys, whatever earlier runs left in the shared cache folder
            "user_data": f"#cloud-config\n# {uuid.uuid4()}\n",
        }],
        "provisioners": [
            {"type": "shell", "inline": ["echo one > /root/one"]},
            {"type": "file", "source": "files/data.txt", "destination": "/root/data.txt"},
            {"type": "shell", "script": "scripts/three.sh"},
            {"type": "shell", "inline": ["echo {{user `four`}} > /root/four"]},
        ],
        "post-processors": [{"type": "manifest", "output": "manifest.json"}],
    }  # fmt: skip
    (tmp_path / "cache.json").write_text(json.dumps(template))

    # cold: everything runs, each provisioner's disk is cached
    cold_plan = plan(tmp_path, 1)
    assert [hit for hit, _ in cold_plan] == ["run"] * 4
    assert all(cause == f"no cache for source disk {base_image}" for _, cause in cold_plan), cold_plan
    out = build(tmp_path, 1)
    assert ran(out) == [1, 2, 3, 4] and out.count("Cached the disk after provisioner") == 4, out
    assert "Cached the finished disk" in out
    cold = read_files(tmp_path / "out-1/disk.qcow2", tmp_path, EFFECTS)
    assert cold == {"/root/one": "one\n", "/root/data.txt": "data v1\n", "/root/three": "data v1\nthree\n",
                    "/root/four": "four\n"}  # fmt: skip
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    keys = manifest["builds"][-1]["cache_keys"]
    assert len(keys) == 4 and all(len(k) == 64 for k in keys)

    # unchanged (only the output's name differs): no provisioner runs, no machine starts
    assert plan(tmp_path, 2) == [("hit", "")] * 4
    began = time.monotonic()
    out = build(tmp_path, 2)
    assert time.monotonic() - began < 60, out
    assert ran(out) == [] and out.count(": cache hit (key ") == 4, out
    assert "Starting VM" not in out and "Connected to SSH" not in out
    assert read_files(tmp_path / "out-2/disk.qcow2", tmp_path, EFFECTS) == cold
    # -if-changed: the last build's artifact is current, so nothing is done at all
    out = build(tmp_path, 2, "-if-changed")
    assert "Skipping the build: nothing changed since the last one" in out and "cache hit" not in out

    # the last provisioner edited: only it runs
    assert plan(tmp_path, 3, four="FOUR") == [("hit", "")] * 3 + [("run", "provisioner 4 changed")]
    out = build(tmp_path, 3, four="FOUR")
    assert ran(out) == [4] and "Starting from the cached disk after provisioner 3" in out, out

    # the file provisioner 2 uploads edited: 2..4 run
    (tmp_path / "files/data.txt").write_text("data v2\n")
    expected = [("hit", ""), ("run", "files/data.txt changed")]
    expected += [("run", "provisioner 2 runs (files/data.txt changed)")] * 2
    assert plan(tmp_path, 4, four="FOUR") == expected
    out = build(tmp_path, 4, four="FOUR")
    assert ran(out) == [2, 3, 4], out
    assert read_files(tmp_path / "out-4/disk.qcow2", tmp_path, ["/root/three"]) == {
        "/root/three": "data v2\nthree\n"
    }

    # provisioner 3 fails: 1 and 2 stay cached; fixed, the build resumes at 3
    three.write_text("#!/bin/sh\necho broken >&2\nexit 3\n")
    out = build(tmp_path, 5, four="FOUR", ok=False)
    assert ran(out) == [3] and "exit status: 3" in out, out
    three.write_text("#!/bin/sh\nset -e\n{ cat /root/data.txt; echo three fixed; } > /root/three\n")
    assert plan(tmp_path, 6, four="FOUR") == [("hit", ""), ("hit", ""), ("run", "scripts/three.sh changed"),
                                              ("run", "provisioner 3 runs (scripts/three.sh changed)")]  # fmt: skip
    out = build(tmp_path, 6, four="FOUR")
    assert ran(out) == [3, 4] and "Starting from the cached disk after provisioner 2" in out, out
    resumed = read_files(tmp_path / "out-6/disk.qcow2", tmp_path, EFFECTS)
    assert resumed == {"/root/one": "one\n", "/root/data.txt": "data v2\n", "/root/three": "data v2\nthree fixed\n",
                       "/root/four": "FOUR\n"}  # fmt: skip

    # -no-cache: the same disk, built from the source with no cache line
    out = build(tmp_path, 7, "-no-cache", four="FOUR")
    assert "cache hit" not in out and "running:" not in out and "Cached the disk" not in out
    assert read_files(tmp_path / "out-7/disk.qcow2", tmp_path, EFFECTS) == resumed

    # the resumed output is a standalone disk that boots, holding every effect, trusting only the
    # temporary key of the build that made it (the earlier builds' keys were taken off)
    image = tmp_path / "out-6/disk.qcow2"
    info = subprocess.run(["qemu-img", "info", str(image)], capture_output=True, text=True).stdout
    assert "backing file" not in info
    pub = ssh_key.with_suffix(".pub").read_text()
    spec = MachineSpec(
        image=image, name="cached", ssh_host="127.0.0.9", metadata=Metadata(ssh_authorized_keys=(pub,))
    )
    with create_machine(spec, "vm") as machine:
        machine.start()
        machine.wait_for_ssh(900)
        got = ssh_ok(machine.ssh_host, machine.ssh_port, ssh_key, "cat /root/three /root/four")
        assert got == "data v2\nthree fixed\nFOUR\n"
        keys_file = ssh_ok(machine.ssh_host, machine.ssh_port, ssh_key, "cat /root/.ssh/authorized_keys")
        assert len(re.findall(r"packer_[0-9a-f-]{36}", keys_file)) == 1, keys_file
        machine.stop(graceful=True, timeout=120)

    # the layers are listed, and pruned (a build of another template may run meanwhile: what it
    # stands on stays, this test's layers go)
    listing = kiln("cache", "list", cwd=tmp_path).stdout
    for key in keys:
        assert key[:12] in listing
    pruned = kiln("cache", "prune", "--keep", "0", cwd=tmp_path)
    assert pruned.returncode == 0, pruned.stderr
    assert keys[0][:12] not in kiln("cache", "list", cwd=tmp_path).stdout
    assert plan(tmp_path, 8, four="FOUR")[0] == (
        "run",
        "no cache layer for key " + keys[0][:12] + " (deleted or pruned)",
    )
    assert not list((Path(os.environ["KILN_STATE_DIR"]) / "machines").glob("*/machine.json"))
