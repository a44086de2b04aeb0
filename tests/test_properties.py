"""Property-based tests of the language front end: printing round-trips, errors never crash."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from layergate.dsl import PolicyError, parse_policy, to_text
from layergate.dsl.parser import parse_module
from layergate.engine import compile_policy
from layergate.engine.tables import Tables

from .conftest import EXAMPLES
from .strategies import modules

EXAMPLE_TEXTS = [p.read_text() for p in sorted(EXAMPLES.glob("*/policy.lg"))]
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
