"""Property-based tests of the language front end: printing round-trips, errors never crash."""

from __future__ import annotations

import dataclasses

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from layergate.dsl import PolicyError, parse_policy, to_text
from layergate.dsl import parser as _parser_module
from layergate.dsl.parser import parse_module
from layergate.engine import compile_policy
from layergate.engine.tables import Tables

from .conftest import EXAMPLES
from .strategies import modules

EXAMPLE_TEXTS = [p.read_text() for p in sorted(EXAMPLES.glob("*/policy.lg"))]
# The parsers are built once, before any example runs: building them inside the first one
# would count against Hypothesis' deadline (and make its timing look unreliable).
_parser_module._parser()
_parser_module._tree_parser()
TOKENS = ["layer", "role", "const", "layers", "allow", "deny", "on", "when", "and", "or", "not",
          "in", "contains", "extends", "controls", "*", "{", "}", "[", "]", "(", ")", ",", ":",
          "==", "!=", "<", "<=", "=", ".", "subject", "context", "data", "x", "\"s\"", "1",
          "-2.5", "true", "present", "#c\n", "\n",
          # literals the grammar admits that hold no valid value
          '"a\tb"', '"\\ud800"', '"\\u00e9\\n"', "1" * 5_000, "1e999", '"10.0.0.0/33"']


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(modules)
def test_print_then_parse_gives_the_same_ast(module) -> None:
    text = to_text(module)
    assert parse_module(text, module.source) == module, text


@given(st.sampled_from(EXAMPLE_TEXTS))
def test_printing_a_validated_example_round_trips(text: str) -> None:
    policy = parse_policy(text)
    reprinted = parse_policy(to_text(policy))
    assert reprinted.layers == policy.layers
    assert reprinted.roles == policy.roles
    assert reprinted.consts == policy.consts


def _with_spans(node: object) -> object:
    """An AST as nested tuples, spans included (AST equality leaves them out)."""
    if isinstance(node, tuple):
        return tuple(_with_spans(item) for item in node)
    if dataclasses.is_dataclass(node):
        return (type(node).__name__, *(_with_spans(getattr(node, f.name))
                                       for f in dataclasses.fields(node)))
    return node


def _parsed_alike(text: str) -> None:
    """What the fast parser parses, lark parses to the same AST, spans included; what it
    cannot, lark parses or rejects (and reports) on its own."""
    fast, lark, build = _parser_module._parser()

    def parse(parser: object) -> object:
        with _parser_module._PARSING:
            build.start_file("lexed.lg")
            try:
                return _with_spans(parser.parse(text))
            except Exception as exc:  # every failure counts as one
                return type(exc)
            finally:
                build.reset()

    by_fast = parse(fast)
    if not isinstance(by_fast, type):
        assert parse(lark) == by_fast, text


KEYWORD_FIELDS = [  # keywords and roots are names where the grammar expects a name
    'layer a {\n  allow * on * when subject.properties.on == context.and\n}\n',
    'layer on { r: allow [role, layer] on data when data.layer[subject.id].when in '
    '[1, -2.5e3] or not (context.not contains "x") }',
    'const layers = ["a"]\nrole extends extends when { on on on }\nlayers [layers]',
    'layer a { allow * on * when context.subject.data.caller == now and f(x, []) }',
    # a path root with more after it is a name, not a root and a name (`subject` + `s`)
    'const subjects = ["a"]\nconst database = 1\nlayer resources { allow * on [contexts, '
    'data_set] when subjects contains subject.id and database == data.callers[actions] }',
    '# only a comment',
    '',
    # blanks and comments before a token that is not one: read in linear time, not by trying
    # every way of splitting them (which took seconds for a few dozen spaces)
    "layer a {" + " " * 60 + '"unterminated' + "\n}",
    "layer a {\n" + "  # note\n" * 40 + "  ! }",
]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(modules.map(to_text), st.sampled_from(EXAMPLE_TEXTS + KEYWORD_FIELDS),
                 st.lists(st.sampled_from(TOKENS), max_size=40).map(" ".join),
                 st.text(max_size=120)))
def test_the_fast_parser_reads_valid_text_as_lark_does(text: str) -> None:
    _parsed_alike(text)


def test_the_fast_parser_reads_the_workloads_and_keyword_fields_as_lark_does() -> None:
    from layergate.bench.workload import build, synthetic_rules

    for text in [*KEYWORD_FIELDS, *EXAMPLE_TEXTS, build(10).policy, synthetic_rules(200)]:
        _parsed_alike(text)
    fast, _, build_ = _parser_module._parser()
    with _parser_module._PARSING:  # and it does take them (no fallback to lark)
        for text in KEYWORD_FIELDS[:5] + EXAMPLE_TEXTS:
            build_.start_file("fast.lg")
            try:
                fast.parse(text)
            finally:
                build_.reset()


def _nodes(node: object):
    """Every AST node in a tree, the node first."""
    if isinstance(node, tuple):
        for item in node:
            yield from _nodes(item)
    elif dataclasses.is_dataclass(node):
        yield node
        for f in dataclasses.fields(node):
            yield from _nodes(vars(node).get(f.name))


