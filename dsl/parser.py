"""Stage 1: policy text -> `Module` AST (syntax only; meaning is checked in `validate`)."""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterator
from functools import lru_cache
from importlib import resources
from typing import Any

from lark import Lark, Token, Tree, UnexpectedInput
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedToken
from lark.lexer import Lexer

from . import ast
from .errors import Diagnostic, PolicyError, SourceLines
from .gcpause import gc_paused
from .literals import is_unicode


@lru_cache(maxsize=1)
def _grammar() -> str:
    return resources.files(__package__).joinpath("grammar.lark").read_text("utf-8")


class _FastLexer(Lexer):
    """The grammar's tokens by one regular expression, for valid policies.

    It makes the tokens lark's contextual lexer makes: a word is the keyword, or the path
    root, that the parser's state accepts, else a NAME. A file it cannot take through is
    parsed again with lark's own lexer, whose errors are the ones reported (`_parse_uncached`),
    so its only duty is to agree with that lexer on valid text (a test holds it to that).
    """

    __future_interface__ = 2
    _SCAN = re.compile(r"""
        (?=(?P<skip>(?:[ \t\f\r\n]|\#[^\n]*)*))(?P=skip)  # (atomic: never backtracked into)
        (?:(?P<STRING>"(?:[^"\\\n]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*")
         | (?P<NUMBER>-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)
         | (?P<word>[A-Za-z_][A-Za-z0-9_\-]*)
         | (?P<COMPARE>==|!=|<=|>=|<|>)
         | (?P<sign>[][(){},:=.*])
         | \Z)
    """, re.VERBOSE)
    _ROOTS = frozenset(("subject", "action", "resource", "context", "caller", "elevation",
                        "data"))

    def __init__(self, conf: Any) -> None:
        self.keywords: dict[str, str] = {}  # keyword or sign text -> its terminal's name
        for terminal in conf.terminals:
            if terminal.pattern.type == "str":  # (a plain str: lark's names are Tokens,
                self.keywords[terminal.pattern.value] = str(terminal.name)  # slower keys)

    def lex(self, lexer_state: Any, parser_state: Any) -> Iterator[Token]:
        text = lexer_state.text.text
        states = parser_state.parse_conf.parse_table.states
        keywords, roots, scan = self.keywords, self._ROOTS, self._SCAN.match
        pos, end, line, line_start = 0, len(text), 1, 0
        while True:
            found = scan(text, pos)  # the blanks and comments before a token, and the token
            if found is None:
                raise _NotLexed()
            skipped = found.group("skip")
            if skipped:
                newlines = skipped.count("\n")
                if newlines:
                    line += newlines
                    line_start = pos + skipped.rindex("\n") + 1
                pos += len(skipped)
            if pos == end:
                return
            kind, value = found.lastgroup, text[pos:found.end()]
            if kind == "word":
                accepts = states[parser_state.position]
                kind = keywords.get(value, "NAME")
                if kind not in accepts or kind == "NAME":  # (a root outranks a name)
                    kind = "ROOT" if value in roots and "ROOT" in accepts else "NAME"
            elif kind == "sign":
                kind = keywords[value]
            column = pos - line_start + 1
            pos = found.end()
            yield Token(kind, value, pos - len(value), line, column, line,
                        column + len(value), pos)


class _NotLexed(Exception):
    """Text the fast lexer has no token for: lark's own lexer reports it."""


@lru_cache(maxsize=1)
def _parser() -> tuple[Lark, Lark, _Build]:
    """The LALR parser, building the AST while it parses (no parse tree), with the fast lexer;
    the same with lark's contextual lexer (for files the fast one cannot take); their builder.

    `keep_all_tokens` hands the builder every token, keywords and brackets included, so each
    node's span runs from its first token to its last, as lark's `propagate_positions` would
    place it (at twice the cost).
    """
    build = _Build()
    options: dict[str, Any] = {"parser": "lalr", "keep_all_tokens": True,
                               "maybe_placeholders": True, "transformer": build}
    return (Lark(_grammar(), lexer=_FastLexer, **options), Lark(_grammar(), **options),
            build)


