"""`layergate bench`: every mode on one seeded workload, in one run, as one JSON document.

For each size S: the in-process evaluators (bench/micro.py), the peer engines (after checking
that they decide every request as Layergate does), then gRPC on loopback: the real server
(`bench/server.py`) and the do-nothing baseline (`bench/null_server.py`) side by side, each at
every `--workers` count, driven by the load generator (`bench/loadgen.py`) in its own process.
"""

from __future__ import annotations

import gc
import importlib.metadata
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from layergate.engine import wire

from . import loadgen
from .micro import Result, Setup, in_process_results, set_up, timed_rounds
from .processes import Spawned

SECTIONS = ("in-process", "peers", "grpc")
SCALARS = ("decisions_per_s", "calls_per_s", "p50_us", "p90_us", "p99_us", "p99.9_us",
           "server_cpu_us_per_decision", "load_cpu_s")


@dataclass
class Settings:
    """What to measure and for how long (everything else follows from the seed)."""

    sizes: list[int] = field(default_factory=lambda: [10, 100, 1000])
    rounds: int = 5
    seconds: float = 1.0  # per gRPC measurement, and the time budget of one peer round
    workers: list[int] = field(default_factory=lambda: [1, 2])
    sections: list[str] = field(default_factory=lambda: list(SECTIONS))
    grpc_modes: list[str] = field(default_factory=lambda: list(loadgen.MODES))
    peers: list[str] | None = None  # None: every peer that loads
    concurrency: int = 32  # calls in flight for unary at high concurrency
    channels: int = 4  # connections (and streams, and batch callers) of the load generator
    stream_items: int = 100  # requests per StreamCheck message
    stream_window: int = 4  # StreamCheck messages in flight per stream
    quick: bool = False

    def command(self) -> str:
        """The `layergate bench` options that reproduce these settings."""
        modes = [s for s in self.sections if s != "grpc"] + (
            ["grpc"] if self.grpc_modes == list(loadgen.MODES) else self.grpc_modes)
        return " ".join([
            "layergate bench", f"--sizes {','.join(map(str, self.sizes))}",
            f"--rounds {self.rounds}", f"--seconds {self.seconds:g}",
            f"--workers {','.join(map(str, self.workers))}", f"--modes {','.join(modes)}",
            *([f"--peers {','.join(self.peers)}"] if self.peers is not None else []),
        ])


def summarize(rounds: list[dict[str, float]]) -> dict[str, Any]:
    """Median, min and max over rounds of every scalar figure."""
    keys = [key for key in rounds[0] if isinstance(rounds[0][key], (int, float))]
    return {
        "rounds": rounds,
        "median": {key: statistics.median(r[key] for r in rounds) for key in keys},
        "min": {key: min(r[key] for r in rounds) for key in keys},
        "max": {key: max(r[key] for r in rounds) for key in keys},
    }


def _in_process_entry(result: Result, decisions: int) -> dict[str, Any]:
    entry = summarize([{"seconds_per_decision": s, "decisions_per_s": 1 / s}
                       for s in result.per_decision])
    return {"label": result.label, "decisions": decisions, **entry}


def measure_in_process(setup: Setup, rounds: int) -> dict[str, Any]:
    """The micro-benchmark modes, as JSON entries keyed by mode."""
    out = {}
    for result in in_process_results(setup, rounds):
        decisions = len(setup.large) if result.key.endswith("10000") else len(setup.small)
        out[result.key] = _in_process_entry(result, decisions)
    return out


def _bounded(check_one: Callable[[Any], Any], prepare: Callable[[list[Any]], Any],
             requests: list[dict[str, Any]], seconds: float) -> tuple[Any, int]:
    """The longest prefix of `requests` one peer round can decide in about `seconds`."""
    probe = requests[:50]
    native = prepare(probe)
    started = time.perf_counter()
    for index in range(len(probe)):
        check_one(native[index])
    each = max((time.perf_counter() - started) / len(probe), 1e-9)
    count = max(len(probe), min(len(requests), int(seconds / each)))
    return prepare(requests[:count]), count


