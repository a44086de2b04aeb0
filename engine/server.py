"""The gRPC server: Authorizer and Admin services, health, reflection, reload, shutdown.

Servicers do no logic: they convert at the edge (`wire`), call the current `Authorizer`, and
convert back. The policy in use is swapped atomically: each call reads `holder.current` once,
so a reload never changes the policy under a request that is being decided.
"""

from __future__ import annotations

import functools
import gc
import ipaddress
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from layergate.clients._gen import authz_pb2 as pb
from layergate.clients._gen import authz_pb2_grpc as rpc
from layergate.dsl import PolicyError, ast, load_data, read_sources
from layergate.dsl.errors import Diagnostic
from layergate.dsl.loader import compile_sources

from . import wire
from .admin import AdminService
from .authorizer import Authorizer
from .compiler import compile_policy
from .decision import INVALID_REQUEST, Decision, invalid_request_decision
from .decisionlog import DecisionLog
from .grants import GrantStore
from .identity import caller_of
from .metrics import Metrics
from .request import RequestError, merge_defaults
from .tables import Tables, TablesFormatError

log = logging.getLogger("layergate.server")
SERVICES = ("layergate.v1.Authorizer", "layergate.v1.Admin")


@dataclass(frozen=True)
class Loaded:
    """One loaded policy: the authorizer and where it came from."""

    authorizer: Authorizer
    sources: tuple[str, ...]
    loaded_at: float


@dataclass
class PolicySource:
    """Where the policy comes from: policy files (+ data), or compiled tables."""

    policy: Sequence[Path] = ()
    data: Path | None = None
    compiled: Path | None = None
    clock: Callable[[], float] = time.time  # the rules' `now` (injectable for tests)

    def files(self) -> list[Path]:
        if self.compiled:
            return [self.compiled]
        found: list[Path] = []
        for path in self.policy:
            found.extend(sorted(path.rglob("*.lg")) if path.is_dir() else [path])
        return found + ([self.data] if self.data else [])

    def load(self) -> Loaded:
        """Read, validate and compile; raises PolicyError (or OSError/TablesFormatError)."""
        if self.compiled:
            tables = Tables.from_bytes(self.compiled.read_bytes())
        else:
            documents = load_data(self.data) if self.data else None
            policy = compile_sources(read_sources(list(self.policy)), documents)
            tables = compile_policy(policy, documents)
        return Loaded(Authorizer(tables, clock=self.clock), tuple(str(p) for p in self.files()),
                      time.time())


YOUNG_COLLECTION_EVERY = 20_000  # allocations; CPython's default, 700, is one per 70 items