@lru_cache(maxsize=1)
def _tree_parser() -> Lark:
    """A parser that builds a positioned parse tree, for files the builder stopped early on
    (a too-deep condition, a literal with no value): a later syntax error is then reported
    first, and the too-deep node is located in the tree."""
    return Lark(_grammar(), parser="lalr", propagate_positions=True, maybe_placeholders=True)


MAX_DEPTH = 200  # nesting of declarations and conditions; deeper is `expression_too_deep`
# A condition's expression starts 4 levels down (start, layer, rule, condition), so one whose
# parse tree is more than this tall reaches past MAX_DEPTH.
_MAX_EXPR_HEIGHT = MAX_DEPTH - 3

PARSED_FILES_KEPT = 1024  # parsed modules kept by (source, text): a reload skips unchanged files
_PARSING = threading.Lock()  # the one builder keeps per-file state while lark drives it


def _unlock_after_fork() -> None:
    """A process forked while another thread was parsing inherits the lock held by a thread
    that does not exist in it: give the child a free lock (each parse resets the builder)."""
    global _PARSING
    _PARSING = threading.Lock()


os.register_at_fork(after_in_child=_unlock_after_fork)


def parse_module(text: str, source: str = "<policy>") -> ast.Module:
    """Parse one policy file. Raises `PolicyError` with a coded syntax diagnostic.

    The AST is immutable, so a file parsed before with the same name and text is returned from
    a cache: reloading a large policy re-parses only the files that changed.
    """
    return _parse_cached(text, source)


@lru_cache(maxsize=PARSED_FILES_KEPT)
def _parse_cached(text: str, source: str) -> ast.Module:  # failures raise, so are not kept
    with gc_paused():
        return _parse_uncached(text, source)


def _parse_uncached(text: str, source: str) -> ast.Module:
    lines = SourceLines()
    fast, parser, build = _parser()
    with _PARSING:
        build.start_file(source)
        try:
            try:
                return fast.parse(text)
            except (UnexpectedInput, _NotLexed):  # parsed again: lark's lexer reports it
                build.start_file(source)
            return parser.parse(text)
        except UnexpectedInput as exc:
            lines.add(source, text)
            raise PolicyError([_syntax_diagnostic(exc, source, lines)]) from None
        except (_TooDeep, _BadLiteral) as exc:
            problem = exc
        finally:
            build.reset()
    # The builder stopped there, before lark had read the rest of the file: a syntax error
    # further on is still reported first, as it would be in any other file.
    lines.add(source, text)
    try:
        tree = _tree_parser().parse(text)
    except UnexpectedInput as exc:
        raise PolicyError([_syntax_diagnostic(exc, source, lines)]) from None
    if isinstance(problem, _BadLiteral):
        token = problem.token
        span = ast.Span(source, token.line, token.column, token.end_line, token.end_column)
        raise PolicyError([lines.diagnostic("invalid_literal", problem.message, span)])
    meta = _too_deep_meta(tree)
    span = ast.Span(source, meta.line, meta.column, meta.end_line, meta.end_column)
    raise PolicyError([lines.diagnostic(
        "expression_too_deep", f"conditions nest more than {MAX_DEPTH} levels deep; "
        "split the rule or use a constant list with `in`", span)])


def _too_deep_meta(tree: Tree) -> Any:
    """The position of the node a depth-first walk (last child first) meets first beyond
    MAX_DEPTH: the last of the nodes at depth MAX_DEPTH + 1."""
    pending: list[tuple[Tree, int]] = [(tree, 0)]
    while pending:
        node, depth = pending.pop()
        if depth > MAX_DEPTH:
            return node.meta
        pending.extend((c, depth + 1) for c in node.children if isinstance(c, Tree))
    raise AssertionError("no node is nested deeper than MAX_DEPTH")


class _TooDeep(Exception):
    """A condition nests deeper than MAX_DEPTH (located afterwards, by `_too_deep_meta`)."""


class _BadLiteral(Exception):
    """A token the grammar accepts but that holds no valid value."""

    def __init__(self, token: Token, message: str) -> None:
        self.token, self.message = token, message


