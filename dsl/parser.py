"""Stage 1: policy text -> `Module` AST (syntax only; meaning is checked in `validate`)."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

from lark import Lark, Token, Tree, UnexpectedInput
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedToken

from . import ast
from .errors import Diagnostic, PolicyError, SourceLines
from .gcpause import gc_paused


@lru_cache(maxsize=1)
def _parser() -> Lark:
    grammar = resources.files(__package__).joinpath("grammar.lark").read_text("utf-8")
    return Lark(grammar, parser="lalr", propagate_positions=True, maybe_placeholders=True)


MAX_DEPTH = 200  # nesting of declarations and conditions; deeper is `expression_too_deep`


PARSED_FILES_KEPT = 1024  # parsed modules kept by (source, text): a reload skips unchanged files


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
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as exc:
        lines.add(source, text)
        raise PolicyError([_syntax_diagnostic(exc, source, lines)]) from None
    builder = _ToAst(source)
    try:
        return builder.build(tree)
    except _TooDeep as exc:
        lines.add(source, text)
        span = _span_of(source, exc.meta)
        raise PolicyError([lines.diagnostic(
            "expression_too_deep", f"conditions nest more than {MAX_DEPTH} levels deep; "
            "split the rule or use a constant list with `in`", span)]) from None


class _TooDeep(Exception):
    def __init__(self, meta: Any) -> None:
        self.meta = meta


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


def _span_of(source: str, meta: Any) -> ast.Span:
    if getattr(meta, "empty", False):
        return ast.Span(source, 0, 0)
    return ast.Span(source, meta.line, meta.column, meta.end_line, meta.end_column)


class _RuleDraft:
    """A rule before its layer gives it an id."""

    def __init__(self, name: str | None, effect: str, actions: ast.Targets,
                 resources: ast.Targets, condition: ast.Expr | None, span: ast.Span) -> None:
        self.name, self.effect, self.condition, self.span = name, effect, condition, span
        self.actions, self.resources = actions, resources


class _ToAst:
    """Builds frozen AST nodes, each with its source span, bottom-up without recursion.

    Each method is named after a grammar rule (or alias) and gets (meta, children).
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self.handlers = {name: getattr(self, name) for name in dir(type(self))
                         if not name.startswith("_") and name != "build"}

    def build(self, tree: Tree) -> Any:
        results: dict[int, Any] = {}
        pending: list[tuple[Tree, int]] = [(tree, 0)]
        while pending:
            node, depth = pending.pop()
            if depth > MAX_DEPTH:
                raise _TooDeep(node.meta)
            if id(node) in results:
                continue
            subtrees = [c for c in node.children if isinstance(c, Tree)]
            if any(id(c) not in results for c in subtrees):
                pending.append((node, depth))
                pending.extend((c, depth + 1) for c in subtrees if id(c) not in results)
                continue
            children = [results.pop(id(c)) if isinstance(c, Tree) else c for c in node.children]
            results[id(node)] = self.handlers[node.data](node.meta, children)
        return results[id(tree)]

    def _span(self, meta: Any) -> ast.Span:
        return _span_of(self.source, meta)

    # -- declarations
    def start(self, meta: Any, items: list[Any]) -> ast.Module:
        return ast.Module(
            source=self.source,
            consts=tuple(i for i in items if isinstance(i, ast.Const)),
            roles=tuple(i for i in items if isinstance(i, ast.Role)),
            layers=tuple(i for i in items if isinstance(i, ast.Layer)),
            orders=tuple(i for i in items if isinstance(i, ast.LayerOrder)),
        )

    def const_decl(self, meta: Any, children: list[Any]) -> ast.Const:
        name, value = children
        return ast.Const(str(name), value, self._span(meta))

    def order_decl(self, meta: Any, names: list[Token]) -> ast.LayerOrder:
        return ast.LayerOrder(tuple(str(n) for n in names), self._span(meta))

    def role_decl(self, meta: Any, children: list[Any]) -> ast.Role:
        name, parents, *grants = children
        return ast.Role(str(name), parents or (), tuple(grants), self._span(meta))

    def extends(self, meta: Any, names: list[Token]) -> tuple[str, ...]:
        return tuple(str(n) for n in names)

    def grant(self, meta: Any, children: list[ast.Targets]) -> ast.Grant:
        actions, resources_ = children
        return ast.Grant(actions, resources_, self._span(meta))

    def layer_decl(self, meta: Any, children: list[Any]) -> ast.Layer:
        name, description, controls, *drafts = children
        layer_name = str(name)
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
            for position, draft in enumerate(drafts, start=1)
        )
        return ast.Layer(layer_name, description, controls or (), rules, self._span(meta))

    def description(self, meta: Any, children: list[Token]) -> str:
        return _string(children[0])

    def controls(self, meta: Any, children: list[Token]) -> tuple[str, ...]:
        return tuple(_string(c) for c in children)

    def rule(self, meta: Any, children: list[Any]) -> _RuleDraft:
        name, effect, actions, resources_, condition = children
        return _RuleDraft(name, effect, actions, resources_, condition, self._span(meta))

    def rule_name(self, meta: Any, children: list[Token]) -> str:
        return str(children[0])

    def allow(self, meta: Any, children: list[Any]) -> str:
        return "allow"

    def deny(self, meta: Any, children: list[Any]) -> str:
        return "deny"

    def condition(self, meta: Any, children: list[ast.Expr]) -> ast.Expr:
        return children[0]

    def any_target(self, meta: Any, children: list[Any]) -> ast.Targets:
        return ast.Targets(None, self._span(meta))

    def one_target(self, meta: Any, children: list[Token]) -> ast.Targets:
        return ast.Targets((_target(children[0]),), self._span(meta))

    def target_list(self, meta: Any, children: list[Token]) -> ast.Targets:
        return ast.Targets(tuple(_target(c) for c in children), self._span(meta))

    # -- expressions
    def or_(self, meta: Any, children: list[ast.Expr]) -> ast.Or:
        return ast.Or(children[0], children[1], self._span(meta))

    def and_(self, meta: Any, children: list[ast.Expr]) -> ast.And:
        return ast.And(children[0], children[1], self._span(meta))

    def not_(self, meta: Any, children: list[ast.Expr]) -> ast.Not:
        return ast.Not(children[0], self._span(meta))

    def compare(self, meta: Any, children: list[Any]) -> ast.Compare:
        left, op, right = children
        return ast.Compare(str(op), left, right, self._span(meta))

    def in_(self, meta: Any, children: list[ast.Expr]) -> ast.Membership:
        return ast.Membership(children[0], children[1], span=self._span(meta))

    def not_in(self, meta: Any, children: list[ast.Expr]) -> ast.Membership:
        return ast.Membership(children[0], children[1], negated=True, span=self._span(meta))

    def contains(self, meta: Any, children: list[ast.Expr]) -> ast.Membership:
        return ast.Membership(children[1], children[0], written_as_contains=True,
                              span=self._span(meta))

    def const_ref(self, meta: Any, children: list[Token]) -> ast.ConstRef:
        return ast.ConstRef(str(children[0]), self._span(meta))

    def call(self, meta: Any, children: list[Any]) -> ast.Call:
        name, *args = children
        return ast.Call(str(name), tuple(a for a in args if a is not None), self._span(meta))

    def now(self, meta: Any, children: list[Any]) -> ast.Now:
        return ast.Now(self._span(meta))

    def path(self, meta: Any, children: list[Any]) -> ast.Path:
        root, *steps = children
        return ast.Path(str(root), tuple(steps), self._span(meta))

    def field(self, meta: Any, children: list[Token]) -> ast.Field:
        return ast.Field(str(children[0]), self._span(meta))

    def index(self, meta: Any, children: list[ast.Expr]) -> ast.Index:
        return ast.Index(children[0], self._span(meta))

    def list_lit(self, meta: Any, children: list[Any]) -> ast.ListLiteral:
        return ast.ListLiteral(tuple(c for c in children if c is not None), self._span(meta))

    def string(self, meta: Any, children: list[Token]) -> ast.Literal:
        return ast.Literal(_string(children[0]), self._span(meta))

    def number(self, meta: Any, children: list[Token]) -> ast.Literal:
        text = str(children[0])
        value: int | float = float(text) if any(c in text for c in ".eE") else int(text)
        return ast.Literal(value, self._span(meta))

    def true(self, meta: Any, children: list[Any]) -> ast.Literal:
        return ast.Literal(True, self._span(meta))

    def false(self, meta: Any, children: list[Any]) -> ast.Literal:
        return ast.Literal(False, self._span(meta))


def _string(token: Token) -> str:
    return json.loads(str(token))


def _target(token: Token) -> str:
    return _string(token) if token.type == "STRING" else str(token)
