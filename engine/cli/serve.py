"""`layergate serve POLICY [--data DATA] [--compiled FILE] [--host] [--port]`: the gRPC server."""

from __future__ import annotations

import argparse
import logging

from layergate.dsl import PolicyError

from ..server import PolicyHolder, PolicySource, ServerOptions, serve_forever
from ..tables import TablesFormatError
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
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.compiled and (args.policy or args.data):
        raise SystemExit("layergate: give either POLICY [--data] or --compiled, not both")
    if not args.compiled and not args.policy:
        raise SystemExit("layergate: give POLICY files (or --compiled FILE)")
    source = PolicySource(tuple(args.policy), args.data, args.compiled)
    try:
        holder = PolicyHolder(source)
    except PolicyError as error:
        return report(error)
    except (OSError, TablesFormatError) as error:
        raise SystemExit(f"layergate: {error}") from None
    options = ServerOptions(host=args.host, port=args.port,
                            max_message_bytes=args.max_message_mb * 1024 * 1024,
                            threads=args.threads, grace_seconds=args.grace,
                            watch_seconds=args.watch)
    try:
        return serve_forever(holder, options)
    except OSError as error:
        raise SystemExit(f"layergate: {error}") from None
