"""HCL2 templates: expressions, functions, variables and their precedence, locals, data sources,
sources and builds (names, per-source provisioners, post-processor chains, dynamic blocks)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kiln.core.secrets import REDACTOR
from kiln.errors import TemplateError
from kiln.template import load_template, render, resolve_variables, validate_template
from kiln.template.hcl2.expr import (
    Deferred,
    HclDiagnostic,
    Scope,
    compile_expression,
    compile_value,
    namespace,
)
from kiln.template.hcl2.functions import make_functions
from kiln.template.interpolate import InterpContext
from kiln.template.model import Template
from tests.conformance_suite import SUITE


@pytest.fixture(autouse=True)
def clean_redactor() -> Iterator[None]:
    REDACTOR.clear()
    yield
    REDACTOR.clear()


SCOPE = Scope(
    {
        "var": namespace("var", {"n": 5, "a": ["x", "y"], "m": {"k": "v", "list": [1, 2]}}),
        "build": namespace("build", {"name": "b"}, lambda k: Deferred(f"build `{k}`")),
    },
    make_functions({"HOME": "/root"}, "/tmp"),
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ('var.n > 2 ? "big" : "small"', "big"),
        ("!true || false", False),
        ("-var.n", -5),
        ("var.a[1]", "y"),
        ("var.m.list[0]", 1),
        ('var.m["k"]', "v"),
        ("[for s in var.a : upper(s)]", ["X", "Y"]),
        ('{for k, v in var.m : k => v if k == "k"}', {"k": "v"}),
        ('"pre-${var.a[0]}-${var.n + 1}"', "pre-x-6"),
        ('"%{ if var.n > 1 }many%{ else }one%{ endif }"', "many"),
        ('"%{ for s in var.a }${s};%{ endfor }"', "x;y;"),
        ('"a $${literal} b"', "a ${literal} b"),
        ('join(",", var.a)', "x,y"),
        ('length(var.a) + length("abc")', 5),
        ('lookup(var.m, "nope", "dflt")', "dflt"),
        ('substr("hello", 1, 3)', "ell"),
        ('format("%s-%03d", "a", 7)', "a-007"),
        ('formatlist("l/%s", var.a)', ["l/x", "l/y"]),
        ('env("HOME")', "/root"),
        ("can(var.nope)", False),
        ('try(var.nope, "fallback")', "fallback"),
        ("[for x in var.a : x][*]", ["x", "y"]),
        ('{ k = 1, "q" = 2 }', {"k": 1, "q": 2}),
    ],
)
def test_expressions(text: str, expected: Any) -> None:
    assert compile_expression(text)(SCOPE) == expected


def test_build_values_are_deferred_to_the_build() -> None:
    value = compile_value('"echo ${upper(build.ID)} ${build.name}"')(SCOPE)
    assert value == "echo {{ upper (build `ID`) }} b"
    assert render(value, InterpContext(generated={"ID": "null"})) == "echo NULL b"
    assert compile_expression('join(",", [build.ID, "x"])')(SCOPE) == "{{ build `ID` }},x"
    with pytest.raises(TemplateError, match="known only during the build"):
        compile_expression("length(build.ID)")(SCOPE)


def test_heredoc_and_python_hcl2_forms() -> None:
    assert compile_value('"<<EOT\nhello ${var.n}\nEOT"')(SCOPE) == "hello 5\n"
    assert compile_value("${var.n + 1}")(SCOPE) == 6
    assert compile_value(['"a"', 3, True, None])(SCOPE) == ["a", 3, True, None]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("var.ghost", 'unsupported attribute: "var.ghost"'),
        ("nope(1)", 'there is no function named "nope"'),
        ("1 +", "unexpected end of expression"),
        ("var.a[5]", "out of range"),
        ('"unterminated', "unterminated string"),
        ("1 / 0", "divide by zero"),
    ],
)
def test_expression_errors(text: str, message: str) -> None:
    with pytest.raises(TemplateError) as info:
        compile_expression(text)(SCOPE)
    assert message in info.value.message


def write(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (folder / name).write_text(text)


def resolved(path: Path, var_files: list[str] | None = None, cli: list[tuple[str, str]] | None = None,
             environ: dict[str, str] | None = None) -> tuple[Template, dict[str, str]]:  # fmt: skip
    tpl = load_template(str(path))
    validate_template(tpl)
    values = resolve_variables(tpl, var_files or [], cli or [], environ or {})
    return tpl, values


FOLDER = {
    "vars.pkr.hcl": """
