"""Smoke test of `layergate bench --quick`: every mode runs and reports, every engine agrees.

Speed is not checked here (bench/README.md reports it); only the structure of the JSON
document, the charts, and that the peers and the gRPC server decided as Layergate does.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import orjson

from layergate.bench.loadgen import MODES
from layergate.engine.cli import main

IN_PROCESS = ("cython_check", "cython_check_repeated", "cython_check_batch_1000",
              "python_twin_check_batch_1000", "reference_check_batch_1000")
FIGURES = ("decisions_per_s", "p50_us", "p90_us", "p99_us", "p99.9_us",
           "server_cpu_us_per_decision")


def _children() -> list[str]:
    tasks = Path("/proc/self/task")
    return [pid for task in tasks.iterdir() for pid in (task / "children").read_text().split()]


def _spread(entry: dict, keys: tuple[str, ...]) -> None:
    for statistic in ("median", "min", "max"):
        for key in keys:
            assert entry[statistic][key] > 0, (statistic, key)
    assert entry["rounds"]


def test_quick_bench_reports_every_mode_and_every_engine_agrees(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- micro:start -->\nkept\n<!-- micro:end -->\n"
                      "<!-- bench:start -->\nPREVIOUS-BLOCK\n<!-- bench:end -->\ntail\n")
    assert main(["bench", "--quick", "--sizes", "10", "--out", str(tmp_path),
                 "--write", str(readme)]) == 0
    assert _children() == []  # every server the harness started is gone

    document = orjson.loads((tmp_path / "bench.json").read_bytes())
    assert document["command"].startswith("layergate bench --sizes 10 ")
    assert {"python", "grpcio", "protobuf", "cython"} <= set(document["versions"])
    size = document["sizes"]["10"]
    assert 0.3 < size["workload"]["allowed_fraction"] < 0.5

    for mode in IN_PROCESS:
        _spread(size["in_process"][mode], ("seconds_per_decision", "decisions_per_s"))

    peers = size["peers"]
    spec = importlib.util.find_spec("layergate.bench.peers")
    if spec is not None and spec.origin is not None:  # the peers package exists: it must load
        assert "*" not in peers["unavailable"], peers["unavailable"]
    failed = {n: why for n, why in peers["unavailable"].items() if why.startswith("failed")}
    assert failed == {}
    for name, peer in peers["engines"].items():
        assert peer["disagreements"] == [], f"{name} disagrees with Layergate: {peer['notes']}"
        assert peer["check_disagreements"] == [], f"{name}: check differs from check_batch"
        assert peer["compared"] == size["workload"]["requests"]
        for key in ("check", "check_batch"):
            _spread(peer[key], ("seconds_per_decision",))
    if peers["engines"]:
        assert {"check", "check_batch"} <= set(size["peer_ratios"])

    assert set(size["grpc"]) == {"1", "2"}
    for workers, measured in size["grpc"].items():
        for mode in MODES:
            for target in ("layergate", "baseline"):
                _spread(measured["modes"][mode][target], FIGURES)
            assert measured["ratios"][mode]["decisions_per_s"] > 0
            assert measured["ratios"][mode]["p50_us"] > 0
        for rpc, result in measured["agreement"].items():
            assert result["compared"] > 0
            assert result["disagreements"] == [], f"{rpc} at workers={workers}"

    assert (tmp_path / "latency-S10.png").stat().st_size > 0
    assert (tmp_path / "throughput-S10.png").stat().st_size > 0
    text = readme.read_text()
    assert "kept" in text and "PREVIOUS-BLOCK" not in text
    assert text.endswith("<!-- bench:end -->\ntail\n")
    assert "latency-S10.png" in text


def test_compile_times_parse_every_round_instead_of_hitting_the_parsed_file_cache(
        monkeypatch) -> None:
    from layergate.bench import micro
    from layergate.dsl import parser

    parses: list[str] = []
    uncached = parser._parse_uncached

    def counted(text: str, source: str):
        parses.append(source)
        return uncached(text, source)

    monkeypatch.setattr(parser, "_parse_uncached", counted)
    times = micro.measure_compile(40, rounds=3)
    assert len(parses) == 9 == len(set(parses))  # parse, compile and text -> tables, each round
    assert min(times.parse, times.compile, times.total) > 0  # (speed is not checked)


def test_micro_rounds_interleave_the_modes(monkeypatch) -> None:
    """Each round times every mode once, in turn and in reverse order every other round,
    each after its own warm-up; the speed-up is the median of the rounds' ratios."""
    from layergate.bench import micro

    monkeypatch.setattr(micro, "WARM_SECONDS", 0.0)  # (a warm-up is then one run)
    monkeypatch.setattr(micro, "ROUND_WARM_SECONDS", 0.0)
    calls: list[str] = []
    modes = [((lambda name=name: calls.append(name)), 10) for name in "abc"]
    times = micro.interleaved_rounds(modes, rounds=3)
    assert "".join(calls) == "abc" + "aabbcc" + "ccbbaa" + "aabbcc"
    assert [len(t) for t in times] == [3, 3, 3] and min(map(min, times)) > 0

    reference = micro.Result("ref", "reference", [20.0, 20.0, 40.0])
    fast = micro.Result("fast", "fast", [2.0, 4.0, 4.0])
    # per round 10x, 5x, 10x: 10.0x (the ratio of medians would say 20 / 4 = 5.0x)
    assert fast.cells(reference)[-1] == "10.0x"


def test_micro_report_gives_the_machine_load_at_start_and_end(monkeypatch) -> None:
    """A reader can tell a calm run from a busy one: the load averages are in the block."""
    from layergate.bench import micro

    reference = micro.Result("reference_check_batch_1000", "reference", [100e-6] * 3)
    fast = micro.Result("cython_check_batch_1000", "cython", [0.5e-6] * 3)
    info = {"allowed": 0.4, "reference": reference, "parse_s": 0.01, "compile_s": 0.02}
    monkeypatch.setattr(micro, "measure_size", lambda size, rounds: ([fast, reference], info))
    monkeypatch.setattr(micro, "measure_compile",
                        lambda rules, rounds: micro.CompileTimes(0.1, 0.2, 0.3))
    loads = iter([(0.25, 0.5, 1.0), (1.5, 0.75, 1.25)])
    monkeypatch.setattr(micro.os, "getloadavg", lambda: next(loads))
    table = micro.report([10], rounds=3)
    assert "| **S = 10 roles** (100 service accounts; 40% allowed) | | | | |" in table
    assert "| cython | 500 ns | 500 ns to 500 ns | 2,000,000 | 200.0x |" in table
    assert "| 10,000 | 0.10 s | 0.20 s | 0.30 s |" in table
    machine = table.splitlines()[-1]
    assert machine.startswith("Machine: ") and f"{micro.os.cpu_count()} CPUs" in machine
    assert machine.endswith("3 rounds; load average (1, 5, 15 min) 0.25 / 0.50 / 1.00 at "
                            "start, 1.50 / 0.75 / 1.25 at end.")
