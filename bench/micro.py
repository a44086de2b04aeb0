"""In-process micro-benchmarks: the three evaluators side by side on one seeded workload.

    python -m layergate.bench.micro [--sizes 10,100,1000] [--rounds 5] [--write bench/README.md]

Every figure is a median over rounds (with min and max), measured in one run, so ratios
between modes are meaningful on a noisy shared machine even where absolute times are not.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from layergate.dsl import ast, parse_policy
from layergate.dsl.literals import parse_timestamp
from layergate.dsl.parser import parse_module
from layergate.engine import Authorizer, Interpreter, compile_policy
from layergate.engine.tables import Tables

from .report import write_block
from .workload import NOW, Workload, build, synthetic_rules

CLOCK_SECONDS = parse_timestamp(NOW) / 1_000_000


@dataclass
class Result:
    key: str  # a stable name for JSON output
    label: str
    per_decision: list[float]  # seconds per decision, one entry per round

    @property
    def median(self) -> float:
        return statistics.median(self.per_decision)

    def cells(self, reference: Result) -> list[str]:
        """Table cells; the speed-up is the median of the rounds' ratios (each round times
        every mode, so the ratio of one round is measured side by side)."""
        low, high = min(self.per_decision), max(self.per_decision)
        ratio = statistics.median(r / s for r, s in zip(reference.per_decision,
                                                          self.per_decision, strict=True))
        return [self.label, _ns(self.median), f"{_ns(low)} to {_ns(high)}",
                f"{1 / self.median:,.0f}", f"{ratio:,.1f}x"]


def _ns(seconds: float) -> str:
    return f"{seconds * 1e9:,.0f} ns"


WARM_SECONDS = 0.25  # each mode runs over and over this long (at least once) before timing
ROUND_WARM_SECONDS = 0.05  # interleaved: each mode runs this long again before each timed run


def timed_rounds(run: Callable[[], Any], decisions: int, rounds: int) -> list[float]:
    """Seconds per decision of `run` (which makes `decisions` decisions), once per round.

    First `run` is repeated for WARM_SECONDS, so the evaluator's caches (decisions, addresses)
    and the machine's are as in a server that has been running: at S = 1,000 the first passes
    over the same 1,000 requests take up to 3x as long as later ones (the accounts' rows come
    into the CPU's caches over several passes, not one)."""
    _run_for(run, WARM_SECONDS)
    out = []
    for _ in range(rounds):
        started = time.perf_counter()
        run()
        out.append((time.perf_counter() - started) / decisions)
    return out


def interleaved_rounds(modes: list[tuple[Callable[[], Any], int]],
                       rounds: int) -> list[list[float]]:
    """Seconds per decision of each (run, decisions) mode, once per round.

    Every round times every mode once, in turn (in reverse order every other round), so a slow
    minute of a shared machine falls on all the modes of a round, not on the rounds of one
    mode: ratios taken round by round hold. Each mode is warmed for WARM_SECONDS first, and
    again for ROUND_WARM_SECONDS before each of its timed runs (the modes in between evict
    each other's data from the CPU's caches)."""
    for run, _ in modes:
        _run_for(run, WARM_SECONDS)
    out: list[list[float]] = [[] for _ in modes]
    for round_number in range(rounds):
        order = range(len(modes)) if round_number % 2 == 0 else range(len(modes) - 1, -1, -1)
        for k in order:
            run, decisions = modes[k]
            _run_for(run, ROUND_WARM_SECONDS)
            started = time.perf_counter()
            run()
            out[k].append((time.perf_counter() - started) / decisions)
    return out


def _run_for(run: Callable[[], Any], seconds: float) -> None:
    """Run `run` over and over for `seconds` (at least once)."""
    until = time.perf_counter() + seconds
    run()
    while time.perf_counter() < until:
        run()


def fresh(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Requests as freshly decoded from the wire (compact objects, like a server sees)."""
    return orjson.loads(orjson.dumps(requests))


@dataclass
class Setup:
    """One size's workload, compiled, with the three evaluators on the workload's clock."""

    workload: Workload
    policy: ast.Policy
    tables: Tables
    cython: Authorizer
    twin: Authorizer
    reference: Interpreter
    small: list[dict[str, Any]]  # the first 1,000 requests
    large: list[dict[str, Any]]  # all of them
    parse_s: float
    compile_s: float


def fixed_clock() -> float:
    """The workload's fixed `now`, as a clock."""
    return CLOCK_SECONDS


def set_up(size: int) -> Setup:
    """Build, parse (and validate) and compile the workload at `size` roles; check Cython
    against the reference on the first 1,000 requests."""
    workload = build(size)
    parse_module(synthetic_rules(4), "warm-up.lg")  # builds the parser once: not timed below
    started = time.perf_counter()
    policy = parse_policy(workload.policy, f"synthetic-{size}.lg", workload.data)
    parsed = time.perf_counter()
    tables = compile_policy(policy, workload.data)
    compiled = time.perf_counter()
    setup = Setup(workload, policy, tables, Authorizer(tables, clock=fixed_clock),
                  Authorizer(tables, backend="python", clock=fixed_clock),
                  Interpreter(policy, workload.data, tables.revision, fixed_clock),
                  fresh(workload.requests[:1000]), fresh(workload.requests),
                  parsed - started, compiled - parsed)
    gc.collect()
    gc.freeze()  # what a server does once its policy is loaded: long-lived data leaves the GC
    agree = [d.decision for d in setup.cython.check_batch(setup.small)] == [
        d.decision for d in setup.reference.check_batch(setup.small)]
    if not agree:
        raise SystemExit(f"S={size}: the Cython evaluator disagrees with the reference")
    return setup


def in_process_results(setup: Setup, rounds: int) -> list[Result]:
    """Every in-process mode on `setup`, `rounds` times each, interleaved round by round."""
    cython, small, large = setup.cython, setup.small, setup.large

    def single() -> None:
        check = cython.check
        for request in small:
            check(request)

    def repeated() -> None:  # one request over and over: its entity rows stay in cache
        check, request = cython.check, small[0]
        for _ in small:
            check(request)

    def touch() -> None:  # the do-nothing baseline: read the three index fields per request
        out = []
        for request in small:
            out.append((request["subject"]["id"], request["action"]["name"],
                        request["resource"]["type"]))

    modes = [
        ("python_loop", "baseline: Python loop reading 3 fields", touch, len(small)),
        ("cython_check_batch_1000", "cython check_batch (1,000)",
         lambda: cython.check_batch(small), len(small)),
        ("cython_check_batch_10000", "cython check_batch (10,000)",
         lambda: cython.check_batch(large), len(large)),
        ("cython_check", "cython check, one call each", single, len(small)),
        ("cython_check_repeated", "cython check, one request repeated", repeated, len(small)),
        ("python_twin_check_batch_1000", "python twin check_batch (1,000)",
         lambda: setup.twin.check_batch(small), len(small)),
        ("reference_check_batch_1000", "reference interpreter check_batch (1,000)",
         lambda: setup.reference.check_batch(small), len(small)),
    ]
    times = interleaved_rounds([(run, count) for _, _, run, count in modes], rounds)
    return [Result(key, label, per_decision)
            for (key, label, _, _), per_decision in zip(modes, times, strict=True)]


def measure_size(size: int, rounds: int) -> tuple[list[Result], dict[str, Any]]:
    setup = set_up(size)
    results = in_process_results(setup, rounds)
    reference = next(r for r in results if r.key == "reference_check_batch_1000")
    allowed = sum(d.allowed for d in setup.cython.check_batch(setup.large)) / len(setup.large)
    info = {"parse_s": setup.parse_s, "compile_s": setup.compile_s, "allowed": allowed,
            "reference": reference}
    return results, info


@dataclass
class CompileTimes:
    """Medians over rounds, in seconds, for one policy text; each round starts cold."""

    parse: float  # text -> AST
    compile: float  # validated AST -> tables
    total: float  # text -> tables: parse, validate, compile


def measure_compile(rules: int, rounds: int) -> CompileTimes:
    """Time the load stages on a policy of `rules` rules.

    Each round gives the text a name it has not had before: parsed modules are cached by
    (name, text), so the same name would time a cache hit (as a reload of an unchanged file
    is), not a parse."""
    text = synthetic_rules(rules)
    parse_times, compile_times, total_times = [], [], []
    for round_number in range(rounds):
        gc.collect()
        started = time.perf_counter()
        parse_module(text, f"rules-{rules}-parse-{round_number}.lg")
        parse_times.append(time.perf_counter() - started)
        policy = parse_policy(text, f"rules-{rules}-compile-{round_number}.lg")
        gc.collect()
        started = time.perf_counter()
        compile_policy(policy)
        compile_times.append(time.perf_counter() - started)
        del policy
        gc.collect()
        started = time.perf_counter()
        compile_policy(parse_policy(text, f"rules-{rules}-total-{round_number}.lg"))
        total_times.append(time.perf_counter() - started)
    return CompileTimes(statistics.median(parse_times), statistics.median(compile_times),
                        statistics.median(total_times))


def report(sizes: list[int], rounds: int) -> str:
    load_at_start = os.getloadavg()
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
        notes.append(f"S = {size:,}: parse and validate {info['parse_s']:.2f} s, compile "
                     f"{info['compile_s']:.2f} s (policy with {size:,} roles and "
                     f"{10 * size:,} data entities)")
    lines += ["", "| rules | parse (text -> AST) | compile (AST -> tables) | text -> tables |",
              "|---|---|---|---|"]
    for rules in (1_000, 10_000):
        times = measure_compile(rules, max(3, rounds // 2))
        lines.append(f"| {rules:,} | {times.parse:.2f} s | {times.compile:.2f} s "
                     f"| {times.total:.2f} s |")
    machine = (f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_implementation()} "
               f"{platform.python_version()}, {rounds} rounds; load average (1, 5, 15 min) "
               f"{_load(load_at_start)} at start, {_load(os.getloadavg())} at end")
    return "\n".join([*lines, "", *notes, "", f"Machine: {machine}."])


def _load(averages: tuple[float, float, float]) -> str:
    return " / ".join(f"{value:.2f}" for value in averages)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--write", type=Path, help="replace the results block of this file")
    args = parser.parse_args(argv)
    table = report([int(s) for s in args.sizes.split(",")], args.rounds)
    print(table)
    if args.write:
        write_block(args.write, table, "micro")
    return 0


if __name__ == "__main__":
    sys.exit(main())