def settle_heap() -> None:
    """Keep the loaded policy out of the cyclic garbage collector's way.

    A policy over a large estate is long-lived objects by the hundred thousand (about 160,000
    at 10,000 entities), which every full collection walks again while calls wait: in a
    serving process about a quarter of a `BatchCheck`'s time. Frozen, they are never walked
    (reference counting still frees them once unused); what was frozen before is thawed and
    collected first, so a replaced policy's cycles are freed too. That one full collection
    holds the interpreter for about 0.1 s at 10,000 entities, once per load.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_EVERY, *gc.get_threshold()[1:])


class PolicyHolder:
    """The policy being served, replaced only by a policy that loaded completely.

    `freeze_heap` (the serving processes set it) calls `settle_heap` after every load.
    """

    def __init__(self, source: PolicySource, metrics: Metrics | None = None,
                 freeze_heap: bool = False) -> None:
        self.source = source
        self.metrics = metrics
        self.freeze_heap = freeze_heap
        self._lock = threading.Lock()
        self.current: Loaded = source.load()
        if metrics:
            metrics.revision(self.current.authorizer.revision)
        if freeze_heap:
            settle_heap()

    def _rejected(self) -> None:
        if self.metrics:
            self.metrics.reloaded(False)

    def reload(self) -> tuple[bool, list[Diagnostic]]:
        """Load again from the source; on any failure keep serving the old policy."""
        with self._lock:
            try:
                loaded = self.source.load()
            except PolicyError as error:
                self._rejected()
                log.error("reload rejected, still serving %s:\n%s",
                          self.current.authorizer.revision, error.format())
                return False, list(error.diagnostics)
            except (OSError, TablesFormatError) as error:
                self._rejected()
                log.error("reload rejected, still serving %s: %s",
                          self.current.authorizer.revision, error)
                span = ast.Span(str(getattr(error, "filename", "") or "<policy>"), 0, 0)
                return False, [Diagnostic("file_unreadable", str(error), span)]
            except Exception as error:  # a fault in loading itself: still never a half policy
                self._rejected()
                log.exception("reload failed, still serving %s", self.current.authorizer.revision)
                return False, [Diagnostic("load_failed", f"loading failed: {error!r}",
                                          ast.Span("<policy>", 0, 0))]
            previous = self.current.authorizer.revision
            self.current = loaded  # one reference assignment: atomic for readers
            revision = loaded.authorizer.revision
            del loaded  # the holder's reference is the one that counts
            if self.freeze_heap:
                settle_heap()
            if self.metrics:
                self.metrics.reloaded(True)
                self.metrics.revision(revision)
            log.info("reloaded policy %s (was %s)", revision, previous)
            return True, []


def _guarded(method: Any) -> Any:
    """An unexpected fault becomes INTERNAL (never an allow, never a hung call)."""

    @functools.wraps(method)
    def call(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(self, request, context)
        except Exception as exc:
            if isinstance(exc, grpc.RpcError) or context.code() is not None:
                raise  # an abort() already chose the status
            log.exception("internal fault in %s", method.__name__)
            context.abort(grpc.StatusCode.INTERNAL, "internal error; no decision was made")

    return call


class AuthorizerService(rpc.AuthorizerServicer):
    def __init__(self, holder: PolicyHolder, metrics: Metrics | None = None,
                 grants: GrantStore | None = None, log: DecisionLog | None = None) -> None:
        self.holder = holder
        self.metrics = metrics
        self.grants = grants
        self.log = log
        self.ids = wire.DecisionIds()
        self.encoder = wire.Encoder()

    def _uses_grants(self, authorizer: Authorizer) -> bool:
        """Look grants up only when the store is on and some rule reads `elevation.*`."""
        return self.grants is not None and authorizer.uses_elevation

    def _decide(self, authorizer: Authorizer, request: dict[str, Any], caller: Any,
                explain: bool) -> Decision:
        """One decision, with the JIT grant that applies to the request (if any)."""
        if not self._uses_grants(authorizer):
            return authorizer.check(request, caller, explain)
        elevation = self.grants.elevation_for(request)
        decision = authorizer.check({**request, "elevation": elevation}, caller, explain)
        return authorizer.with_grant(decision, elevation)

    def _record(self, rpc_name: str, decisions: list[Decision], started: float) -> None:
        if self.metrics:
            self.metrics.record(rpc_name, decisions, time.perf_counter() - started)

    def _explain(self, asked: bool) -> bool:
        """Decision records need every layer's verdict, so logging evaluates in explain mode."""
        return asked or self.log is not None

    def _answer(self, decision: Decision, request: Mapping[str, Any], caller: Any,
                explain: bool, seconds: float) -> bytes:
        """The serialized CheckResponse, under a new decision id (logged if the log is on)."""
        decision_id = self.ids.next()
        if self.log is not None:
            self.log.record(decision, request, caller, decision_id, seconds)
        return self.encoder.check_response(decision, decision_id, layers=explain)

    @_guarded
    def Check(self, request: tuple[dict[str, Any], bool] | RequestError,
              context: grpc.ServicerContext) -> bytes:
        started = time.perf_counter()
        authorizer = self.holder.current.authorizer
        caller = caller_of(context)
        try:
            if isinstance(request, RequestError):
                raise request
            asked, explain = request
            decision = self._decide(authorizer, asked, caller, self._explain(explain))
        except RequestError as exc:
            if exc.field:
                context.set_trailing_metadata((("layergate-field", exc.field),))
            _refuse(context, exc)
        self._record("Check", [decision], started)
        return self._answer(decision, asked, caller, explain, time.perf_counter() - started)

    @_guarded
    def BatchCheck(self, request: tuple[list[Any], dict[str, Any], str, bool] | RequestError,
                   context: grpc.ServicerContext) -> bytes:
        started = time.perf_counter()
        authorizer = self.holder.current.authorizer
        if isinstance(request, RequestError):
            _refuse(context, request)
        items, defaults, semantic, explain = request
        unreadable = {i: item for i, item in enumerate(items) if isinstance(item, RequestError)}
        for index in unreadable:
            items[index] = None  # denied below with the error that made it unreadable
        uses_grants = self._uses_grants(authorizer)
        # The merged items (defaults filled in) are only built for the grant store or the log.
        merged = ([merge_defaults(item or {}, defaults) for item in items]
                  if uses_grants or self.log is not None else None)
        if uses_grants:  # each item's own grant, from its merged request
            elevations = [None if item is None else self.grants.elevation_for(whole)
                          for item, whole in zip(items, merged, strict=True)]
            items = [item if item is None else {**item, "elevation": elevation}
                     for item, elevation in zip(items, elevations, strict=True)]
        caller = caller_of(context)
        decisions = authorizer.check_batch(items, defaults, semantic, caller,
                                           self._explain(explain))
        if uses_grants:
            decisions = [authorizer.with_grant(d, elevations[i] or {})
                         for i, d in enumerate(decisions)]
        results = []
        each = (time.perf_counter() - started) / max(len(decisions), 1)
        for index, decision in enumerate(decisions):
            if index in unreadable:
                exc = unreadable[index]
                decision = invalid_request_decision(exc.message, exc.field, authorizer.revision)
            asked = merged[index] if merged is not None else {}
            results.append(self._answer(decision, asked, caller, explain, each))
        self._record("BatchCheck", decisions, started)
        return self.encoder.batch_response(results, authorizer.revision)

    def StreamCheck(self, requests: Iterator[list[tuple[str, Any, bool]] | RequestError],
                    context: grpc.ServicerContext) -> Iterator[bytes]:
        caller = caller_of(context)
        for message in requests:
            if isinstance(message, RequestError):
                _refuse(context, message)  # the results already sent stand
            started = time.perf_counter()
            authorizer = self.holder.current.authorizer  # per message: follows reloads
            explains = {explain for _, _, explain in message}
            if len(explains) == 1 and not self._uses_grants(authorizer):
                results, decided = self._stream_together(authorizer, message, caller,
                                                         explains.pop(), started)
            else:
                results, decided = self._stream_one_by_one(authorizer, message, caller)
            self._record("StreamCheck", decided, started)
            yield self.encoder.stream_response(results)

    def _stream_together(self, authorizer: Authorizer, message: list[tuple[str, Any, bool]],
                         caller: Any, explain: bool,
                         started: float) -> tuple[list[bytes], list[Decision]]:
        """A stream message's items in one `check_batch` call (all alike in `explain`, no
        grants to look up): each decided as on its own."""
        asked = [item if isinstance(item, dict) else None for _, item, _ in message]
        decisions = authorizer.check_batch(asked, None, "execute_all", caller,
                                           self._explain(explain))
        each = (time.perf_counter() - started) / len(decisions)
        results, decided = [], []
        for (correlation_id, item, _), request, decision in zip(message, asked, decisions,
                                                                strict=True):
            if request is None:  # the reader's error, not check_batch's for a None item
                decision = invalid_request_decision(item.message, item.field,
                                                    authorizer.revision)
            answer = self._answer(decision, request or {}, caller, explain, each)
            results.append(self.encoder.stream_result(correlation_id, answer,
                                                      _unreadable_field(decision)))
            decided.append(decision)
        return results, decided

    def _stream_one_by_one(self, authorizer: Authorizer, message: list[tuple[str, Any, bool]],
                           caller: Any) -> tuple[list[bytes], list[Decision]]:
        results, decided = [], []
        for correlation_id, item, explain in message:
            item_started = time.perf_counter()
            invalid_field = ""
            try:
                if isinstance(item, RequestError):
                    raise item
                decision = self._decide(authorizer, item, caller, self._explain(explain))
            except RequestError as exc:
                invalid_field = exc.field
                decision = invalid_request_decision(exc.message, exc.field, authorizer.revision)
            asked = item if isinstance(item, dict) else {}
            answer = self._answer(decision, asked, caller, explain,
                                  time.perf_counter() - item_started)
            results.append(self.encoder.stream_result(correlation_id, answer, invalid_field))
            decided.append(decision)
        return results, decided


