"""The load generator: drives a server over gRPC from its own process, and times it.

    python -m layergate.bench.loadgen SPEC.json OUT.json

The spec names the servers to drive (`targets`: address and process ids), the requests, the
modes, rounds and seconds per measurement. Modes are measured round by round, alternating
between targets, so that the real server and the baseline see the same machine load. Requests
are serialized once, before any timing, and sent and received as bytes: the load generator
decodes no response while timing, so its own cost stays small and equal for every server.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import orjson
from grpc import aio

from layergate.clients import convert
from layergate.clients._gen import authz_pb2 as pb

from .processes import cpu_seconds

Outcome = tuple[int, int, float, list[float]]  # decisions, calls, wall seconds, latencies
CHECK = "/layergate.v1.Authorizer/Check"
BATCH = "/layergate.v1.Authorizer/BatchCheck"
STREAM = "/layergate.v1.Authorizer/StreamCheck"
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.use_local_subchannel_pool", 1),  # one connection per channel: spreads over workers
]
PERCENTILES = {"p50": 0.50, "p90": 0.90, "p99": 0.99, "p99.9": 0.999}
MODES = ("unary_c1", "unary_concurrent", "batch_100", "batch_1000", "stream")


def percentiles(seconds: list[float]) -> dict[str, float]:
    """Latency percentiles in microseconds (nearest rank)."""
    ordered = sorted(seconds)
    last = len(ordered) - 1
    return {name: ordered[min(last, int(q * len(ordered)))] * 1e6
            for name, q in PERCENTILES.items()}


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def payloads(requests: list[dict[str, Any]], stream_items: int) -> dict[str, list[bytes]]:
    """Every mode's messages, serialized: one per request, per batch, per stream message."""
    out = {"unary": [convert.check_request(r).SerializeToString() for r in requests]}
    for size in (100, 1000):
        out[f"batch_{size}"] = [
            convert.batch_request(chunk, None, "execute_all", False).SerializeToString()
            for chunk in _chunks(requests, size)]
    messages = []
    for start, chunk in zip(range(0, len(requests), stream_items),
                            _chunks(requests, stream_items), strict=True):
        message = pb.StreamCheckRequest()
        for offset, request in enumerate(chunk):
            item = message.items.add(correlation_id=str(start + offset))
            item.request.CopyFrom(convert.check_request(request))
        messages.append(message.SerializeToString())
    out["stream"] = messages
    return out


def _figures(decisions: int, calls: int, wall: float, latencies: list[float],
             server_cpu: float, load_cpu: float) -> dict[str, Any]:
    return {
        "seconds": wall, "calls": calls, "decisions": decisions,
        "calls_per_s": calls / wall, "decisions_per_s": decisions / wall,
        **{f"{name}_us": value for name, value in percentiles(latencies).items()},
        "server_cpu_s": server_cpu, "load_cpu_s": load_cpu,
        "server_cpu_us_per_decision": server_cpu / decisions * 1e6,
    }


def _cpu_measured(pids: list[int], run: Callable[[], Outcome]
                  ) -> dict[str, Any]:
    server_before, load_before = cpu_seconds(pids), time.process_time()
    decisions, calls, wall, latencies = run()
    return _figures(decisions, calls, wall, latencies, cpu_seconds(pids) - server_before,
                    time.process_time() - load_before)


def unary_c1(address: str, messages: list[bytes], seconds: float,
             max_calls: int = 200_000) -> Outcome:
    """One call at a time, blocking: the latency of a lone request."""
    with grpc.insecure_channel(address, options=CHANNEL_OPTIONS) as channel:
        call = channel.unary_unary(CHECK)
        call(messages[0], timeout=10)
        latencies: list[float] = []
        clock = time.perf_counter
        started = clock()
        deadline = started + seconds
        count = len(messages)
        while len(latencies) < max_calls:
            sent = clock()
            if sent > deadline:
                break
            call(messages[len(latencies) % count], timeout=10)
            latencies.append(clock() - sent)
        return len(latencies), len(latencies), clock() - started, latencies


async def _closed_loop(address: str, method: str, messages: list[bytes], items: int,
                       seconds: float, concurrency: int, channels: int
                       ) -> Outcome:
    """`concurrency` callers, each sending its next call as soon as the last one returns."""
    opened = [aio.insecure_channel(address, options=CHANNEL_OPTIONS) for _ in range(channels)]
    try:
        calls = [channel.unary_unary(method) for channel in opened]
        await asyncio.gather(*(call(messages[0], timeout=30) for call in calls))
        latencies: list[float] = []
        clock = time.perf_counter
        started = clock()
        deadline = started + seconds

        async def caller(index: int) -> None:
            call, position = calls[index % channels], index
            while clock() < deadline:
                sent = clock()
                await call(messages[position % len(messages)], timeout=30)
                latencies.append(clock() - sent)
                position += concurrency

        await asyncio.gather(*(caller(index) for index in range(concurrency)))
        wall = clock() - started
    finally:
        await asyncio.gather(*(channel.close() for channel in opened))
    return len(latencies) * items, len(latencies), wall, latencies


