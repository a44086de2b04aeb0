"""The reference interpreter: a plain, readable evaluator straight over the validated AST.

It is the slow, obviously-correct twin of the compiled evaluators; differential tests check that
they agree with it on decision, deciding layer, rule ids and error codes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from layergate.dsl import ast
from layergate.dsl.literals import (
    glob_match,
    is_exact_number,
    parse_address,
    parse_network,
    parse_timestamp,
)
from layergate.dsl.printer import expr as expr_text

from .decision import (
    LAYER_ALLOW,
    LAYER_DENY,
    LAYER_NO_MATCH,
    Decision,
    EvalError,
    LayerResult,
    combine,
)
from .request import evaluate_batch, normalize_caller, normalize_request

Clock = Callable[[], float]


@dataclass(frozen=True, order=True)
class Timestamp:
    """A point in time, microseconds since the epoch; comparable only with another Timestamp."""

    micros: int


class Failure(Exception):
    """A condition could not be evaluated (fail closed)."""

    def __init__(self, code: str, path: str, message: str) -> None:
        super().__init__(message)
        self.code, self.path, self.message = code, path, message


class Interpreter:
    """Evaluates requests against a policy and its data, rule by rule, exactly as written."""

    def __init__(self, policy: ast.Policy, data: Mapping[str, Any] | None = None,
                 revision: str = "", clock: Clock = time.time) -> None:
        self.policy = policy
        self.data = data or {}
        self.revision = revision
        self.clock = clock

    # -- the Authorizer signature
    def check(self, request: Mapping[str, Any], caller: Mapping[str, Any] | None = None,
              explain: bool = False) -> Decision:
        """Decide one request; raises `RequestError` if it is malformed."""
        env = _Env(normalize_request(request), normalize_caller(caller), self.data,
                   int(self.clock() * 1_000_000))
        return self._decide(env, explain)

    def check_batch(self, requests: Iterable[Any], defaults: Mapping[str, Any] | None = None,
                    semantic: str = "execute_all", caller: Mapping[str, Any] | None = None,
                    explain: bool = False) -> list[Decision]:
        """Decide many requests; a malformed item is denied with an `invalid_request` error."""
        return evaluate_batch(lambda r: self.check(r, caller, explain), requests, defaults,
                              semantic, self.revision)

    # -- layers and rules
    def _decide(self, env: _Env, explain: bool) -> Decision:
        results: list[LayerResult] = []
        errors: list[EvalError] = []
        for layer in self.policy.layers:
            result = self._layer(layer, env, errors)
            results.append(result)
            if not result.allowed and not explain:
                break
        return combine(results, errors, self.revision, explain)

    def _layer(self, layer: ast.Layer, env: _Env, errors: list[EvalError]) -> LayerResult:
        action, resource_type = env.request["action"]["name"], env.request["resource"]["type"]
        applicable = [r for r in layer.rules
                      if r.actions.matches(action) and r.resources.matches(resource_type)]
        for rule in (r for r in applicable if r.effect == "deny"):
            if self._matches(rule, env, errors, on_error=True):
                return LayerResult(layer.name, LAYER_DENY, rule.id)
        for rule in (r for r in applicable if r.effect == "allow"):
            if self._matches(rule, env, errors, on_error=False):
                return LayerResult(layer.name, LAYER_ALLOW, rule.id)
        return LayerResult(layer.name, LAYER_NO_MATCH, None)

    def _matches(self, rule: ast.Rule, env: _Env, errors: list[EvalError],
                 on_error: bool) -> bool:
        if rule.condition is None:
            return True
        try:
            return _boolean(self._eval(rule.condition, env), rule.condition)
        except Failure as failure:
            errors.append(EvalError(rule.id, failure.code, failure.path, failure.message))
            return on_error

    # -- expressions
    def _eval(self, node: ast.Expr, env: _Env) -> Any:
        if isinstance(node, ast.Literal):
            return node.value
        if isinstance(node, ast.ListLiteral):
            return list(node.values)
        if isinstance(node, ast.ConstRef):
            return self._eval(self.policy.consts[node.name].value, env)
        if isinstance(node, ast.Now):
            return Timestamp(env.now)
        if isinstance(node, ast.Path):
            return self._resolve(node, env)
        if isinstance(node, ast.And):
            return _boolean(self._eval(node.left, env), node.left) and _boolean(
                self._eval(node.right, env), node.right)
        if isinstance(node, ast.Or):
            return _boolean(self._eval(node.left, env), node.left) or _boolean(
                self._eval(node.right, env), node.right)
        if isinstance(node, ast.Not):
            return not _boolean(self._eval(node.operand, env), node.operand)
        if isinstance(node, ast.Compare):
            return _compare(node, self._eval(node.left, env), self._eval(node.right, env))
        if isinstance(node, ast.Membership):
            found = _member(node, self._eval(node.item, env), self._eval(node.container, env))
            return not found if node.negated else found
        if isinstance(node, ast.Call):
            return self._call(node, env)
        raise TypeError(f"not an expression: {node!r}")

    def _resolve(self, path: ast.Path, env: _Env) -> Any:
        value: Any = env.root(path.root)
        for position, step in enumerate(path.steps):
            shown = _prefix(path, position + 1)
            if isinstance(step, ast.Field):
                key = step.name
            else:
                key = self._eval(step.key, env)
                if not isinstance(key, str):
                    raise Failure("type_error", shown, f"a key must be a string, not "
                                  f"{_kind(key)}")
            if not isinstance(value, Mapping):
                raise Failure("type_error", shown, f"`{_prefix(path, position)}` is "
                              f"{_kind(value)}, not an object")
            value = value.get(key)
            if value is None:
                if path.root == "data" and isinstance(step, ast.Index):
                    raise Failure("unknown_entity", shown, f"no entry `{key}` in "
                                  f"`{_prefix(path, position)}`")
                raise Failure("missing_attribute", shown, f"`{shown}` is not set")
        return value

    def _call(self, node: ast.Call, env: _Env) -> Any:
        if node.name == "present":
            try:
                self._resolve(node.args[0], env)  # type: ignore[arg-type]
            except Failure:
                return False
            return True
        args = [self._eval(arg, env) for arg in node.args]
        if node.name == "grants":
            return self._grants(node, args[0], env)
        return _BUILTINS[node.name](node, *args)

    def _grants(self, node: ast.Call, roles: Any, env: _Env) -> bool:
        names = _list_of(node.args[0], roles, str)
        action, resource_type = env.request["action"]["name"], env.request["resource"]["type"]
        return any(self._role_grants(name, action, resource_type) for name in names)

    def _role_grants(self, name: str, action: str, resource_type: str) -> bool:
        role = self.policy.roles.get(name)
        if role is None:  # a role the policy does not declare grants nothing
            return False
        if any(g.actions.matches(action) and g.resources.matches(resource_type)
               for g in role.grants):
            return True
        return any(self._role_grants(parent, action, resource_type) for parent in role.parents)


@dataclass
class _Env:
    request: dict[str, Any]
    caller: dict[str, str]
    data: Mapping[str, Any]
    now: int

    def root(self, name: str) -> Any:
        if name == "caller":
            return self.caller
        if name == "elevation":
            return self.request["elevation"]
        if name == "data":
            return self.data
        return self.request[name]


# ---- value semantics ------------------------------------------------------------------------


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int) and not is_exact_number(value):
        return "an integer beyond +-(2^53 - 1), which a double does not hold exactly"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Timestamp):
        return "a timestamp"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return "null"


def _scalar_kind(value: Any) -> str | None:
    """`string`, `number` or `boolean` for a scalar, None for anything else (an integer beyond
    +-(2^53 - 1) is no number: it would compare as a different one, so its use fails closed)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, float) or (isinstance(value, int) and is_exact_number(value)):
        return "number"
    if isinstance(value, str):
        return "string"
    return None


