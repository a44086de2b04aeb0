"""Where a gRPC decision's server time goes, without the transport: the servicers, profiled.

    python -m layergate.bench.servicer_profile [--size 10] [--top 15]

Calls the real `AuthorizerService` methods in-process on serialized messages, read as the
server reads them, times the edge stages of BatchCheck one by one (read the bytes into dicts,
decide, build and frame the responses), per item, and prints cProfile's view of BatchCheck,
StreamCheck and Check.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from collections.abc import Callable
from typing import Any

from layergate.clients import convert
from layergate.clients._gen import authz_pb2 as pb
from layergate.engine import wire
from layergate.engine.server import AuthorizerService, Loaded, PolicyHolder, PolicySource

from .micro import Setup, set_up


class _Context:
    """The little of grpc.ServicerContext the servicers read on an insecure call."""

    def auth_context(self) -> dict[str, Any]:
        return {}

    def code(self) -> None:
        return None


class _Prepared(PolicySource):
    def __init__(self, setup: Setup) -> None:
        super().__init__()
        self.setup = setup

    def load(self) -> Loaded:
        return Loaded(self.setup.cython, (), time.time())


def _per_item(run: Callable[[], Any], items: int, repeat: int = 10) -> float:
    """Microseconds per item of `run`, the best of `repeat` runs (the least disturbed)."""
    run()
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best / items * 1e6


def stages(service: AuthorizerService, setup: Setup) -> dict[str, float]:
    """Microseconds per item of each step of a 1,000-item BatchCheck, and of the whole."""
    raw = convert.batch_request(setup.small, None, "execute_all", False).SerializeToString()
    items, defaults, semantic, _ = wire.read_batch(raw)
    decisions = setup.cython.check_batch(items, defaults, semantic)

    def encode() -> bytes:
        results = [service.encoder.check_response(d, service.ids.next(), False)
                   for d in decisions]
        return service.encoder.batch_response(results, setup.cython.revision)

    count = len(setup.small)
    return {
        "read the request (wire.read_batch: bytes to dicts)": _per_item(
            lambda: wire.read_batch(raw), count),
        "decide (check_batch)": _per_item(
            lambda: setup.cython.check_batch(items, defaults, semantic), count),
        "encode the response (wire.Encoder: bytes per distinct decision, framed)": _per_item(
            encode, count),
        "the whole BatchCheck (read, servicer)": _per_item(
            lambda: service.BatchCheck(wire.read_batch(raw), _Context()), count),
    }


def profiles(service: AuthorizerService, setup: Setup, top: int) -> str:
    """cProfile of each servicer on the first 1,000 requests, by own time."""
    batch = convert.batch_request(setup.small, None, "execute_all", False).SerializeToString()
    stream = pb.StreamCheckRequest()
    for index, request in enumerate(setup.small):
        item = stream.items.add(correlation_id=str(index))
        item.request.CopyFrom(convert.check_request(request))
    streamed = stream.SerializeToString()
    singles = [convert.check_request(r).SerializeToString() for r in setup.small]
    runs = {
        "BatchCheck (1,000 items)": lambda: service.BatchCheck(wire.read_batch(batch),
                                                               _Context()),
        "StreamCheck (one message of 1,000 items)": lambda: list(
            service.StreamCheck(iter([wire.read_stream(streamed)]), _Context())),
        "Check (1,000 calls)": lambda: [service.Check(wire.read_check(m), _Context())
                                        for m in singles],
    }
    out = io.StringIO()
    for label, run in runs.items():
        profiler = cProfile.Profile()
        profiler.runcall(run)
        out.write(f"\n## {label}\n")
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10)
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args(argv)
    setup = set_up(args.size)
    service = AuthorizerService(PolicyHolder(_Prepared(setup)))
    print(f"S = {args.size}: microseconds per item of a 1,000-item BatchCheck (best of 10)")
    for stage, micros in stages(service, setup).items():
        print(f"  {stage:<72} {micros:8.2f} µs")
    print(profiles(service, setup, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
