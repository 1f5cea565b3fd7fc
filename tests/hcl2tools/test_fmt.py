"""The HCL formatter (Packer's / hclwrite's layout) and the `kiln fmt` command."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln.template.hcl2.fmt import HclSyntaxError, check_syntax, format_hcl, lex
from tests.conformance_suite import need_suite

from .conftest import FIXTURES, Kiln

UNFORMATTED = '\nami_filter_name ="amzn2-ami-hvm-*-x86_64-gp2"\nami_filter_owners =[ "137112412989" ]\n\n'
FORMATTED = '\nami_filter_name   = "amzn2-ami-hvm-*-x86_64-gp2"\nami_filter_owners = ["137112412989"]\n\n'


def test_consecutive_attributes_are_aligned_and_spaced() -> None:
    assert format_hcl(UNFORMATTED) == FORMATTED


def test_blocks_are_indented_by_two_spaces_per_level() -> None:
    src = 'build {\nsources = ["a"]\n    provisioner "shell" {\n inline = ["x"]\n}\n}\n'
    want = 'build {\n  sources = ["a"]\n  provisioner "shell" {\n    inline = ["x"]\n  }\n}\n'
    assert format_hcl(src) == want


def test_alignment_stops_at_blank_lines_blocks_and_multiline_values() -> None:
    src = "a = 1\nlonger = 2\n\nb = 3\nobj = {\nk = 1\nlong_key = 2\n}\nc = 4\n"
    want = "a      = 1\nlonger = 2\n\nb = 3\nobj = {\n  k        = 1\n  long_key = 2\n}\nc = 4\n"
    assert format_hcl(src) == want


def test_expression_spacing() -> None:
    src = 'x = [1,2, -3 , a.b [0] ]\ny=foo( 1 ,"s" )\nz = a  ?  b : c -1\nw = {for k , v in m : k=>v}\n'
    want = 'x = [1, 2, -3, a.b[0]]\ny = foo(1, "s")\nz = a ? b : c - 1\nw = { for k, v in m : k => v }\n'
    assert format_hcl(src) == want


def test_templates_heredocs_and_comments_keep_their_text() -> None:
    src = (
        'a = "keep  ${ upper( var.x ) }  spaces"\n'
        "b = <<EOF\n  indented ${ x }\n    more\n EOF\n"
        "c    = 1   # note\n"
        "long = 2 # other\n"
        "/* block\n   comment */\n"
    )
    # a heredoc attribute is one line for alignment: its `=` lines up with its neighbours'
    want = (
        'a    = "keep  ${upper(var.x)}  spaces"\n'
        "b    = <<EOF\n  indented ${x}\n    more\n EOF\n"
        "c    = 1 # note\n"
        "long = 2 # other\n"
        "/* block\n   comment */\n"
    )
    assert format_hcl(src) == want


def test_escaped_template_introducers_are_literal_text() -> None:
    tokens = lex('a = "$${HOME} %%{x} \\"q\\""\n')
    assert [t.type for t in tokens] == ["Ident", "Equal", "OQuote", "QuotedLit", "CQuote", "Newline", "EOF"]


def test_formatting_is_idempotent_on_every_expected_upgrade_output() -> None:
    files = sorted(FIXTURES.glob("hcl2_upgrade/*/expected.pkr.hcl"))
    if not files:
        need_suite()
    for path in files:
        text = path.read_text()
        assert format_hcl(text) == text, path


def test_syntax_error_reads_like_packers() -> None:
    src = 'variable "region" {\n  type = string\n}\n\ninvalid\n'
    with pytest.raises(HclSyntaxError) as info:
        check_syntax(src, "bad.pkr.hcl")
    text = info.value.packer_text()
    assert "Error: Argument or block definition required" in text
    assert "on bad.pkr.hcl line 5:" in text
    assert "An argument or block definition is required here." in text


@pytest.mark.parametrize(
    "src",
    ["a = 1\nb {\n  c = 2\n", "a = (1\n", '"x" = 1\n'],
    ids=["unclosed-block", "unclosed-paren", "label-first"],
)
def test_other_syntax_errors_are_reported(src: str) -> None:
    with pytest.raises(HclSyntaxError):
        check_syntax(src, "bad.pkr.hcl")


def test_valid_files_pass_the_syntax_check() -> None:
    check_syntax('source "null" "x" {\n  communicator = "none"\n}\nbuild { sources = ["a"] }\n', "ok.pkr.hcl")


# --- the command -------------------------------------------------------------------------------


def test_check_exits_3_and_names_the_file_without_writing(kiln: Kiln, tmp_path: Path) -> None:
    path = tmp_path / "a.pkr.hcl"
    path.write_text(UNFORMATTED)
    result = kiln("fmt", "-check", "a.pkr.hcl")
    assert result.code == 3
    assert result.out.strip() == "a.pkr.hcl"
    assert path.read_text() == UNFORMATTED


def test_check_on_formatted_file_is_silent(kiln: Kiln, tmp_path: Path) -> None:
    (tmp_path / "a.pkr.hcl").write_text(FORMATTED)
    result = kiln("fmt", "-check=true", "a.pkr.hcl")
    assert (result.code, result.out + result.err) == (0, "")


def test_folder_is_formatted_in_place_only_for_hcl_files(kiln: Kiln, tmp_path: Path) -> None:
    for name in ("a.pkr.hcl", "b.pkrvars.hcl", "c.txt", "sub/d.pkr.hcl"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(UNFORMATTED)
    result = kiln("fmt", ".")
    assert result.code == 0, result.err
    assert (tmp_path / "a.pkr.hcl").read_text() == FORMATTED
    assert (tmp_path / "b.pkrvars.hcl").read_text() == FORMATTED
    assert (tmp_path / "c.txt").read_text() == UNFORMATTED
    assert (tmp_path / "sub/d.pkr.hcl").read_text() == UNFORMATTED
    assert kiln("fmt", "-recursive", ".").code == 0
    assert (tmp_path / "sub/d.pkr.hcl").read_text() == FORMATTED


def test_write_false_and_diff(kiln: Kiln, tmp_path: Path) -> None:
    (tmp_path / "a.pkr.hcl").write_text(UNFORMATTED)
    result = kiln("fmt", "-write=false", "-diff", "a.pkr.hcl")
    assert result.code == 0
    assert '-ami_filter_owners =[ "137112412989" ]' in result.out
    assert '+ami_filter_owners = ["137112412989"]' in result.out
    assert (tmp_path / "a.pkr.hcl").read_text() == UNFORMATTED


def test_stdin_to_stdout(kiln: Kiln) -> None:
    result = kiln("fmt", "-", stdin=UNFORMATTED)
    assert (result.code, result.out) == (0, FORMATTED)


def test_parse_error_exits_1_and_leaves_the_file(kiln: Kiln, tmp_path: Path) -> None:
    (tmp_path / "bad.pkr.hcl").write_text("a = 1\ninvalid\n")
    result = kiln("fmt", "bad.pkr.hcl")
    assert result.code == 1
    assert "An argument or block definition is required here." in result.err
    assert (tmp_path / "bad.pkr.hcl").read_text() == "a = 1\ninvalid\n"


def test_a_file_that_is_not_hcl_is_refused(kiln: Kiln, tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text("{}")
    result = kiln("fmt", "x.json")
    assert result.code == 1
    assert "Cannot tell whether x.json contains HCL2 configuration data" in result.err


def test_an_expression_error_is_caught_by_the_parser(kiln: Kiln, tmp_path: Path) -> None:
    (tmp_path / "bad.pkr.hcl").write_text("a = = 1\n")
    result = kiln("fmt", "-check", "bad.pkr.hcl")
    assert result.code == 1
    assert "Error: Invalid expression" in result.err
    assert "on bad.pkr.hcl line 1:" in result.err


def test_comment_columns_count_characters_as_seen() -> None:
    src = 'a = "é🤷" # x\nbb = "e\u0301" # y\nccc = 1 # z\n'
    # "é🤷" is two columns, "e\u0301" one
    want = 'a   = "é🤷" # x\nbb  = "e\u0301"  # y\nccc = 1    # z\n'
    assert format_hcl(src) == want