def _unreadable_field(decision: Decision) -> str:
    """The field of a request that could not be read (`invalid_request_decision`), else ""."""
    if decision.layer is None and decision.errors and decision.errors[0].code == INVALID_REQUEST:
        return decision.errors[0].path
    return ""


def _refuse(context: grpc.ServicerContext, problem: RequestError) -> NoReturn:
    """End the call INVALID_ARGUMENT, naming the field (none when the bytes are unreadable)."""
    text = f"{problem.field}: {problem.message}" if problem.field else problem.message
    context.abort(grpc.StatusCode.INVALID_ARGUMENT, text)


def _add_authorizer(service: AuthorizerService, server: grpc.Server) -> None:
    """The generated registration, except that requests are read from their bytes straight
    into dicts and responses are already bytes (both in `wire`)."""
    handlers = {
        "Check": grpc.unary_unary_rpc_method_handler(
            service.Check, request_deserializer=wire.read_check,
            response_serializer=wire.serialized),
        "BatchCheck": grpc.unary_unary_rpc_method_handler(
            service.BatchCheck, request_deserializer=wire.read_batch,
            response_serializer=wire.serialized),
        "StreamCheck": grpc.stream_stream_rpc_method_handler(
            service.StreamCheck, request_deserializer=wire.read_stream,
            response_serializer=wire.serialized),
    }
    name = pb.DESCRIPTOR.services_by_name["Authorizer"].full_name
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(name, handlers),))
    server.add_registered_method_handlers(name, handlers)


