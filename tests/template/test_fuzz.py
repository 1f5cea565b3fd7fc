"""Random and mutated templates: the loader, validator and variable resolver raise nothing but
TemplateError, whatever they are given."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiln.errors import TemplateError
from kiln.template import InterpContext, load_template, render, resolve_variables, validate_template

SEED = {
    "_comment": "seed",
    "description": "d",
    "min_packer_version": "1.0.0",
    "variables": {"a": "x", "b": None, "c": "{{user `a`}}-{{env `HOME`}}"},
    "sensitive-variables": ["a"],
    "builders": [{"type": "null", "name": "n1", "communicator": "none"}, {"type": "file"}],
    "provisioners": [
        {"type": "shell-local", "inline": ["echo {{build_name}}"], "only": ["n1"], "pause_before": "1s",
         "max_retries": "2", "timeout": "5m", "override": {"n1": {"inline": ["x"]}}},
    ],
    "post-processors": ["checksum", [{"type": "manifest", "keep_input_artifact": True}, "compress"]],
    "error-cleanup-provisioner": {"type": "shell-local", "inline": ["echo"]},
    "push": {"name": "x"},
}  # fmt: skip

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


def mutate(value: Any, data: st.DataObject, depth: int = 0) -> Any:
    """Replace, drop or keep parts of `value` at random."""
    choice = data.draw(st.integers(0, 9))
    if choice == 0 or depth > 5:
        return data.draw(json_values)
    if isinstance(value, dict) and choice < 8:
        out = {}
        for key, item in value.items():
            if data.draw(st.integers(0, 5)) == 0:
                continue
            out[key] = mutate(item, data, depth + 1)
        return out
    if isinstance(value, list) and choice < 8:
        return [mutate(item, data, depth + 1) for item in value if data.draw(st.integers(0, 5))]
    return value


def check(text: bytes, var_text: bytes | None = None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.json"
        path.write_bytes(text)
        var_files = []
        if var_text is not None:
            (Path(tmp) / "v.json").write_bytes(var_text)
            var_files.append(str(Path(tmp) / "v.json"))
        try:
            tpl = load_template(str(path))
            validate_template(tpl)
            resolve_variables(tpl, var_files, [("b", "{{user `a`}}")], {"HOME": "/root"})
        except TemplateError as exc:
            assert exc.message and "\n" not in exc.message.split(": ", 1)[0]


SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.data())
def test_mutated_templates(data: st.DataObject) -> None:
    check(json.dumps(mutate(SEED, data)).encode(), json.dumps(data.draw(json_values)).encode())


@SETTINGS
@given(st.binary(max_size=200))
def test_random_bytes(blob: bytes) -> None:
    check(blob)


@SETTINGS
@given(st.data())
def test_damaged_json_text(data: st.DataObject) -> None:
    text = json.dumps(SEED, indent=2)
    position = data.draw(st.integers(0, len(text)))
    cut = data.draw(st.integers(0, 5))
    insert = data.draw(st.text(alphabet='{}[],:"\\ \nabc01-', max_size=4))
    check((text[:position] + insert + text[position + cut :]).encode())


@SETTINGS
@given(st.text(alphabet=st.sampled_from(list('{}()|`".$- \nabuserpnvl0123_/*')), max_size=40))
def test_render_random_text(text: str) -> None:
    ctx = InterpContext(user_variables={"a": "1"}, data={"Path": "p"}, generated={"ID": "i"})
    try:
        render(text, ctx)
    except TemplateError:
        pass


HCL_SEED = """
packer {
  required_version = ">= 1.0.0"
}
variable "fruit" {
  type    = string
  default = "apple"
}
variable "m" {
  default = { a = ["x"] }
}
locals {
  up = upper(var.fruit)
}
data "null" "d" {
  input = "i"
}
source "null" "one" {
  communicator = "none"
}
build {
  name    = "b"
  sources = ["source.null.one"]
  source "null.one" {
    name = "two"
  }
  provisioner "shell-local" {
    inline = ["echo ${local.up} ${source.name} ${build.ID} ${data.null.d.output}"]
    only   = ["null.one"]
  }
  dynamic "source" {
    for_each = var.m
    labels   = ["null.one"]
    content {
      name = source.key
    }
  }
  post-processors {
    post-processor "manifest" {
      output = "m.json"
    }
  }
}
"""


def check_hcl(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.pkr.hcl"
        path.write_text(text)
        try:
            tpl = load_template(str(path))
            validate_template(tpl)
            resolve_variables(tpl, [], [("fruit", "kiwi")], {})
        except TemplateError as exc:
            assert exc.message


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_damaged_hcl(data: st.DataObject) -> None:
    position = data.draw(st.integers(0, len(HCL_SEED)))
    cut = data.draw(st.integers(0, 12))
    insert = data.draw(st.text(alphabet='{}[]()=,:"$.\\ \nabcxyz01-#*%~?!<>', max_size=6))
    check_hcl(HCL_SEED[:position] + insert + HCL_SEED[position + cut :])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(HCL_SEED.splitlines()), max_size=30))
def test_shuffled_hcl_lines(lines: list[str]) -> None:
    check_hcl("\n".join(lines))