def _where(node: ast.Expr) -> str:
    return expr_text(node)


def _prefix(path: ast.Path, steps: int) -> str:
    return expr_text(ast.Path(path.root, path.steps[:steps]))


def _boolean(value: Any, node: ast.Expr) -> bool:
    if not isinstance(value, bool):
        raise Failure("type_error", _where(node), f"`{_where(node)}` is {_kind(value)}, "
                      "not true or false")
    return value


def _compare(node: ast.Compare, left: Any, right: Any) -> bool:
    if node.op in ("==", "!="):
        if isinstance(left, Timestamp) and isinstance(right, Timestamp):
            equal = left == right
        else:
            kind = _scalar_kind(left)
            if kind is None or kind != _scalar_kind(right):
                raise Failure("type_error", _where(node), f"`{node.op}` cannot compare "
                              f"{_kind(left)} with {_kind(right)}")
            equal = _equal(left, right)
        return equal if node.op == "==" else not equal
    numbers = _scalar_kind(left) == "number" and _scalar_kind(right) == "number"
    times = isinstance(left, Timestamp) and isinstance(right, Timestamp)
    if not (numbers or times):
        raise Failure("type_error", _where(node), f"`{node.op}` cannot order {_kind(left)} "
                      f"and {_kind(right)}")
    if numbers:
        left, right = float(left), float(right)
    if node.op == "<":
        return left < right
    if node.op == "<=":
        return left <= right
    if node.op == ">":
        return left > right
    return left >= right


