"""Random and mutated templates: the loader, validator and variable resolver raise nothing but
TemplateError, whatever they are given."""

from __future__ import annotations

import json
import os
import re
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


# -- HCL functions and expressions with huge arguments: bounded, never MemoryError or a hang

NUMBERS = ["0", "1", "-1", "3", "1024", "1025", "1e6", "1e12", "-1e12", "1e308", "1e-9", "0.5",
           "4611686018427387904"]  # fmt: skip
STRINGS = ['""', '"x"', '"%999999999d"', '"%.99999999f"', '"%1000000s"', '"%s%s%s"', '"/(a*)*/"', "local.s"]
#: typed shapes: each <N> (a number), <S> (a string) and <L> (a list) is filled with an expression
SHAPES = {
    "N": ["(<N> * <N>)", "(<N> + <N>)", "(<N> / <N>)", "length(<L>)", "max(<N>, <N>)", "abs(<N>)"],
    "S": ["format(<S>, <N>)", "format(<S>, <S>, <N>)", "join(<S>, <L>)", "replace(<S>, <S>, <S>)",
          "regex_replace(<S>, <S>, <S>)", "upper(<S>)", "jsonencode(<L>)", "substr(<S>, <N>, <N>)",
          '"${<S>}${<S>}"', '"%{for i in <L>}${<S>}%{endfor}"', "base64encode(<S>)"],
    "L": ["range(<N>)", "range(<N>, <N>)", "range(<N>, <N>, <N>)", "[for i in <L> : <L>]", "[for i in <L> : <S>]",
          "concat(<L>, <L>)", "flatten(<L>)", "formatlist(<S>, <L>)", "split(<S>, <S>)", "distinct(<L>)",
          "sort(<L>)", "[<L>, <L>]", "local.l"],
}  # fmt: skip


def expressions(kind: str = "L", depth: int = 0) -> st.SearchStrategy[str]:
    leaves = {"N": st.sampled_from(NUMBERS), "S": st.sampled_from(STRINGS), "L": st.just("local.l")}
    if depth >= 3:
        return leaves[kind]

    @st.composite
    def shaped(draw: st.DrawFn) -> str:
        shape = draw(st.sampled_from(SHAPES[kind]))
        parts = re.split(r"(<[NSL]>)", shape)
        return "".join(
            draw(expressions(p[1], depth + 1)) if re.fullmatch(r"<[NSL]>", p) else p for p in parts
        )

    return leaves[kind] | shaped()


@settings(max_examples=int(os.environ.get("KILN_FUZZ_EXAMPLES", "100")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
@given(st.lists(st.sampled_from("NSL").flatmap(expressions), min_size=1, max_size=4))
def test_hcl_functions_with_huge_arguments(chain: list[str]) -> None:
    from tests.bounds import bounded

    # each local may use the one before: amplification across locals is bounded too
    lines = [f'  l = [1, 2, 3]\n  s = "abc"\n  m = {{ a = 1 }}\n  x0 = {chain[0]}']
    lines += [f"  x{i} = {expr.replace('local.l', f'local.x{i - 1}')}" for i, expr in enumerate(chain[1:], 1)]
    text = "locals {\n" + "\n".join(lines) + '\n}\nsource "null" "a" {\n  communicator = "none"\n}\n'
    text += 'build {\n  sources = ["source.null.a"]\n}\n'
    with bounded(20):
        check_hcl(text)
