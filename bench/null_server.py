"""The transport baseline: a server of the same service and messages that decides nothing.

    python -m layergate.bench.null_server RESPONSE_HEX [--workers N]

Every call is answered with one constant CheckResponse (a real Layergate allow, serialized, so
that it has the same size): `Check` returns it, `BatchCheck` returns it once per item,
`StreamCheck` once per item with the item's correlation id. It runs with the gRPC settings and
the thread pool of `layergate serve`, and with `--workers N` as N processes sharing the port
(SO_REUSEPORT), so that any difference from the real server is the cost of deciding.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc

from layergate.clients._gen import authz_pb2 as pb
from layergate.clients._gen import authz_pb2_grpc as rpc
from layergate.engine.server import ServerOptions

HOST = "127.0.0.1"


class NullAuthorizer(rpc.AuthorizerServicer):
    """Answers every request with the same response, shaped like the real one."""

    def __init__(self, response: pb.CheckResponse) -> None:
        self.response = response

    def Check(self, request: pb.CheckRequest, context: Any) -> pb.CheckResponse:
        return self.response

    def BatchCheck(self, request: pb.BatchCheckRequest, context: Any) -> pb.BatchCheckResponse:
        out = pb.BatchCheckResponse(revision=self.response.revision)
        out.results.extend([self.response] * len(request.items))
        return out

    def StreamCheck(self, requests: Iterator[pb.StreamCheckRequest],
                    context: Any) -> Iterator[pb.StreamCheckResponse]:
        for message in requests:
            out = pb.StreamCheckResponse()
            for item in message.items:
                out.results.add(correlation_id=item.correlation_id, response=self.response)
            yield out


def _grpc_server(response: pb.CheckResponse, port: int,
                 reuse_port: bool) -> tuple[grpc.Server, int]:
    """A started server (and its port) with the options `layergate.engine.server.Server` uses."""
    options = ServerOptions()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=options.threads), options=[
        ("grpc.max_receive_message_length", options.max_message_bytes),
        ("grpc.max_send_message_length", options.max_message_bytes),
        ("grpc.so_reuseport", 1 if reuse_port else 0),
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.keepalive_timeout_ms", 20_000),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
    ])
    rpc.add_AuthorizerServicer_to_server(NullAuthorizer(response), server)
    bound = server.add_insecure_port(f"{HOST}:{port}")
    if bound == 0:
        raise OSError(f"cannot listen on {HOST}:{port}")
    server.start()
    return server, bound


def _until_stopped(stop: list[Any]) -> None:
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.set())
    signal.signal(signal.SIGINT, lambda signum, frame: stopping.set())
    while not stopping.wait(0.5):
        pass
    for action in stop:
        action()


def _worker(response: pb.CheckResponse, port: int, ready: Any) -> None:
    server, _ = _grpc_server(response, port, reuse_port=True)
    ready.put(os.getpid())
    _until_stopped([lambda: server.stop(2).wait()])
    os._exit(0)


def serve(response: pb.CheckResponse, workers: int) -> int:
    """Serve until SIGTERM; print `null: serving ... on HOST:PORT` once every worker listens."""
    if workers <= 1:
        server, port = _grpc_server(response, 0, reuse_port=False)
        print(f"null: serving baseline on {HOST}:{port}", flush=True)
        _until_stopped([lambda: server.stop(2).wait()])
        return 0
    reserved = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # fixes the shared port
    reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    reserved.bind((HOST, 0))
    port = reserved.getsockname()[1]
    context = multiprocessing.get_context("fork")
    ready = context.Queue()
    processes = [context.Process(target=_worker, args=(response, port, ready))
                 for _ in range(workers)]
    for process in processes:
        process.start()
    for _ in processes:
        ready.get(timeout=60)
    print(f"null: serving baseline on {HOST}:{port} with {workers} workers", flush=True)

    def stop_workers() -> None:
        for process in processes:
            if process.pid and process.is_alive():
                os.kill(process.pid, signal.SIGTERM)
        for process in processes:
            process.join(5)

    _until_stopped([stop_workers, reserved.close])
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("response_hex", help="the serialized CheckResponse to answer with")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    return serve(pb.CheckResponse.FromString(bytes.fromhex(args.response_hex)), args.workers)


if __name__ == "__main__":
    sys.exit(main())
