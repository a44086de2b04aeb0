"""Stage 1: policy text -> `Module` AST (syntax only; meaning is checked in `validate`)."""

from __future__ import annotations

import json
import os
import re
import threading
from functools import lru_cache
from importlib import resources
from typing import Any, NamedTuple

from lark import Lark, Token, Tree, UnexpectedInput
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedToken
from lark.parse_tree_builder import ExpandSingleChild
from lark.parsers.lalr_analysis import Reduce, Shift

from . import ast
from .errors import Diagnostic, PolicyError, SourceLines
from .gcpause import gc_paused
from .literals import is_unicode


@lru_cache(maxsize=1)
def _grammar() -> str:
    return resources.files(__package__).joinpath("grammar.lark").read_text("utf-8")


class _Token(NamedTuple):
    """A token as the fast parser makes it: lark's `Token` fields, as a tuple (a lark `Token`
    is a `str` made by Python code, several times slower to make)."""

    type: str
    value: str
    line: int
    column: int
    end_line: int  # (= line: no token holds a line break)
    end_column: int


TOKENS = (Token, _Token)  # what the builder may be handed as a token, by either parser
AnyToken = Token | _Token
_new_span = tuple.__new__


class _FastParser:
    """The LALR parser lark builds for the grammar, run by a loop of our own that lexes too.

    It runs lark's parse table and calls lark's callbacks (which call the builder) exactly as
    lark's own loop does, and makes the tokens lark's contextual lexer makes: a word is the
    keyword, or the path root, that the parser's state accepts, else a NAME. Text it cannot
    take through (`_NotFast`) is parsed again by lark (`_parse_uncached`), whose errors are
    the ones reported, so its only duty is to agree with lark on valid text (a test holds it
    to that). Lark's loop costs several times more per token: it hashes grammar objects on
    every reduction and makes each token by Python code.
    """

    # Every match is the blanks and comments before a token, then the token by its kind, or
    # one character no token starts with (`bad`), or the end of the text: so the matches
    # cover the text, each character once, and blanks are never scanned twice.
    _SCAN = re.compile(r"""
        ((?:[ \t\f\r\n]|\#[^\n]*)*)
        (?:("(?:[^"\\\n]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*")        # STRING
         | (-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)     # NUMBER
         | ([A-Za-z_][A-Za-z0-9_\-]*)                                # a word
         | (==|!=|<=|>=|<|>|[][(){},:=.*])                           # a sign
         | ([^ \t\f\r\n#])                                          # bad
         | \Z)
    """, re.VERBOSE)
    _ROOTS = frozenset(("subject", "action", "resource", "context", "caller", "elevation",
                        "data"))

    def __init__(self, lark: Lark) -> None:
        self.keywords: dict[str, str] = {}  # keyword or sign text -> its terminal's name
        for terminal in lark.terminals:
            if terminal.pattern.type == "str":
                self.keywords[terminal.pattern.value] = str(terminal.name)
        parser = lark.parser.parser.parser  # (lark's LALR loop, holding table and callbacks)
        table, callbacks = parser.parse_table, parser.callbacks
        if any(isinstance(key, str) for key in callbacks):
            raise TypeError("the fast parser does not call callbacks on tokens")
        # Per state: symbol -> the state to shift to (>= 0) or ~the reduction to make (< 0).
        # Keys are plain str (lark's are Tokens, slower to look up).
        rules = sorted({arg for row in table.states.values()
                        for action, arg in row.values() if action is Reduce}, key=str)
        rule_number = {rule: k for k, rule in enumerate(rules)}
        self.actions: list[dict[str, int]] = [{} for _ in range(len(table.states))]
        for state, row in table.states.items():
            self.actions[state] = {str(symbol): (arg if action is Shift else ~rule_number[arg])
                                   for symbol, (action, arg) in row.items()}
        # A rule that passes its one child up (`?expr: and_expr`) has no callback to call.
        self.reductions = [(len(rule.expansion), str(rule.origin.name),
                            None if len(rule.expansion) == 1
                            and type(callbacks[rule]) is ExpandSingleChild else callbacks[rule])
                           for rule in rules]
        self.start, self.end = table.start_states["start"], table.end_states["start"]

    def parse(self, text: str) -> Any:
        """The builder's value for the whole text; raises `_NotFast` where lark must look."""
        actions, reductions, end_state = self.actions, self.reductions, self.end
        keywords, roots, new_token = self.keywords, self._ROOTS, tuple.__new__
        state = self.start
        states, values = [state], []
        pos, line, line_start = 0, 1, 0
        for skipped, string, number, word, sign, bad in self._SCAN.findall(text):
            if skipped:
                newlines = skipped.count("\n")
                if newlines:
                    line += newlines
                    line_start = pos + skipped.rindex("\n") + 1
                pos += len(skipped)
            if word:
                value, accepts = word, actions[state]
                kind = keywords.get(word, "NAME")
                if kind not in accepts or kind == "NAME":  # (a root outranks a name)
                    kind = "ROOT" if word in roots and "ROOT" in accepts else "NAME"
            elif sign:
                value, kind = sign, keywords.get(sign, "COMPARE")
            elif string:
                value, kind = string, "STRING"
            elif number:
                value, kind = number, "NUMBER"
            elif bad:
                raise _NotFast
            else:
                value, kind = "", "$END"
            column = pos - line_start + 1
            pos += len(value)
            action = actions[state].get(kind)
            while action is not None and action < 0:  # reduce, as often as the token makes
                size, origin, callback = reductions[~action]
                if callback is None:
                    state = states[-1] = actions[states[-2]][origin]
                    action = actions[state].get(kind)
                    continue
                if size:
                    children = values[-size:]
                    del values[-size:], states[-size:]
                else:
                    children = []
                values.append(callback(children))
                state = actions[states[-1]][origin]
                if state == end_state:
                    return values[-1]
                states.append(state)
                action = actions[state].get(kind)
            if action is None or not value:
                raise _NotFast
            state = action
            states.append(state)
            values.append(new_token(_Token, (kind, value, line, column, line,
                                             column + len(value))))
        raise _NotFast  # (the last match is the end of the text: not reached)


