"""The condition parser: shapes, precedence, error offsets, and that it never crashes."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sysward.rules.ast import (
    And,
    Compare,
    FieldRef,
    ListRef,
    ListValue,
    MacroRef,
    Not,
    Or,
    Str,
    Transform,
    to_text,
)
from sysward.rules.parser import MAX_DEPTH, ParseError, parse, parse_field


def test_precedence_and_over_or_and_not_binds_tightest() -> None:
    tree = parse("not a and b or c")
    assert isinstance(tree, Or)
    first = tree.children[0]
    assert isinstance(first, And)
    assert isinstance(first.children[0], Not)
    assert first.children[0].child == MacroRef("a")


def test_comparison_shapes() -> None:
    tree = parse('proc.aname[2] in (a, "b c", \'d\') and fd.name exists and '
                 "tolower(proc.exe) = val(proc.name) and x.y in some_list")
    assert isinstance(tree, And)
    c0, c1, c2, c3 = tree.children
    assert c0 == Compare(FieldRef("proc.aname", "2"), "in",
                         ListValue((Str("a"), Str("b c", True), Str("d", True))))
    assert c1 == Compare(FieldRef("fd.name"), "exists", None)
    assert c2 == Compare(Transform("tolower", FieldRef("proc.exe")), "=", FieldRef("proc.name"))
    assert c3 == Compare(FieldRef("x.y"), "in", ListRef("some_list"))


@pytest.mark.parametrize("text", [
    "fd.num>=0", "fd.num >= 0", "fd.typechar='f'", "evt.arg.flags contains O_TRUNC",
    "proc.name in(a,b)", "a or(b)", "not(a)", "(a)and(b)", "fd.name pmatch (/tmp)",
    "evt.res startswith E", "proc.name in ()", "fd.num = -1", "proc.name = <NA>",
    "fd.name glob '/home/*/.ssh/*'", "evt.arg[1] = x", 'proc.cmdline = "a \\"q\\" b"',
    "proc.name icontains X", "proc.name iglob X*", "proc.name regex '^\\\\d+$'",
    "len(proc.args) > 2", "basename(proc.exe) = sh", "b64(proc.args) contains x",
    "proc.aname intersects (a)", "proc.name bcontains 6162", "fd.name bstartswith 2f",
])
def test_valid_conditions_parse(text: str) -> None:
    tree = parse(text)
    # the text form parses back to the same tree
    assert parse(to_text(tree)) == tree


def test_quoted_escapes() -> None:
    tree = parse(r'proc.cmdline = "a \"b\" \\ c" and proc.name regex "\\d+"')
    assert isinstance(tree, And)
    assert tree.children[0].rhs == Str('a "b" \\ c', True)  # type: ignore[attr-defined]
    assert tree.children[1].rhs.value == r"\d+"  # type: ignore[attr-defined]


def _value(text: str) -> str:
    tree = parse(text)
    assert isinstance(tree, Compare) and isinstance(tree.rhs, Str)
    return tree.rhs.value


@pytest.mark.parametrize(("text", "value"), [
    # Falco's raw scan: a quote right after a backslash never closes the string, even when
    # that backslash is itself escaped; the escapes are decoded afterwards
    (r'proc.name = "a\\" b"', 'a\\" b'),
    (r"proc.name = 'a\\' b'", "a\\' b"),
    (r'proc.name = "x\/y"', "x/y"),
    (r'proc.name = "tab\there"', "tab\there"),
    (r'proc.name = "end\ "', "end\\"),           # Falco's legacy spelling of a backslash
    (r'proc.name = "\x41\x42"', "AB"),
    (r'proc.name = "\xc3\xa9"', "\u00e9"),        # UTF-8 bytes make the character
    (r'proc.name = "\xff"', "\udcff"),             # a raw byte stays a raw byte
    ('proc.name = "it\'s"', "it's"),
    ("proc.name = 'say \"hi\"'", 'say "hi"'),
])
def test_strings_follow_falcos_lexer(text: str, value: str) -> None:
    assert _value(text) == value


@pytest.mark.parametrize(("text", "message"), [
    (r'proc.name = "a\\"', "not closed"),             # the last quote follows a backslash
    (r'proc.name = "it\'s"', "not an escape inside double quotes"),
    (r"proc.name = 'say \"hi\"'", "not an escape inside single quotes"),
    (r'proc.name regex "\d+"', "unsupported escape sequence \\d"),
    (r'proc.name = "\x4"', "two hex digits"),
    (r'proc.name = "\xzz"', "two hex digits"),
    (r'proc.name = "\x00"', "NUL"),
    ('proc.name = "a\0b"', "NUL"),
    ("tolower (proc.name) = x", "unexpected '(proc.name"),   # Falco: a macro, then a group
    ("tolower\n(proc.name) = x", "unexpected '(proc.name"),
])
def test_strings_and_transformers_falco_refuses(text: str, message: str) -> None:
    with pytest.raises(ParseError) as info:
        parse(text)
    assert message in info.value.message


def test_exists_is_a_prefix_as_in_falco() -> None:
    tree = parse("proc.name existsand fd.name exists")
    assert tree == And((Compare(FieldRef("proc.name"), "exists", None),
                        Compare(FieldRef("fd.name"), "exists", None)))
    with pytest.raises(ParseError):
        parse("proc.name containsx")


@pytest.mark.parametrize("value", ["plain", 'q"q', "q'q", "back\\slash", "ends\\",
                                   "ends\\\\", "nl\nx", "\x01", "\udcff", "\u00e9"])
def test_quoted_text_reads_back(value: str) -> None:
    tree = parse(to_text(Compare(FieldRef("proc.name"), "=", Str(value, True))))
    assert isinstance(tree, Compare) and tree.rhs == Str(value, True)


@pytest.mark.parametrize(("text", "offset", "message"), [
    ("", 0, "empty condition"),
    ("a and", 5, "expected a condition"),
    ("(a", 2, "expected ')'"),
    ("proc.name =", 11, "expected a value"),
    ("proc.name in (a,", 16, "not closed"),
    ("proc.name in (a b)", 16, "expected ',' or ')'"),
    ("proc.name = 'abc", 12, "string is not closed"),
    ("proc.name ~ x", 10, "expected an operator"),
    ("a b", 2, "unexpected 'b'"),
    ("fd.name[1 = x", 9, "expected ']'"),
    ("tolower(proc.name = x", 18, "expected ')' to close 'tolower('"),
    ("and", 0, "keyword 'and'"),
    ("proc.name = x )", 14, "unexpected ')'"),
])
def test_errors_carry_offsets(text: str, offset: int, message: str) -> None:
    with pytest.raises(ParseError) as info:
        parse(text)
    assert message in info.value.message
    assert info.value.offset == offset


def test_depth_is_capped() -> None:
    deep = "(" * (MAX_DEPTH + 5) + "a" + ")" * (MAX_DEPTH + 5)
    with pytest.raises(ParseError, match="nested deeper"):
        parse(deep)
    assert parse("(" * 50 + "a" + ")" * 50) == MacroRef("a")
    with pytest.raises(ParseError):
        parse("not " * (MAX_DEPTH + 5) + "a")


def test_parse_field() -> None:
    assert parse_field("proc.aname[3]") == FieldRef("proc.aname", "3")
    with pytest.raises(ParseError):
        parse_field("proc.name x")


_ALPHABET = st.sampled_from(list("()[],=!<>'\"\\ \t\nabcdefgxyz.0123_-/*") + [
    " and ", " or ", "not ", " in ", " exists", " contains ", "proc.name", "fd.num",
    "tolower(", "val(", " pmatch ", " glob ", "evt.arg.flags", "[2]",
])


@settings(max_examples=1500, deadline=None)
@given(st.lists(_ALPHABET, max_size=40).map("".join))
def test_parser_never_raises_anything_but_parse_error(text: str) -> None:
    try:
        tree = parse(text)
    except ParseError as exc:
        assert 0 <= exc.offset <= len(text)
        return
    # whatever parses must survive a round trip through its text form
    assert parse(to_text(tree)) == tree


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=60))
def test_parser_on_arbitrary_unicode(text: str) -> None:
    with contextlib.suppress(ParseError):
        parse(text)
