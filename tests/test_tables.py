"""Structural validation of compiled tables in `Tables.from_bytes`.

Whatever the compiler writes loads; a payload with a valid checksum whose indices, codes,
lengths or types the evaluators could not safely trust is refused as corrupt. Corrupt tables
are never given to the Cython evaluator here: it would read out of bounds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, replace
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from layergate.bench.workload import build, synthetic_rules
from layergate.dsl import PolicyError, ast, load_data, load_policy, parse_policy, to_text
from layergate.dsl.loader import compile_sources
from layergate.engine import Authorizer, Tables, TablesFormatError, compile_policy
from layergate.engine import opcodes as op
from layergate.engine import tables as tables_module
from layergate.engine.pyeval import TableEvaluator
from layergate.engine.tables import MAX_NODE_DEPTH

from .conftest import EXAMPLES
from .corpus import load_cases
from .test_differential import data_documents, modules
from .test_properties import DATA_POLICY, documents

EXAMPLE_DIRS = sorted(p for p in EXAMPLES.iterdir() if (p / "policy.lg").exists())

# Every part of the tables in use: two layers, roles, a data column with an error cell, a
# constant object, a walk with a dynamic key, a static data path that fails.
POLICY = """layers [who, what]
const ADMINS = ["admin"]
role reader { read on doc }
role admin extends reader { [read, write] on * }
layer who {
  owner: allow read on doc when data.docs[resource.id].owner == subject.id
    and context.env in ["dev", "prod"]
  admins: allow * on * when grants(ADMINS)
  locked: deny write on doc when resource.properties.meta[context.key] == "locked"
  gone: deny * on * when present(data.settings.missing)
    or (data.settings.limits.max < 1 and present(data.settings.extra))
}
layer what {
  timed: allow * on doc when not present(context.at)
    or (time(context.at) < now and not (context.level > 3))
}
"""
DATA = {"docs": {"d1": {"owner": "alice"}, "d2": {"owner": "bob"}, "d3": {}},
        "settings": {"limits": {"max": 5}, "extra": {"a": 1}}}


def _blob(fields: dict[str, Any]) -> bytes:
    """Table bytes with a valid checksum for any fields (`Tables` itself checks nothing;
    only `from_bytes` does)."""
    return Tables(**fields).to_bytes()


def _fields(tables: Tables) -> dict[str, Any]:
    """The tables as a dict of editable lists."""
    return {name: list(value) if isinstance(value, tuple) else value
            for name, value in asdict(tables).items()}


def _round_trip(tables: Tables) -> None:
    assert Tables.from_bytes(tables.to_bytes()) == tables


@pytest.fixture(scope="module")
def base() -> Tables:
    return compile_policy(parse_policy(POLICY, "base.lg", DATA), DATA)


# ---- what the compiler writes always loads ---------------------------------------------------

def test_the_blob_helper_writes_what_to_bytes_writes(base: Tables) -> None:
    assert _blob(asdict(base)) == base.to_bytes()
    _round_trip(base)


@pytest.mark.parametrize("example", EXAMPLE_DIRS, ids=lambda p: p.name)
def test_every_example_policy_loads(example: Path) -> None:
    data = load_data(example / "data.json")
    _round_trip(compile_policy(load_policy(example / "policy.lg", data), data))


@pytest.mark.parametrize("size", [10, 100])
def test_benchmark_workloads_load(size: int) -> None:
    w = build(size)
    _round_trip(compile_policy(parse_policy(w.policy, "w.lg", w.data), w.data))


def test_many_rules_load() -> None:
    _round_trip(compile_policy(parse_policy(synthetic_rules(2000), "s.lg")))


def test_every_corpus_policy_loads() -> None:
    compiled = 0
    for case in load_cases():
        if "requests" in case.spec:
            data = case.spec.get("data")
            _round_trip(compile_policy(compile_sources(case.sources(), data), data))
            compiled += 1
    assert compiled > 50


@pytest.mark.parametrize("text", [
    "layer a { allow * on * }",  # no conditions, data or roles: empty arrays
    "layer a { allow * on * when " + "not " * 195 + "context.x }",  # as deep as parsing allows
    "layer a { allow * on * when " + "(context.x and " * 195 + "context.y" + ")" * 195 + " }",
    # nested dynamic keys: the walks' step ranges overlap
    'layer a { allow * on * when resource.properties.m[resource.properties.n[context.k]] == "y" }',
    "".join(f"role r{i} {{ read on doc }}\n" for i in range(70))  # two words per role bitset
    + 'layer a { allow * on * when grants(["r0", "r69"]) }',
])
def test_edge_policies_load(text: str) -> None:
    _round_trip(compile_policy(parse_policy(text, "edge.lg")))


def test_data_nested_as_deep_as_parsing_allows_loads() -> None:
    data = {"d": {"s": {"k": "s"}}}
    text = ("layer a { allow * on * when " + "data.d[" * 97 + "subject.id" + "].k" * 97
            + ' == "s" }')
    _round_trip(compile_policy(parse_policy(text, "deep.lg", data), data))


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(modules(), data_documents())
def test_random_policies_load(module: ast.Module, data: dict[str, Any]) -> None:
    try:
        tables = compile_policy(compile_sources([ast.Source("g.lg", to_text(module))], data),
                                data)
    except PolicyError as error:  # statically ill-typed by chance
        assert set(error.codes) <= {"type_mismatch", "unknown_role"}, error.format()
        return
    _round_trip(tables)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_random_data_loads(data: dict[str, Any]) -> None:
    try:
        tables = compile_policy(parse_policy(DATA_POLICY, "data.lg", data), data)
    except PolicyError as error:  # data the policy cannot read
        assert error.codes
        return
    _round_trip(tables)


def test_every_opcode_says_what_its_operands_are() -> None:
    assert set(tables_module._OPERANDS) == set(range(op.CONST, op.PRESENT + 1))


# ---- corrupt tables are refused --------------------------------------------------------------

def _node(f: dict[str, Any], opcode: int) -> int:
    return f["node_op"].index(opcode)


def _const(f: dict[str, Any], tag: int) -> int:
    return f["const_tag"].index(tag)


def _last_const(f: dict[str, Any], tag: int) -> int:
    return len(f["const_tag"]) - 1 - f["const_tag"][::-1].index(tag)


Where = Callable[[dict[str, Any]], int]
Value = Callable[[dict[str, Any]], Any]


def _at(index: int) -> Where:
    return lambda f: index


def _is(value: Any) -> Value:
    return lambda f: value


def _count(name: str, more: int = 0) -> Value:
    return lambda f: len(f[name]) + more


# One element changed: (field, which element, its new value, what the error says).
EDITS = {
    "node operand out of range": (
        "node_a", lambda f: _node(f, op.AND), _count("node_op", 5),
        r"node_a\[\d+\] is \d+, not an earlier node"),
    "node refers to itself": (
        "node_b", lambda f: _node(f, op.AND), lambda f: _node(f, op.AND),
        r"node_b\[(\d+)\] is \1, not an earlier node"),
    "node refers to a later node (a cycle)": (
        "node_a", lambda f: _node(f, op.EQ), lambda f: _node(f, op.EQ) + 2,
        r"node_a\[\d+\] is \d+, not an earlier node"),
    "walk key node after the walk": (
        "step_key", _at(0), lambda f: _node(f, op.WALK) + 1,
        r"step_key\[0\] is \d+, not a node before walk node"),
    "unknown opcode": ("node_op", _at(3), _is(99), r"node_op\[3\] is 99, not an opcode"),
    "constant index out of range": (
        "node_a", lambda f: _node(f, op.CONST), _count("const_tag"),
        r"node_a\[\d+\] is \d+, not a constant"),
    "string id out of range": (
        "const_int", lambda f: _const(f, op.T_STR), _count("strings"),
        r"const_int\[0\] is \d+, not a string id"),
    "negative string id": (
        "const_int", lambda f: _const(f, op.T_STR), _is(-1), r"const_int\[0\] is -1"),
    "list items past list_items": (
        "const_len", lambda f: _last_const(f, op.T_LIST), _count("list_items"),
        r"const_len\[\d+\] is \d+: the list's items run from list_items\[\d+\] past its end"),
    "list item not a constant": (
        "list_items", _at(0), _count("const_tag"), r"list_items\[0\] is \d+, not a constant"),
    "object index out of range": (
        "const_int", lambda f: _const(f, op.T_OBJ), _is(1),
        r"const_int\[\d+\] is 1, not an object"),
    "unknown value tag": ("const_tag", _at(0), _is(0), r"const_tag\[0\] is 0, not a value tag"),
    "bucket_start not ending at the end of bucket_rules": (
        "bucket_start", _at(-1), lambda f: len(f["bucket_rules"]) - 1,
        r"bucket_start runs from 0 to \d+, not from 0 to \d+ \(the length of bucket_rules\)"),
    "bucket rule out of range": (
        "bucket_rules", _at(0), _count("rule_ids"), r"bucket_rules\[0\] is 5, not a rule"),
    "index bucket out of range": (
        "index_bucket", _at(0), _is(-1), r"index_bucket\[0\] is -1, not a bucket"),
    "unsorted layer index": (
        "index_keys", _at(1), _is(0), r"index_keys\[1\] is 0, not above .*keys must be sorted"),
    "rule_cond out of range": (
        "rule_cond", _at(0), _count("node_op"), r"rule_cond\[0\] is \d+, not a node or -1"),
    "rule condition that is not a truth test": (
        "rule_cond", _at(0), lambda f: _node(f, op.AND),
        r"rule_cond\[0\] is node \d+, not a condition's truth test"),
    "rule layer out of range": ("rule_layer", _at(4), _is(2), r"rule_layer\[4\] is 2, not a layer"),
    "unknown rule effect": ("rule_effect", _at(0), _is(2), r"rule_effect\[0\] is 2, not an effect"),
    "grant bitset id out of range": (
        "grant_bitset", _at(0), lambda f: len(f["bitset_words"]),
        r"grant_bitset\[0\] is \d+, not a role bitset"),
    "list role bitset id out of range": (
        "const_roles", lambda f: _const(f, op.T_LIST), _is(3), r"const_roles\[\d+\] is 3"),
    "unsorted grant keys": (
        "grant_keys", _at(1), _is(0), r"grant_keys\[1\] is 0, not above"),
    "role name not a string id": (
        "role_names", _at(0), _is(-1), r"role_names\[0\] is -1, not a string id"),
    "role_words inconsistent with the roles and bitset_words": (
        "role_words", None, _is(2), r"role_words is 2, but 2 roles take 1 64-bit words"),
    "unknown request root": (
        "slot_root", _at(0), _is(len(op.ROOTS)), r"slot_root\[0\] is 6, not a request root"),
    "slot key out of range": (
        "slot_keys", _at(0), _count("strings"), r"slot_keys\[0\] is \d+, not a string id"),
    "slot out of range": (
        "node_a", lambda f: _node(f, op.SLOT), _count("slot_root"),
        r"node_a\[\d+\] is \d+, not a request slot"),
    "walk steps out of range": (
        "node_b", lambda f: _node(f, op.WALK), _is(1), r"node_b\[\d+\], node_c\[\d+\] walk steps"),
    "unknown step kind": ("step_kind", _at(0), _is(2), r"step_kind\[0\] is 2, not a step kind"),
    "unknown error code": (
        "node_a", lambda f: _node(f, op.FAIL), _is(len(op.ERROR_CODES)),
        r"node_a\[\d+\] is 4, not an error code"),
    "unknown cell error code": (
        "cell_error", _at(2), _is(len(op.ERROR_CODES)), r"cell_error\[2\] is 4, not an error code"),
    "text id out of range": (
        "node_text", _at(0), _count("texts"), r"node_text\[0\] is \d+, not a text"),
    "column of no document": (
        "column_doc", _at(0), _is(1), r"column_doc\[0\] is 1, not a document"),
    "member flag neither 0 nor 1": (
        "node_c", lambda f: _node(f, op.MEMBER), _is(2), r"node_c\[\d+\] is 2, not 0 or 1"),
    "entity listed twice": (
        "doc_entities", _at(1), lambda f: f["doc_entities"][0],
        r"doc_entities\[0:3\] \(document 0\) names an entity twice"),
    "string listed twice": (
        "strings", _at(1), lambda f: f["strings"][0], r"strings\[1\] repeats strings\[0\]"),
    "parallel field cut short": (
        "node_b", None, lambda f: f["node_b"][:-1], r"node_b has \d+ entries, node_op \d+"),
    "a string where an int is expected": (
        "node_a", _at(0), _is("0"), r"node_a\[0\] is str, not int"),
    "a float where an int is expected": (
        "rule_cond", _at(0), _is(8.0), r"rule_cond\[0\] is float, not int"),
    "an int where a string is expected": (
        "strings", _at(0), _is(7), r"strings\[0\] is int, not str"),
    "a number where a list is expected": (
        "node_op", None, _is(3), r"node_op is int, not a list"),
    "an object that is not a JSON object": (
        "objects", _at(0), _is([1]), r"objects\[0\] is list, not dict"),
    "a revision that is not a string": ("revision", None, _is(1), r"revision is int, not str"),
}


def _edited(base: Tables, field: str, where: Where | None, value: Value) -> bytes:
    f = _fields(base)
    if where is None:
        f[field] = value(f)
    else:
        f[field][where(f)] = value(f)
    return _blob(f)


@pytest.mark.parametrize(("field", "where", "value", "match"), list(EDITS.values()),
                         ids=list(EDITS))
def test_corrupt_tables_are_refused(base: Tables, field: str, where: Where | None,
                                    value: Value, match: str,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    blob = _edited(base, field, where, value)
    with pytest.raises(TablesFormatError, match="^corrupt compiled policy: " + match):
        Tables.from_bytes(blob)
    # Only the structural check catches it: the checksum is valid, the JSON well formed.
    monkeypatch.setattr(tables_module, "_check_structure", lambda tables: None)
    assert isinstance(Tables.from_bytes(blob), Tables)


def test_the_authorizer_refuses_unsafe_tables_built_in_code(base: Tables) -> None:
    """Tables that were not read from bytes (built or changed in code) are checked too: the
    Cython evaluator would read outside its arrays."""
    unsafe = replace(base, rule_cond=(len(base.node_op), *base.rule_cond[1:]))
    for backend in ("cython", "python"):
        with pytest.raises(TablesFormatError, match=r"^corrupt compiled policy: "):
            Authorizer(unsafe, backend=backend)
    assert Authorizer(base).tables is base


def _chained(base: Tables, nots: int) -> bytes:
    """Rule 0's condition replaced by `nots` NOT nodes over node 0 (a leaf), under a TRUTH:
    a chain `nots` + 2 nodes deep."""
    f = _fields(base)
    below = 0
    for opcode in [op.NOT] * nots + [op.TRUTH]:
        for name, operand in (("node_op", opcode), ("node_a", below), ("node_b", 0),
                              ("node_c", 0), ("node_text", 0)):
            f[name].append(operand)
        below = len(f["node_op"]) - 1
    f["rule_cond"][0] = below
    return _blob(f)


def test_node_chains_deeper_than_the_limit_are_refused(base: Tables,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    assert Tables.from_bytes(_chained(base, MAX_NODE_DEPTH - 2))  # exactly the limit
    too_deep = _chained(base, MAX_NODE_DEPTH - 1)
    with pytest.raises(TablesFormatError, match=f"nests {MAX_NODE_DEPTH + 1} nodes deep"):
        Tables.from_bytes(too_deep)
    monkeypatch.setattr(tables_module, "_check_structure", lambda tables: None)
    assert isinstance(Tables.from_bytes(too_deep), Tables)


def test_a_column_with_more_cells_than_its_document_has_entities_is_refused(
        base: Tables) -> None:
    f = _fields(base)  # the Cython evaluator lays cells out by entity: it would write past them
    f["cell_const"].append(0)
    f["cell_error"].append(-1)
    f["cell_text"].append(0)
    f["column_cell_start"][-1] += 1
    with pytest.raises(TablesFormatError, match=r"gives column 0 4 cells, but its document 0 "
                                                r"has 3 entities"):
        Tables.from_bytes(_blob(f))


def test_buckets_that_evaluate_a_rule_twice_are_refused(base: Tables) -> None:
    f = _fields(base)  # the Cython evaluator keeps room for one evaluation error per rule
    sizes = [end - start for start, end in pairwise(f["bucket_start"])]
    largest = sizes.index(max(sizes))
    last_layer = slice(f["layer_key_start"][-2], f["layer_key_start"][-1])
    f["index_bucket"][last_layer] = [largest] * (last_layer.stop - last_layer.start)
    with pytest.raises(TablesFormatError, match="a request could evaluate a rule twice"):
        Tables.from_bytes(_blob(f))


def test_bitsets_cut_short_are_refused() -> None:
    text = ("".join(f"role r{i} {{ read on doc }}\n" for i in range(70))
            + 'layer a { allow * on * when grants(["r0", "r69"]) }')
    f = _fields(compile_policy(parse_policy(text, "roles.lg")))
    assert f["role_words"] == 2
    f["bitset_words"].pop()
    with pytest.raises(TablesFormatError, match="not a whole number of bitsets of role_words"):
        Tables.from_bytes(_blob(f))
    f["role_words"] = 1
    with pytest.raises(TablesFormatError, match="role_words is 1, but 70 roles take 2"):
        Tables.from_bytes(_blob(f))


def test_without_the_check_the_python_twin_trusts_the_indices(
        base: Tables, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the check prevents, shown with the pure-Python twin (where the Cython evaluator
    would read outside its arrays): a cycle recurses forever, and a negative string id is
    quietly read as another string."""
    monkeypatch.setattr(tables_module, "_check_structure", lambda tables: None)
    other = base.strings[-1]
    assert other != "locked"
    request = {"subject": {"type": "s", "id": "alice"}, "action": {"name": "write"},
               "resource": {"type": "doc", "id": "d1", "properties": {"meta": {"k": other}}},
               "context": {"key": "k"}}
    assert TableEvaluator(base).check(request).allowed
    cycle = Tables.from_bytes(_edited(base, *EDITS["node refers to itself"][:3]))
    with pytest.raises(RecursionError):
        TableEvaluator(cycle).check({**request, "action": {"name": "read"}})
    f = _fields(base)
    locked = next(c for c, (tag, value) in enumerate(zip(f["const_tag"], f["const_int"],
                                                         strict=True))
                  if tag == op.T_STR and f["strings"][value] == "locked")
    f["const_int"][locked] = -1  # `"locked"` now reads as strings[-1]
    assert TableEvaluator(Tables.from_bytes(_blob(f))).check(request).decision == "deny"
