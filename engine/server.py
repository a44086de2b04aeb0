"""The gRPC server: Authorizer and Admin services, health, reflection, reload, shutdown.

Servicers do no logic: they convert at the edge (`wire`), call the current `Authorizer`, and
convert back. The policy in use is swapped atomically: each call reads `holder.current` once,
so a reload never changes the policy under a request that is being decided.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent import futures
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from layergate.clients._gen import authz_pb2 as pb
from layergate.clients._gen import authz_pb2_grpc as rpc
from layergate.dsl import PolicyError, ast, load_data, parse_data, read_sources
from layergate.dsl.errors import Diagnostic
from layergate.dsl.loader import compile_sources

from . import wire
from .authorizer import Authorizer
from .compiler import compile_policy
from .decision import Decision, invalid_request_decision
from .grants import GrantError, GrantStore
from .identity import caller_from_auth_context
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


class PolicyHolder:
    """The policy being served, replaced only by a policy that loaded completely."""

    def __init__(self, source: PolicySource, metrics: Metrics | None = None) -> None:
        self.source = source
        self.metrics = metrics
        self._lock = threading.Lock()
        self.current: Loaded = source.load()
        if metrics:
            metrics.revision(self.current.authorizer.revision)

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
            previous = self.current.authorizer.revision
            self.current = loaded  # one reference assignment: atomic for readers
            if self.metrics:
                self.metrics.reloaded(True)
                self.metrics.revision(loaded.authorizer.revision)
            log.info("reloaded policy %s (was %s)", loaded.authorizer.revision, previous)
            return True, []


def _caller(context: grpc.ServicerContext) -> dict[str, str] | None:
    """The calling workload as proven by the transport (mTLS); None without a client cert."""
    return caller_from_auth_context(context.auth_context())


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
                 grants: GrantStore | None = None) -> None:
        self.holder = holder
        self.metrics = metrics
        self.grants = grants
        self.ids = wire.DecisionIds()

    def _decide(self, authorizer: Authorizer, request: dict[str, Any], caller: Any,
                explain: bool) -> Decision:
        """One decision, with the JIT grant that applies to the request (if any)."""
        if self.grants is None:
            return authorizer.check(request, caller, explain)
        elevation = self.grants.elevation_for(request)
        decision = authorizer.check({**request, "elevation": elevation}, caller, explain)
        return authorizer.with_grant(decision, elevation)

    def _record(self, rpc_name: str, decisions: list[Decision], started: float) -> None:
        if self.metrics:
            self.metrics.record(rpc_name, decisions, time.perf_counter() - started)

    @_guarded
    def Check(self, request: pb.CheckRequest, context: grpc.ServicerContext) -> pb.CheckResponse:
        started = time.perf_counter()
        authorizer = self.holder.current.authorizer
        try:
            decision = self._decide(authorizer, wire.request_dict(request), _caller(context),
                                    request.explain)
        except RequestError as exc:
            context.set_trailing_metadata((("layergate-field", exc.field),))
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{exc.field}: {exc.message}")
        self._record("Check", [decision], started)
        return wire.response(decision, self.ids.next())

    @_guarded
    def BatchCheck(self, request: pb.BatchCheckRequest,
                   context: grpc.ServicerContext) -> pb.BatchCheckResponse:
        started = time.perf_counter()
        authorizer = self.holder.current.authorizer
        try:
            items, defaults, semantic = wire.batch_items(request)
        except RequestError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{exc.field}: {exc.message}")
        unreadable = {i: item for i, item in enumerate(items) if isinstance(item, RequestError)}
        for index in unreadable:
            items[index] = None  # denied below with the error that made it unreadable
        if self.grants is not None:  # each item's own grant, from its merged request
            elevations = [None if item is None else self.grants.elevation_for(
                merge_defaults(item, defaults)) for item in items]
            items = [item if item is None else {**item, "elevation": elevation}
                     for item, elevation in zip(items, elevations, strict=True)]
        decisions = authorizer.check_batch(items, defaults, semantic, _caller(context),
                                           request.explain)
        if self.grants is not None:
            decisions = [authorizer.with_grant(d, elevations[i] or {})
                         for i, d in enumerate(decisions)]
        out = pb.BatchCheckResponse(revision=authorizer.revision)
        for index, decision in enumerate(decisions):
            if index in unreadable:
                exc = unreadable[index]
                decision = invalid_request_decision(exc.message, exc.field, authorizer.revision)
            out.results.append(wire.response(decision, self.ids.next()))
        self._record("BatchCheck", decisions, started)
        return out

    def StreamCheck(self, requests: Iterator[pb.StreamCheckRequest],
                    context: grpc.ServicerContext) -> Iterator[pb.StreamCheckResponse]:
        caller = _caller(context)
        for message in requests:
            started = time.perf_counter()
            authorizer = self.holder.current.authorizer  # per message: follows reloads
            out = pb.StreamCheckResponse()
            decided: list[Decision] = []
            for correlation_id, item, explain in wire.stream_items(message):
                result = out.results.add(correlation_id=correlation_id)
                try:
                    if isinstance(item, RequestError):
                        raise item
                    decision = self._decide(authorizer, item, caller, explain)
                except RequestError as exc:
                    result.invalid_field = exc.field
                    decision = invalid_request_decision(exc.message, exc.field,
                                                        authorizer.revision)
                result.response.CopyFrom(wire.response(decision, self.ids.next()))
                decided.append(decision)
            self._record("StreamCheck", decided, started)
            yield out


ADMIN_RESOURCE = {"type": "layergate_admin", "id": "admin"}


class AdminService(rpc.AdminServicer):
    """Operates the server. Every call is authorized by the loaded policy itself, as the
    request {subject: the mTLS caller, action: admin_info | admin_validate | admin_reload,
    resource: layergate_admin}; without mTLS the service is off, unless insecure loopback
    administration was asked for explicitly (development only)."""

    def __init__(self, holder: PolicyHolder, insecure: bool, grants: GrantStore | None,
                 max_elevation_seconds: float) -> None:
        self.holder = holder
        self.insecure = insecure
        self.grants = grants
        self.max_elevation_seconds = max_elevation_seconds

    def _authorize(self, action: str, context: grpc.ServicerContext,
                   resource: Mapping[str, Any] = ADMIN_RESOURCE) -> str:
        """Check the call against the policy; returns the caller's id ("" in insecure mode)."""
        caller = _caller(context)
        if caller is None:
            if self.insecure and resource is ADMIN_RESOURCE:
                return ""
            context.abort(grpc.StatusCode.PERMISSION_DENIED,
                          "the admin service needs a client certificate (mTLS); for local "
                          "development, serve with --admin-insecure-loopback (elevations "
                          "always need mTLS: they record who asked and who approved)")
        request = {"subject": {"type": "caller", "id": caller["id"]},
                   "action": {"name": action}, "resource": resource}
        decision = self.holder.current.authorizer.check(request, caller)
        if not decision.allowed:
            context.abort(grpc.StatusCode.PERMISSION_DENIED,
                          f"`{action}` denied for {caller['id']} by layer `{decision.layer}`"
                          + (f" rule `{decision.rule}`" if decision.rule else " (no rule)"))
        return caller["id"]

    def PolicyInfo(self, request: pb.PolicyInfoRequest,
                   context: grpc.ServicerContext) -> pb.PolicyInfoResponse:
        self._authorize("admin_info", context)
        loaded = self.holder.current
        tables = loaded.authorizer.tables
        return pb.PolicyInfoResponse(revision=tables.revision, layers=tables.layer_names,
                                     sources=loaded.sources, loaded_at=loaded.loaded_at,
                                     pid=os.getpid(), rules=tables.rule_count)

    def ValidatePolicy(self, request: pb.ValidatePolicyRequest,
                       context: grpc.ServicerContext) -> pb.ValidatePolicyResponse:
        self._authorize("admin_validate", context)
        sources = [ast.Source(name, text) for name, text in sorted(request.files.items())]
        try:
            data = None
            if request.data:
                name = "data.yaml" if request.data_format == "yaml" else "data.json"
                data = parse_data(request.data, name)
            tables = compile_policy(compile_sources(sources, data), data)
        except PolicyError as error:
            return pb.ValidatePolicyResponse(ok=False,
                                             diagnostics=wire.diagnostics(error.diagnostics))
        return pb.ValidatePolicyResponse(ok=True, revision=tables.revision)

    def ReloadPolicy(self, request: pb.ReloadPolicyRequest,
                     context: grpc.ServicerContext) -> pb.ReloadPolicyResponse:
        self._authorize("admin_reload", context)
        reloaded, problems = self.holder.reload()
        return pb.ReloadPolicyResponse(reloaded=reloaded,
                                       revision=self.holder.current.authorizer.revision,
                                       diagnostics=wire.diagnostics(problems))


    # -- JIT elevation -------------------------------------------------------------------

    def _store(self, context: grpc.ServicerContext) -> GrantStore:
        if self.grants is None:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "this server keeps no grants")
        return self.grants

    def _elevation_resource(self, grant: Any) -> dict[str, Any]:
        return {"type": "elevation", "id": grant.id or "new", "properties": {
            "subject": grant.subject, "requested_by": grant.requested_by,
            "roles": list(grant.roles), "actions": list(grant.actions),
            "resources": list(grant.resources), "duration_seconds": grant.duration_seconds,
            "session_id": grant.session_id, "status": grant.status}}

    def RequestElevation(self, request: pb.RequestElevationRequest,
                         context: grpc.ServicerContext) -> pb.Elevation:
        store = self._store(context)
        if request.duration_seconds > self.max_elevation_seconds:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"duration_seconds: at most {self.max_elevation_seconds:g}")
        if not request.subject:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "subject: is required")
        draft = _Draft(request.subject, list(request.roles), list(request.actions),
                       list(request.resources), request.duration_seconds, request.session_id)
        requester = self._authorize("elevation_request", context,
                                    self._elevation_resource(draft.with_requester(
                                        _caller(context))))
        try:
            grant = store.request(request.subject, requester, list(request.roles),
                                  list(request.actions), list(request.resources),
                                  request.duration_seconds, request.reason, request.session_id)
        except GrantError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return _elevation(grant)

    def DecideElevation(self, request: pb.DecideElevationRequest,
                        context: grpc.ServicerContext) -> pb.Elevation:
        store = self._store(context)
        grant = self._existing(store, request.id, context)
        action = "elevation_approve" if request.approve else "elevation_reject"
        approver = self._authorize(action, context, self._elevation_resource(grant))
        try:
            return _elevation(store.decide(request.id, approver, request.approve))
        except GrantError as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))

    def RevokeElevation(self, request: pb.RevokeElevationRequest,
                        context: grpc.ServicerContext) -> pb.Elevation:
        store = self._store(context)
        grant = self._existing(store, request.id, context)
        revoker = self._authorize("elevation_revoke", context, self._elevation_resource(grant))
        try:
            return _elevation(store.revoke(request.id, revoker))
        except GrantError as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))

    def ListElevations(self, request: pb.ListElevationsRequest,
                       context: grpc.ServicerContext) -> pb.ListElevationsResponse:
        store = self._store(context)
        self._authorize("elevation_list", context, {"type": "elevation", "id": "list"})
        return pb.ListElevationsResponse(
            elevations=[_elevation(g) for g in store.list(request.subject)])

    @staticmethod
    def _existing(store: GrantStore, grant_id: str, context: grpc.ServicerContext) -> Any:
        try:
            return store.get(grant_id)
        except GrantError as exc:
            context.abort(grpc.StatusCode.NOT_FOUND, str(exc))