def test_the_builder_sets_every_field_of_every_node() -> None:
    """The builder makes nodes without their dataclass `__init__`: each has its class's fields,
    no others, and equals (spans included) the node `__init__` makes from them."""
    from layergate.bench.workload import build

    module = parse_module("\n".join([*EXAMPLE_TEXTS, *KEYWORD_FIELDS[:5], build(10).policy,
                                     'layer z { allow * on * when context.x not in [1] and '
                                     'not (context.y contains "a") or f(now, context.z["k"]) }',
                                     ]), "fields.lg")
    kinds = set()
    for node in _nodes(module):
        names = [f.name for f in dataclasses.fields(node)]
        assert sorted(vars(node)) == sorted(names), node
        remade = type(node)(**{name: getattr(node, name) for name in names})
        assert _with_spans(remade) == _with_spans(node)
        kinds.add(type(node).__name__)
    assert kinds >= {"Module", "Const", "Role", "Grant", "Targets", "Layer", "Rule", "Literal",
                     "ListLiteral", "ConstRef", "Path", "Field", "Index", "Now", "Compare",
                     "Membership", "Call", "And", "Or", "Not"}


def test_spans_are_left_out_of_the_cyclic_collector() -> None:
    """The fast parser's spans (half of a parsed file's objects) are never walked by it."""
    import gc

    module = parse_module(EXAMPLE_TEXTS[0], "untracked.lg")
    spans = [node.span for node in _nodes(module) if hasattr(node, "span")]
    assert spans and not any(gc.is_tracked(span) for span in spans)


def _coded_or_accepted(text: str) -> None:
    """A policy either loads all the way to table bytes, or fails with coded diagnostics."""
    try:
        Tables.from_bytes(compile_policy(parse_policy(text)).to_bytes())
    except PolicyError as error:
        assert error.diagnostics
        for diagnostic in error.diagnostics:
            assert diagnostic.code and diagnostic.message
            assert diagnostic.format()


@settings(max_examples=300)
@given(st.text(max_size=200))
def test_random_text_gives_coded_errors(text: str) -> None:
    _coded_or_accepted(text)


@settings(max_examples=300)
@given(st.lists(st.sampled_from(TOKENS), max_size=40).map(" ".join))
def test_token_soup_gives_coded_errors(text: str) -> None:
    _coded_or_accepted(text)


@settings(max_examples=200)
@given(st.sampled_from(EXAMPLE_TEXTS), st.floats(min_value=0, max_value=1))
def test_truncated_policies_give_coded_errors(text: str, fraction: float) -> None:
    _coded_or_accepted(text[: int(len(text) * fraction)])


literals = st.one_of(
    st.text(max_size=12).map(lambda t: '"' + t.replace('"', "") + '"'),  # raw characters
    st.from_regex(r'"(\\u[0-9a-fA-F]{4}|\\[nt"\\]|[^"\\\n])*"', fullmatch=True),  # escapes
    st.integers(min_value=-10**30, max_value=10**30).map(str),
    st.floats(allow_nan=False).map(repr),
    st.integers(min_value=4_000, max_value=5_000).map(lambda n: "7" * n),  # too many digits
)


@settings(max_examples=300)
@given(literals, st.sampled_from(["==", "in", "contains"]))
def test_any_literal_gives_a_value_or_a_coded_error(literal: str, operator: str) -> None:
    _coded_or_accepted(f"layer a {{ allow * on * when context.x {operator} {literal} }}\n"
                       f"const C = {literal}\n")


DATA_POLICY = """role reader { read on doc }
layer a {
  allow * on * when grants(data.d[subject.id].roles) and cidr(context.ip, data.d[subject.id].nets)
  deny * on * when data.d[subject.id].x == 1 or data.e.k in data.d[subject.id].l
  allow * on * when time(data.d[subject.id].t) > now and data.d[subject.id]["y"].z
}"""
data_leaves = st.one_of(
    st.none(), st.booleans(), st.integers(-2**70, 2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=5),
    st.sampled_from(["reader", "10.0.0.0/8", "2020-01-01T00:00:00Z", "::1/128"]))
json_values = st.recursive(data_leaves, lambda children: st.one_of(
    st.lists(children, max_size=3),
    st.dictionaries(st.one_of(st.text(max_size=3), st.integers(0, 3)), children, max_size=3),
), max_leaves=8)
documents = st.dictionaries(st.sampled_from(["d", "e", "f"]), st.one_of(
    json_values, st.dictionaries(st.sampled_from(["sa", "sb"]), json_values, max_size=2)),
    max_size=3)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_any_data_compiles_and_decides_or_gives_a_coded_error(data: dict) -> None:
    """Whatever the data holds (wrong types, int keys, huge numbers): a coded error, or tables
    that round-trip through bytes and decide on both evaluators."""
    from layergate.engine import Authorizer

    try:
        tables = compile_policy(parse_policy(DATA_POLICY, "data.lg", data), data)
    except PolicyError as error:
        assert error.codes
        return
    request = {"subject": {"type": "s", "id": "sa"}, "action": {"name": "read"},
               "resource": {"type": "doc", "id": "x"}, "context": {"ip": "10.1.2.3"}}
    decisions = {Authorizer(t, backend=backend).check(request).decision
                 for t in (tables, Tables.from_bytes(tables.to_bytes()))
                 for backend in ("cython", "python")}
    assert len(decisions) == 1
