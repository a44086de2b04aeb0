"""The YAML conformance corpus (tests/cases/*.yaml): loading and running one case.

A case holds a policy (text, or a mapping of file names to texts), optional data and clock,
and either `errors` (wanted policy error codes, optionally `at: ["line:col", ...]`) or
`requests` (each with a wanted decision, and optionally layer, rule, reasons and error codes,
or a `batch` with its wanted decisions and optionally each item's layer, rule and explained
layers).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from layergate.dsl import PolicyError, ast
from layergate.dsl.loader import compile_sources
from layergate.engine.request import merge_defaults

from .conftest import CASES, check_expectation, fixed_clock


@dataclass
class Case:
    file: str
    name: str
    spec: dict[str, Any]

    @property
    def id(self) -> str:
        return f"{self.file}::{self.name}"

    def sources(self) -> list[ast.Source]:
        policy = self.spec["policy"]
        if isinstance(policy, str):
            return [ast.Source(f"{self.name}.lg", policy)]
        return [ast.Source(name, text) for name, text in policy.items()]


def load_cases(root: Path = CASES) -> Iterator[Case]:
    for path in sorted(root.rglob("*.yaml")):  # found/ holds new differential failures
        document = yaml.safe_load(path.read_text())
        base = document.get("base", {})
        for spec in document["cases"]:
            for item in spec.get("requests", []):
                if "request" in item:
                    item["request"] = merge_defaults(item["request"], base)
            yield Case(str(path.relative_to(root).with_suffix("")), spec["name"], spec)


def run_case(case: Case, make_evaluator: Any) -> None:
    spec = case.spec
    data = spec.get("data")
    has_errors, has_requests = "errors" in spec, bool(spec.get("requests"))
    assert has_errors != has_requests, f"{case.id}: a case wants either `errors` or `requests`"
    if has_errors:
        _expect_policy_errors(case, data)
        return
    policy = compile_sources(case.sources(), data)
    evaluator = make_evaluator(policy, data or {}, fixed_clock(spec.get("now")))
    for number, item in enumerate(spec["requests"], start=1):
        label = f"{case.id} #{number}"
        if "batch" in item:
            _expect_batch(evaluator, item, label)
            continue
        decision = evaluator.check(item["request"], caller=item.get("caller"),
                                   explain=item.get("explain", False))
        check_expectation(decision, item, label)
        if "layers" in item:
            got = [[r.layer, r.outcome, r.rule] for r in decision.layers]
            assert got == item["layers"], label


def _expect_policy_errors(case: Case, data: Mapping[str, Any] | None) -> None:
    try:
        compile_sources(case.sources(), data)
    except PolicyError as error:
        assert error.codes == case.spec["errors"], f"{case.id}: {error.format()}"
        if "at" in case.spec:
            got = [f"{d.span.line}:{d.span.column}" for d in error.diagnostics]
            assert got == case.spec["at"], f"{case.id}: {error.format()}"
        for diagnostic in error.diagnostics:
            assert diagnostic.span.file and diagnostic.message, case.id
        return
    raise AssertionError(f"{case.id}: the policy was accepted, wanted {case.spec['errors']}")


def _expect_batch(evaluator: Any, item: Mapping[str, Any], label: str) -> None:
    batch = item["batch"]
    decisions = evaluator.check_batch(batch["items"], defaults=batch.get("defaults"),
                                      semantic=batch.get("semantic", "execute_all"),
                                      caller=item.get("caller"),
                                      explain=batch.get("explain", False))
    assert [d.decision for d in decisions] == item["decisions"], label
    for key, field in (("layers", "layer"), ("rules", "rule")):  # optional, item by item
        if key in item:
            assert [getattr(d, field) for d in decisions] == item[key], label
    if "explained" in item:  # each item's per-layer outcomes, with `explain`
        got = [[[r.layer, r.outcome, r.rule] for r in d.layers] for d in decisions]
        assert got == item["explained"], label