def _syntax_diagnostic(exc: UnexpectedInput, source: str, lines: SourceLines) -> Diagnostic:
    line = getattr(exc, "line", 0) or 0
    column = getattr(exc, "column", 0) or 0
    if isinstance(exc, UnexpectedEOF) or (
        isinstance(exc, UnexpectedToken) and exc.token.type == "$END"
    ):
        line_count = max(lines.count(source), 1)
        last_line = lines.line(ast.Span(source, line_count, 1))
        span = ast.Span(source, line_count, len(last_line) + 1)
        return lines.diagnostic(
            "unexpected_end", "the file ends in the middle of a declaration", span)
    span = ast.Span(source, line, column)
    if isinstance(exc, UnexpectedCharacters):
        char = exc.char
        text_line = lines.line(span)
        following = text_line[column:column + 1] if column <= len(text_line) else ""
        if char in "&|" or (char == "!" and following != "="):
            return lines.diagnostic(
                "c_style_operator", f"`{char}` is not an operator here; use `and`, `or`, `not`",
                span)
        if char == '"':
            return lines.diagnostic("unexpected_character", "unterminated string (a string "
                                    "ends with `\"` on the same line)", span)
        return lines.diagnostic("unexpected_character", f"unexpected character `{char}`", span)
    assert isinstance(exc, UnexpectedToken)
    token = exc.token
    if token.type == "EQUAL" and "COMPARE" in exc.expected:
        return lines.diagnostic("single_equals", "`=` is assignment; compare with `==`", span)
    expected = ", ".join(sorted(_describe(name) for name in exc.expected)[:8])
    return lines.diagnostic(
        "unexpected_token", f"unexpected `{token}`; expected one of: {expected}", span)


_TOKEN_NAMES = {
    "LBRACE": "{", "RBRACE": "}", "LSQB": "[", "RSQB": "]", "LPAR": "(", "RPAR": ")",
    "COMMA": ",", "COLON": ":", "DOT": ".", "STAR": "*", "EQUAL": "=", "NAME": "a name",
    "STRING": "a string", "NUMBER": "a number", "COMPARE": "a comparison", "ROOT": "a path",
}


def _describe(terminal: str) -> str:
    if terminal in _TOKEN_NAMES:
        return _TOKEN_NAMES[terminal]
    return terminal.lower()


class _RuleDraft:
    """A rule before its layer gives it an id."""

    def __init__(self, name: str | None, effect: str, actions: ast.Targets,
                 resources: ast.Targets, condition: ast.Expr | None, span: ast.Span) -> None:
        self.name, self.effect, self.condition, self.span = name, effect, condition, span
        self.actions, self.resources = actions, resources


class _Part:
    """A value with no span of its own (a name, a tuple, an expression in parentheses) and the
    text it takes up, which its parent's span reaches to."""

    __slots__ = ("span", "value")

    def __init__(self, value: Any, span: ast.Span) -> None:
        self.value, self.span = value, span


def _expr(item: Any) -> Any:
    """An expression, out of the parentheses it may have been written in."""
    return item.value if type(item) is _Part else item


