"""cd_files / cd_content / cd_label and floppy_files / floppy_dirs / floppy_content / floppy_label:
the disks made with xorriso and mtools, read back with xorriso and mtools (no mounts), laid out as
Packer lays them out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kiln.builders.qemu.extradisks import CdSpec, FloppySpec, make_cd, make_floppy, path_problems, remove
from kiln.errors import BuildError
from tests.iso.conftest import Blocks


def cd_tree(iso: Path, into: Path) -> dict[str, str]:
    subprocess.run(
        ["xorriso", "-osirrox", "on", "-indev", str(iso), "-extract", "/", str(into)],
        check=True,
        capture_output=True,
    )
    return {str(p.relative_to(into)): p.read_text() for p in sorted(into.rglob("*")) if p.is_file()}


def cd_label(iso: Path) -> str:
    info = subprocess.run(
        ["xorriso", "-indev", str(iso), "-pvd_info"], check=True, capture_output=True, text=True
    ).stdout
    return next(line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("Volume Id"))


def floppy_tree(image: Path, into: Path) -> dict[str, str]:
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    subprocess.run(
        ["mcopy", "-i", str(image), "-s", "-n", "::/", str(into)], check=True, capture_output=True, env=env
    )
    return {str(p.relative_to(into)): p.read_text() for p in sorted(into.rglob("*")) if p.is_file()}


@pytest.fixture
def tree(blocks: Blocks) -> Path:
    work = blocks.work_dir
    (work / "seed" / "deep").mkdir(parents=True)
    (work / "seed" / "user-data").write_text("#cloud-config\n")
    (work / "seed" / "meta-data").write_text("instance-id: a\n")
    (work / "seed" / "deep" / "x.cfg").write_text("x\n")
    (work / "one.txt").write_text("one\n")
    (work / "link.txt").symlink_to(work / "one.txt")
    return work


def test_cd_layout_content_precedence_and_label(blocks: Blocks, tree: Path, tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    spec = CdSpec(
        ["one.txt", "link.txt", "seed"], {"/one.txt": "from content\n", "/k/ks.cfg": "kick\n"}, "cidata"
    )
    iso = make_cd(spec, tree, scratch, blocks.ui)
    assert iso is not None and iso.parent == scratch
    assert cd_tree(iso, tmp_path / "out") == {
        "one.txt": "from content\n",  # cd_content wins over a file of the same path
        "link.txt": "one\n",  # the link's target is copied
        "seed/user-data": "#cloud-config\n",
        "seed/meta-data": "instance-id: a\n",
        "seed/deep/x.cfg": "x\n",
        "k/ks.cfg": "kick\n",
    }
    assert cd_label(iso) == "cidata"
    assert "==> qemu: Creating CD disk..." in blocks.text
    # a glob puts the folder's content at the root, and the label defaults to packer
    globbed = make_cd(CdSpec(["seed/*"]), tree, scratch, blocks.ui)
    assert globbed is not None
    assert sorted(cd_tree(globbed, tmp_path / "out2")) == ["deep/x.cfg", "meta-data", "user-data"]
    assert cd_label(globbed) == "packer"
    remove(globbed, None)
    assert not globbed.exists()
    assert list(scratch.iterdir()) == []  # nothing but the disks was left in the scratch folder


def test_floppy_files_flat_dirs_with_structure_and_content(
    blocks: Blocks, tree: Path, tmp_path: Path
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    spec = FloppySpec(["one.txt", "seed"], ["seed"], {"/ks/ks.cfg": "kick\n"}, "install")
    image = make_floppy(spec, tree, scratch, blocks.ui)
    assert image is not None and image.stat().st_size == 1440 * 1024
    assert floppy_tree(image, tmp_path / "out") == {
        "one.txt": "one\n",
        "user-data": "#cloud-config\n",  # floppy_files: a folder's files, flat at the root
        "meta-data": "instance-id: a\n",
        "x.cfg": "x\n",
        "seed/user-data": "#cloud-config\n",  # floppy_dirs: the folder, its name and structure kept
        "seed/meta-data": "instance-id: a\n",
        "seed/deep/x.cfg": "x\n",
        "ks/ks.cfg": "kick\n",
    }
    label = subprocess.run(
        ["mlabel", "-i", str(image), "-s", "::"],
        capture_output=True,
        text=True,
        env={**os.environ, "MTOOLS_SKIP_CHECK": "1"},
    )
    assert "INSTALL" in label.stdout.upper()
    assert "    qemu: Recursively copying : " in blocks.text
    assert sorted(p.name for p in scratch.iterdir()) == ["floppy.img"]


def test_nothing_to_put_makes_no_disk_and_a_full_floppy_is_one_line(
    blocks: Blocks, tree: Path, tmp_path: Path
) -> None:
    assert make_cd(CdSpec(), tree, tmp_path, blocks.ui) is None
    assert make_floppy(FloppySpec(), tree, tmp_path, blocks.ui) is None
    (tree / "big.bin").write_bytes(os.urandom(2 << 20))
    with pytest.raises(BuildError) as caught:
        make_floppy(FloppySpec(["big.bin"]), tree, tmp_path, blocks.ui)
    assert str(caught.value).startswith("making the floppy (floppy_files) failed") and "\n" not in str(
        caught.value
    )
    assert not (tmp_path / "floppy.img").exists()


def test_missing_paths_are_named_at_validate(tmp_path: Path) -> None:
    assert path_problems("cd_files", ["nope.txt", "*.none"], tmp_path) == [
        "Bad CD disk file 'nope.txt': no such file or directory"
    ]
    (tmp_path / "f").write_text("")
    assert path_problems("floppy_dirs", ["f"], tmp_path) == ["Bad Floppy disk directory 'f': not a directory"]
    template = {
        "builders": [
            {"type": "qemu", "iso_url": "a.iso", "iso_checksum": "none", "disk_image": True, "ssh_username": "root",
             "cd_files": ["missing.cfg"], "floppy_content": {"../x": "y"}}
        ]
    }  # fmt: skip
    (tmp_path / "t.json").write_text(json.dumps(template))
    done = subprocess.run(
        [sys.executable, "-m", "kiln", "validate", "t.json"], cwd=tmp_path, capture_output=True, text=True
    )
    out = done.stdout + done.stderr
    assert done.returncode == 1 and "Traceback" not in out
    assert "builders[0].cd_files: Bad CD disk file 'missing.cfg': no such file or directory" in out, out
    assert 'builders[0].floppy_content: floppy_content: "../x" is not a path inside the disk' in out, out