@dataclass(frozen=True)
class _Draft:
    """A requested elevation before it is stored, as the policy sees it."""

    subject: str
    roles: list[str]
    actions: list[str]
    resources: list[str]
    duration_seconds: float
    session_id: str
    requested_by: str = ""
    id: str = ""
    status: str = "new"

    def with_requester(self, caller: Mapping[str, str] | None) -> _Draft:
        return replace(self, requested_by=(caller or {}).get("id", ""))


def _elevation(grant: Any) -> pb.Elevation:
    return pb.Elevation(**grant.to_json())


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
        rpc.add_AuthorizerServicer_to_server(
            AuthorizerService(holder, holder.metrics, self.grants), self.grpc)
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


def serve(source: PolicySource, options: ServerOptions, workers: int = 1) -> int:
    """Run until SIGTERM/SIGINT (calls in flight finish); SIGHUP reloads the policy.

    With `workers` > 1, that many processes serve one port (SO_REUSEPORT), each with its own
    copy of the policy; the parent only supervises them.
    """
    if workers <= 1:
        holder = PolicyHolder(source, Metrics() if options.metrics_port is not None else None)
        return _serve_one(holder, options, announce=True)
    return _supervise(source, options, workers)


def _serve_one(holder: PolicyHolder, options: ServerOptions, announce: bool,
               ready: Any = None) -> int:
    server = Server(holder, options).start()
    if ready is not None:
        ready.put(os.getpid())
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.set())
    signal.signal(signal.SIGINT, lambda signum, frame: stopping.set())
    signal.signal(signal.SIGHUP, lambda signum, frame: threading.Thread(
        target=holder.reload, daemon=True).start())
    if announce:
        print(f"layergate: serving {holder.current.authorizer.revision} on "
              f"{options.host}:{server.port}", flush=True)
    while not stopping.wait(0.5):
        pass
    log.info("stopping: finishing calls in flight")
    server.stop()
    return 0