class _NotFast(Exception):
    """Text the fast parser has no token for, or that does not parse: lark reports it."""


@lru_cache(maxsize=1)
def _parser() -> tuple[_FastParser, Lark, _Build]:
    """The fast parser; lark's LALR parser with its contextual lexer, building the AST while
    it parses (no parse tree), for files the fast one cannot take; their builder.

    `keep_all_tokens` hands the builder every token, keywords and brackets included, so each
    node's span runs from its first token to its last, as lark's `propagate_positions` would
    place it (at twice the cost).
    """
    build = _Build()
    parser = Lark(_grammar(), parser="lalr", keep_all_tokens=True, maybe_placeholders=True,
                  transformer=build)
    return _FastParser(parser), parser, build


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
            except _NotFast:  # parsed again: lark reports it
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

    def __init__(self, token: AnyToken, message: str) -> None:
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

    def start_file(self, source: str) -> None:
        self.source = source

    def reset(self) -> None:
        """Forget the last file's name."""
        self.start_file("")

    def _span(self, children: list[Any]) -> ast.Span:
        first, last = children[0], children[-1]
        if first is None or last is None:  # (an optional part that is absent)
            present = [child for child in children if child is not None]
            first, last = present[0], present[-1]
        if type(first) not in TOKENS:
            first = first.span
        if type(last) not in TOKENS:
            last = last.span
        return _new_span(ast.Span, (self.source, first.line, first.column, last.end_line,
                                    last.end_column))

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
        return ast.Const(children[1].value, children[3], self._span(children))

    def order_decl(self, children: list[Any]) -> ast.LayerOrder:
        names = tuple(c.value for c in children[2:-1] if c.type == "NAME")
        return ast.LayerOrder(names, self._span(children))

    def role_decl(self, children: list[Any]) -> ast.Role:
        parents = children[2].value if children[2] is not None else ()
        return ast.Role(children[1].value, parents, tuple(children[4:-1]), self._span(children))

    def extends(self, children: list[Any]) -> _Part:
        return _Part(tuple(c.value for c in children[1:] if c.type == "NAME"),
                     self._span(children))

    def grant(self, children: list[Any]) -> ast.Grant:
        return ast.Grant(children[0], children[2], self._span(children))

    def layer_decl(self, children: list[Any]) -> ast.Layer:
        layer_name = children[1].value
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

    def description(self, children: list[AnyToken]) -> _Part:
        return _Part(_string(children[0]), self._span(children))

    def controls(self, children: list[AnyToken]) -> _Part:
        return _Part(tuple(_string(c) for c in children[1:] if c.type == "STRING"),
                     self._span(children))

    def rule(self, children: list[Any]) -> _RuleDraft:
        name, effect, actions, _, resources_, condition = children
        return _RuleDraft(name.value if name is not None else None, effect.value, actions,
                          resources_, condition.value if condition is not None else None,
                          self._span(children))

    def rule_name(self, children: list[AnyToken]) -> _Part:
        return _Part(children[0].value, self._span(children))

    def allow(self, children: list[AnyToken]) -> _Part:
        return _Part("allow", self._span(children))

    def deny(self, children: list[AnyToken]) -> _Part:
        return _Part("deny", self._span(children))

    def condition(self, children: list[Any]) -> _Part:
        expr = _expr(children[1])
        span = expr.span  # (each level of an expression takes at least one character)
        if (span.end_line != span.line or span.end_column - span.column > _MAX_EXPR_HEIGHT) \
                and _height(expr) > _MAX_EXPR_HEIGHT:
            raise _TooDeep
        return _Part(expr, self._span(children))

    def any_target(self, children: list[AnyToken]) -> ast.Targets:
        return ast.Targets(None, self._span(children))

    def one_target(self, children: list[AnyToken]) -> ast.Targets:
        return ast.Targets((_target(children[0]),), self._span(children))

    def target_list(self, children: list[AnyToken]) -> ast.Targets:
        names = tuple(_target(c) for c in children[1:-1] if c.type in ("NAME", "STRING"))
        return ast.Targets(names, self._span(children))

    # -- expressions
    def operand(self, children: list[Any]) -> _Part:
        """`( expr )`: the expression itself, spanning its parentheses for its parent."""
        return _Part(_expr(children[1]), self._span(children))

    def or_(self, children: list[Any]) -> ast.Or:
        return ast.Or(_expr(children[0]), _expr(children[2]), self._span(children))

    def and_(self, children: list[Any]) -> ast.And:
        return ast.And(_expr(children[0]), _expr(children[2]), self._span(children))

    def not_(self, children: list[Any]) -> ast.Not:
        return ast.Not(_expr(children[1]), self._span(children))

    def compare(self, children: list[Any]) -> ast.Compare:
        return ast.Compare(children[1].value, _expr(children[0]), _expr(children[2]),
                           self._span(children))

    def in_(self, children: list[Any]) -> ast.Membership:
        return ast.Membership(_expr(children[0]), _expr(children[2]), span=self._span(children))

    def not_in(self, children: list[Any]) -> ast.Membership:
        return ast.Membership(_expr(children[0]), _expr(children[3]), negated=True,
                              span=self._span(children))

    def contains(self, children: list[Any]) -> ast.Membership:
        return ast.Membership(_expr(children[2]), _expr(children[0]), written_as_contains=True,
                              span=self._span(children))

    def const_ref(self, children: list[AnyToken]) -> ast.ConstRef:
        return ast.ConstRef(children[0].value, self._span(children))

    def call(self, children: list[Any]) -> ast.Call:
        args = tuple(_expr(c) for c in children[2:-1] if c is not None and type(c) not in TOKENS)
        return ast.Call(children[0].value, args, self._span(children))

    def now(self, children: list[AnyToken]) -> ast.Now:
        return ast.Now(self._span(children))

    def path(self, children: list[Any]) -> ast.Path:
        return ast.Path(children[0].value, tuple(children[1:]), self._span(children))

    def field(self, children: list[AnyToken]) -> ast.Field:
        return ast.Field(children[1].value, self._span(children))

    def index(self, children: list[Any]) -> ast.Index:
        return ast.Index(_expr(children[1]), self._span(children))

    def list_lit(self, children: list[Any]) -> ast.ListLiteral:
        items = tuple(c for c in children[1:-1] if c is not None and type(c) not in TOKENS)
        return ast.ListLiteral(items, self._span(children))

    def string(self, children: list[AnyToken]) -> ast.Literal:
        return ast.Literal(_string(children[0]), self._span(children))

    def number(self, children: list[AnyToken]) -> ast.Literal:
        text = children[0].value
        try:
            value: int | float = float(text) if any(c in text for c in ".eE") else int(text)
        except ValueError:  # Python reads at most 4,300 digits as an int
            raise _BadLiteral(children[0],
                              f"number with {len(text):,} digits is too long") from None
        return ast.Literal(value, self._span(children))

    def true(self, children: list[AnyToken]) -> ast.Literal:
        return ast.Literal(True, self._span(children))

    def false(self, children: list[AnyToken]) -> ast.Literal:
        return ast.Literal(False, self._span(children))


