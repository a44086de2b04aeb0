"""Differential tests: random policies and requests, three evaluators, one answer.

The reference interpreter (over the AST), the pure-Python table evaluator and the Cython
evaluator must agree on decision, deciding layer, rule ids, reasons, error codes and error
paths, with and without explain, one by one and in batches. A disagreement is written out as
a YAML corpus case (tests/cases/found/) with the reference interpreter's answer.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from layergate.dsl import PolicyError, ast, to_text
from layergate.dsl.loader import compile_sources
from layergate.engine._eval import Evaluator
from layergate.engine.compiler import compile_policy
from layergate.engine.interpreter import Interpreter
from layergate.engine.pyeval import TableEvaluator

from .conftest import CASES, fixed_clock

FOUND = CASES / "found"
# Examples per property; CI runs the default. A long run finds what it does not, e.g.
# LAYERGATE_DIFFERENTIAL_EXAMPLES=20000 pytest tests/test_differential.py (README).
EXAMPLES = int(os.environ.get("LAYERGATE_DIFFERENTIAL_EXAMPLES", "600"))
NOW = "2026-06-01T12:00:00Z"
ACTIONS = ["read", "write", "deploy"]
TYPES = ["doc", "deployment", "secret"]
ROLES = ["reader", "writer", "admin", "auditor"]
SUBJECTS = ["sa-1", "sa-2", "sa-3", "ghost"]

# ---- values that requests and data hold: well-typed, mistyped, known and unknown --------------
strings = st.sampled_from(["sa-1", "sa-2", "prod", "dev", "reader", "admin", "x", "", "unknown-1",
                           "prod-eu", "10.1.2.3", "2026-06-01T10:00:00Z"])
numbers = st.one_of(st.integers(-5, 200), st.sampled_from([0.5, 100.0, -0.0, 1e15]))
timestamps = st.sampled_from(["2026-06-01T10:00:00Z", "2026-06-01T13:30:00.5+01:00",
                              "2026-06-01 12:00:00Z", "2026-13-01T00:00:00Z", "2026-06-01",
                              "2026-06-01T12:00:00.123456789Z", "1999-12-31T23:59:59-08:00"])
addresses = st.sampled_from(["10.1.2.3", "10.0.0.256", "192.168.1.1", "010.1.1.1", "fd00::1",
                             "2001:db8::1", "::ffff:10.1.2.3", "not-an-ip", "1.2.3"])
# A request's integer beyond +-(2^53 - 1) has no kind (a double would round it): any use fails.
huge_integers = st.sampled_from([2**53 - 1, 2**53, -(2**53) - 1, 2**53 + 1, 2**64, 10**400])
request_numbers = st.one_of(numbers, huge_integers, st.just(float(2**53)))
scalars = st.one_of(strings, request_numbers, st.booleans(), timestamps, addresses)
lists = st.one_of(st.lists(strings, max_size=3), st.lists(request_numbers, max_size=2),
                  st.lists(st.sampled_from([*ROLES, "ghost-role"]), max_size=3),
                  st.lists(st.one_of(strings, request_numbers), max_size=3))
values = st.one_of(st.none(), scalars, lists, st.just({"nested": "x"}))


def _maybe(strategy: st.SearchStrategy) -> st.SearchStrategy:
    """A value, or the key left out (None is dropped by the caller)."""
    return st.one_of(st.none(), strategy)


@st.composite
def data_documents(draw: st.DrawFn) -> dict[str, Any]:
    accounts = {}
    for subject in SUBJECTS[:3]:
        if draw(st.booleans()):
            entry = {
                "team": draw(_maybe(st.one_of(strings, numbers))),
                "roles": draw(_maybe(st.one_of(st.lists(st.sampled_from(ROLES), max_size=3),
                                               st.lists(st.one_of(st.sampled_from(ROLES),
                                                                  numbers), max_size=2),
                                               strings))),
                "limit": draw(_maybe(st.one_of(numbers, strings))),
                "active": draw(_maybe(st.one_of(st.booleans(), strings))),
                "nets": draw(_maybe(st.one_of(st.lists(st.sampled_from(
                    ["10.0.0.0/8", "fd00::/8", "10.0.0.1/8", "192.168.0.0/16"]), max_size=2),
                    st.sampled_from(["10.0.0.0/8", "bad"])))),
            }
            accounts[subject] = {k: v for k, v in entry.items() if v is not None}
        elif draw(st.booleans()):
            accounts[subject] = draw(st.one_of(st.none(), strings))
    return {"accounts": accounts, "settings": {"max": draw(numbers)}}


# ---- conditions ---------------------------------------------------------------------------------
def _path(root: str, *steps: str | ast.Expr) -> ast.Path:
    return ast.Path(root, tuple(ast.Index(s) if not isinstance(s, str) else ast.Field(s)
                                for s in steps))


SUBJECT_ID = _path("subject", "id")
PATHS = [
    SUBJECT_ID,
    _path("subject", "type"),
    _path("subject", "properties", "team"),
    _path("subject", "properties", "roles"),
    _path("subject", "properties", "level"),
    _path("resource", "id"),
    _path("resource", "properties", "owner"),
    _path("resource", "properties", "env"),
    _path("resource", "properties", "amount"),
    _path("resource", "properties", "tags"),
    _path("resource", "properties", "meta", _path("context", "key")),
    _path("resource", "properties", "meta", _path("context", "keys", _path("context", "key"))),
    _path("context", "env"),
    _path("context", "amount"),
    _path("context", "flag"),
    _path("context", "time"),
    _path("context", "ip"),
    _path("caller", "id"),
    _path("elevation", "active"),
    _path("elevation", "roles"),
    _path("elevation", "expires_at"),
    _path("data", "accounts", SUBJECT_ID, "team"),
    _path("data", "accounts", SUBJECT_ID, "roles"),
    _path("data", "accounts", SUBJECT_ID, "limit"),
    _path("data", "accounts", SUBJECT_ID, "active"),
    _path("data", "accounts", SUBJECT_ID, "nets"),
    _path("data", "accounts", _path("resource", "properties", "owner"), "team"),
    _path("data", "settings", "max"),
    _path("data", "accounts", ast.Literal("sa-1"), "limit"),
]
paths = st.sampled_from(PATHS)
literal_scalars = st.one_of(strings, numbers, st.booleans()).map(ast.Literal)
literal_lists = st.one_of(
    st.lists(strings, max_size=3), st.lists(numbers, max_size=3),
    st.lists(st.sampled_from(ROLES), max_size=2),
).map(lambda items: ast.ListLiteral(tuple(ast.Literal(i) for i in items)))
operands = st.one_of(paths, literal_scalars)


def _call(name: str, *args: st.SearchStrategy) -> st.SearchStrategy:
    return st.tuples(*args).map(lambda a: ast.Call(name, tuple(a)))


atoms = st.one_of(
    st.builds(ast.Compare, st.sampled_from(["==", "!=", "<", "<=", ">", ">="]), paths, operands),
    st.builds(ast.Compare, st.sampled_from(["==", "!="]), paths, paths),
    st.builds(lambda item, container, negated: ast.Membership(item, container, negated),
              paths, st.one_of(literal_lists, paths), st.booleans()),
    st.builds(lambda container, item: ast.Membership(item, container, written_as_contains=True),
              paths, st.one_of(literal_scalars, paths)),
    _call("present", paths),
    _call("starts_with", paths, st.sampled_from(["sa-", "prod", ""]).map(ast.Literal)),
    _call("ends_with", paths, st.sampled_from(["-eu", "1", "x"]).map(ast.Literal)),
    _call("glob", paths, st.one_of(
        st.sampled_from(["sa-*", "*o*", "?", "prod-??", "*"]).map(ast.Literal),
        st.just(ast.ListLiteral((ast.Literal("dev*"), ast.Literal("*-eu")))), paths)),
    _call("cidr", paths, st.one_of(
        st.sampled_from(["10.0.0.0/8", "fd00::/8", "0.0.0.0/0"]).map(ast.Literal),
        st.just(ast.ListLiteral((ast.Literal("192.168.0.0/16"), ast.Literal("10.1.0.0/16")))),
        paths)),
    _call("intersects", paths, st.one_of(literal_lists, paths)),
    _call("subset", st.one_of(literal_lists, paths), paths),
    _call("grants", st.one_of(paths, literal_lists)),
    st.builds(lambda op, a, b: ast.Compare(op, ast.Call("time", (a,)), b),
              st.sampled_from(["<", ">=", "=="]), paths,
              st.one_of(st.just(ast.Now()), st.just(ast.Call("time", (ast.Literal(NOW),))))),
    paths,
)
conditions = st.recursive(
    atoms,
    lambda children: st.one_of(st.builds(ast.And, children, children),
                               st.builds(ast.Or, children, children),
                               st.builds(ast.Not, children)),
    max_leaves=5,
)
targets = st.one_of(
    st.just(ast.Targets(None)),
    st.lists(st.sampled_from(ACTIONS), min_size=1, max_size=2, unique=True).map(
        lambda ns: ast.Targets(tuple(ns))),
)
type_targets = st.one_of(
    st.just(ast.Targets(None)),
    st.lists(st.sampled_from(TYPES), min_size=1, max_size=2, unique=True).map(
        lambda ns: ast.Targets(tuple(ns))),
)


@st.composite
def modules(draw: st.DrawFn) -> ast.Module:
    roles = []
    for i, name in enumerate(ROLES):
        parents = tuple(draw(st.lists(st.sampled_from(ROLES[:i]), max_size=1))) if i else ()
        grants = tuple(ast.Grant(draw(targets), draw(type_targets))
                       for _ in range(draw(st.integers(0, 2))))
        roles.append(ast.Role(name, parents, grants))
    layers = []
    for index in range(draw(st.integers(1, 3))):
        name = f"l{index}"
        rules = tuple(
            ast.Rule(id=f"{name}.{position}", effect=draw(st.sampled_from(["allow", "deny"])),
                     actions=draw(targets), resources=draw(type_targets),
                     condition=draw(st.one_of(st.none(), conditions)), named=False)
            for position in range(1, draw(st.integers(1, 4)) + 1)
        )
        layers.append(ast.Layer(name, None, (), rules))
    return ast.Module("<generated>", (), tuple(roles), tuple(layers))


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    def props(keys: list[str]) -> dict[str, Any]:
        chosen = {k: draw(values) for k in keys if draw(st.booleans())}
        return {k: v for k, v in chosen.items() if v is not None or draw(st.booleans())}

    resource_props = props(["owner", "env", "amount", "tags"])
    if draw(st.booleans()):
        resource_props["meta"] = {"env": draw(scalars), "k2": draw(values)}
    context = props(["env", "amount", "flag", "time", "ip", "key"])
    if draw(st.booleans()):  # a key path's own computed key: meta[keys[key]]
        context["keys"] = draw(st.one_of(st.just({"prod": "env", "x": "k2", "dev": "gone"}),
                                         values))
    request: dict[str, Any] = {
        "subject": {"type": draw(st.sampled_from(["service_account", "user"])),
                    "id": draw(st.sampled_from(SUBJECTS)),
                    "properties": props(["team", "roles", "level"])},
        "action": {"name": draw(st.sampled_from([*ACTIONS, "purge"]))},
        "resource": {"type": draw(st.sampled_from([*TYPES, "bucket"])),
                     "id": draw(strings), "properties": resource_props},
        "context": context,
    }
    if draw(st.booleans()):  # as the grant store sets it (a trusted input, yet mistyped here)
        elevation = {"active": draw(st.one_of(st.booleans(), strings)),
                     "roles": draw(st.one_of(st.lists(st.sampled_from(ROLES), max_size=2),
                                             strings)),
                     "expires_at": draw(st.one_of(timestamps, numbers))}
        request["elevation"] = {k: v for k, v in elevation.items() if draw(st.booleans())}
    return request


callers = st.one_of(st.none(), st.just({"id": "spiffe://example.org/gw",
                                        "trust_domain": "example.org", "path": "/gw"}))


def _summary(decision: Any) -> tuple:
    return (decision.decision, decision.layer, decision.rule, decision.reasons,
            tuple((e.rule, e.code, e.path) for e in decision.errors),
            tuple((r.layer, r.outcome, r.rule) for r in decision.layers))


def _record(text: str, data: dict[str, Any], request: dict[str, Any], caller: Any,
            expected: Any, explain: bool) -> Path:
    item: dict[str, Any] = {"request": request, "decision": expected.decision,
                            "layer": expected.layer, "rule": expected.rule,
                            "errors": list(expected.error_codes)}
    if explain:
        item["explain"] = True
        item["layers"] = [[r.layer, r.outcome, r.rule] for r in expected.layers]
    return _write_case(text, data, item, caller)


def _record_batch(text: str, data: dict[str, Any], items: list[dict[str, Any]], defaults: Any,
                  semantic: str, caller: Any, explain: bool, expected: list[Any]) -> Path:
    batch: dict[str, Any] = {"items": items, "semantic": semantic}
    if defaults is not None:
        batch["defaults"] = defaults
    item: dict[str, Any] = {"batch": batch, "decisions": [d.decision for d in expected],
                            "layers": [d.layer for d in expected],
                            "rules": [d.rule for d in expected]}
    if explain:
        batch["explain"] = True
        item["explained"] = [[[r.layer, r.outcome, r.rule] for r in d.layers] for d in expected]
    return _write_case(text, data, item, caller)


def _write_case(text: str, data: dict[str, Any], item: dict[str, Any], caller: Any) -> Path:
    """Write one disagreement as a corpus case, with the reference interpreter's answer."""
    if caller:
        item["caller"] = caller
    case = {"name": "differential disagreement", "now": NOW, "policy": text, "data": data,
            "requests": [item]}
    FOUND.mkdir(exist_ok=True)
    path = FOUND / "differential-latest.yaml"
    path.write_text(yaml.safe_dump({"cases": [case]}, sort_keys=False))
    return path


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(modules(), data_documents(), st.lists(requests(), min_size=1, max_size=6), callers)
def test_three_evaluators_agree(module: ast.Module, data: dict[str, Any],
                                batch: list[dict[str, Any]], caller: Any) -> None:
    _agree(module, data, batch, caller)


