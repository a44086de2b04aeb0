"""Stage 2: modules -> one validated `Policy`, reporting every semantic error in one go."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from . import ast
from .errors import Diagnostic, PolicyError, SourceLines
from .literals import is_exact_number, parse_network, parse_timestamp

# Static types; ANY is "known only at evaluation time" (request and data values).
STRING, NUMBER, BOOL, LIST, TIMESTAMP, ANY = "string", "number", "bool", "list", "timestamp", "any"


@dataclass(frozen=True)
class Signature:
    """A built-in function: the types its arguments may have and what it returns."""

    params: tuple[frozenset[str], ...]
    returns: str
    summary: str


def _sig(*params: Iterable[str], returns: str, summary: str) -> Signature:
    return Signature(tuple(frozenset(p) | {ANY} for p in params), returns, summary)


FUNCTIONS: dict[str, Signature] = {
    "present": _sig({STRING, NUMBER, BOOL, LIST, TIMESTAMP}, returns=BOOL,
                    summary="the path resolves to a non-null value"),
    "starts_with": _sig({STRING}, {STRING}, returns=BOOL, summary="string prefix test"),
    "ends_with": _sig({STRING}, {STRING}, returns=BOOL, summary="string suffix test"),
    "glob": _sig({STRING}, {STRING, LIST}, returns=BOOL,
                 summary="`*` / `?` pattern match (any of a list of patterns)"),
    "cidr": _sig({STRING}, {STRING, LIST}, returns=BOOL, summary="IP address in a CIDR range"),
    "intersects": _sig({LIST}, {LIST}, returns=BOOL, summary="the lists share an element"),
    "subset": _sig({LIST}, {LIST}, returns=BOOL,
                   summary="every element of the first is in the second"),
    "grants": _sig({LIST}, returns=BOOL,
                   summary="one of these roles grants the request's action on its resource type"),
    "time": _sig({STRING}, returns=TIMESTAMP, summary="RFC 3339 text -> timestamp"),
}

# Fields of the request entities; `properties` (and all of `context`) hold free-form values.
ENTITY_FIELDS: dict[str, frozenset[str]] = {
    "subject": frozenset({"type", "id", "properties"}),
    "action": frozenset({"name", "properties"}),
    "resource": frozenset({"type", "id", "properties"}),
    "caller": frozenset({"id", "trust_domain", "path"}),
    # the JIT grant that applies to this request (active is false when none does)
    "elevation": frozenset({"active", "id", "roles", "actions", "resources", "expires_at",
                            "approved_by", "requested_by"}),
}
FREE_FORM_FIELDS = frozenset({"properties"})


def build_policy(
    modules: list[ast.Module],
    lines: SourceLines,
    sources: tuple[ast.Source, ...] = (),
    data: Mapping[str, Any] | None = None,
) -> ast.Policy:
    """Check declarations and conditions of all modules; raise `PolicyError` listing every error."""
    checker = _Checker(lines, data)
    policy = checker.run(modules, sources)
    if checker.diagnostics:
        raise PolicyError(checker.diagnostics)
    return policy


class _Checker:
    def __init__(self, lines: SourceLines, data: Mapping[str, Any] | None) -> None:
        self.lines = lines
        self.data = data
        self.diagnostics: list[Diagnostic] = []
        self.consts: dict[str, ast.Const] = {}

    def error(self, code: str, message: str, span: ast.Span) -> None:
        self.diagnostics.append(self.lines.diagnostic(code, message, span))

    # -- declarations
    def run(self, modules: list[ast.Module], sources: tuple[ast.Source, ...]) -> ast.Policy:
        self.consts = self._unique("duplicate_const", "constant",
                                   [c for m in modules for c in m.consts])
        roles = self._unique("duplicate_role", "role", [r for m in modules for r in m.roles])
        layers = self._unique("duplicate_layer", "layer", [la for m in modules for la in m.layers])
        for const in self.consts.values():
            self._check_const(const)
        self._check_roles(roles)
        ordered = self._order_layers(modules, layers)
        for layer in layers.values():
            self._check_layer(layer)
        return ast.Policy(tuple(ordered), roles, self.consts, sources)

    def _unique(self, code: str, kind: str, items: list[Any]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for item in items:
            if item.name in seen:
                first = seen[item.name].span
                self.error(code, f"{kind} `{item.name}` is already declared at "
                           f"{first.file}:{first.line}", item.span)
            else:
                seen[item.name] = item
        return seen

    def _check_const(self, const: ast.Const) -> None:
        if isinstance(const.value, ast.ListLiteral):
            self._list_type(const.value)
        else:
            self._literal_type(const.value)

    def _check_roles(self, roles: dict[str, ast.Role]) -> None:
        for role in roles.values():
            for parent in role.parents:
                if parent not in roles:
                    self.error("unknown_role", f"role `{role.name}` extends unknown role "
                               f"`{parent}`", role.span)
        state: dict[str, str] = {}

        def visit(name: str, trail: list[str]) -> None:
            if state.get(name) == "done" or name not in roles:
                return
            if state.get(name) == "active":
                loop = " -> ".join([*trail[trail.index(name):], name])
                self.error("role_cycle", f"role inheritance loops: {loop}", roles[name].span)
                return
            state[name] = "active"
            for parent in roles[name].parents:
                visit(parent, [*trail, name])
            state[name] = "done"

        for name in roles:
            visit(name, [])

    def _order_layers(self, modules: list[ast.Module],
                      layers: dict[str, ast.Layer]) -> list[ast.Layer]:
        orders = [o for m in modules for o in m.orders]
        if not layers:
            span = ast.Span(modules[0].source if modules else "<policy>", 0, 0)
            self.error("no_layers", "the policy declares no layer; every decision would deny",
                       span)
            return []
        if not orders:
            files = {layer.span.file for layer in layers.values()}
            if len(files) > 1:
                first = next(iter(layers.values()))
                self.error("unordered_layer", "layers are declared in several files; add "
                           "`layers [...]` to fix their evaluation order", first.span)
            return list(layers.values())
        for extra in orders[1:]:
            self.error("duplicate_order", "the layer order is already declared at "
                       f"{orders[0].span.file}:{orders[0].span.line}", extra.span)
        order = orders[0]
        ordered: list[ast.Layer] = []
        for name in order.names:
            if name not in layers:
                self.error("unknown_layer", f"`layers` names unknown layer `{name}`", order.span)
            elif layers[name] in ordered:
                self.error("duplicate_layer", f"`layers` lists `{name}` twice", order.span)
            else:
                ordered.append(layers[name])
        for name, layer in layers.items():
            if name not in order.names:
                self.error("unordered_layer", f"layer `{name}` is missing from `layers [...]` "
                           "and would never be evaluated", layer.span)
        return ordered

    def _check_layer(self, layer: ast.Layer) -> None:
        named: dict[str, ast.Rule] = {}
        for rule in layer.rules:
            if rule.named and rule.id in named:
                first = named[rule.id].span
                self.error("duplicate_rule", f"rule `{rule.id}` is already declared at line "
                           f"{first.line}", rule.span)
            named.setdefault(rule.id, rule)
            if rule.condition is not None:
                kind = self._type(rule.condition)
                if kind not in (BOOL, ANY):
                    self.error("type_mismatch", f"a `when` condition must be true or false, "
                               f"not a {kind}", rule.condition.span)

    # -- conditions
    def _type(self, expr: ast.Expr) -> str:
        method = getattr(self, f"_type_{type(expr).__name__}")
        return method(expr)

    def _type_Literal(self, expr: ast.Literal) -> str:
        return self._literal_type(expr)

    def _literal_type(self, lit: ast.Literal) -> str:
        if isinstance(lit.value, bool):
            return BOOL
        if isinstance(lit.value, (int, float)):
            if isinstance(lit.value, float) and not math.isfinite(lit.value):
                self.error("invalid_literal", f"number `{lit.value}` is out of range", lit.span)
            elif isinstance(lit.value, int) and not is_exact_number(lit.value):
                digits = len(str(abs(lit.value)))
                shown = f"`{lit.value}`" if digits <= 40 else f"with {digits:,} digits"
                self.error("invalid_literal", f"integer {shown} is beyond +-(2^53 - 1): numbers "
                           "compare as doubles, which do not hold it exactly", lit.span)
            return NUMBER
        return STRING

    def _type_ListLiteral(self, expr: ast.ListLiteral) -> str:
        self._list_type(expr)
        return LIST

    def _list_type(self, lit: ast.ListLiteral) -> str:
        """Element type of a list literal (lists are homogeneous); ANY when empty."""
        kinds = {self._literal_type(item) for item in lit.items}
        if len(kinds) > 1:
            self.error("type_mismatch", "a list mixes " + " and ".join(sorted(kinds)) +
                       " values; list elements must share one type", lit.span)
        return kinds.pop() if len(kinds) == 1 else ANY

    def _element_type(self, expr: ast.Expr) -> str:
        if isinstance(expr, ast.ConstRef) and expr.name in self.consts:
            expr = self.consts[expr.name].value
        if isinstance(expr, ast.ListLiteral):
            return self._list_type(expr)
        return ANY

    def _type_ConstRef(self, expr: ast.ConstRef) -> str:
        const = self.consts.get(expr.name)
        if const is None:
            hint = (" (paths start with subject, action, resource, context, caller, elevation "
                    "or data)")
            self.error("unknown_name", f"unknown name `{expr.name}`{hint}", expr.span)
            return ANY
        return LIST if isinstance(const.value, ast.ListLiteral) else self._literal_type(
            const.value)

    def _type_Now(self, expr: ast.Now) -> str:
        return TIMESTAMP

    def _type_Path(self, expr: ast.Path) -> str:
        for step in expr.steps:
            if isinstance(step, ast.Index):
                kind = self._type(step.key)
                if kind not in (STRING, ANY):
                    self.error("type_mismatch", f"a `[key]` must be a string, not a {kind}",
                               step.key.span)
        self._check_path_shape(expr)
        return ANY

    def _check_path_shape(self, path: ast.Path) -> None:
        first = path.steps[0] if path.steps else None
        if first is None:
            self.error("unknown_attribute", f"`{path.root}` alone is not a value; name one of "
                       "its fields", path.span)
            return
        if path.root in ENTITY_FIELDS:
            fields = ENTITY_FIELDS[path.root]
            if not isinstance(first, ast.Field) or first.name not in fields:
                shown = first.name if isinstance(first, ast.Field) else "[...]"
                hint = (f"; did you mean `{path.root}.properties.{shown}`?"
                        if "properties" in fields else "")
                self.error("unknown_attribute", f"`{path.root}` has no field `{shown}` (it has "
                           + ", ".join(sorted(fields)) + f"){hint}", path.span)
            elif first.name not in FREE_FORM_FIELDS and len(path.steps) > 1:
                self.error("unknown_attribute", f"`{path.root}.{first.name}` is a string and "
                           "has no fields", path.span)
        elif path.root == "data":
            if not isinstance(first, ast.Field):
                self.error("unknown_attribute", "write `data.<document>` to name a data "
                           "document", path.span)
            elif self.data is not None and first.name not in self.data:
                known = ", ".join(sorted(self.data)) or "none"
                self.error("unknown_document", f"data has no document `{first.name}` "
                           f"(documents: {known})", path.span)

    def _type_Compare(self, expr: ast.Compare) -> str:
        left, right = self._type(expr.left), self._type(expr.right)
        if expr.op in ("==", "!="):
            if ANY not in (left, right) and left != right:
                self.error("type_mismatch", f"`{expr.op}` compares a {left} with a {right}; "
                           "that is never true", expr.span)
        else:
            for kind, side in ((left, expr.left), (right, expr.right)):
                if kind not in (NUMBER, TIMESTAMP, ANY):
                    self.error("type_mismatch", f"`{expr.op}` orders numbers or timestamps, "
                               f"not a {kind}", side.span)
            if ANY not in (left, right) and left != right:
                self.error("type_mismatch", f"`{expr.op}` compares a {left} with a {right}",
                           expr.span)
        return BOOL

    def _type_Membership(self, expr: ast.Membership) -> str:
        item, container = self._type(expr.item), self._type(expr.container)
        word = "contains" if expr.written_as_contains else "in"
        if container not in (LIST, ANY):
            self.error("type_mismatch", f"`{word}` needs a list, not a {container}",
                       expr.container.span)
        if item in (LIST, TIMESTAMP):
            self.error("type_mismatch", f"`{word}` tests one string, number or boolean, not a "
                       f"{item}", expr.item.span)
        element = self._element_type(expr.container)
        if ANY not in (item, element) and item != element:
            self.error("type_mismatch", f"`{word}` looks for a {item} in a list of {element} "
                       "values; that is never true", expr.span)
        return BOOL

    def _type_Call(self, expr: ast.Call) -> str:
        signature = FUNCTIONS.get(expr.name)
        arg_types = [self._type(arg) for arg in expr.args]
        if signature is None:
            known = ", ".join(sorted(FUNCTIONS))
            self.error("unknown_function", f"unknown function `{expr.name}` (known: {known})",
                       expr.span)
            return ANY
        if len(expr.args) != len(signature.params):
            self.error("wrong_arity", f"`{expr.name}` takes {len(signature.params)} "
                       f"argument(s), got {len(expr.args)}", expr.span)
            return signature.returns
        for arg, kind, allowed in zip(expr.args, arg_types, signature.params, strict=True):
            if kind not in allowed:
                wanted = " or ".join(sorted(allowed - {ANY}))
                self.error("type_mismatch", f"`{expr.name}` wants a {wanted} here, not a "
                           f"{kind}", arg.span)
        self._check_call_literals(expr)
        return signature.returns

    def _check_call_literals(self, expr: ast.Call) -> None:
        if expr.name == "present" and not isinstance(expr.args[0], ast.Path):
            self.error("type_mismatch", "`present` takes a path such as `resource.properties.x`",
                       expr.args[0].span)
        for arg, parse in self._literal_args(expr):
            for literal in _literals_of(arg, self.consts):
                try:
                    parse(literal.value)
                except ValueError as exc:
                    self.error("invalid_literal", str(exc), literal.span)

    @staticmethod
    def _literal_args(expr: ast.Call) -> list[tuple[ast.Expr, Any]]:
        if expr.name == "cidr":
            return [(expr.args[1], parse_network)]
        if expr.name == "time":
            return [(expr.args[0], parse_timestamp)]
        return []

    def _boolean(self, expr: ast.Expr, word: str) -> None:
        kind = self._type(expr)
        if kind not in (BOOL, ANY):
            self.error("type_mismatch", f"`{word}` combines conditions, not a {kind}", expr.span)

    def _type_And(self, expr: ast.And) -> str:
        self._boolean(expr.left, "and")
        self._boolean(expr.right, "and")
        return BOOL

    def _type_Or(self, expr: ast.Or) -> str:
        self._boolean(expr.left, "or")
        self._boolean(expr.right, "or")
        return BOOL

    def _type_Not(self, expr: ast.Not) -> str:
        self._boolean(expr.operand, "not")
        return BOOL


def _literals_of(expr: ast.Expr, consts: dict[str, ast.Const]) -> list[ast.Literal]:
    """The literal strings an argument is written with (directly or via a constant)."""
    if isinstance(expr, ast.ConstRef) and expr.name in consts:
        expr = consts[expr.name].value
    if isinstance(expr, ast.Literal) and isinstance(expr.value, str):
        return [expr]
    if isinstance(expr, ast.ListLiteral):
        return [item for item in expr.items if isinstance(item.value, str)]
    return []
