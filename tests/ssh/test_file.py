"""The file provisioner against a real sshd: Packer's trailing-slash rules, content, downloads."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from conftest import Captured
from test_communicator import assert_same_tree, make_tree

from kiln.communicators.ssh import SSHCommunicator
from kiln.config import DecodeContext
from kiln.errors import CommunicatorError
from kiln.provisioners.file import FileProvisioner


def file(**raw: Any) -> FileProvisioner:
    prov = FileProvisioner()
    dctx = DecodeContext()
    prov.prepare(raw, dctx, "provisioners[0]")
    assert dctx.errors == []
    return prov


def test_upload_file_to_path_and_into_folder(comm: SSHCommunicator, build: Captured, tmp_path: Path) -> None:
    src = tmp_path / "local.bin"
    src.write_bytes(os.urandom(100_000))
    src.chmod(0o751)
    remote = tmp_path / "remote"
    remote.mkdir()
    file(source=str(src), destination=str(remote / "renamed.bin")).provision(build.ctx, comm)
    file(source=str(src), destination=f"{remote}/").provision(build.ctx, comm)
    assert (remote / "renamed.bin").read_bytes() == src.read_bytes()
    assert (remote / "local.bin").read_bytes() == src.read_bytes()
    assert (remote / "local.bin").stat().st_mode & 0o777 == 0o751
    assert build.lines()[0] == f"==> test: Uploading {src} => {remote / 'renamed.bin'}"


def test_folder_trailing_slash_rules(comm: SSHCommunicator, build: Captured, tmp_path: Path) -> None:
    src = tmp_path / "tree"
    make_tree(src)
    remote = tmp_path / "remote"
    remote.mkdir()
    file(source=str(src), destination=str(remote / "a")).provision(build.ctx, comm)
    file(source=f"{src}/", destination=str(remote / "b")).provision(build.ctx, comm)
    assert_same_tree(src, remote / "a" / "tree")  # no slash: the folder itself goes inside
    assert_same_tree(src, remote / "b")  # slash: its contents
    assert os.readlink(remote / "b" / "link") == "sub/deeper/data.bin"


def test_content_and_sources(comm: SSHCommunicator, build: Captured, tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    remote.mkdir()
    file(content="hello\nworld\n", destination=str(remote / "greeting")).provision(build.ctx, comm)
    file(content="x", destination=f"{remote}/").provision(build.ctx, comm)
    one, two = tmp_path / "one.txt", tmp_path / "two.txt"
    one.write_text("1")
    two.write_text("2")
    file(sources=[str(one), str(two)], destination=f"{remote}/").provision(build.ctx, comm)
    assert (remote / "greeting").read_text() == "hello\nworld\n"
    assert (remote / "pkr-file-content").read_text() == "x"
    assert (remote / "one.txt").read_text() == "1" and (remote / "two.txt").read_text() == "2"


def test_generated_source_is_checked_when_uploading(
    comm: SSHCommunicator, build: Captured, tmp_path: Path
) -> None:
    later = tmp_path / "made-later.txt"
    dctx = DecodeContext()
    FileProvisioner().prepare({"source": str(later), "destination": "/tmp/x"}, dctx, "p")
    assert any("Bad source" in e for e in dctx.errors)
    prov = file(source=str(later), destination=str(tmp_path / "copy.txt"), generated=True)
    later.write_text("generated during the build")
    prov.provision(build.ctx, comm)
    assert (tmp_path / "copy.txt").read_text() == "generated during the build"


def test_downloads(comm: SSHCommunicator, build: Captured, tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    make_tree(remote)
    out = tmp_path / "out"
    file(
        source=str(remote / "secret"), destination=str(out / "deep" / "secret.copy"), direction="download"
    ).provision(build.ctx, comm)
    file(source=str(remote / "secret"), destination=f"{out}/", direction="download").provision(
        build.ctx, comm
    )
    file(source=f"{remote}/", destination=str(out / "tree"), direction="download").provision(build.ctx, comm)
    file(source=f"{remote}/script*", destination=f"{out}/glob/", direction="download").provision(
        build.ctx, comm
    )
    assert (out / "deep" / "secret.copy").read_bytes() == (remote / "secret").read_bytes()
    assert (out / "secret").read_bytes() == (remote / "secret").read_bytes()
    assert_same_tree(remote, out / "tree")
    assert sorted(os.listdir(out / "glob")) == ["script.sh"]


def test_failures_are_reported(comm: SSHCommunicator, build: Captured, tmp_path: Path) -> None:
    src = tmp_path / "f"
    src.write_text("x")
    with pytest.raises(CommunicatorError):
        file(source=str(src), destination="/nonexistent/dir/f").provision(build.ctx, comm)
    assert any(line.startswith("==> test: Upload failed: ") for line in build.errors())
    with pytest.raises(CommunicatorError):
        file(source="/nonexistent/remote", destination=str(tmp_path / "d"), direction="download").provision(
            build.ctx, comm
        )
    assert not (tmp_path / "d").exists()


def test_validation() -> None:
    dctx = DecodeContext()
    FileProvisioner().prepare({"content": "x", "source": "/etc/hostname", "direction": "sideways"}, dctx, "p")
    text = "\n".join(dctx.errors)
    assert "Direction must be one of: download, upload." in text
    assert "source(s) conflicts with content." in text
    assert "Destination must be specified." in text