def _height(expr: ast.Expr) -> int:
    """The height of an expression's parse tree: 1 for a leaf (a path step, a literal, an empty
    list; 2 for a list of literals), 1 more than its tallest part for any other node."""
    heights: dict[int, int] = {}  # (by id: every node is alive until the walk ends)
    pending: list[tuple[Any, bool]] = [(expr, False)]
    while pending:
        node, parts_done = pending.pop()
        parts = _parts(node)
        if parts and not parts_done:
            pending.append((node, True))
            pending.extend((part, False) for part in parts)
        else:
            heights[id(node)] = 1 + max((heights[id(part)] for part in parts), default=0)
    return heights[id(expr)]


def _parts(node: Any) -> tuple[Any, ...]:
    """The sub-expressions and path steps right under a node."""
    if isinstance(node, (ast.And, ast.Or, ast.Compare)):
        return node.left, node.right
    if isinstance(node, ast.Membership):
        return node.item, node.container
    if isinstance(node, ast.Not):
        return (node.operand,)
    if isinstance(node, ast.Index):
        return (node.key,)
    if isinstance(node, ast.Path):
        return node.steps
    if isinstance(node, ast.Call):
        return node.args
    if isinstance(node, ast.ListLiteral):
        return node.items
    return ()


# A string with no escape, control character or half of a surrogate pair: its value is its text.
_PLAIN_STRING = re.compile(r'"[^\x00-\x1f\\\ud800-\udfff]*"').fullmatch


def _string(token: AnyToken) -> str:
    """The value of a STRING token: JSON string syntax, valid Unicode only."""
    if _PLAIN_STRING(token.value):
        return token.value[1:-1]
    try:
        value = json.loads(token.value)
    except json.JSONDecodeError:  # the grammar lets raw control characters through
        raise _BadLiteral(token, "a string may not hold a raw control character (such as a "
                          "tab); write it as an escape: `\\t`, `\\u0001`") from None
    if not is_unicode(value):
        raise _BadLiteral(token, "a `\\u` escape names half of a surrogate pair; write the "
                          "character itself, or both halves")
    return value


def _target(token: AnyToken) -> str:
    return _string(token) if token.type == "STRING" else token.value