@st.composite
def single_conditions(draw: st.DrawFn) -> ast.Module:
    """One allow rule and one deny rule: each condition's value shows in the decision."""
    rules = (ast.Rule("one.d", "deny", ast.Targets(None), ast.Targets(None),
                      draw(conditions), True),
             ast.Rule("one.a", "allow", ast.Targets(None), ast.Targets(None),
                      draw(conditions), True))
    roles = draw(modules()).roles
    return ast.Module("<generated>", (), roles, (ast.Layer("one", None, (), rules),))


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(single_conditions(), data_documents(), st.lists(requests(), min_size=1, max_size=6),
       callers)
def test_three_evaluators_agree_on_each_condition(module: ast.Module, data: dict[str, Any],
                                                  batch: list[dict[str, Any]],
                                                  caller: Any) -> None:
    _agree(module, data, batch, caller)


def _evaluators(text: str, data: dict[str, Any]) -> tuple[Any, Any, Any] | None:
    """The reference interpreter, the twin and the Cython evaluator of a generated policy, or
    None if it is statically ill-typed by chance (nothing to compare)."""
    try:
        policy = compile_sources([ast.Source("generated.lg", text)], data)
        tables = compile_policy(policy, data)
    except PolicyError as error:
        assert set(error.codes) <= {"type_mismatch", "unknown_role"}, error.format()
        return None
    clock = fixed_clock(NOW)
    return (Interpreter(policy, data, tables.revision, clock), TableEvaluator(tables, clock),
            Evaluator(tables, clock))