variable "fruit" {
  type    = string
  default = "apple"
}
variable "count" {
  type    = number
  default = 1
}
variable "tags" {
  default = { a = "1" }
}
variable "password" {
  type      = string
  default   = "hunter22-secret"
  sensitive = true
}
locals {
  label = "${local.prefix}-${var.fruit}"
  prefix = upper(var.fruit)
}
data "null" "d" {
  input = "from-data"
}
""",
    "build.pkr.hcl": """
source "null" "one" {
  communicator = "none"
}
source "file" "f" {
  content = local.label
  target  = "${data.null.d.output}.txt"
}
build {
  name    = "main"
  sources = ["source.null.one", "sources.file.f"]
  source "null.one" {
    name = "renamed"
  }
  provisioner "shell-local" {
    inline       = ["echo ${source.name} ${source.type} ${build.name} ${build.ID}"]
    pause_before = "2s"
    max_retries  = 2
    only         = ["null.one", "file.f"]
  }
  post-processor "manifest" {
    output = "m.json"
  }
  post-processors {
    post-processor "checksum" {
      name = "sums"
    }
    post-processor "compress" {
      keep_input_artifact = true
      except = ["file.f"]
    }
  }
}
""",
    "x.auto.pkrvars.hcl": "count = 2\n",
}


def test_folder_template(tmp_path: Path) -> None:
    write(tmp_path, FOLDER)
    tpl, values = resolved(tmp_path, environ={"PKR_VAR_fruit": "pear"})
    assert tpl.kind == "hcl2"
    assert values["fruit"] == "pear" and values["count"] == "2" and values["tags"] == '{"a": "1"}'
    assert [(b.name, b.build_name, b.type) for b in tpl.builders] == [
        ("main.null.one", "one", "null"),
        ("main.file.f", "f", "file"),
        ("main.null.renamed", "renamed", "null"),
    ]
    assert tpl.builders[1].config == {"content": "PEAR-pear", "target": "from-data.txt"}
    inline = {p.only[0]: p.config["inline"][0] for p in tpl.provisioners}
    assert inline == {
        "main.null.one": "echo one null main {{ build `ID` }}",
        "main.file.f": "echo f file main {{ build `ID` }}",
    }
    assert all(p.pause_before == 2 and p.max_retries == 2 for p in tpl.provisioners)
    chains = [[(p.name, p.only) for p in chain] for chain in tpl.post_processors]
    assert [[n for n, _ in c] for c in chains[:3]] == [["manifest"]] * 3
    assert [("sums", ["main.file.f"])] in chains
    assert [("sums", ["main.null.one"]), ("compress", ["main.null.one"])] in chains
    assert "hunter22-secret" in tpl.sensitive_values
    assert REDACTOR.secrets == frozenset()  # the caller registers them, not the template package


def test_precedence_and_cli_values(tmp_path: Path) -> None:
    write(tmp_path, FOLDER)
    (tmp_path / "late.pkrvars.hcl").write_text('count = 3\nundeclared = "x"\n')
    (tmp_path / "v.json").write_text('{"count": 4}')
    _, values = resolved(
        tmp_path, [str(tmp_path / "late.pkrvars.hcl"), str(tmp_path / "v.json")],
        [("tags", '{ b = "2" }'), ("fruit", "kiwi")], {"PKR_VAR_fruit": "pear"},
    )  # fmt: skip
    assert values["count"] == "4" and values["fruit"] == "kiwi" and values["tags"] == '{"b": "2"}'


def test_variable_errors(tmp_path: Path) -> None:
    write(tmp_path, {"t.pkr.hcl": """