def _worker(source: PolicySource, options: ServerOptions, reserved: socket.socket,
            ready: Any) -> None:
    reserved.close()
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)
    holder = PolicyHolder(source, Metrics() if options.metrics_port is not None else None)
    os._exit(_serve_one(holder, options, announce=False, ready=ready))


def _reserve(host: str, port: int) -> socket.socket:
    """Bind (not listen) the port with SO_REUSEPORT so every worker can bind it too."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if port:  # an exclusive bind first: joining another server's SO_REUSEPORT group would
        # silently split its traffic, so a port already in use must be an error
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((host, port))
            except OSError as exc:
                raise OSError(f"cannot listen on {host}:{port} (in use?): {exc}") from None
    reserved = socket.socket(family, socket.SOCK_STREAM)
    reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    reserved.bind((host, port))
    return reserved


def _supervise(source: PolicySource, options: ServerOptions, workers: int) -> int:
    revision = source.load().authorizer.revision  # a broken policy fails here, before forking
    reserved = _reserve(options.host, options.port)
    port = reserved.getsockname()[1]
    context = multiprocessing.get_context("fork")
    ready = context.Queue()
    stopping = threading.Event()
    processes: dict[int, multiprocessing.process.BaseProcess] = {}

    def start(index: int) -> None:
        own = replace(options, port=port, reuse_port=True,
                      metrics_port=None if options.metrics_port is None
                      else options.metrics_port + index)
        process = context.Process(target=_worker, args=(source, own, reserved, ready),
                                  name=f"layergate-worker-{index}")
        process.start()
        processes[index] = process

    def forward(signum: int) -> None:
        for process in processes.values():
            if process.pid and process.is_alive():
                os.kill(process.pid, signum)

    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.set())
    signal.signal(signal.SIGINT, lambda signum, frame: stopping.set())
    signal.signal(signal.SIGHUP, lambda signum, frame: forward(signal.SIGHUP))
    for index in range(workers):
        start(index)
    for _ in range(workers):  # announce the port only once every worker listens on it
        ready.get(timeout=120)
    print(f"layergate: serving {revision} on {options.host}:{port} with {workers} workers",
          flush=True)
    while not stopping.wait(0.5):
        for index, process in list(processes.items()):
            if not process.is_alive():
                log.error("worker %d exited with %s; restarting it", index, process.exitcode)
                start(index)
    forward(signal.SIGTERM)
    for process in processes.values():
        process.join(options.grace_seconds + 5)
        if process.is_alive():
            process.kill()
    reserved.close()
    return 0