def measure_peer(peer_class: type, setup: Setup, expected: list[bool], rounds: int,
                 seconds: float, disagreements: Callable[..., list[int]]) -> dict[str, Any]:
    """A peer's agreement with Layergate on every request, then (only if it agrees) its
    per-decision time for `check` and `check_batch` on the requests Layergate was timed on."""
    started = time.perf_counter()
    peer = peer_class(setup.workload.to_json())
    built = time.perf_counter() - started
    wrong = disagreements(peer, setup.workload.requests, expected)
    entry: dict[str, Any] = {
        "name": peer.name, "version": peer.version, "notes": list(peer.notes),
        "setup_s": built, "compared": len(expected), "disagreements": wrong,
        "agreed": not wrong,
    }
    if wrong:
        return entry  # reported, not timed: a faster wrong answer proves nothing
    native, count = _bounded(peer.check, peer.prepare, setup.small, seconds)
    entry["check_disagreements"] = [  # `disagreements` compared its batch call; and `check`?
        index for index in range(count) if peer.check(native[index]) != expected[index]]
    if entry["check_disagreements"]:
        entry["agreed"] = False
        return entry

    def one_by_one() -> None:
        check = peer.check
        for index in range(count):
            check(native[index])

    for key, run in (("check", one_by_one), ("check_batch", lambda: peer.check_batch(native))):
        per_decision = timed_rounds(run, count, rounds)
        entry[key] = _in_process_entry(Result(key, f"{peer.name} {key}", per_decision), count)
    return entry


def measure_peers(setup: Setup, settings: Settings, expected: list[bool]) -> dict[str, Any]:
    try:
        from .peers import disagreements, load_peers
    except ImportError as exc:
        return {"engines": {}, "unavailable": {"*": f"bench/peers does not load: {exc}"}}
    classes, unavailable = load_peers(settings.peers)
    unavailable = dict(unavailable)
    engines = {}
    for peer_class in classes:
        try:
            entry = measure_peer(peer_class, setup, expected, settings.rounds, settings.seconds,
                                 disagreements)
        except Exception as exc:  # one broken peer must not lose the rest of a long run
            unavailable[peer_class.name] = f"failed: {type(exc).__name__}: {exc}"
            continue
        engines[entry["name"]] = entry
    return {"engines": engines, "unavailable": unavailable}


def _constant_response(setup: Setup) -> str:
    """A real allow of this workload, serialized (hex): the baseline answers with it."""
    allowed = next(d for d in setup.cython.check_batch(setup.small) if d.allowed)
    return wire.response(allowed, "0123456789ab-1", layers=False).SerializeToString().hex()


def _run_loadgen(spec: dict[str, Any], workdir: Path, timeout: float) -> dict[str, Any]:
    spec_path, out_path = workdir / "spec.json", workdir / "loadgen-out.json"
    spec_path.write_bytes(orjson.dumps(spec))
    done = subprocess.run([sys.executable, "-m", "layergate.bench.loadgen", str(spec_path),
                           str(out_path)], capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"the load generator failed:\n{done.stderr[-4000:]}")
    return orjson.loads(out_path.read_bytes())