class _Build:
    """Builds frozen AST nodes as lark reduces each grammar rule: no parse tree is made.

    Each method is named after a grammar rule (or alias) and gets every child, tokens included
    (None for an absent optional part). A node's span runs from its first child to its last;
    for an expression in parentheses, the parentheses count (a `_Part` carries them).
    """

    def __init__(self) -> None:
        self.source = ""
        # Parse-tree height of each expression node (by id) while its file is parsed: a
        # condition taller than _MAX_EXPR_HEIGHT is `expression_too_deep`.
        self.heights: dict[int, int] = {}

    def start_file(self, source: str) -> None:
        self.source = source
        self.heights.clear()

    def reset(self) -> None:
        """Forget the last file (its name and the heights of its nodes)."""
        self.start_file("")

    def _span(self, children: list[Any]) -> ast.Span:
        first, k = children[0], 0
        while first is None:
            k += 1
            first = children[k]
        last, k = children[-1], -1
        while last is None:
            k -= 1
            last = children[k]
        if type(first) is Token:
            line, column = first.line, first.column
        else:
            line, column = first.span.line, first.span.column
        if type(last) is Token:
            return ast.Span(self.source, line, column, last.end_line, last.end_column)
        return ast.Span(self.source, line, column, last.span.end_line, last.span.end_column)

    def _node(self, node: Any, height: int) -> Any:
        self.heights[id(node)] = height
        return node

    def _height(self, *items: Any) -> int:
        """One more than the tallest of these expressions (or path steps)."""
        heights = self.heights
        return 1 + max((heights[id(item)] for item in items), default=0)

    # -- declarations
    def start(self, items: list[Any]) -> ast.Module:
        return ast.Module(
            source=self.source,
            consts=tuple(i for i in items if isinstance(i, ast.Const)),
            roles=tuple(i for i in items if isinstance(i, ast.Role)),
            layers=tuple(i for i in items if isinstance(i, ast.Layer)),
            orders=tuple(i for i in items if isinstance(i, ast.LayerOrder)),
        )

    def const_decl(self, children: list[Any]) -> ast.Const:
        return ast.Const(str(children[1]), children[3], self._span(children))

    def order_decl(self, children: list[Any]) -> ast.LayerOrder:
        names = tuple(str(c) for c in children[2:-1] if c.type == "NAME")
        return ast.LayerOrder(names, self._span(children))

    def role_decl(self, children: list[Any]) -> ast.Role:
        parents = children[2].value if children[2] is not None else ()
        return ast.Role(str(children[1]), parents, tuple(children[4:-1]), self._span(children))

    def extends(self, children: list[Any]) -> _Part:
        return _Part(tuple(str(c) for c in children[1:] if c.type == "NAME"),
                     self._span(children))

    def grant(self, children: list[Any]) -> ast.Grant:
        return ast.Grant(children[0], children[2], self._span(children))

    def layer_decl(self, children: list[Any]) -> ast.Layer:
        layer_name = str(children[1])
        description = children[2].value if children[2] is not None else None
        controls = children[3].value if children[3] is not None else ()
        rules = tuple(
            ast.Rule(
                id=f"{layer_name}.{draft.name or position}",
                effect=draft.effect,
                actions=draft.actions,
                resources=draft.resources,
                condition=draft.condition,
                named=draft.name is not None,
                span=draft.span,
            )
            for position, draft in enumerate(children[5:-1], start=1)
        )
        return ast.Layer(layer_name, description, controls, rules, self._span(children))

    def description(self, children: list[Token]) -> _Part:
        return _Part(_string(children[0]), self._span(children))

    def controls(self, children: list[Token]) -> _Part:
        return _Part(tuple(_string(c) for c in children[1:] if c.type == "STRING"),
                     self._span(children))

    def rule(self, children: list[Any]) -> _RuleDraft:
        name, effect, actions, _, resources_, condition = children
        return _RuleDraft(name.value if name is not None else None, effect.value, actions,
                          resources_, condition.value if condition is not None else None,
                          self._span(children))

    def rule_name(self, children: list[Token]) -> _Part:
        return _Part(str(children[0]), self._span(children))

    def allow(self, children: list[Token]) -> _Part:
        return _Part("allow", self._span(children))

    def deny(self, children: list[Token]) -> _Part:
        return _Part("deny", self._span(children))

    def condition(self, children: list[Any]) -> _Part:
        expr = _expr(children[1])
        if self.heights[id(expr)] > _MAX_EXPR_HEIGHT:
            raise _TooDeep
        return _Part(expr, self._span(children))

    def any_target(self, children: list[Token]) -> ast.Targets:
        return ast.Targets(None, self._span(children))

    def one_target(self, children: list[Token]) -> ast.Targets:
        return ast.Targets((_target(children[0]),), self._span(children))

    def target_list(self, children: list[Token]) -> ast.Targets:
        names = tuple(_target(c) for c in children[1:-1] if c.type in ("NAME", "STRING"))
        return ast.Targets(names, self._span(children))

    # -- expressions
    def operand(self, children: list[Any]) -> _Part:
        """`( expr )`: the expression itself, spanning its parentheses for its parent."""
        return _Part(_expr(children[1]), self._span(children))

    def or_(self, children: list[Any]) -> ast.Or:
        left, right = _expr(children[0]), _expr(children[2])
        return self._node(ast.Or(left, right, self._span(children)),
                          self._height(left, right))

    def and_(self, children: list[Any]) -> ast.And:
        left, right = _expr(children[0]), _expr(children[2])
        return self._node(ast.And(left, right, self._span(children)),
                          self._height(left, right))

    def not_(self, children: list[Any]) -> ast.Not:
        operand = _expr(children[1])
        return self._node(ast.Not(operand, self._span(children)), self._height(operand))

    def compare(self, children: list[Any]) -> ast.Compare:
        left, right = _expr(children[0]), _expr(children[2])
        return self._node(ast.Compare(str(children[1]), left, right, self._span(children)),
                          self._height(left, right))

    def in_(self, children: list[Any]) -> ast.Membership:
        item, container = _expr(children[0]), _expr(children[2])
        return self._node(ast.Membership(item, container, span=self._span(children)),
                          self._height(item, container))

    def not_in(self, children: list[Any]) -> ast.Membership:
        item, container = _expr(children[0]), _expr(children[3])
        return self._node(ast.Membership(item, container, negated=True,
                                         span=self._span(children)),
                          self._height(item, container))

    def contains(self, children: list[Any]) -> ast.Membership:
        container, item = _expr(children[0]), _expr(children[2])
        return self._node(ast.Membership(item, container, written_as_contains=True,
                                         span=self._span(children)),
                          self._height(item, container))

    def const_ref(self, children: list[Token]) -> ast.ConstRef:
        return self._node(ast.ConstRef(str(children[0]), self._span(children)), 1)

    def call(self, children: list[Any]) -> ast.Call:
        args = tuple(_expr(c) for c in children[2:-1] if c is not None and type(c) is not Token)
        return self._node(ast.Call(str(children[0]), args, self._span(children)),
                          self._height(*args))

    def now(self, children: list[Token]) -> ast.Now:
        return self._node(ast.Now(self._span(children)), 1)

    def path(self, children: list[Any]) -> ast.Path:
        steps = tuple(children[1:])
        return self._node(ast.Path(str(children[0]), steps, self._span(children)),
                          self._height(*steps))

    def field(self, children: list[Token]) -> ast.Field:
        return self._node(ast.Field(str(children[1]), self._span(children)), 1)

    def index(self, children: list[Any]) -> ast.Index:
        key = _expr(children[1])
        return self._node(ast.Index(key, self._span(children)), self._height(key))

    def list_lit(self, children: list[Any]) -> ast.ListLiteral:
        items = tuple(c for c in children[1:-1] if c is not None and type(c) is not Token)
        return self._node(ast.ListLiteral(items, self._span(children)), 2 if items else 1)

    def string(self, children: list[Token]) -> ast.Literal:
        return self._node(ast.Literal(_string(children[0]), self._span(children)), 1)

    def number(self, children: list[Token]) -> ast.Literal:
        text = str(children[0])
        try:
            value: int | float = float(text) if any(c in text for c in ".eE") else int(text)
        except ValueError:  # Python reads at most 4,300 digits as an int
            raise _BadLiteral(children[0],
                              f"number with {len(text):,} digits is too long") from None
        return self._node(ast.Literal(value, self._span(children)), 1)

    def true(self, children: list[Token]) -> ast.Literal:
        return self._node(ast.Literal(True, self._span(children)), 1)

    def false(self, children: list[Token]) -> ast.Literal:
        return self._node(ast.Literal(False, self._span(children)), 1)


def _string(token: Token) -> str:
    """The value of a STRING token: JSON string syntax, valid Unicode only."""
    try:
        value = json.loads(str(token))
    except json.JSONDecodeError:  # the grammar lets raw control characters through
        raise _BadLiteral(token, "a string may not hold a raw control character (such as a "
                          "tab); write it as an escape: `\\t`, `\\u0001`") from None
    if not is_unicode(value):
        raise _BadLiteral(token, "a `\\u` escape names half of a surrogate pair; write the "
                          "character itself, or both halves")
    return value


def _target(token: Token) -> str:
    return _string(token) if token.type == "STRING" else str(token)
