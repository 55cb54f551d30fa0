"""Read a view's SQL file as exactly one query, and refuse anything else before it runs.

The file's text ends up inside ``CREATE MATERIALIZED VIEW ... AS <text> WITH DATA``. A
second statement after a ``;`` would run too (``SELECT 1; DROP TABLE t``), and a comment
after the final ``;`` would swallow the ``WITH DATA``. So the text is split into tokens
the way PostgreSQL's lexer does for the parts that matter here: quoted strings
(``'...'``, ``E'...'`` with backslash escapes), quoted identifiers, dollar-quoted strings,
``--`` and nested ``/* */`` comments, and the ``;`` and parentheses outside all of them.
Only a single ``SELECT`` (or ``WITH ... SELECT``, without data-modifying ``WITH``
queries) is accepted, optionally followed by ``;`` and comments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_DOLLAR_TAG = re.compile(r"\$([A-Za-z_\x80-\uffff][\w\x80-\uffff]*)?\$")
_WORD = re.compile(r"[A-Za-z_\x80-\uffff][\w$\x80-\uffff]*")
_WRITES = {"INSERT", "UPDATE", "DELETE", "MERGE"}
_MAIN_KEYWORDS = {"SELECT", "VALUES", "TABLE", *_WRITES}


class SqlFileError(ValueError):
    """The file is not one query; the message says what was found, without the path."""


@dataclass(frozen=True)
class Token:
    kind: str  # "word", "punct" (one character), "string", "identifier"
    text: str
    start: int
    depth: int  # parentheses open around it


def tokenize(text: str) -> list[Token]:
    """Tokens outside comments; raises ``SqlFileError`` on an unterminated quote or comment."""
    tokens: list[Token] = []
    pos, depth, length = 0, 0, len(text)
    while pos < length:
        char = text[pos]
        if char.isspace():
            pos += 1
        elif text.startswith("--", pos):
            newline = text.find("\n", pos)
            pos = length if newline < 0 else newline + 1
        elif text.startswith("/*", pos):
            pos = _skip_block_comment(text, pos)
        elif char == "'" or (char in "eE" and text.startswith("'", pos + 1)):
            end = _skip_string(text, pos, backslashes=char != "'")
            tokens.append(Token("string", text[pos:end], pos, depth))
            pos = end
        elif char == '"':
            end = _skip_quoted(text, pos, '"')
            tokens.append(Token("identifier", text[pos:end], pos, depth))
            pos = end
        elif char == "$" and (match := _DOLLAR_TAG.match(text, pos)):
            closing = text.find(match.group(0), match.end())
            if closing < 0:
                raise SqlFileError(
                    f"a dollar-quoted string opened with {match.group(0)} never ends"
                )
            end = closing + len(match.group(0))
            tokens.append(Token("string", text[pos:end], pos, depth))
            pos = end
        elif match := _WORD.match(text, pos):
            tokens.append(Token("word", match.group(0), pos, depth))
            pos = match.end()
        else:
            if char == ")":
                depth = max(0, depth - 1)
            tokens.append(Token("punct", char, pos, depth))
            if char == "(":
                depth += 1
            pos += 1
    return tokens


def _skip_block_comment(text: str, pos: int) -> int:
    """PostgreSQL's ``/* */`` comments nest."""
    nesting, pos = 0, pos
    while pos < len(text):
        if text.startswith("/*", pos):
            nesting += 1
            pos += 2
        elif text.startswith("*/", pos):
            nesting -= 1
            pos += 2
            if nesting == 0:
                return pos
        else:
            pos += 1
    raise SqlFileError("a /* comment never ends")


def _skip_string(text: str, pos: int, *, backslashes: bool) -> int:
    quote = text.index("'", pos)
    if not backslashes:
        return _skip_quoted(text, quote, "'")
    pos = quote + 1
    while pos < len(text):
        if text[pos] == "\\" or text.startswith("''", pos):
            pos += 2
        elif text[pos] == "'":
            return pos + 1
        else:
            pos += 1
    raise SqlFileError("a quoted string never ends")


def _skip_quoted(text: str, pos: int, quote: str) -> int:
    """A quote doubled inside stands for itself."""
    pos += 1
    while True:
        end = text.find(quote, pos)
        if end < 0:
            kind = "quoted identifier" if quote == '"' else "quoted string"
            raise SqlFileError(f"a {kind} never ends")
        if text.startswith(quote * 2, end):
            pos = end + 2
            continue
        return end + 1


def single_query(text: str) -> str:
    """The file's one query, without the ``;`` and comments after it.

    Raises ``SqlFileError`` for an empty file, more than one statement, or a statement
    that is not a ``SELECT`` / ``WITH ... SELECT``.
    """
    tokens = tokenize(text)
    ends = [token for token in tokens if token.kind == "punct" and token.text == ";"]
    if ends:
        first_end = ends[0]
        after = [token for token in tokens if token.start > first_end.start and token not in ends]
        if after:
            raise SqlFileError(
                f"it holds more than one statement (another begins with {after[0].text!r} "
                "after the first ';')"
            )
        statement = [token for token in tokens if token.start < first_end.start]
        body = text[: first_end.start]
    else:
        statement, body = tokens, text
    if not statement:
        raise SqlFileError("it holds no query")
    for previous, token in zip(statement, statement[1:], strict=False):
        if previous.text == "(" and token.kind == "word" and token.text.upper() in _WRITES:
            raise SqlFileError(f"it holds a data-modifying statement ({token.text} in WITH)")
    keyword = _main_keyword(statement)
    if keyword != "SELECT":
        found = keyword or statement[0].text
        raise SqlFileError(f"its statement is {found!r}, not a SELECT (or WITH ... SELECT)")
    return body.strip()


def _main_keyword(statement: list[Token]) -> str | None:
    """The statement's kind: its first word, or after ``WITH`` the first top-level query
    keyword that is not a CTE's name (a name is followed by ``AS`` or a column list)."""
    words = [token for token in statement if token.kind == "word"]
    if not words:
        return None
    first = words[0].text.upper()
    if first != "WITH":
        return first
    depth = words[0].depth  # "(WITH ...)" is a query too
    for index, token in enumerate(statement):
        if token.kind != "word" or token.depth != depth or token.text.upper() not in _MAIN_KEYWORDS:
            continue
        following = statement[index + 1] if index + 1 < len(statement) else None
        if following is not None and (
            following.text == "(" or (following.kind == "word" and following.text.upper() == "AS")
        ):
            continue
        return token.text.upper()
    return None