def _grpc_ratios(modes: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Every gRPC figure of Layergate divided by the baseline's (medians)."""
    out = {}
    for mode, targets in modes.items():
        ours, base = targets["layergate"]["median"], targets["baseline"]["median"]
        out[mode] = {key: ours[key] / base[key] for key in SCALARS
                     if key in ours and base.get(key)}
    return out


def measure_grpc(setup: Setup, settings: Settings, expected: list[bool],
                 workdir: Path) -> dict[str, Any]:
    """Both servers at every worker count, driven the same way, round by round."""
    policy, data, requests = workdir / "policy.lg", workdir / "data.json", workdir / "req.json"
    policy.write_text(setup.workload.policy)
    data.write_bytes(orjson.dumps(setup.workload.data))
    requests.write_bytes(orjson.dumps(setup.workload.requests))
    response = _constant_response(setup)
    budget = 120 + 4 * len(settings.grpc_modes) * settings.rounds * settings.seconds
    out: dict[str, Any] = {}
    for workers in settings.workers:
        count = ["--workers", str(workers)]
        with Spawned("layergate.bench.server", [str(policy), str(data), *count],
                     f"layergate server (workers={workers})", workdir / "server.log") as ours, \
                Spawned("layergate.bench.null_server", [response, *count],
                        f"baseline server (workers={workers})", workdir / "null.log") as base:
            spec = {
                "requests": str(requests), "expected": expected, "verify": "layergate",
                "targets": {"layergate": {"address": ours.address, "pids": ours.pids()},
                            "baseline": {"address": base.address, "pids": base.pids()}},
                "modes": settings.grpc_modes, "rounds": settings.rounds,
                "seconds": settings.seconds, "concurrency": settings.concurrency,
                "channels": settings.channels, "stream_items": settings.stream_items,
                "stream_window": settings.stream_window,
            }
            measured = _run_loadgen(spec, workdir, budget)
        modes = {mode: {name: summarize(rounds) for name, rounds in targets.items()}
                 for mode, targets in measured["modes"].items()}
        out[str(workers)] = {"modes": modes, "ratios": _grpc_ratios(modes),
                             "agreement": measured["agreement"]}
    return out


def _peer_ratios(in_process: dict[str, Any], peers: dict[str, Any]) -> dict[str, Any]:
    """How many times faster per decision Layergate is than the fastest agreeing peer."""
    timed = {name: e for name, e in peers["engines"].items() if "check" in e}
    out: dict[str, Any] = {}
    for key, ours in (("check", "cython_check"), ("check_batch", "cython_check_batch_1000")):
        if not timed or ours not in in_process:
            continue
        fastest = min(timed, key=lambda name: timed[name][key]["median"]["seconds_per_decision"])
        theirs = timed[fastest][key]["median"]["seconds_per_decision"]
        out[key] = {"fastest_peer": fastest, "ratio": theirs / in_process[ours]["median"][
            "seconds_per_decision"]}
    return out


def measure_size(size: int, settings: Settings, log: Callable[[str], None]) -> dict[str, Any]:
    started = time.perf_counter()
    setup = set_up(size)
    decisions = setup.cython.check_batch(setup.large)
    expected = [d.allowed for d in decisions]
    out: dict[str, Any] = {"workload": {
        "roles": size, "service_accounts": 10 * size, "resources": 10 * size,
        "requests": len(expected), "allowed_fraction": sum(expected) / len(expected),
        "errors_fraction": sum(bool(d.errors) for d in decisions) / len(decisions),
        "parse_s": setup.parse_s, "compile_s": setup.compile_s,
        "revision": setup.tables.revision,
    }}
    if "in-process" in settings.sections:
        log(f"S={size}: in-process")
        out["in_process"] = measure_in_process(setup, settings.rounds)
    if "peers" in settings.sections:
        log(f"S={size}: peers")
        out["peers"] = measure_peers(setup, settings, expected)
        out["peer_ratios"] = _peer_ratios(out.get("in_process", {}), out["peers"])
    if "grpc" in settings.sections:
        with tempfile.TemporaryDirectory(prefix="layergate-bench-") as workdir:
            log(f"S={size}: gRPC, workers {settings.workers}")
            out["grpc"] = measure_grpc(setup, settings, expected, Path(workdir))
    del setup
    gc.unfreeze()  # set_up froze this size's data; let the next size start clean
    gc.collect()
    out["seconds"] = time.perf_counter() - started
    return out


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment() -> dict[str, Any]:
    """The machine and the versions that produced the figures."""
    from google.protobuf.internal import api_implementation

    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return {
        "machine": {"platform": platform.platform(), "cpu": model, "cpus": os.cpu_count(),
                    "load_average_at_start": os.getloadavg()},
        "versions": {"python": platform.python_version(),
                     "implementation": platform.python_implementation(),
                     **{name: _version(name) for name in (
                         "layergate", "grpcio", "protobuf", "cython", "orjson")},
                     "protobuf_backend": api_implementation.Type()},
    }


def run(settings: Settings, command: str | None = None,
        log: Callable[[str], None] = print) -> dict[str, Any]:
    """Measure every size; the whole result as one JSON-ready document."""
    started = time.time()
    document: dict[str, Any] = {
        "schema": 1, "command": command or settings.command(), "settings": asdict(settings),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        **environment(), "sizes": {},
    }
    for size in settings.sizes:
        document["sizes"][str(size)] = measure_size(size, settings, log)
    document["versions"]["peers"] = {
        peer["name"]: peer["version"] for size in document["sizes"].values()
        for peer in size.get("peers", {}).get("engines", {}).values()}
    document["machine"]["load_average_at_end"] = os.getloadavg()
    document["seconds"] = time.time() - started
    return document