@dataclass
class ServerOptions:
    host: str = "127.0.0.1"
    port: int = 50051
    max_message_bytes: int = 64 * 1024 * 1024
    threads: int = 16
    grace_seconds: float = 10.0
    watch_seconds: float = 2.0  # poll the policy files for changes (0: off)
    reuse_port: bool = False  # only for --workers: otherwise a port clash must be an error
    metrics_port: int | None = None
    tls_cert: bytes | None = None  # PEM; with tls_key, serve TLS
    tls_key: bytes | None = None
    client_ca: bytes | None = None  # PEM; require and verify client certificates (mTLS)
    admin_insecure: bool = False  # admin without mTLS: loopback development only
    grants_path: Path | None = None  # the SQLite file of JIT grants (None: no elevation)
    decision_log: Path | None = None  # JSON lines, hash-chained (None: no decision log)
    log_mask: tuple[str, ...] = ()  # request paths whose values the log replaces with ***
    log_buffer: int = 10_000
    log_max_bytes: int = 64 * 1024 * 1024
    max_elevation_seconds: float = 8 * 3600
    clock: Callable[[], float] = time.time


class Server:
    """A running Layergate server (used by `layergate serve` and by the tests)."""

    def __init__(self, holder: PolicyHolder, options: ServerOptions) -> None:
        self.holder = holder
        self.options = options
        self.health = health.HealthServicer()
        for name in ("", *SERVICES):
            self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        grpc_options = [
            ("grpc.max_receive_message_length", options.max_message_bytes),
            ("grpc.max_send_message_length", options.max_message_bytes),
            ("grpc.so_reuseport", 1 if options.reuse_port else 0),
            ("grpc.keepalive_time_ms", 60_000),
            ("grpc.keepalive_timeout_ms", 20_000),
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
            ("grpc.keepalive_permit_without_calls", 1),
        ]
        self.grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=options.threads),
                                options=grpc_options)
        self.grants = (GrantStore(options.grants_path, options.clock)
                       if options.grants_path else None)
        self.log = None
        if options.decision_log is not None:
            on_drop = holder.metrics.log_dropped.inc if holder.metrics else None
            self.log = DecisionLog(options.decision_log, buffer=options.log_buffer,
                                   max_bytes=options.log_max_bytes, mask_paths=options.log_mask,
                                   on_drop=on_drop)
        _add_authorizer(AuthorizerService(holder, holder.metrics, self.grants, self.log),
                        self.grpc)
        if options.admin_insecure and not _is_loopback(options.host):
            raise OSError("insecure administration is for loopback only; serve on 127.0.0.1 "
                          "or use mTLS (--client-ca)")
        rpc.add_AdminServicer_to_server(
            AdminService(holder, options.admin_insecure, self.grants,
                         options.max_elevation_seconds), self.grpc)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.grpc)
        names = (*SERVICES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                 reflection.SERVICE_NAME)
        reflection.enable_server_reflection(names, self.grpc)
        address = f"{options.host}:{options.port}"
        try:
            if options.tls_cert and options.tls_key:
                credentials = grpc.ssl_server_credentials(
                    [(options.tls_key, options.tls_cert)], root_certificates=options.client_ca,
                    require_client_auth=options.client_ca is not None)
                self.port = self.grpc.add_secure_port(address, credentials)
            else:
                self.port = self.grpc.add_insecure_port(address)
        except RuntimeError:  # grpcio reports a failed bind this way
            self.port = 0
        if self.port == 0:
            raise OSError(f"cannot listen on {options.host}:{options.port} (in use?)")
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    def start(self) -> Server:
        self.grpc.start()
        if self.holder.metrics and self.options.metrics_port is not None:
            self.holder.metrics.serve(self.options.host, self.options.metrics_port)
        for name in ("", *SERVICES):
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        if self.options.watch_seconds > 0:
            self._watcher = threading.Thread(target=self._watch, name="layergate-watch",
                                             daemon=True)
            self._watcher.start()
        log.info("serving %s on %s:%d", self.holder.current.authorizer.revision,
                 self.options.host, self.port)
        return self

    def stop(self, grace: float | None = None) -> None:
        """Stop taking calls, finish the ones in flight (up to the grace period)."""
        self._stop.set()
        self.health.enter_graceful_shutdown()
        self.grpc.stop(self.options.grace_seconds if grace is None else grace).wait()
        if self.grants is not None:
            self.grants.close()
        if self.log is not None:
            self.log.close()  # everything accepted is written before the process ends

    def wait(self) -> None:
        self.grpc.wait_for_termination()

    def _watch(self) -> None:
        """Reload when a policy or data file changes (its mtime, size or presence)."""
        seen = _stamps(self.holder.source.files())
        while not self._stop.wait(self.options.watch_seconds):
            now = _stamps(self.holder.source.files())
            if now != seen:
                seen = now
                self.holder.reload()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _stamps(paths: list[Path]) -> dict[str, tuple[float, int] | None]:
    out: dict[str, tuple[float, int] | None] = {}
    for path in paths:
        try:
            stat = path.stat()
            out[str(path)] = (stat.st_mtime, stat.st_size)
        except OSError:
            out[str(path)] = None
    return out