variable "need" {
  type = string
}
variable "small" {
  type    = number
  default = 10
  validation {
    condition     = var.small < 5
    error_message = "small must be below 5"
  }
}
source "null" "a" { communicator = "none" }
build { sources = ["null.a"] }
"""})  # fmt: skip
    tpl = load_template(str(tmp_path / "t.pkr.hcl"))
    with pytest.raises(TemplateError) as info:
        resolve_variables(tpl, [], [("ghost", "1")], {})
    text = info.value.render()
    assert 'Undefined -var variable: A "ghost" variable' in text
    assert 'Unset variable "need"' in text
    tpl = load_template(str(tmp_path / "t.pkr.hcl"))
    with pytest.raises(TemplateError, match="small must be below 5"):
        resolve_variables(tpl, [], [("need", "x")], {})


def test_structure_errors(tmp_path: Path) -> None:
    write(tmp_path, {"t.pkr.hcl": 'source "null" "a" {}\nbuild {\n  sources = ["null.b"]\n}\n'})
    tpl = load_template(str(tmp_path / "t.pkr.hcl"))
    with pytest.raises(HclDiagnostic) as info:
        resolve_variables(tpl, [], [], {})
    assert info.value.summary == "Unknown source null.b" and info.value.line == 2
    assert "Known: [null.a]" in info.value.packer_text()
    write(tmp_path, {"t.pkr.hcl": 'source "null" "a" {}\n'})
    with pytest.raises(HclDiagnostic, match="Missing build block"):
        resolve_variables(load_template(str(tmp_path / "t.pkr.hcl")), [], [], {})
    write(tmp_path, {"t.pkr.hcl": 'bogus "x" {}\nsource "null" "a" {}\n'})
    with pytest.raises(TemplateError, match='blocks of type "bogus" are not expected'):
        load_template(str(tmp_path / "t.pkr.hcl"))
    write(tmp_path, {"t.pkr.hcl": 'source "null" "a" {\n  x = \n}\n'})
    with pytest.raises(TemplateError, match="HCL syntax error"):
        load_template(str(tmp_path / "t.pkr.hcl"))


def test_required_version(tmp_path: Path) -> None:
    write(tmp_path, {"t.pkr.hcl": 'packer {\n  required_version = ">= 700000.0.0"\n}\n'})
    with pytest.raises(TemplateError, match="Unsupported Packer Core version"):
        validate_template(load_template(str(tmp_path / "t.pkr.hcl")))
    write(tmp_path, {"t.pkr.hcl": 'packer {\n  required_version = ">= v1.0.0, < 100"\n}\n'})
    validate_template(load_template(str(tmp_path / "t.pkr.hcl")))


def test_dynamic_blocks(tmp_path: Path) -> None:
    write(tmp_path, {"t.pkr.hcl": """
