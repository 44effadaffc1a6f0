"""The one escaping path of the review page (``fr_data.review.markup``), and that page.py builds its HTML
through it only."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from fr_data.review import markup
from fr_data.review.markup import Markup, csp_hash, data_block, data_json, esc, html, inline, join, local_src

PAGE_SOURCE = Path(markup.__file__).with_name("page.py")


def test_values_are_escaped_for_text_and_attributes():
    assert esc('"><img src=x onerror=f()>') == "&quot;&gt;&lt;img src=x onerror=f()&gt;"
    assert esc("a'b&c") == "a&#x27;b&amp;c"
    assert html('<b title="{}">{}</b>', 'x" onclick="f()', "<i>") == \
        '<b title="x&quot; onclick=&quot;f()">&lt;i&gt;</b>'
    assert html("{:,} of {}", 1234, 5) == "1,234 of 5"


def test_markup_is_not_escaped_again_and_stays_markup_when_joined_or_added():
    inner = html("<i>{}</i>", "<x>")
    assert html("<b>{}</b>", inner) == "<b><i>&lt;x&gt;</i></b>"
    assert isinstance(inner + "<y>", Markup) and inner + "<y>" == "<i>&lt;x&gt;</i>&lt;y&gt;"
    assert "<y>" + inner == "&lt;y&gt;<i>&lt;x&gt;</i>"
    assert join([inner, "<y>"]) == "<i>&lt;x&gt;</i>&lt;y&gt;"
    with pytest.raises(ValueError, match="format spec"):
        html("{:>9}", inner)


def test_inline_refuses_text_that_would_end_its_element_early():
    assert inline("script", "var a = 1 < 2;") == "<script>var a = 1 < 2;</script>"
    for text in ("x</script>y", "x</SCRIPT y", "<!-- x"):
        with pytest.raises(ValueError, match="must not contain"):
            inline("script", text)


def test_csp_hash_is_the_base64_sha256_of_the_text():
    # sha256 of the empty string, base64: the well-known value
    assert csp_hash("") == "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='"


@pytest.mark.parametrize("path", ["javascript:alert(1)", "http://x/a.png", "/etc/passwd", "../a.png", "img/../../a",
                                  "img/a.png?x", "//host/a.png", "img/a b.png", ""])
def test_only_relative_paths_inside_the_folder_are_urls(path):
    with pytest.raises(ValueError, match="not a relative path"):
        local_src(path)


def test_local_paths_pass():
    assert local_src("img/0f58d5a5515f1a8a9d17.jpg") == "img/0f58d5a5515f1a8a9d17.jpg"
    assert local_src("figures/quality.png") == "figures/quality.png"


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
            and n.func.id == name]


def test_page_builds_html_only_from_constant_templates():
    """No f-string, ``+`` or ``%`` pastes markup (values would skip escaping), and every template given to
    ``html`` or ``Markup`` is a string constant (never data)."""
    tree = ast.parse(PAGE_SOURCE.read_text(encoding="utf-8"))
    fstrings = [n for n in ast.walk(tree) if isinstance(n, ast.JoinedStr)
                and any(isinstance(v, ast.Constant) and ("<" in v.value or '="' in v.value) for v in n.values)]
    assert [ast.unparse(n) for n in fstrings] == []
    pasted = [n for n in ast.walk(tree) if isinstance(n, ast.BinOp) and isinstance(n.op, (ast.Add, ast.Mod))
              and any(isinstance(side, ast.Constant) and "<" in str(side.value) for side in (n.left, n.right))]
    assert [ast.unparse(n) for n in pasted] == []
    calls = _calls(tree, "html") + _calls(tree, "Markup")
    assert len(calls) > 40
    assert [ast.unparse(c) for c in calls if c.args and not isinstance(c.args[0], ast.Constant)] == []
    assert "import html" not in PAGE_SOURCE.read_text(encoding="utf-8")  # no second escaping function


def test_a_data_block_cannot_end_its_element_and_reads_back_exactly():
    value = {"h": '</script><script>alert(1)</script><!-- & \u2028 "q"', "n": [1.5, None]}
    block = data_block("list:x", value)
    inner = block.removeprefix('<script type="application/json" data-block="list:x">').removesuffix("</script>")
    assert "<" not in inner and ">" not in inner and "&" not in inner
    assert json.loads(inner) == value
    assert data_block('"><b>', []).startswith('<script type="application/json" data-block="&quot;&gt;&lt;b&gt;">')


def test_a_data_block_holds_no_character_above_latin_1():
    # a text with one wider character takes two bytes per character in the browser's DOM
    value = {"h": "0.5 \u00b7 \u2212 0.2 \u2013 caf\u00e9 \U0001f600", "n": ["\u2191"]}
    inner = data_json(value)
    assert max(map(ord, inner)) <= 0xFF and "\u00b7" in inner  # Latin-1 stays as it is (readable)
    assert "\\u2212" in inner and "\\ud83d\\ude00" in inner  # the astral one as its two surrogates
    assert json.loads(inner) == value
