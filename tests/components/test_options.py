"""Options declared once: weak typing shared by the template loader and the component options,
choices checked by decoding, configs frozen once validated, -force applied when prepared, and
durations shown as Go shows them."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from kiln import registry
from kiln.builders.alicloud_ecs.config import AlicloudEcsConfig
from kiln.builders.file import FileConfig
from kiln.builders.qemu.config import QemuConfig
from kiln.config import DecodeContext, Duration, FrozenOptionError, Options, decode
from kiln.engine.prepare import prepare_builds
from kiln.errors import TemplateError, TemplateProblems
from kiln.template import load_template, resolve_variables
from kiln.template.json_loader import parse_template

ECS = {
    "access_key": "AK",
    "secret_key": "SK",
    "region": "cn-beijing",
    "image_name": "kiln_test",
    "instance_type": "ecs.t5-lc1m1.small",
    "source_image": "debian_12",
    "communicator": "none",
}
QEMU = {"iso_url": "base.qcow2", "iso_checksum": "none", "disk_image": True}


def _builds(tmp_path: Path, text: str, name: str, **kwargs: Any) -> Any:
    path = tmp_path / name
    path.write_text(text)
    template = load_template(str(path))
    variables = resolve_variables(template, [], [], {})
    return prepare_builds(template, variables, **kwargs)


def test_a_bool_read_as_a_string_is_what_packer_makes_of_it(tmp_path: Path) -> None:
    """Legacy JSON: mapstructure's weak decoding ("1"/"0"); HCL2: cty's conversion ("true")."""
    json_template = {"builders": [{"type": "file", "target": "out.txt", "content": True}]}
    (build,) = _builds(tmp_path, json.dumps(json_template), "t.json")
    assert build.builder.config.content == "1"
    hcl = 'source "file" "x" {\n  target  = "out.txt"\n  content = true\n}\nbuild {\n  sources = ["source.file.x"]\n}\n'
    (build,) = _builds(tmp_path, hcl, "t.pkr.hcl")
    assert build.builder.config.content == "true"


def test_the_loader_and_the_options_call_a_list_the_same() -> None:
    with pytest.raises(TemplateProblems) as loader:
        parse_template({"builders": {"type": "null"}}, "t.json", None, Path.cwd())
    assert "builders: expected a list, got object" in str(loader.value)
    with pytest.raises(TemplateProblems) as nested:
        parse_template({"builders": [[]]}, "t.json", None, Path.cwd())
    assert "builders[0]: expected an object, got list" in str(nested.value)
    dctx = DecodeContext()
    decode(QemuConfig, {**QEMU, "qemuargs": {"-m": "1G"}}, "builders[0]", dctx)
    assert dctx.errors == ["builders[0].qemuargs: expected a list, got object"]


def test_choices_are_checked_by_decoding() -> None:
    dctx = DecodeContext()
    decode(QemuConfig, {**QEMU, "format": "vmdk", "disk_interface": "usb"}, "builders[0]", dctx)
    assert dctx.errors == [
        'builders[0].format: "vmdk" is not one of qcow2, raw',
        'builders[0].disk_interface: "usb" is not one of virtio, virtio-scsi, scsi, ide, sata, nvme',
    ]
    dctx = DecodeContext()
    ecs = decode(AlicloudEcsConfig, {**ECS, "internet_charge_type": "Free", "boot_mode": ""}, "b", dctx)
    assert dctx.errors == ['b.internet_charge_type: "Free" is not one of PayByTraffic, PayByBandwidth']
    assert ecs.boot_mode == ""


def test_an_empty_choice_means_the_default_as_in_packer() -> None:
    dctx = DecodeContext()
    config = decode(QemuConfig, {**QEMU, "format": "", "disk_interface": "", "communicator": ""}, "b", dctx)
    assert dctx.errors == []
    assert (config.format, config.disk_interface, config.communicator) == ("qcow2", "virtio", "ssh")


def test_repeated_copy_regions_are_dropped_when_decoded() -> None:
    dctx = DecodeContext()
    config = decode(AlicloudEcsConfig, {**ECS, "image_copy_regions": ["a", "b", "a"]}, "b", dctx)
    assert config.image_copy_regions == ["a", "b"]


def test_a_config_is_frozen_once_validated(tmp_path: Path) -> None:
    template = {
        "builders": [{"type": "alicloud-ecs", **ECS, "image_disk_mappings": [{"disk_size": 20}]}],
        "post-processors": [{"type": "checksum"}],
    }
    (build,) = _builds(tmp_path, json.dumps(template), "t.json")
    config = build.builder.config
    with pytest.raises(FrozenOptionError, match="image_force_delete: options are frozen"):
        config.image_force_delete = True
    with pytest.raises(FrozenOptionError):
        config.image_disk_mappings[0].disk_size = 40
    checksum = build.post_processors[0][0].component.config
    assert checksum.checksum_types == ["md5"]  # the default validate filled in, before freezing
    with pytest.raises(FrozenOptionError):
        checksum.output = "x"


def test_force_sets_the_effective_options_when_the_build_is_prepared(tmp_path: Path) -> None:
    text = json.dumps({"builders": [{"type": "alicloud-ecs", **ECS}]})
    (plain,) = _builds(tmp_path, text, "t.json")
    assert not plain.builder.config.image_force_delete
    (forced,) = _builds(tmp_path, text, "t.json", force=True)
    assert forced.builder.config.image_force_delete
    assert forced.builder.config.image_force_delete_snapshots


def test_every_component_declares_its_options_as_options() -> None:
    for table in (registry.BUILDERS, registry.PROVISIONERS, registry.POST_PROCESSORS):
        for name in table:
            cls = registry.load(table, name)
            assert cls is not None
            assert issubclass(cls.Config, Options), name
            for f in dataclasses.fields(cls.Config):
                assert "doc" in f.metadata, f"{name}.{f.name} is not declared with option()"
                assert f.metadata["doc"], f"{name}.{f.name}: say what it does (doc=...)"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (3600, "1h0m0s"),
        (5400, "1h30m0s"),
        (90, "1m30s"),
        (10, "10s"),
        (1.5, "1.5s"),
        (0.25, "250ms"),
        (0, "0s"),
    ],
)
def test_durations_are_shown_as_go_shows_them(seconds: float, text: str) -> None:
    assert str(Duration(seconds)) == text


def test_the_options_reference_is_current() -> None:
    """docs/options.md is what the declarations say (regenerate: python -m kiln.optionsdoc > docs/options.md)."""
    from kiln.optionsdoc import reference

    path = Path(__file__).resolve().parents[2] / "docs" / "options.md"
    assert path.read_text() == reference(), "run: python -m kiln.optionsdoc > docs/options.md"


def test_inspect_shows_the_options_of_a_component(tmp_path: Path) -> None:
    import subprocess
    import sys

    def inspect(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "kiln", "inspect", *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=tmp_path)

    shown = inspect("-options", "qemu")
    assert shown.returncode == 0, shown.stderr
    assert (
        "- `format` (string; default `qcow2`; one of `qcow2`, `raw`): the output image's format"
        in shown.stdout
    )
    assert "- `iso_checksum` (string; required)" in shown.stdout
    assert "``{{ build `ID` }}``" in shown.stdout
    ecs = inspect("-options", "alicloud-ecs").stdout
    assert "\n  - `disk_size` (number; default `0`): GiB\n" in ecs
    both = inspect("-options", "file").stdout
    assert "## builder `file`" in both and "## provisioner `file`" in both
    assert "Runs on the machine, through its communicator." in both
    assert "Runs on this host." in inspect("-options", "shell-local").stdout
    unknown = inspect("-options", "nope")
    assert unknown.returncode == 1
    assert unknown.stderr.startswith(
        'Error: -options: no component is called "nope"\n  hint: known: alicloud-ecs,'
    )


def test_a_bad_max_retries_is_quoted_as_written() -> None:
    raw = {"builders": [{"type": "null"}], "provisioners": [{"type": "shell", "max_retries": "x\\y"}]}
    with pytest.raises(TemplateProblems) as info:
        parse_template(raw, "t.json", None, Path.cwd())
    assert '`max_retries` must be a valid integer, got "x\\y"' in str(info.value)


def test_the_loader_reads_durations_with_the_shared_rules() -> None:
    raw = {
        "builders": [{"type": "null"}],
        "provisioners": [
            {"type": "shell", "pause_before": "1m30s", "timeout": 5_000_000_000},
            {"type": "shell", "pause_before": "30", "timeout": True},
        ],
    }
    with pytest.raises(TemplateProblems) as info:
        parse_template(raw, "t.json", None, Path.cwd())
    assert info.value.problems == [
        'provisioners[1].pause_before: time: missing unit in duration "30" (write e.g. "30s")',
        'provisioners[1].timeout: expected a duration such as "30s", got bool',
    ]
    del raw["provisioners"][1]
    template = parse_template(raw, "t.json", None, Path.cwd())
    assert (template.provisioners[0].pause_before, template.provisioners[0].timeout) == (90.0, 5.0)


def test_a_bad_hcl2_max_retries_is_quoted_as_written(tmp_path: Path) -> None:
    hcl = (
        'source "null" "x" {\n  communicator = "none"\n}\n'
        'build {\n  sources = ["source.null.x"]\n'
        '  provisioner "shell-local" {\n    inline      = ["true"]\n    max_retries = "x\\\\y"\n  }\n}\n'
    )
    with pytest.raises(TemplateError) as info:
        _builds(tmp_path, hcl, "t.pkr.hcl")
    assert '`max_retries` must be a valid integer, got "x\\y"' in str(info.value)


@pytest.mark.parametrize(
    ("number", "text"), [(22, "22"), (22.0, "22"), (1.5, "1.5"), (1e21, "1000000000000000000000")]
)
def test_a_number_read_as_a_string_is_written_as_go_writes_it(number: float, text: str) -> None:
    dctx = DecodeContext()
    config = decode(FileConfig, {"target": "t", "content": number}, "b", dctx)
    assert dctx.errors == [] and config.content == text