variable "images" {
  default = { one = { target = "1.txt" }, two = { target = "2.txt" } }
}
source "file" "base" { content = "x" }
build {
  dynamic "source" {
    for_each = var.images
    labels   = ["file.base"]
    content {
      name   = source.key
      target = source.value.target
    }
  }
}
"""})  # fmt: skip
    tpl, _ = resolved(tmp_path / "t.pkr.hcl")
    assert [(b.name, b.config["target"]) for b in tpl.builders] == [
        ("file.one", "1.txt"),
        ("file.two", "2.txt"),
    ]


def test_json_syntax_template(tmp_path: Path) -> None:
    (tmp_path / "t.pkr.json").write_text("""{
  "// comment": "ignored",
  "variable": {"who": {"default": "world"}},
  "source": {"null": {"a": {"communicator": "none"}}, "null": {"b": {"communicator": "none"}}},
  "build": {
    "sources": ["source.null.a", "source.null.b"],
    "provisioner": [{"shell-local": {"inline": ["echo \\"hi\\" ${var.who}\\\\n"], "only": ["sources.null.b"]}}],
    "post-processors": [{"post-processor": [{"manifest": {}}, {"checksum": {"name": "sums"}}]}]
  }
}""")
    tpl, values = resolved(tmp_path / "t.pkr.json")
    assert values == {"who": "world"}
    assert [b.name for b in tpl.builders] == ["null.a", "null.b"]
    assert [(p.only, p.config["inline"]) for p in tpl.provisioners] == [(["null.b"], ['echo "hi" world\\n'])]
    assert [[p.name for p in chain] for chain in tpl.post_processors] == [["manifest", "sums"]] * 2


def _inspect_cases() -> list[dict[str, Any]]:
    import json

    if not SUITE.exists():
        return []
    cases = json.loads((SUITE / "cases.json").read_text())["cases"]
    return [c for c in cases if c["category"] == "inspect" and not c["args"][-1].endswith(".json")]


@pytest.mark.parametrize("case", _inspect_cases(), ids=lambda c: str(c["id"]))
def test_inspect_text_as_packer_prints_it(case: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from kiln.template import inspect_hcl2, parse_var_flag

    monkeypatch.chdir(SUITE / "fixtures" / "command")
    args = case["args"][1:]
    cli = [parse_var_flag(a[len("-var=") :]) for a in args if a.startswith("-var=")]
    environ = {k: v for k, v in case.get("env", {}).items()}
    check = case["output"][0]
    want = check["equals"] if "equals" in check else Path(check["equals_file"]).read_text()
    assert inspect_hcl2(load_template(args[-1]), [], cli, environ) == want


def test_undeclared_var_file_values_are_listed(tmp_path: Path) -> None:
    from kiln.template import undeclared_variable_warning

    write(tmp_path, {"t.pkr.hcl": 'source "null" "a" {}\nbuild { sources = ["null.a"] }\n',
                     "v.pkrvars.hcl": 'unused = "x"\n'})  # fmt: skip
    tpl, _ = resolved(tmp_path / "t.pkr.hcl", [str(tmp_path / "v.pkrvars.hcl")])
    assert tpl.undeclared_variables == ["unused"]
    text = undeclared_variable_warning("unused")
    assert text.startswith("Warning: Undefined variable\n\n") and text.endswith("}\n\n")


def test_data_sources_unknown_unless_evaluated(tmp_path: Path) -> None:
    write(tmp_path, {"t.pkr.hcl": """
data "null" "dep" {
  input = "upload"
}
source "null" "a" { communicator = "none" }
build {
  sources = ["null.a"]
  provisioner "file" {
    direction = data.null.dep.output
  }
}
"""})  # fmt: skip
    tpl = load_template(str(tmp_path / "t.pkr.hcl"))
    resolve_variables(tpl, [], [], {}, evaluate_datasources=False)
    assert tpl.provisioners[0].config["direction"] == "<unknown>"
    tpl = load_template(str(tmp_path / "t.pkr.hcl"))
    resolve_variables(tpl, [], [], {})
    assert tpl.provisioners[0].config["direction"] == "upload"


def test_sensitive_local(tmp_path: Path) -> None:
    write(tmp_path, {"t.pkr.hcl": """
local "token" {
  expression = "tok-${upper("abcdef")}"
  sensitive  = true
}
source "null" "a" { communicator = "none" }
build { sources = ["null.a"] }
"""})  # fmt: skip
    tpl, _ = resolved(tmp_path / "t.pkr.hcl")
    assert tpl.sensitive_values == ["tok-ABCDEF"]
