"""The OpenID AuthZEN interop vectors (shared/anchors/authzen) through every evaluator."""

from __future__ import annotations

import json

import pytest

from layergate.dsl import load_data, load_policy

from .conftest import ANCHORS, EXAMPLES, fixed_clock

AUTHZEN = ANCHORS / "authzen"
SINGLE = [
    ("authzen-todo", "todo/decisions-authorization-api-1_0-01.json"),
    ("authzen-todo", "todo/decisions-authorization-api-1_0-02.json"),
    ("authzen-api-gateway", "api-gateway/decisions.json"),
]


def _vectors(relative: str) -> dict:
    path = AUTHZEN / relative
    if not path.exists():
        pytest.fail(f"AuthZEN vectors missing: {path} (shared/ must sit beside the repository)")
    return json.loads(path.read_text())


def _evaluator(example: str, make_evaluator):
    data = load_data(EXAMPLES / example / "data.json")
    policy = load_policy(EXAMPLES / example / "policy.lg", data)
    return make_evaluator(policy, data, fixed_clock(None))


@pytest.mark.parametrize(("example", "relative"), SINGLE, ids=[s[1] for s in SINGLE])
def test_single_evaluations(example: str, relative: str, make_evaluator) -> None:
    evaluator = _evaluator(example, make_evaluator)
    vectors = _vectors(relative)["evaluation"]
    assert len(vectors) in (25, 40)
    mismatches = [
        (case["request"], case["expected"])
        for case in vectors
        if evaluator.check(case["request"]).allowed != case["expected"]
    ]
    assert mismatches == []


def test_todo_batches(make_evaluator) -> None:
    evaluator = _evaluator("authzen-todo", make_evaluator)
    batches = _vectors("todo/decisions-authorization-api-1_0-02.json")["evaluations"]
    assert len(batches) == 3
    for batch in batches:
        request = dict(batch["request"])
        items = request.pop("evaluations")
        decisions = evaluator.check_batch(items, defaults=request)
        assert [{"decision": d.allowed} for d in decisions] == batch["expected"]
