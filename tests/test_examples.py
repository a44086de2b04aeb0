"""Every bundled example policy validates and gives its documented decisions."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from layergate.dsl import load_data, load_policy

from .conftest import EXAMPLES, check_expectation, fixed_clock

EXAMPLE_DIRS = sorted(p for p in EXAMPLES.iterdir() if (p / "policy.lg").exists())


def test_every_example_is_found() -> None:
    names = {p.name for p in EXAMPLE_DIRS}
    assert {"cicd-deploy", "mcp-agent", "rotation-job", "invoice", "jit-elevation",
            "authzen-todo", "authzen-api-gateway"} <= names


@pytest.mark.parametrize("example", EXAMPLE_DIRS, ids=lambda p: p.name)
def test_example_decisions(example: Path, make_evaluator) -> None:
    data = load_data(example / "data.json")
    policy = load_policy(example / "policy.lg", data)
    spec = yaml.safe_load((example / "requests.yaml").read_text())
    evaluator = make_evaluator(policy, data, fixed_clock(spec.get("now")))
    defaults = spec.get("defaults", {})
    assert spec["cases"], "an example needs cases"
    for case in spec["cases"]:
        caller = case["caller"] if "caller" in case else defaults.get("caller")
        label = f"{example.name}: {case['name']}"
        decision = evaluator.check(case["request"], caller=caller)
        check_expectation(decision, case, label)
        assert decision.revision.startswith("sha256:")
        explained = evaluator.check(case["request"], caller=caller, explain=True)
        assert (explained.allowed, explained.layer, explained.rule) == (
            decision.allowed, decision.layer, decision.rule), label
        assert [r.layer for r in explained.layers] == [la.name for la in policy.layers], label
