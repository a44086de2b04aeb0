"""In-process micro-benchmarks: the three evaluators side by side on one seeded workload.

    python -m layergate.bench.micro [--sizes 10,100,1000] [--rounds 5] [--write bench/README.md]

Every figure is a median over rounds (with min and max), measured in one run, so ratios
between modes are meaningful on a noisy shared machine even where absolute times are not.
"""

from __future__ import annotations

import argparse
import gc
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from layergate.dsl import parse_policy
from layergate.dsl.literals import parse_timestamp
from layergate.engine import Authorizer, Interpreter, compile_policy

from .workload import NOW, build, synthetic_rules

CLOCK_SECONDS = parse_timestamp(NOW) / 1_000_000


@dataclass
class Result:
    label: str
    per_decision: list[float]  # seconds per decision, one entry per round

    @property
    def median(self) -> float:
        return statistics.median(self.per_decision)

    def cells(self, reference: float) -> list[str]:
        low, high = min(self.per_decision), max(self.per_decision)
        return [self.label, _ns(self.median), f"{_ns(low)} to {_ns(high)}",
                f"{1 / self.median:,.0f}", f"{reference / self.median:,.1f}x"]


def _ns(seconds: float) -> str:
    return f"{seconds * 1e9:,.0f} ns"


def _rounds(run: Callable[[], Any], decisions: int, rounds: int) -> list[float]:
    run()  # warm caches (decision cache, address cache) as a server would be
    out = []
    for _ in range(rounds):
        started = time.perf_counter()
        run()
        out.append((time.perf_counter() - started) / decisions)
    return out


def _fresh(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Requests as freshly decoded from the wire (compact objects, like a server sees)."""
    return orjson.loads(orjson.dumps(requests))


def measure_size(size: int, rounds: int) -> tuple[list[Result], dict[str, float]]:
    workload = build(size)
    started = time.perf_counter()
    policy = parse_policy(workload.policy, f"synthetic-{size}.lg", workload.data)
    parsed = time.perf_counter()
    tables = compile_policy(policy, workload.data)
    compiled = time.perf_counter()
    clock = lambda: CLOCK_SECONDS  # noqa: E731 - the workload's fixed "now"
    cython = Authorizer(tables, clock=clock)
    twin = Authorizer(tables, backend="python", clock=clock)
    reference = Interpreter(policy, workload.data, tables.revision, clock)
    small = _fresh(workload.requests[:1000])
    large = _fresh(workload.requests)
    gc.collect()
    gc.freeze()  # what a server does once its policy is loaded: long-lived data leaves the GC
    agree = [d.decision for d in cython.check_batch(small)] == [
        d.decision for d in reference.check_batch(small)]
    if not agree:
        raise SystemExit(f"S={size}: the Cython evaluator disagrees with the reference")

    def single() -> None:
        check = cython.check
        for request in small:
            check(request)

    def touch() -> None:  # the do-nothing baseline: read the three index fields per request
        out = []
        for request in small:
            out.append((request["subject"]["id"], request["action"]["name"],
                        request["resource"]["type"]))

    reference_rounds = _rounds(lambda: reference.check_batch(small), 1000, rounds)
    reference_time = statistics.median(reference_rounds)
    results = [
        Result("baseline: Python loop reading 3 fields", _rounds(touch, 1000, rounds)),
        Result("cython check_batch (1,000)", _rounds(lambda: cython.check_batch(small), 1000,
                                                      rounds)),
        Result("cython check_batch (10,000)",
               _rounds(lambda: cython.check_batch(large), len(large), rounds)),
        Result("cython check, one call each", _rounds(single, 1000, rounds)),
        Result("python twin check_batch (1,000)",
               _rounds(lambda: twin.check_batch(small), 1000, rounds)),
        Result("reference interpreter check_batch (1,000)", reference_rounds),
    ]
    allowed = sum(d.allowed for d in cython.check_batch(large)) / len(large)
    info = {"parse_s": parsed - started, "compile_s": compiled - parsed, "allowed": allowed,
            "reference": reference_time}
    return results, info


def measure_compile(rules: int, rounds: int) -> tuple[float, float]:
    text = synthetic_rules(rules)
    parse_times, compile_times = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        policy = parse_policy(text, f"rules-{rules}.lg")
        parsed = time.perf_counter()
        compile_policy(policy)
        compile_times.append(time.perf_counter() - parsed)
        parse_times.append(parsed - started)
    return statistics.median(parse_times), statistics.median(compile_times)


def report(sizes: list[int], rounds: int) -> str:
    lines = [
        "| mode | median per decision | min to max | decisions/s | vs reference |",
        "|---|---|---|---|---|",
    ]
    notes = []
    for size in sizes:
        results, info = measure_size(size, rounds)
        lines.append(f"| **S = {size:,} roles** ({10 * size:,} service accounts; "
                     f"{info['allowed']:.0%} allowed) | | | | |")
        lines.extend("| " + " | ".join(r.cells(info["reference"])) + " |" for r in results)
        notes.append(f"S = {size:,}: parse {info['parse_s']:.2f} s, compile "
                     f"{info['compile_s']:.2f} s (policy with {size:,} roles and "
                     f"{10 * size:,} data entities)")
    lines += ["", "| rules | parse | compile (AST -> tables) |", "|---|---|---|"]
    for rules in (1_000, 10_000):
        parse_s, compile_s = measure_compile(rules, max(1, rounds // 2))
        lines.append(f"| {rules:,} | {parse_s:.2f} s | {compile_s:.2f} s |")
    machine = (f"{platform.machine()}, {platform.python_implementation()} "
               f"{platform.python_version()}, {rounds} rounds")
    return "\n".join([*lines, "", *notes, "", f"Machine: {machine}."])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--write", type=Path, help="replace the results block of this file")
    args = parser.parse_args(argv)
    table = report([int(s) for s in args.sizes.split(",")], args.rounds)
    print(table)
    if args.write:
        text = args.write.read_text()
        start, end = "<!-- micro:start -->", "<!-- micro:end -->"
        head, _, rest = text.partition(start)
        _, _, tail = rest.partition(end)
        args.write.write_text(f"{head}{start}\n{table}\n{end}{tail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