def _agree(module: ast.Module, data: dict[str, Any], batch: list[dict[str, Any]],
           caller: Any) -> None:
    text = to_text(module)
    evaluators = _evaluators(text, data)
    if evaluators is None:
        return
    reference, twin, compiled = evaluators
    for request in batch:
        for explain in (False, True):
            want = reference.check(request, caller, explain)
            for evaluator in (twin, compiled):
                got = evaluator.check(request, caller, explain)
                if _summary(got) != _summary(want):
                    path = _record(text, data, request, caller, want, explain)
                    raise AssertionError(f"{type(evaluator).__name__} disagrees (case written "
                                         f"to {path}):\nwant {want}\ngot  {got}")
    _agree_on_batches(text, data, evaluators, batch, None, caller, (False,))


def _agree_on_batches(text: str, data: dict[str, Any], evaluators: tuple[Any, Any, Any],
                      items: list[dict[str, Any]], defaults: Any, caller: Any,
                      explains: tuple[bool, ...]) -> None:
    reference, *others = evaluators
    for semantic in ("execute_all", "deny_on_first_deny", "permit_on_first_permit"):
        for explain in explains:
            want = reference.check_batch(items, defaults, semantic, caller, explain)
            for evaluator in others:
                got = evaluator.check_batch(items, defaults, semantic, caller, explain)
                if [_summary(d) for d in got] != [_summary(d) for d in want]:
                    path = _record_batch(text, data, items, defaults, semantic, caller, explain,
                                         want)
                    raise AssertionError(f"{type(evaluator).__name__} disagrees on a batch "
                                         f"({semantic}, explain={explain}; case written to "
                                         f"{path}):\nwant {want}\ngot  {got}")


