"""`layergate eval POLICY --data DATA --requests FILE.jsonl [--explain]`: one decision per line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson

from layergate.dsl import PolicyError

from ..decision import invalid_request_decision
from ..request import RequestError, caller_from_spiffe_id
from .common import ENGINES, add_policy_arguments, load_evaluator, report
from .progress import Progress


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "eval", help="decide every request of a JSON-lines file, writing JSON lines")
    add_policy_arguments(parser, compiled=True)
    parser.add_argument("--requests", type=Path, required=True,
                        help="AuthZEN-shaped requests, one JSON object per line (- for stdin)")
    parser.add_argument("--explain", action="store_true", help="include every layer's outcome")
    parser.add_argument("--engine", choices=ENGINES, default="cython",
                        help="evaluator (default: the compiled Cython one)")
    parser.add_argument("--caller", metavar="SPIFFE_ID", type=_caller,
                        help="the caller identity a server would take from the client "
                             "certificate (offline evaluation only; default: none)")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bar on stderr (default: when stderr is a terminal)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        evaluator = load_evaluator(args, args.engine)
    except PolicyError as error:
        return report(error)
    revision = evaluator.revision
    lines = _read_lines(args.requests)
    progress = Progress(len(lines), "eval", args.progress)
    out = sys.stdout.buffer
    for number, line in enumerate(lines, start=1):
        if line.strip():
            try:
                decision = evaluator.check(orjson.loads(line), caller=args.caller,
                                           explain=args.explain)
            except orjson.JSONDecodeError as exc:
                decision = invalid_request_decision(f"not JSON: {exc}", f"line {number}",
                                                    revision)
            except RequestError as exc:
                decision = invalid_request_decision(exc.message, exc.field, revision)
            out.write(orjson.dumps(decision.to_json()) + b"\n")
        progress.advance()
    progress.close()
    out.flush()
    return 0


def _caller(text: str) -> dict[str, str]:
    try:
        return caller_from_spiffe_id(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _read_lines(path: Path) -> list[bytes]:
    if str(path) == "-":
        return sys.stdin.buffer.read().splitlines()
    return path.read_bytes().splitlines()
