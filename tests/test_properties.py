"""Property-based tests of the language front end: printing round-trips, errors never crash."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from layergate.dsl import PolicyError, parse_policy, to_text
from layergate.dsl.parser import parse_module

from .conftest import EXAMPLES
from .strategies import modules

EXAMPLE_TEXTS = [p.read_text() for p in sorted(EXAMPLES.glob("*/policy.lg"))]
TOKENS = ["layer", "role", "const", "layers", "allow", "deny", "on", "when", "and", "or", "not",
          "in", "contains", "extends", "controls", "*", "{", "}", "[", "]", "(", ")", ",", ":",
          "==", "!=", "<", "<=", "=", ".", "subject", "context", "data", "x", "\"s\"", "1",
          "-2.5", "true", "present", "#c\n", "\n"]


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
    try:
        parse_policy(text)
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
