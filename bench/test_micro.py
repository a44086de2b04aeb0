"""pytest-benchmark micro-benchmarks (not part of CI): `pytest bench/ --benchmark-only`.

Each evaluator decides the same seeded workload (bench/workload.py) at 10, 100 and 1,000
roles: one `check` call, and `check_batch` over 1,000 and 10,000 requests.
"""

from __future__ import annotations

import gc
from functools import cache
from typing import Any

import orjson
import pytest

from layergate.dsl import parse_policy
from layergate.dsl.literals import parse_timestamp
from layergate.engine import Authorizer, Interpreter, compile_policy

from .workload import NOW, build

SIZES = (10, 100, 1_000)
CLOCK = parse_timestamp(NOW) / 1_000_000


@cache
def _setup(size: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    workload = build(size)
    policy = parse_policy(workload.policy, f"synthetic-{size}.lg", workload.data)
    tables = compile_policy(policy, workload.data)
    evaluators = {
        "cython": Authorizer(tables, clock=lambda: CLOCK),
        "python": Authorizer(tables, backend="python", clock=lambda: CLOCK),
        "reference": Interpreter(policy, workload.data, tables.revision, lambda: CLOCK),
    }
    requests = orjson.loads(orjson.dumps(workload.requests))
    gc.collect()
    gc.freeze()
    return evaluators, requests


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("engine", ["cython", "python", "reference"])
def test_check(benchmark, engine: str, size: int) -> None:
    evaluators, requests = _setup(size)
    decision = benchmark(evaluators[engine].check, requests[0])
    assert decision.revision


@pytest.mark.parametrize("count", [1_000, 10_000])
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("engine", ["cython", "python", "reference"])
def test_check_batch(benchmark, engine: str, size: int, count: int) -> None:
    if engine != "cython" and count > 1_000:
        pytest.skip("the slow evaluators are measured on 1,000 requests")
    evaluators, requests = _setup(size)
    batch = requests[:count]
    rounds = 3 if engine != "cython" else 10
    decisions = benchmark.pedantic(evaluators[engine].check_batch, args=(batch,),
                                   rounds=rounds, iterations=1)
    assert len(decisions) == count
