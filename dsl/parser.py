"""Stage 1: policy text -> `Module` AST (syntax only; meaning is checked in `validate`)."""

from __future__ import annotations

import os
import re
import threading
from functools import lru_cache, partial
from importlib import resources
from typing import Any, NamedTuple

from lark import Lark, Token, Tree, UnexpectedInput
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedToken
from lark.parse_tree_builder import (
    ChildFilterLALR,
    ChildFilterLALR_NoPlaceholders,
    ExpandSingleChild,
)
from lark.parsers.lalr_analysis import Reduce, Shift

from . import ast
from .errors import Diagnostic, ExtensionMissing, PolicyError, SourceLines
from .gcpause import gc_paused

try:
    from ._build import BadLiteral as _BadLiteral
    from ._build import Build
    from ._build import TooDeep as _TooDeep
    from ._lalr import Loop, Reduction
    from ._lalr import NotFast as _NotFast
except ImportError as exc:  # no slow parser in secret
    raise ExtensionMissing(
        f"the compiled parser (layergate.dsl._lalr, layergate.dsl._build) is not built ({exc}); "
        "reinstall with `pip install -e .` (a C compiler is needed)") from exc


@lru_cache(maxsize=1)
def _grammar() -> str:
    return resources.files(__package__).joinpath("grammar.lark").read_text("utf-8")


class _Token(NamedTuple):
    """A token as the fast parser makes it: lark's `Token` fields, as a tuple (a lark `Token`
    is a `str` made by Python code, several times slower to make). Its positions sit where a
    `Span` has them (items 1 to 4), so the parser reads where a token or a node starts and
    ends without asking which one it is."""

    type: str
    line: int
    column: int
    end_line: int  # (= line: no token holds a line break)
    end_column: int
    value: str


TOKENS = (Token, _Token)  # what the builder may be handed as a token, by either parser

# A child filter: per child kept (index, splice its items in, None to put before it), and
# the None to put after the last child (lark's `ChildFilterLALR`, as data).
_ChildFilter = tuple[tuple[tuple[int, bool, int], ...], int]


class _FastParser:
    """The LALR parser lark builds for the grammar, run by a loop of our own that lexes too.

    It runs lark's parse table, and makes the tokens lark's contextual lexer makes: a word is
    the keyword, or the path root, that the parser's state accepts, else a NAME. Each rule is
    reduced as lark's callbacks would reduce it, by a plan read from them once: the same
    children (tokens included, None for an absent optional part, the items of a `_rule` or a
    repetition spliced in) go to the same builder method, with the span from the first token
    to the last. A repetition's items are a plain list, not a lark `Tree`, and spans come from
    a stack of positions kept beside the values, so the builder never works them out.

    Text it cannot take through (`_NotFast`) is parsed again by lark (`_parse_uncached`),
    whose errors are the ones reported, so its only duty is to agree with lark on valid text
    (a test holds it to that). Lark's loop costs several times more per token: it hashes
    grammar objects on every reduction and makes each token by Python code.
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

    def __init__(self, lark: Lark, build: Build) -> None:
        self.build = build
        if any(hasattr(build, terminal.name) for terminal in lark.terminals):
            raise TypeError("the fast parser calls no builder method on a token")
        keywords = {str(terminal.pattern.value): str(terminal.name)  # (signs too)
                    for terminal in lark.terminals if terminal.pattern.type == "str"}
        parser = lark.parser.parser.parser  # (lark's LALR loop, holding table and callbacks)
        table = parser.parse_table
        # Per state: symbol -> the state to shift to (>= 0) or ~the reduction to make (< 0).
        # Keys are plain str (lark's are Tokens, slower to look up).
        rules = sorted({arg for row in table.states.values()
                        for action, arg in row.values() if action is Reduce}, key=str)
        rule_number = {rule: k for k, rule in enumerate(rules)}
        actions: list[dict[str, int]] = [{} for _ in range(len(table.states))]
        for state, row in table.states.items():
            actions[state] = {str(symbol): (arg if action is Shift else ~rule_number[arg])
                              for symbol, (action, arg) in row.items()}
        reductions = [self._plan(rule, parser.callbacks[rule]) for rule in rules]
        self.loop = Loop(actions, reductions, keywords, self._ROOTS, table.start_states["start"],
                         table.end_states["start"], self._SCAN, ast.Span, _Token)

    def _plan(self, rule: Any, callback: Any) -> tuple[int, str, int, _ChildFilter | None, Any]:
        """(size, rule name, how, child filter, builder method) for one rule, read from the
        callback lark made for it: an optional child filter (which children to keep, which
        to splice in, where an absent part puts None), around an optional pass-through of a
        lone child (`?rule`), around the builder's method or a `Tree` (a `_rule`)."""
        child_filter = None
        if isinstance(callback, ChildFilterLALR_NoPlaceholders):
            child_filter = tuple((i, splice, 0) for i, splice in callback.to_include), 0
            callback = callback.node_builder
        elif isinstance(callback, ChildFilterLALR):
            child_filter = tuple(callback.to_include), callback.append_none
            callback = callback.node_builder
        lone_child_passes = isinstance(callback, ExpandSingleChild)
        if lone_child_passes:
            callback = callback.node_builder
        size, origin = len(rule.expansion), str(rule.origin.name)
        if lone_child_passes and size == 1:
            return size, origin, Reduction.PASS, None, None
        if isinstance(callback, partial) and callback.func is Tree:
            if not origin.startswith("_") or lone_child_passes:
                raise TypeError(f"the builder has no method for {rule}")
            return size, origin, Reduction.FLAT, child_filter, None
        method = getattr(self.build, rule.alias or rule.options.template_source or origin)
        how = Reduction.BUILD_OR_PASS if lone_child_passes else Reduction.BUILD
        return size, origin, how, child_filter, method

    def parse(self, text: str) -> Any:
        """The builder's value for the whole text; raises `_NotFast` where lark must look."""
        return self.loop.parse(text, self.build.source)


@lru_cache(maxsize=1)
def _parser() -> tuple[_FastParser, Lark, Build]:
    """The fast parser; lark's LALR parser with its contextual lexer, building the AST while
    it parses (no parse tree), for files the fast one cannot take; their builder.

    `keep_all_tokens` hands the builder every token, keywords and brackets included, so each
    node's span runs from its first token to its last, as lark's `propagate_positions` would
    place it (at twice the cost).
    """
    build = Build(TOKENS, _MAX_EXPR_HEIGHT)
    parser = Lark(_grammar(), parser="lalr", keep_all_tokens=True, maybe_placeholders=True,
                  transformer=_LarkCallbacks(build))
    return _FastParser(parser, build), parser, build


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


class _LarkCallbacks:
    """The builder as lark calls it (children only): each method works out the span the fast
    parser hands the builder, from the first child present to the last."""

    def __init__(self, build: Build) -> None:
        self._build = build

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._build, name)  # (no such rule method: lark makes a `Tree`)
        return lambda children: method(children, self._span(children))

    def _span(self, children: list[Any]) -> ast.Span | None:
        present = [child for child in children if child is not None]
        if not present:
            return None
        first, last = present[0], present[-1]
        if type(first) is not Token:
            first = first.span
        if type(last) is not Token:
            last = last.span
        return ast.Span(self._build.source, first.line, first.column, last.end_line,
                        last.end_column)
