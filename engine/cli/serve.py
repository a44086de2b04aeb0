"""`layergate serve POLICY [--data DATA] [--compiled FILE] [--host] [--port]`: the gRPC server."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from layergate.dsl import PolicyError

from ..server import PolicySource, ServerOptions
from ..tables import TablesFormatError
from ..workers import WorkerStartError, serve
from .common import add_policy_arguments, report


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("serve", help="serve decisions over gRPC")
    add_policy_arguments(parser, compiled=True)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback)")
    parser.add_argument("--port", type=int, default=50051)
    parser.add_argument("--max-message-mb", type=int, default=64,
                        help="largest request message accepted (a 1,000-item batch is ~0.3 MB)")
    parser.add_argument("--threads", type=int, default=16, help="RPC worker threads")
    parser.add_argument("--watch", type=float, default=2.0, metavar="SECONDS",
                        help="reload when the policy or data files change (0: only on SIGHUP)")
    parser.add_argument("--grace", type=float, default=10.0, metavar="SECONDS",
                        help="on SIGTERM, how long calls in flight may take to finish")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="server processes sharing the port (default: one per core)")
    parser.add_argument("--metrics-port", type=int, metavar="PORT",
                        help="serve Prometheus metrics on PORT (worker i: PORT + i)")
    parser.add_argument("--admin-insecure-loopback", action="store_true",
                        help="allow the admin service without mTLS (loopback host only; "
                             "for development)")
    parser.add_argument("--grants-db", type=Path, default=_state_dir() / "grants.sqlite",
                        help="SQLite file of JIT elevation grants, shared by all workers "
                             "(default: %(default)s)")
    parser.add_argument("--no-grants", action="store_true", help="keep no JIT grants")
    parser.add_argument("--max-elevation-seconds", type=float, default=8 * 3600,
                        help="longest elevation anyone may request (the policy may set less)")
    parser.add_argument("--decision-log", type=Path, metavar="FILE",
                        help="record every decision as a hash-chained JSON line (with "
                             "--workers N, worker i writes FILE's name + .worker<i>)")
    parser.add_argument("--log-mask", default="", metavar="PATHS",
                        help="comma-separated request paths whose values the log replaces "
                             "with *** (e.g. context.token,resource.properties.ssn)")
    parser.add_argument("--log-buffer", type=int, default=10_000,
                        help="records waiting to be written before new ones are dropped")
    parser.add_argument("--log-max-mb", type=int, default=64, help="rotate the log at this size")
    parser.add_argument("--tls-cert", type=Path, help="server certificate chain (PEM)")
    parser.add_argument("--tls-key", type=Path, help="server private key (PEM)")
    parser.add_argument("--client-ca", type=Path,
                        help="CA bundle (PEM) for client certificates: turns on mTLS, and "
                             "rules see the caller's identity as caller.*")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.compiled and (args.policy or args.data):
        raise SystemExit("layergate: give either POLICY [--data] or --compiled, not both")
    if not args.compiled and not args.policy:
        raise SystemExit("layergate: give POLICY files (or --compiled FILE)")
    if bool(args.tls_cert) != bool(args.tls_key):
        raise SystemExit("layergate: --tls-cert and --tls-key go together")
    if args.client_ca and not args.tls_cert:
        raise SystemExit("layergate: --client-ca needs --tls-cert and --tls-key")
    source = PolicySource(tuple(args.policy), args.data, args.compiled)
    options = ServerOptions(host=args.host, port=args.port,
                            max_message_bytes=args.max_message_mb * 1024 * 1024,
                            threads=args.threads, grace_seconds=args.grace,
                            watch_seconds=args.watch, metrics_port=args.metrics_port,
                            tls_cert=_read(args.tls_cert), tls_key=_read(args.tls_key),
                            client_ca=_read(args.client_ca),
                            admin_insecure=args.admin_insecure_loopback,
                            grants_path=None if args.no_grants else args.grants_db,
                            max_elevation_seconds=args.max_elevation_seconds,
                            decision_log=args.decision_log,
                            log_mask=tuple(p for p in args.log_mask.split(",") if p),
                            log_buffer=args.log_buffer,
                            log_max_bytes=args.log_max_mb * 1024 * 1024)
    try:
        return serve(source, options, args.workers)
    except PolicyError as error:
        return report(error)
    except (OSError, TablesFormatError, WorkerStartError) as error:
        raise SystemExit(f"layergate: {error}") from None


def _read(path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as error:
        raise SystemExit(f"layergate: {error}") from None


def _state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "layergate"
