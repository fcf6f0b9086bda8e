"""Device tags and the tag expressions that target them (remote config, rollouts).

A tag is a word, optionally ``name:value`` (``zone:north``, ``model:old``, ``pilot``). An
expression combines tags with ``and``, ``or``, ``not`` and parentheses, ``not`` binding tightest
and ``and`` before ``or``::

    zone:north and not model:old
    (zone:north or zone:south) and pilot

:func:`parse` is a small recursive-descent parser over the grammar::

    expr := term ("or" term)*
    term := factor ("and" factor)*
    factor := "not" factor | "(" expr ")" | TAG

and raises :class:`TagSyntaxError` naming the 1-based character position of the problem, so an
API can answer 422 with it. A parsed :class:`Expr` tells whether a device's tag set matches.
"""

from __future__ import annotations

import re
from collections.abc import Set
from dataclasses import dataclass

from edgecascade.cloud.errors import TagSyntaxError
from edgecascade.shared.fields import TAG_PATTERN

__all__ = ["Expr", "TagSyntaxError", "check_tag", "parse"]
KEYWORDS = frozenset({"and", "or", "not"})
MAX_EXPRESSION = 1024  # characters
MAX_DEPTH = 32  # nested parentheses and nots: a pathological expression fails clearly
_TOKEN = re.compile(r"\s*(?:(?P<paren>[()])|(?P<word>[A-Za-z0-9_.:-]+)|(?P<bad>\S))")
_TAG = re.compile(TAG_PATTERN)


def check_tag(tag: str) -> str:
    """``tag`` if it is a valid tag; :class:`ValueError` naming it otherwise."""
    if not _TAG.match(tag) or tag in KEYWORDS:
        raise ValueError(
            f"tag {tag!r} is not valid: a word or name:value of letters, digits, '_', '.', '-' "
            "(at most 64 each), and not one of and/or/not"
        )
    return tag


@dataclass(frozen=True, slots=True)
class Expr:
    """A parsed expression: ``op`` is tag, not, and, or."""

    op: str
    tag: str = ""
    args: tuple[Expr, ...] = ()

    def matches(self, tags: Set[str]) -> bool:
        if self.op == "tag":
            return self.tag in tags
        if self.op == "not":
            return not self.args[0].matches(tags)
        if self.op == "and":
            return all(arg.matches(tags) for arg in self.args)
        return any(arg.matches(tags) for arg in self.args)


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # paren, word, end
    text: str
    position: int  # 1-based


def _tokens(expression: str) -> list[_Token]:
    out: list[_Token] = []
    at = 0
    while at < len(expression):
        match = _TOKEN.match(expression, at)
        if match is None:  # only trailing whitespace is left
            break
        kind = match.lastgroup or "bad"
        start = match.start(kind) + 1
        if kind == "bad":
            raise TagSyntaxError(expression, start, f"unexpected character {match.group(kind)!r}")
        out.append(_Token(kind, match.group(kind), start))
        at = match.end()
    out.append(_Token("end", "", len(expression) + 1))
    return out


class _Parser:
    def __init__(self, expression: str) -> None:
        self.expression = expression
        self.tokens = _tokens(expression)
        self.at = 0
        self.depth = 0

    def peek(self) -> _Token:
        return self.tokens[self.at]

    def fail(self, token: _Token, expected: str) -> TagSyntaxError:
        found = "the end" if token.kind == "end" else repr(token.text)
        return TagSyntaxError(
            self.expression, token.position, f"expected {expected}, found {found}"
        )

    def expr(self) -> Expr:
        args = [self.term()]
        while self.peek().text == "or":
            self.at += 1
            args.append(self.term())
        return args[0] if len(args) == 1 else Expr("or", args=tuple(args))

    def term(self) -> Expr:
        args = [self.factor()]
        while self.peek().text == "and":
            self.at += 1
            args.append(self.factor())
        return args[0] if len(args) == 1 else Expr("and", args=tuple(args))

    def factor(self) -> Expr:
        token = self.peek()
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise TagSyntaxError(self.expression, token.position, "nested too deeply")
        try:
            if token.text == "not":
                self.at += 1
                return Expr("not", args=(self.factor(),))
            if token.text == "(":
                self.at += 1
                inner = self.expr()
                if self.peek().text != ")":
                    raise self.fail(self.peek(), "')'")
                self.at += 1
                return inner
            if token.kind == "word" and token.text not in KEYWORDS:
                try:
                    check_tag(token.text)
                except ValueError as exc:
                    raise TagSyntaxError(self.expression, token.position, str(exc)) from None
                self.at += 1
                return Expr("tag", tag=token.text)
            raise self.fail(token, "a tag, 'not' or '('")
        finally:
            self.depth -= 1


def parse(expression: str) -> Expr:
    """The parsed expression; :class:`TagSyntaxError` (with the position) when it does not
    parse."""
    if len(expression) > MAX_EXPRESSION:
        raise TagSyntaxError(expression[:40] + "...", MAX_EXPRESSION + 1, "expression too long")
    parser = _Parser(expression)
    tree = parser.expr()
    if parser.peek().kind != "end":
        raise parser.fail(parser.peek(), "'and', 'or' or the end")
    return tree
