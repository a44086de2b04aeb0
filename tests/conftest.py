"""Shared fixtures: the evaluators every conformance test runs against, and expectation checks."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from layergate.dsl import ast, literals
from layergate.engine._eval import Evaluator
from layergate.engine.compiler import compile_policy
from layergate.engine.decision import Decision
from layergate.engine.interpreter import Interpreter
from layergate.engine.pyeval import TableEvaluator
from layergate.engine.revision import policy_revision

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
CASES = Path(__file__).resolve().parent / "cases"
ANCHORS = REPO.parent / "shared" / "anchors"

Factory = Callable[[ast.Policy, Mapping[str, Any], Callable[[], float]], Any]


def _reference(policy: ast.Policy, data: Mapping[str, Any], clock: Callable[[], float]) -> Any:
    return Interpreter(policy, data, policy_revision(policy.sources, data), clock)


def _python(policy: ast.Policy, data: Mapping[str, Any], clock: Callable[[], float]) -> Any:
    return TableEvaluator(compile_policy(policy, data), clock)


def _cython(policy: ast.Policy, data: Mapping[str, Any], clock: Callable[[], float]) -> Any:
    return Evaluator(compile_policy(policy, data), clock)


BACKENDS: dict[str, Factory] = {"reference": _reference, "python": _python, "cython": _cython}


@pytest.fixture(params=sorted(BACKENDS))
def make_evaluator(request: pytest.FixtureRequest) -> Factory:
    """Builds an evaluator of each backend from (policy, data, clock)."""
    return BACKENDS[request.param]


def fixed_clock(timestamp: str | None) -> Callable[[], float]:
    """A clock frozen at an RFC 3339 time (or the epoch when none is given)."""
    seconds = literals.parse_timestamp(timestamp) / 1_000_000 if timestamp else 0.0
    return lambda: seconds


def check_expectation(decision: Decision, case: Mapping[str, Any], label: str) -> None:
    """Compare a decision with a case's `decision`, `layer`, `rule`, `reasons` and `errors`."""
    assert "decision" in case, f"{label}: a case must state the wanted decision"
    assert decision.decision == case["decision"], f"{label}: {decision.to_json()}"
    if "layer" in case:
        assert decision.layer == case["layer"], f"{label}: {decision.to_json()}"
    if "rule" in case:
        assert decision.rule == case["rule"], f"{label}: {decision.to_json()}"
    if "reasons" in case:
        assert list(decision.reasons) == case["reasons"], f"{label}: {decision.to_json()}"
    assert list(decision.error_codes) == case.get("errors", []), f"{label}: {decision.to_json()}"
    if "error_paths" in case:
        assert [e.path for e in decision.errors] == case["error_paths"], label
