"""Cache keys: what invalidates a provisioner's key and what does not (kiln.cache.keys, plan)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from kiln.cache import keys, plan
from kiln.cache.records import Record
from kiln.components import BuildContext
from kiln.core.cancel import CancelToken
from kiln.core.ui import BuildUi, Output
from kiln.engine import cacheplan
from kiln.engine.prepare import prepare_builds
from kiln.template import load_template, resolve_variables


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KILN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "cache"


def template(tmp: Path, provisioners: list[dict[str, Any]] | None = None, **builder: Any) -> Path:
    disk = tmp / "base.img"
    if not disk.exists():
        disk.write_bytes(os.urandom(4096) + b"\0" * 65536 + b"end")
    (tmp / "scripts").mkdir(exist_ok=True)
    for name, text in (("scripts/x.sh", "#!/bin/sh\necho three\n"), ("scripts/data.txt", "hello\n")):
        if not (tmp / name).exists():
            (tmp / name).write_text(text)
    data = {
        "variables": {"tag": "a", "greeting": "one"},
        "builders": [
            {
                "type": "qemu", "disk_image": True, "iso_url": str(disk), "iso_checksum": "none",
                "vm_name": "out-{{user `tag`}}.qcow2", "output_directory": "out-{{user `tag`}}",
                "ssh_username": "root", "ssh_timeout": "5m", **builder,
            }
        ],
        "provisioners": provisioners
        if provisioners is not None
        else [
            {"type": "shell", "inline": ["echo {{user `greeting`}} > /root/one"]},
            {"type": "file", "source": "scripts/data.txt", "destination": "/root/data.txt"},
            {"type": "shell", "script": "scripts/x.sh"},
            {"type": "shell", "inline": ["echo four > /root/four"], "environment_vars": ["T={{user `tag`}}x"]},
        ],
    }  # fmt: skip
    path = tmp / "t.json"
    path.write_text(json.dumps(data))
    return path


def chain_of(path: Path, **variables: str) -> keys.Chain:
    tpl = load_template(str(path))
    values = resolve_variables(tpl, [], list(variables.items()), {})
    build = prepare_builds(tpl, values)[0]
    found = cacheplan.chain(build, context(build.name, path.parent))
    assert found is not None
    return found


def context(name: str, work_dir: Path) -> BuildContext:
    import logging

    return BuildContext(
        name=name, builder_type="qemu", ui=BuildUi(Output(), name), cancel=CancelToken(),
        log=logging.getLogger("test"), run_uuid="test", work_dir=work_dir,
    )  # fmt: skip


def step_keys(found: keys.Chain) -> list[str | None]:
    return [s.key for s in found.steps]


def test_the_same_template_gives_the_same_keys_every_time(tmp_path: Path) -> None:
    path = template(tmp_path)
    first, second = chain_of(path), chain_of(path)
    assert step_keys(first) == step_keys(second)  # the shell's random remote script name is not in it
    assert len(set(step_keys(first))) == 4 and all(step_keys(first))
    assert first.final == second.final is not None


def test_a_variable_that_only_names_the_output_invalidates_nothing(tmp_path: Path) -> None:
    path = template(tmp_path, [{"type": "shell", "inline": ["true"]}])
    assert step_keys(chain_of(path, tag="a")) == step_keys(chain_of(path, tag="b"))
    # builder options that do not change the disk: names, timeouts, ports, memory
    other = template(
        tmp_path, [{"type": "shell", "inline": ["true"]}], memory=2048, ssh_port=2200, boot_wait="1s"
    )
    assert step_keys(chain_of(other)) == step_keys(chain_of(path))


def test_a_variable_a_provisioner_uses_invalidates_it_and_what_follows(tmp_path: Path) -> None:
    path = template(tmp_path)
    a, b = step_keys(chain_of(path)), step_keys(chain_of(path, greeting="two"))
    assert all(x != y for x, y in zip(a, b, strict=True))
    c = step_keys(chain_of(path, tag="b"))  # tag reaches provisioner 4's environment only
    assert c[:3] == a[:3] and c[3] != a[3]


def test_a_changed_uploaded_file_invalidates_its_provisioner_and_the_rest(tmp_path: Path) -> None:
    path = template(tmp_path)
    before = chain_of(path)
    (tmp_path / "scripts/data.txt").write_text("hello again\n")
    after = chain_of(path)
    assert step_keys(after)[0] == step_keys(before)[0]
    assert all(x != y for x, y in zip(step_keys(after)[1:], step_keys(before)[1:], strict=True))
    decided = plan.decide(after, {k for k in step_keys(before) if k}.__contains__, Record.of(before))
    assert decided.resume == 1
    assert [d.hit for d in decided.decisions] == [True, False, False, False]
    assert decided.decisions[1].cause == "scripts/data.txt changed"
    assert decided.decisions[2].cause == "provisioner 2 runs (scripts/data.txt changed)"


def test_a_script_edit_reruns_only_it_and_later_ones(tmp_path: Path) -> None:
    path = template(tmp_path)
    before = chain_of(path)
    (tmp_path / "scripts/x.sh").write_text("#!/bin/sh\necho THREE\n")
    after = chain_of(path)
    assert step_keys(after)[:2] == step_keys(before)[:2]
    decided = plan.decide(after, {k for k in step_keys(before) if k}.__contains__, Record.of(before))
    assert decided.resume == 2 and decided.decisions[2].cause == "scripts/x.sh changed"
    os.chmod(tmp_path / "scripts/x.sh", 0o755)  # the execute bit is part of what is sent
    assert step_keys(chain_of(path))[2] != step_keys(after)[2]


def test_folder_sources_are_hashed_by_names_modes_and_content(tmp_path: Path) -> None:
    folder = tmp_path / "tree"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub/a.txt").write_text("a")
    path = template(tmp_path, [{"type": "file", "source": "tree/", "destination": "/opt/"}])
    first = step_keys(chain_of(path))
    assert step_keys(chain_of(path)) == first
    (folder / "sub/a.txt").write_text("b")
    second = step_keys(chain_of(path))
    (folder / "sub/a.txt").rename(folder / "sub/c.txt")
    third = step_keys(chain_of(path))
    os.symlink("c.txt", folder / "sub/link")
    fourth = step_keys(chain_of(path))
    assert len({first[0], second[0], third[0], fourth[0]}) == 4


def test_cache_false_makes_it_and_everything_after_it_uncached(tmp_path: Path) -> None:
    provs = [
        {"type": "shell", "inline": ["one"]},
        {"type": "shell", "inline": ["apt-get update"], "cache": False},
        {"type": "shell", "inline": ["three"]},
    ]
    found = chain_of(template(tmp_path, provs))
    assert step_keys(found)[0] is not None and step_keys(found)[1:] == [None, None]
    assert found.final is None
    decided = plan.decide(found, lambda key: True, None)
    assert decided.resume == 1
    assert decided.decisions[1].cause == "cache = false for this provisioner"
    assert decided.decisions[2].cause == "provisioner 2 is not cached"
    hcl = tmp_path / "t.pkr.hcl"
    hcl.write_text(
        f'source "qemu" "x" {{\n  disk_image = true\n  iso_url = "{tmp_path / "base.img"}"\n'
        '  iso_checksum = "none"\n  ssh_username = "root"\n}\n'
        'build {\n  sources = ["source.qemu.x"]\n'
        '  provisioner "shell" {\n    inline = ["one"]\n  }\n'
        '  provisioner "shell" {\n    inline = ["apt-get update"]\n    cache = false\n  }\n}\n'
    )
    assert [k is None for k in step_keys(chain_of(hcl))] == [False, True]


def test_the_source_disk_is_hashed_once_per_path_size_and_mtime(tmp_path: Path) -> None:
    path = template(tmp_path, [{"type": "shell", "inline": ["true"]}])
    disk = tmp_path / "base.img"
    first = chain_of(path)
    info = disk.stat()
    data = bytearray(disk.read_bytes())
    data[0] ^= 0xFF
    disk.write_bytes(bytes(data))
    os.utime(disk, ns=(info.st_atime_ns, info.st_mtime_ns))
    # same path, size, mtime and inode: the remembered digest (the disk is not read again)
    assert chain_of(path).key0 == first.key0
    os.utime(disk, ns=(info.st_atime_ns, info.st_mtime_ns + 1))
    changed = chain_of(path)
    assert changed.key0 != first.key0
    decided = plan.decide(changed, lambda key: False, Record.of(first))
    assert decided.decisions[0].cause == f"source changed: disk {disk}"
    assert (
        plan.decide(changed, lambda key: False, None).decisions[0].cause == f"no cache for source disk {disk}"
    )


def test_a_layer_deleted_or_a_failure_is_named(tmp_path: Path) -> None:
    found = chain_of(template(tmp_path))
    rec = Record.of(found)
    present = {found.steps[0].key}
    decided = plan.decide(found, present.__contains__, rec)
    assert decided.decisions[1].cause.startswith("no cache layer for key ")
    rec.failed_at = 2
    assert plan.decide(found, present.__contains__, rec).decisions[1].cause == "it failed in the last build"
    assert plan.decide(found, lambda k: True, rec, has_final=True).final_hit
