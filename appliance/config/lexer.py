"""Split ntp.conf text into lines of words, as ntpd reads it.

ntp.conf(5): "Comments begin with a '#' character and extend to the end of
the line; blank lines are ignored. Configuration commands consist of an
initial keyword followed by a list of arguments ... separated by whitespace.
Commands may not be continued over multiple lines."

So, here:

- a line ends at ``\\n``; a ``\\r`` before it (a file saved on Windows) is
  dropped, and a leading byte-order mark is ignored; a file with no ``\\n``
  that ends in ``\\r`` and has another one has classic Mac OS line ends:
  each ``\\r`` ends a line (elsewhere a lone ``\\r`` is whitespace);
- whitespace is space, tab, ``\\r``, form feed and vertical tab (the C
  ``isspace`` set ntpd uses); other control characters are an error;
- ``#`` outside a quoted string starts a comment, anywhere on the line, even
  in the middle of a word;
- ``"..."`` is one word, spaces and ``#`` included, with no escapes; it must
  close on the same line and stand apart from its neighbours;
- there is no line continuation (a ``\\`` is an ordinary character);
- an octet that is not UTF-8 (read with ``surrogateescape``) is skipped in a
  comment and an error naming it elsewhere, as is a no-break space in a word.

Only lines with at least one word come back, each with its 1-based number.
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.config.errors import ConfigError
from appliance.config.model import Location

_SPACE = frozenset(" \t\r\f\v")
_BOM = "\ufeff"


@dataclass(frozen=True, slots=True)
class Token:
    """One word of a line: its text (quotes removed), 1-based line and column, and whether it was quoted.

    A quoted word is always a value, never a keyword: ``"server"`` is the
    string server, not the directive.
    """

    text: str
    line: int
    column: int
    quoted: bool = False


@dataclass(frozen=True, slots=True)
class Line:
    """The words of one non-blank line, in order, and the line's 1-based number."""

    number: int
    tokens: tuple[Token, ...]


def tokenize(text: str, filename: str, errors: list[ConfigError] | None = None) -> tuple[Line, ...]:
    """Return the non-blank lines of ntp.conf ``text``; ``filename`` names it in errors.

    Raises :class:`ConfigError` ("FILE:LINE: ...") for an unterminated or
    misplaced quote and for control characters; with an ``errors`` list, such
    a line's error is appended to it instead and the line left out.
    """
    if text.startswith(_BOM):
        text = text[1:]
    # a file whose lines end in a bare CR (classic Mac OS) has no LF at all: its CRs end its lines
    mac = "\n" not in text and text.endswith("\r") and "\r" in text.rstrip("\r")
    ends = "\r" if mac else "\n"
    lines = []
    for number, raw in enumerate(text.split(ends), start=1):
        try:
            tokens = _tokenize_line(raw, Location(filename, number))
        except ConfigError as e:
            if errors is None:
                raise
            errors.append(e)
            continue
        if tokens:
            lines.append(Line(number, tokens))
    return tuple(lines)


def _tokenize_line(raw: str, where: Location) -> tuple[Token, ...]:
    """The words of one line (without its ``\\n``)."""
    tokens: list[Token] = []
    i, end = 0, len(raw)
    while i < end:
        ch = raw[i]
        if ch in _SPACE:
            i += 1
        elif ch == "#":
            break
        elif ch == '"':
            token, i = _quoted(raw, i, where)
            tokens.append(token)
        else:
            token, i = _word(raw, i, where)
            tokens.append(token)
    return tuple(tokens)


def _quoted(raw: str, start: int, where: Location) -> tuple[Token, int]:
    """The quoted word opening at ``raw[start]``, and the index just after it."""
    close = raw.find('"', start + 1)
    if close < 0:
        raise ConfigError(f"unterminated quoted string (opened at column {start + 1})", where)
    text = raw[start + 1 : close]
    _check_controls(text, where)
    after = close + 1
    if after < len(raw) and raw[after] not in _SPACE and raw[after] != "#":
        raise ConfigError(f"a space must follow the closing quote (column {close + 1})", where)
    return Token(text, where.line, start + 1, quoted=True), after


def _word(raw: str, start: int, where: Location) -> tuple[Token, int]:
    """The unquoted word starting at ``raw[start]``, and the index just after it."""
    i = start
    while i < len(raw) and raw[i] not in _SPACE and raw[i] != "#":
        if raw[i] == '"':
            raise ConfigError(f"unexpected '\"' inside a word (column {i + 1})", where)
        i += 1
    text = raw[start:i]
    _check_controls(text, where)
    return Token(text, where.line, start + 1), i


def _check_controls(text: str, where: Location) -> None:
    """Refuse control characters (other than whitespace, which only a quoted word holds) in a word, and the
    octets that were not UTF-8 (lone surrogates, as ``surrogateescape`` decoding leaves them)."""
    for ch in text:
        if 0xDC80 <= ord(ch) <= 0xDCFF:
            raise ConfigError(f"byte 0x{ord(ch) - 0xDC00:02X} is not UTF-8 (outside a comment)", where)
        if (ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0) and ch not in _SPACE:
            raise ConfigError(f"control character U+{ord(ch):04X} in a word", where)
        if ch == "\u00a0":
            raise ConfigError("a no-break space (U+00A0) in a word: use an ordinary space", where)