def _equal(left: Any, right: Any) -> bool:
    """Equality of two values already known to have the same kind."""
    if _scalar_kind(left) == "number":
        return float(left) == float(right)
    return left == right


def _same_kind_elements(node: ast.Expr, items: list[Any], kind: str) -> None:
    for item in items:
        if _scalar_kind(item) != kind:
            raise Failure("type_error", _where(node), f"a list of {kind} values holds "
                          f"{_kind(item)}")


def _member(node: ast.Membership, item: Any, container: Any) -> bool:
    if not isinstance(container, list):
        raise Failure("type_error", _where(node.container), f"`{_where(node.container)}` is "
                      f"{_kind(container)}, not a list")
    kind = _scalar_kind(item)
    if kind is None:
        raise Failure("type_error", _where(node.item), f"`{_where(node.item)}` is "
                      f"{_kind(item)}; membership tests a string, number or boolean")
    _same_kind_elements(node, container, kind)
    return any(_equal(item, element) for element in container)


def _list_of(node: ast.Expr, value: Any, kind: type) -> list[Any]:
    if not isinstance(value, list):
        raise Failure("type_error", _where(node), f"`{_where(node)}` is {_kind(value)}, "
                      "not a list")
    for item in value:
        if not isinstance(item, kind) or isinstance(item, bool):
            raise Failure("type_error", _where(node), f"`{_where(node)}` holds {_kind(item)}")
    return value


def _two_lists(node: ast.Call, left: Any, right: Any) -> tuple[list[Any], list[Any]]:
    for arg, value in zip(node.args, (left, right), strict=True):
        if not isinstance(value, list):
            raise Failure("type_error", _where(arg), f"`{_where(arg)}` is {_kind(value)}, "
                          "not a list")
    items = [*left, *right]
    if items:
        kind = _scalar_kind(items[0])
        if kind is None:
            raise Failure("type_error", _where(node), f"`{node.name}` compares strings, "
                          f"numbers or booleans, not {_kind(items[0])}")
        _same_kind_elements(node, items, kind)
    return left, right


def _strings(node: ast.Call, *values: Any) -> None:
    """The first len(values) arguments must be strings."""
    for arg, value in zip(node.args, values, strict=False):
        if not isinstance(value, str):
            raise Failure("type_error", _where(arg), f"`{_where(arg)}` is {_kind(value)}, "
                          "not a string")


def _starts_with(node: ast.Call, text: Any, prefix: Any) -> bool:
    _strings(node, text, prefix)
    return text.startswith(prefix)


def _ends_with(node: ast.Call, text: Any, suffix: Any) -> bool:
    _strings(node, text, suffix)
    return text.endswith(suffix)


def _glob(node: ast.Call, text: Any, patterns: Any) -> bool:
    _strings(node, text)
    if isinstance(patterns, str):
        patterns = [patterns]
    return any(glob_match(text, pattern) for pattern in _list_of(node.args[1], patterns, str))


def _cidr(node: ast.Call, address: Any, ranges: Any) -> bool:
    _strings(node, address)
    try:
        ip = parse_address(address)
    except ValueError as exc:
        raise Failure("invalid_value", _where(node.args[0]), str(exc)) from None
    if isinstance(ranges, str):
        ranges = [ranges]
    found = False
    for text in _list_of(node.args[1], ranges, str):
        try:
            network = parse_network(text)
        except ValueError as exc:
            raise Failure("invalid_value", _where(node.args[1]), str(exc)) from None
        found = found or (network.version == ip.version and ip in network)
    return found


def _intersects(node: ast.Call, left: Any, right: Any) -> bool:
    a, b = _two_lists(node, left, right)
    return any(_equal(x, y) for x in a for y in b)


def _subset(node: ast.Call, left: Any, right: Any) -> bool:
    a, b = _two_lists(node, left, right)
    return all(any(_equal(x, y) for y in b) for x in a)


def _time(node: ast.Call, text: Any) -> Timestamp:
    _strings(node, text)
    try:
        return Timestamp(parse_timestamp(text))
    except ValueError as exc:
        raise Failure("invalid_value", _where(node.args[0]), str(exc)) from None


_BUILTINS: dict[str, Callable[..., Any]] = {
    "starts_with": _starts_with,
    "ends_with": _ends_with,
    "glob": _glob,
    "cidr": _cidr,
    "intersects": _intersects,
    "subset": _subset,
    "time": _time,
}