FIELDS = ("subject", "action", "resource", "context")


@st.composite
def batches_with_defaults(draw: st.DrawFn) -> tuple[list[dict[str, Any]], Any]:
    """Batch items that leave fields out, and top-level defaults (or none, or a mistyped
    field) that may supply them: each present item field replaces the default's whole."""
    items = []
    for request in draw(st.lists(requests(), min_size=1, max_size=5)):
        left_out = draw(st.sets(st.sampled_from(FIELDS)))
        items.append({k: v for k, v in request.items() if k not in left_out})
    source = draw(requests())
    kept = draw(st.sets(st.sampled_from(FIELDS)))
    defaults: Any = {k: v for k, v in source.items() if k in kept}
    if draw(st.integers(0, 9)) == 0:
        defaults[draw(st.sampled_from(FIELDS))] = draw(st.one_of(strings, st.lists(strings)))
    return items, draw(st.one_of(st.just(defaults), st.none()))


@settings(max_examples=EXAMPLES // 2, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(modules(), data_documents(), batches_with_defaults(), callers)
def test_three_evaluators_agree_on_batches_with_defaults_and_explain(
        module: ast.Module, data: dict[str, Any],
        batch: tuple[list[dict[str, Any]], Any], caller: Any) -> None:
    text = to_text(module)
    evaluators = _evaluators(text, data)
    if evaluators is None:
        return
    items, defaults = batch
    _agree_on_batches(text, data, evaluators, items, defaults, caller, (False, True))


def _agree_on_context(condition: str, context: dict[str, Any]) -> None:
    policy = compile_sources([ast.Source("c.lg", f"layer a {{ allow * on * when {condition} }}")])
    tables = compile_policy(policy)
    request = {"subject": {"type": "s", "id": "s"}, "action": {"name": "a"},
               "resource": {"type": "r", "id": "r"}, "context": context}
    want = _summary(Interpreter(policy, {}, tables.revision).check(request))
    assert _summary(Evaluator(tables).check(request)) == want
    assert _summary(TableEvaluator(tables).check(request)) == want


@settings(max_examples=EXAMPLES // 2, deadline=None)
@given(st.one_of(timestamps, st.text(max_size=30), st.from_regex(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,10})?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})?", fullmatch=True)))
def test_timestamps_are_read_identically(text: str) -> None:
    _agree_on_context('time(context.t) < time("2100-01-01T00:00:00Z")', {"t": text})


@pytest.mark.parametrize("text", [
    "0001-01-01T00:00:00-00:60",   # found by a long run: Python alone read `-00:60` as -01:00
    "2026-01-01T00:00:00+00:99", "2026-01-01T00:00:00+24:00", "2026-02-29T00:00:00Z",
    "2024-02-29T23:59:59.999999999+23:59", "2026-01-01T24:00:00Z", "2026-01-01T00:00:60Z",
])
def test_timestamps_at_the_edges_are_read_identically(text: str) -> None:
    _agree_on_context('time(context.t) < time("2100-01-01T00:00:00Z")', {"t": text})


@settings(max_examples=EXAMPLES // 2, deadline=None)
@given(st.one_of(addresses, st.text(alphabet="0123456789.:abcdef%/ ", max_size=20),
                 st.ip_addresses().map(str)))
def test_addresses_are_read_identically(text: str) -> None:
    _agree_on_context('cidr(context.ip, ["10.0.0.0/8", "::/1"])', {"ip": text})


@pytest.mark.parametrize("text", [
    "0.0.0.0", "255.255.255.255", "10.200.0.99", "256.0.0.1", "10.0.0.999", "10.0.0.1000",
    "1.2.3", "1.2.3.4.", ".1.2.3.4", "1..2.3", "1.2.3.4.5", "01.2.3.4", "10.0.0.00",
    "10.0.0.0", "10.0.0.1 ", " 10.0.0.1", "10.0.0.1a", "10.0.0.-1", "10.0.0/8", "",
])
def test_dotted_quad_edges_are_read_identically(text: str) -> None:
    """The C reader's IPv4 parse: lengths, octet ranges, leading zeros, stray characters."""
    _agree_on_context('cidr(context.ip, ["10.0.0.0/8", "0.0.0.0/0"])', {"ip": text})


@pytest.mark.parametrize("text", [
    "10.0.0.1", "10.0.0.1\u00e9", "1\u00b2.0.0.1",     # one byte per character
    "\u0661\u0660.0.0.1", "10.0.0.\uff11",            # other digits, two bytes each
    "10.0.0.1\U0001f600", "\u00e9\u0100.0.0.1",      # four bytes; two, from a wider char
])
def test_addresses_outside_ascii_are_read_identically(text: str) -> None:
    """The C reader reads one-byte strings directly; any wider string is no IPv4 address."""
    _agree_on_context('cidr(context.ip, ["10.0.0.0/8", "::/1"])', {"ip": text})
