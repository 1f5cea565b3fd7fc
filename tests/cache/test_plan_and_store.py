"""`kiln plan`, `kiln cache list/prune` and the layer store's safety rules, without machines: the
store's files are made with qemu-img as a build makes them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kiln.cache import layers


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KILN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "base.img").write_bytes(os.urandom(8192))
    (tmp_path / "x.sh").write_text("#!/bin/sh\necho x\n")
    template = {
        "builders": [{"type": "qemu", "disk_image": True, "iso_url": "base.img", "iso_checksum": "none",
                      "ssh_username": "root"}],
        "provisioners": [
            {"type": "shell", "inline": ["echo one"]},
            {"type": "shell", "script": "x.sh"},
            {"type": "shell", "inline": ["echo three"]},
        ],
    }  # fmt: skip
    (tmp_path / "t.json").write_text(json.dumps(template))
    return tmp_path


def kiln(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kiln", *args], capture_output=True, text=True, timeout=60)


def planned(*args: str) -> list[list[str]]:
    done = kiln("plan", "-machine-readable", *args, "t.json")
    assert done.returncode == 0, done.stderr
    return [line.split(",")[3:] for line in done.stdout.splitlines() if ",plan," in line]


def layer_file(name: str, backing: Path | None = None) -> str:
    folder = layers.store_dir()
    folder.mkdir(parents=True, exist_ok=True)
    argv = ["qemu-img", "create", "-q", "-f", "qcow2"]
    argv += ["-b", str(backing), "-F", "raw" if backing.suffix == ".img" else "qcow2"] if backing else []
    subprocess.run([*argv, str(folder / name), *([] if backing else ["1M"])], check=True)
    return name


def commit(key: str, file: str, chain: list[str], base: Path, index: int) -> bool:
    layer = layers.Layer(
        key=key, file=file, chain=chain, base=str(base), index=index, label="shell", template="t"
    )
    return layers.commit(layer)


def test_plan_help_and_errors(folder: Path) -> None:
    done = kiln("plan", "-help")
    assert done.returncode == 0 and "Usage: kiln plan [options] TEMPLATE" in done.stdout
    missing = kiln("plan", "nope.json")
    assert missing.returncode == 1 and "nope.json" in missing.stderr and "Traceback" not in missing.stderr
    bad = kiln("plan", "-frobnicate", "t.json")
    assert bad.returncode == 1 and "flag provided but not defined: -frobnicate" in bad.stderr


def test_plan_follows_the_store_and_runs_nothing(folder: Path) -> None:
    rows = planned()
    assert [r[:2] for r in rows] == [["1", "run"], ["2", "run"], ["3", "run"]]
    assert rows[0][3] == f"no cache for source disk {folder / 'base.img'}"
    keys = [r[2] for r in rows]
    base = folder / "base.img"
    first = layer_file("run1-1.qcow2", base)
    second = layer_file("run1-2.qcow2", layers.store_dir() / first)
    assert commit(keys[0], first, [], base, 1) and commit(keys[1], second, [first], base, 2)
    rows = planned()
    assert [r[1] for r in rows] == ["hit", "hit", "run"]
    human = kiln("plan", "t.json").stdout
    assert "Provisioner 2 (shell): cache hit (key " + keys[1][:12] + ")" in human
    assert "1 of 3 provisioner(s) would run" in human
    assert not list((folder / "cache").glob("**/run-*.lock"))  # plan took no run lock, made no file
    # -no-cache: every provisioner would run
    assert "The build cache is off (-cache turns it on)" in kiln("plan", "-no-cache", "t.json").stdout
    # a layer below another deleted by hand: neither is used
    (layers.store_dir() / first).unlink()
    assert [r[1] for r in planned()] == ["run", "run", "run"]


def test_the_store_never_takes_a_half_layer(folder: Path) -> None:
    base = folder / "base.img"
    layer = layer_file("a-1.qcow2", base)
    assert layers.find("k" * 64) is None  # a file without its index entry (killed mid-snapshot)
    (layers.store_dir() / f".{'k' * 64}.1.partial").write_text("{")  # an entry being written
    assert layers.find("k" * 64) is None
    (layers.store_dir() / f"{'j' * 64}.json").write_text('{"key": "jj"')  # truncated by hand
    assert layers.find("j" * 64) is None
    assert commit("k" * 64, layer, [], base, 1)
    other = layer_file("b-1.qcow2", base)
    assert not commit("k" * 64, other, [], base, 1)  # a second build of the same key: first one wins
    found = layers.find("k" * 64)
    assert found is not None and found.file == layer
    # the losing build's file goes when it ends; a killed build's file goes with prune
    held = layers.RunFiles("b")
    held.close()
    assert not (layers.store_dir() / other).exists() and (layers.store_dir() / layer).exists()
    orphan = layer_file("dead-1.qcow2", base)
    live = layers.RunFiles("live")
    live_file = layer_file("live-1.qcow2", base)
    layers.remove_unused()
    assert not (layers.store_dir() / orphan).exists()
    assert (layers.store_dir() / live_file).exists()  # its build still runs (holds its run lock)
    live.close()
    assert not (layers.store_dir() / live_file).exists()


def test_cache_list_and_prune(folder: Path) -> None:
    base = folder / "base.img"
    files = [layer_file("r-1.qcow2", base)]
    files.append(layer_file("r-2.qcow2", layers.store_dir() / files[0]))
    files.append(layer_file("r-3.qcow2", layers.store_dir() / files[1]))
    for i, name in enumerate(files):
        assert commit(str(i) * 64, name, files[:i], base, i + 1)
        os.utime(layers.store_dir() / f"{str(i) * 64}.json", (1000 + i, 1000 + i))
    listing = kiln("cache", "list")
    assert listing.returncode == 0 and "3 layer(s)" in listing.stdout
    assert "t: after provisioner 3 (shell)" in listing.stdout
    assert kiln("cache", "prune", "--keep", "1", "--dry-run").stdout.count("would delete") == 2
    pruned = kiln("cache", "prune", "--keep", "1")
    assert pruned.returncode == 0, pruned.stderr
    assert "Deleted 2 layer(s) (0 local file(s)); 1 kept" in pruned.stdout  # the kept one needs them
    assert [layer.key for layer in layers.all_layers()] == ["2" * 64]
    assert all((layers.store_dir() / f).exists() for f in files)
    # a running build stands on the last layer: prune deletes its entry, never the files under it
    build = layers.RunFiles("running")
    layer = layers.find("2" * 64)
    assert layer is not None
    build.stand_on(layer)
    first = kiln("cache", "prune", "--older-than", "1h").stdout
    assert first.startswith("Deleted 1 layer(s) (0 local file(s))"), first
    assert layers.all_layers() == [] and all((layers.store_dir() / f).exists() for f in files)
    build.close()  # the build ended: the next prune takes the files
    assert kiln("cache", "prune").stdout.startswith("Deleted 0 layer(s) (3 local file(s))")
    assert not list(layers.store_dir().glob("*.qcow2"))
    bad = kiln("cache", "prune", "--older-than", "soon")
    assert bad.returncode == 1 and "--older-than 'soon': not a duration" in bad.stderr


def test_cache_false_survives_hcl2_upgrade_and_bad_values_are_named(folder: Path) -> None:
    template = {
        "builders": [{"type": "null", "communicator": "none"}],
        "provisioners": [{"type": "shell-local", "inline": ["true"], "cache": False}],
    }
    (folder / "up.json").write_text(json.dumps(template))
    done = kiln("hcl2_upgrade", "-output-file", "up.pkr.hcl", "up.json")
    assert done.returncode == 0, done.stderr
    assert "cache  = false" in (folder / "up.pkr.hcl").read_text()
    template["provisioners"][0]["cache"] = "sometimes"
    (folder / "bad.json").write_text(json.dumps(template))
    bad = kiln("validate", "bad.json")
    assert bad.returncode == 1 and "provisioners[0].cache: expected true or false" in bad.stderr, bad.stderr
