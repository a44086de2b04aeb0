"""Typed gRPC clients: `Client` (blocking) and `AsyncClient` (asyncio).

    from layergate.clients import Client
    with Client("127.0.0.1:50051") as client:
        client.check({"subject": {...}, "action": {...}, "resource": {...}})["decision"]

Requests are AuthZEN-shaped dicts (or `layergate.v1` messages); results are plain dicts like
`{"decision": "allow", "layer": ..., "rule": ..., "reasons": [...], "revision": ...}`.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from typing import Any

import grpc
from grpc import aio

from . import convert
from ._gen import authz_pb2 as pb
from ._gen import authz_pb2_grpc as rpc

DEFAULT_OPTIONS = (
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 60_000),
)


def credentials(root_certificates: bytes | None = None, private_key: bytes | None = None,
                certificate_chain: bytes | None = None) -> grpc.ChannelCredentials:
    """TLS credentials; with a key and certificate chain, mutual TLS."""
    return grpc.ssl_channel_credentials(root_certificates, private_key, certificate_chain)


def _stream_messages(requests: Iterable[Mapping[str, Any]], batch: int,
                     explain: bool) -> Iterator[pb.StreamCheckRequest]:
    counter = itertools.count()
    iterator = iter(requests)
    while True:
        chunk = list(itertools.islice(iterator, batch))
        if not chunk:
            return
        message = pb.StreamCheckRequest()
        for request in chunk:
            item = message.items.add(correlation_id=str(next(counter)))
            item.request.CopyFrom(convert.check_request(request, explain))
        yield message


class Client:
    """A blocking client of the Layergate Authorizer service."""

    def __init__(self, target: str, *, timeout: float | None = 10.0,
                 channel_credentials: grpc.ChannelCredentials | None = None,
                 options: Sequence[tuple[str, Any]] = DEFAULT_OPTIONS) -> None:
        self.timeout = timeout
        if channel_credentials is None:
            self.channel = grpc.insecure_channel(target, options=list(options))
        else:
            self.channel = grpc.secure_channel(target, channel_credentials, options=list(options))
        self.stub = rpc.AuthorizerStub(self.channel)
        self.admin = rpc.AdminStub(self.channel)

    def check(self, request: Mapping[str, Any] | pb.CheckRequest, explain: bool = False,
              timeout: float | None = None) -> dict[str, Any]:
        """Decide one request (raises grpc.RpcError INVALID_ARGUMENT if it is malformed)."""
        response = self.stub.Check(convert.check_request(request, explain),
                                   timeout=timeout or self.timeout)
        return convert.decision(response)

    def check_batch(self, items: list[Mapping[str, Any]],
                    defaults: Mapping[str, Any] | None = None, semantic: str = "execute_all",
                    explain: bool = False, timeout: float | None = None) -> list[dict[str, Any]]:
        """Decide many requests in one call; results in order."""
        message = convert.batch_request(items, defaults, semantic, explain)
        response = self.stub.BatchCheck(message, timeout=timeout or self.timeout)
        return [convert.decision(r) for r in response.results]

    def stream(self, requests: Iterable[Mapping[str, Any]], batch: int = 100,
               explain: bool = False, timeout: float | None = None) -> Iterator[dict[str, Any]]:
        """Decide a stream of requests over StreamCheck, `batch` per message; each result
        carries the `correlation_id` (the request's position, as text) and `index`."""
        responses = self.stub.StreamCheck(_stream_messages(requests, batch, explain),
                                          timeout=timeout)
        for message in responses:
            for result in message.results:
                yield convert.stream_result(result)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient:
    """The asyncio twin of `Client` (grpc.aio)."""

    def __init__(self, target: str, *, timeout: float | None = 10.0,
                 channel_credentials: grpc.ChannelCredentials | None = None,
                 options: Sequence[tuple[str, Any]] = DEFAULT_OPTIONS) -> None:
        self.timeout = timeout
        if channel_credentials is None:
            self.channel = aio.insecure_channel(target, options=list(options))
        else:
            self.channel = aio.secure_channel(target, channel_credentials, options=list(options))
        self.stub = rpc.AuthorizerStub(self.channel)

    async def check(self, request: Mapping[str, Any] | pb.CheckRequest, explain: bool = False,
                    timeout: float | None = None) -> dict[str, Any]:
        response = await self.stub.Check(convert.check_request(request, explain),
                                         timeout=timeout or self.timeout)
        return convert.decision(response)

    async def check_batch(self, items: list[Mapping[str, Any]],
                          defaults: Mapping[str, Any] | None = None,
                          semantic: str = "execute_all", explain: bool = False,
                          timeout: float | None = None) -> list[dict[str, Any]]:
        message = convert.batch_request(items, defaults, semantic, explain)
        response = await self.stub.BatchCheck(message, timeout=timeout or self.timeout)
        return [convert.decision(r) for r in response.results]

    async def stream(self, requests: Iterable[Mapping[str, Any]], batch: int = 100,
                     explain: bool = False) -> AsyncIterator[dict[str, Any]]:
        call = self.stub.StreamCheck(_stream_messages(requests, batch, explain))
        async for message in call:
            for result in message.results:
                yield convert.stream_result(result)

    async def close(self) -> None:
        await self.channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
