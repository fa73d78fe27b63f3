"""The ntp.conf lexer: words, comments, quotes, line numbers, line endings."""

from __future__ import annotations

import pytest

from appliance.config.errors import ConfigError
from appliance.config.lexer import Token, tokenize


def words(text: str) -> list[tuple[int, list[str]]]:
    return [(line.number, [t.text for t in line.tokens]) for line in tokenize(text, "t.conf")]


def test_words_split_on_spaces_and_tabs_and_blank_lines_are_skipped() -> None:
    assert words("server  a.example\tiburst\n\n   \nrestrict default\n") == [
        (1, ["server", "a.example", "iburst"]),
        (4, ["restrict", "default"]),
    ]


def test_comment_anywhere_on_a_line() -> None:
    text = "# whole line\nserver a # after words\nserver b#glued\n   # indented\n"
    assert words(text) == [(2, ["server", "a"]), (3, ["server", "b"])]


def test_classic_mac_line_ends_end_lines() -> None:
    """A CR-only file was one line: 'unknown server option 'restrict''."""
    assert words("server a\rrestrict b\r") == [(1, ["server", "a"]), (2, ["restrict", "b"])]
    assert words("# c\r\rserver a\r") == [(3, ["server", "a"])]


def test_crlf_and_lone_cr_are_whitespace() -> None:
    assert words("server a iburst\r\nserver b\r\n") == [(1, ["server", "a", "iburst"]), (2, ["server", "b"])]
    assert words("server\ra") == [(1, ["server", "a"])]


def test_byte_order_mark_is_ignored() -> None:
    assert words("\ufeffserver a\n") == [(1, ["server", "a"])]


def test_no_line_continuation() -> None:
    assert words("server a \\\niburst\n") == [(1, ["server", "a", "\\"]), (2, ["iburst"])]


def test_quoted_string_keeps_spaces_and_hash() -> None:
    (line,) = tokenize('logfile "/var/log/my #1 log" # comment\n', "t.conf")
    assert line.tokens[1] == Token("/var/log/my #1 log", 1, 9, quoted=True)
    assert line.tokens[0] == Token("logfile", 1, 1, quoted=False)


def test_empty_quoted_string() -> None:
    (line,) = tokenize('driftfile ""', "t.conf")
    assert line.tokens[1].text == "" and line.tokens[1].quoted


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('\n\nlogfile "/var/log/x\n', "t.conf:3: unterminated quoted string"),
        ('logfile ab"c"\n', "t.conf:1: unexpected '\"' inside a word"),
        ('logfile "a"b\n', "t.conf:1: a space must follow the closing quote"),
        ("server a\x00b\n", "t.conf:1: control character U+0000"),
        ('\nlogfile "a\x1bb"\n', "t.conf:2: control character U+001B"),
    ],
)
def test_lexical_errors_name_file_and_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        tokenize(text, "t.conf")
    assert str(e.value).startswith(message)


def test_quote_after_comment_is_not_a_string() -> None:
    assert words('server a # "unclosed\n') == [(1, ["server", "a"])]


def test_line_numbers_count_every_line() -> None:
    (line,) = tokenize("\n# c\n\n\n  server x", "t.conf")
    assert line.number == 5 and line.tokens[0].column == 3