async def _pipelined(address: str, messages: list[bytes], items: int, seconds: float,
                     streams: int, window: int) -> Outcome:
    """`streams` StreamCheck calls, each keeping `window` messages in flight; the latency of a
    message is from its write to its response (the servers answer a stream in order)."""
    opened = [aio.insecure_channel(address, options=CHANNEL_OPTIONS) for _ in range(streams)]
    latencies: list[float] = []
    clock = time.perf_counter
    try:
        await asyncio.gather(*(channel.channel_ready() for channel in opened))
        started = clock()
        deadline = started + seconds

        async def one_stream(channel: aio.Channel, first: int) -> None:
            call = channel.stream_stream(STREAM)()
            slots = asyncio.Semaphore(window)
            sent: collections.deque[float] = collections.deque()

            async def writer() -> None:
                position = first
                while clock() < deadline:
                    await slots.acquire()
                    sent.append(clock())
                    await call.write(messages[position % len(messages)])
                    position += 1
                await call.done_writing()

            async def reader() -> None:
                while await call.read() is not aio.EOF:
                    latencies.append(clock() - sent.popleft())
                    slots.release()

            await asyncio.gather(writer(), reader())

        await asyncio.gather(*(one_stream(channel, index * 7)
                               for index, channel in enumerate(opened)))
        wall = clock() - started
    finally:
        await asyncio.gather(*(channel.close() for channel in opened))
    return len(latencies) * items, len(latencies), wall, latencies


def measure(mode: str, address: str, pids: list[int], sent: dict[str, list[bytes]],
            spec: dict[str, Any], seconds: float) -> dict[str, Any]:
    """One round of `mode` against one server."""
    concurrency, channels = spec["concurrency"], spec["channels"]
    run: Callable[[], Outcome]
    if mode == "unary_c1":
        run = functools.partial(unary_c1, address, sent["unary"], seconds)
    elif mode == "unary_concurrent":
        run = functools.partial(asyncio.run, _closed_loop(
            address, CHECK, sent["unary"], 1, seconds, concurrency, channels))
    elif mode in ("batch_100", "batch_1000"):
        run = functools.partial(asyncio.run, _closed_loop(
            address, BATCH, sent[mode], int(mode.split("_")[1]), seconds, channels, channels))
    elif mode == "stream":
        run = functools.partial(asyncio.run, _pipelined(
            address, sent["stream"], spec["stream_items"], seconds, channels,
            spec["stream_window"]))
    else:
        raise ValueError(f"unknown mode `{mode}`")
    return _cpu_measured(pids, run)


def verify(address: str, sent: dict[str, list[bytes]], expected: list[bool],
           unary_count: int = 200) -> dict[str, Any]:
    """Compare the server's decisions with `expected` over every request (untimed)."""
    allow = pb.DECISION_ALLOW
    with grpc.insecure_channel(address, options=CHANNEL_OPTIONS) as channel:
        check = channel.unary_unary(CHECK, response_deserializer=pb.CheckResponse.FromString)
        unary = [check(message, timeout=30).decision == allow
                 for message in sent["unary"][:unary_count]]
        batch = channel.unary_unary(BATCH,
                                    response_deserializer=pb.BatchCheckResponse.FromString)
        batched = [result.decision == allow for message in sent["batch_1000"]
                   for result in batch(message, timeout=60).results]
        stream = channel.stream_stream(STREAM,
                                       response_deserializer=pb.StreamCheckResponse.FromString)
        streamed: dict[int, bool] = {}
        for response in stream(iter(sent["stream"]), timeout=120):
            for result in response.results:
                streamed[int(result.correlation_id)] = result.response.decision == allow
    ordered = [streamed.get(index) for index in range(len(expected))]

    def differences(got: list[bool | None]) -> dict[str, Any]:
        wrong = [i for i, (g, e) in enumerate(zip(got, expected, strict=False)) if g != e]
        return {"compared": len(got), "disagreements": wrong}

    return {"Check": differences(unary), "BatchCheck": differences(batched),
            "StreamCheck": differences(ordered)}


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Every mode, round by round, alternating targets; then the decisions checked."""
    requests = orjson.loads(Path(spec["requests"]).read_bytes())
    sent = payloads(requests, spec["stream_items"])
    targets = spec["targets"]
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for mode in spec["modes"]:
        results[mode] = {name: [] for name in targets}
        for target in targets.values():  # warm up: connections, caches, thread pools
            measure(mode, target["address"], target["pids"], sent, spec,
                    max(0.1, spec["seconds"] / 5))
        for _ in range(spec["rounds"]):
            for name, target in targets.items():
                results[mode][name].append(measure(mode, target["address"], target["pids"],
                                                   sent, spec, spec["seconds"]))
    checked = spec.get("verify")
    agreement = (verify(targets[checked]["address"], sent, spec["expected"])
                 if checked else {})
    return {"modes": results, "agreement": agreement}


def main(argv: list[str] | None = None) -> int:
    spec_path, out_path = (argv if argv is not None else sys.argv[1:])[:2]
    spec = orjson.loads(Path(spec_path).read_bytes())
    Path(out_path).write_bytes(orjson.dumps(run(spec)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
