"""`layergate check --target HOST:PORT (--request JSON | --requests FILE.jsonl)`: ask a server."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import grpc
import orjson

from layergate.clients import Client

from .progress import Progress


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("check", help="ask a running server for decisions")
    parser.add_argument("--target", default="127.0.0.1:50051", help="HOST:PORT of the server")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--request", help="one AuthZEN-shaped request as JSON")
    what.add_argument("--requests", type=Path,
                      help="a JSON-lines file of requests, sent through StreamCheck")
    parser.add_argument("--explain", action="store_true", help="include every layer's outcome")
    parser.add_argument("--timeout", type=float, default=10.0, help="deadline per call, seconds")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bar on stderr (default: when stderr is a terminal)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    out = sys.stdout.buffer
    with Client(args.target, timeout=args.timeout) as client:
        try:
            if args.request is not None:
                decision = client.check(orjson.loads(args.request), explain=args.explain)
                out.write(orjson.dumps(decision) + b"\n")
                return 0
            lines = [line for line in args.requests.read_bytes().splitlines() if line.strip()]
            progress = Progress(len(lines), "check", args.progress)
            for decision in client.stream((orjson.loads(line) for line in lines),
                                          explain=args.explain):
                out.write(orjson.dumps(decision) + b"\n")
                progress.advance()
            progress.close()
        except grpc.RpcError as error:
            print(f"layergate: {error.code().name}: {error.details()}", file=sys.stderr)
            return 2
        except orjson.JSONDecodeError as error:
            print(f"layergate: a request is not JSON: {error}", file=sys.stderr)
            return 2
    return 0
