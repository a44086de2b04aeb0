"""pytest-benchmark micro-benchmarks (not part of CI): `pytest bench/ --benchmark-only`.

Each evaluator decides the same seeded workload (bench/workload.py) at 10, 100 and 1,000
roles: one `check` call, and `check_batch` over 1,000 and 10,000 requests.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest

from .micro import set_up

SIZES = (10, 100, 1_000)


@cache
def _setup(size: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    setup = set_up(size)
    evaluators = {"cython": setup.cython, "python": setup.twin, "reference": setup.reference}
    return evaluators, setup.large


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
    evaluators, requests = _setup(size)
    batch = requests[:count]
    rounds = 3 if engine != "cython" else 10
    decisions = benchmark.pedantic(evaluators[engine].check_batch, args=(batch,),
                                   rounds=rounds, iterations=1)
    assert len(decisions) == count
