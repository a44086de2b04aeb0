"""Runs the conformance corpus on every evaluator, and checks the corpus covers the language."""

from __future__ import annotations

import pytest

from layergate.dsl import CODES, ast
from layergate.dsl.loader import compile_sources
from layergate.dsl.validate import FUNCTIONS
from layergate.engine.decision import EVAL_CODES

from .corpus import Case, load_cases, run_case

ALL_CASES = list(load_cases())


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: c.id)
def test_case(case: Case, make_evaluator) -> None:
    run_case(case, make_evaluator)


def test_case_names_are_unique() -> None:
    ids = [case.id for case in ALL_CASES]
    assert len(ids) == len(set(ids))


def test_every_policy_error_code_has_a_case() -> None:
    seen = {code for case in ALL_CASES for code in case.spec.get("errors", [])}
    elsewhere = {"file_not_found", "file_unreadable", "invalid_data",  # test_loader
                 "index_too_large",  # test_compiler
                 "load_failed"}  # test_server: a fault in reloading
    assert set(CODES) - seen - elsewhere == set()


def test_every_evaluation_error_code_has_a_case() -> None:
    seen = {code for case in ALL_CASES for item in case.spec.get("requests", [])
            for code in item.get("errors", [])}
    batch_only = {"invalid_request"}
    assert set(EVAL_CODES) - seen - batch_only == set()


def _walk(node: object):
    yield node
    if isinstance(node, tuple):
        for item in node:
            yield from _walk(item)
    elif hasattr(node, "__dataclass_fields__"):
        for name in node.__dataclass_fields__:
            if name != "span":
                yield from _walk(getattr(node, name))


def test_every_operator_and_function_has_a_case() -> None:
    used: set[str] = set()
    for case in ALL_CASES:
        if "requests" not in case.spec:
            continue
        policy = compile_sources(case.sources(), case.spec.get("data"))
        for layer in policy.layers:
            for node in _walk(layer.rules):
                if isinstance(node, ast.Compare):
                    used.add(node.op)
                elif isinstance(node, ast.Membership):
                    used.add("contains" if node.written_as_contains else
                             "not in" if node.negated else "in")
                elif isinstance(node, ast.Call):
                    used.add(node.name)
                elif isinstance(node, (ast.And, ast.Or, ast.Not, ast.Now, ast.ConstRef)):
                    used.add(type(node).__name__)
    wanted = {"==", "!=", "<", "<=", ">", ">=", "in", "not in", "contains", *FUNCTIONS,
              "And", "Or", "Not", "Now", "ConstRef"}
    assert wanted - used == set()
