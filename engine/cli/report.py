"""`layergate report entitlements|controls`: least-privilege and control coverage reviews."""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import orjson

from layergate.dsl import PolicyError, load_data
from layergate.dsl.literals import parse_timestamp

from ..decisionlog import read
from ..reports import (
    DEFAULT_CONTROLS,
    controls,
    controls_table,
    entitlement_table,
    entitlements,
)
from .common import load, report

UNITS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("report", help="entitlement and control coverage reports")
    kinds = parser.add_subparsers(dest="kind", required=True)
    held = kinds.add_parser("entitlements", help="roles and permissions held vs used")
    held.add_argument("--policy", nargs="+", type=Path, required=True)
    held.add_argument("--data", type=Path, required=True)
    held.add_argument("--log", nargs="+", type=Path, required=True,
                      help="decision log files, oldest first")
    held.add_argument("--since", default="30d",
                      help="window: 30d, 12h, 90m, or an RFC 3339 time (default: 30d)")
    held.add_argument("--format", choices=("table", "json"), default="table")
    covered = kinds.add_parser("controls", help="framework controls claimed by each layer")
    covered.add_argument("policy", nargs="+", type=Path)
    covered.add_argument("--require", default=",".join(DEFAULT_CONTROLS),
                         help="comma-separated controls that some layer must claim")
    covered.add_argument("--format", choices=("table", "json"), default="table")
    parser.set_defaults(run=run)


def since_seconds(text: str, now: float) -> float:
    match = re.fullmatch(r"(\d+)([dhms])", text)
    if match:
        return now - int(match.group(1)) * UNITS[match.group(2)]
    return parse_timestamp(text) / 1_000_000


def run(args: argparse.Namespace) -> int:
    args.data = getattr(args, "data", None)
    try:
        policy, _ = load(args)
    except PolicyError as error:
        return report(error)
    if args.kind == "controls":
        result = controls(policy, [c for c in args.require.split(",") if c])
        text = controls_table(result)
    else:
        try:
            since = since_seconds(args.since, time.time())
        except ValueError as exc:
            raise SystemExit(f"layergate: --since: {exc}") from None
        try:
            result = entitlements(policy, load_data(args.data), read(args.log, since))
        except ValueError as exc:
            raise SystemExit(f"layergate: {exc}") from None
        text = entitlement_table(result)
    if args.format == "json":
        sys.stdout.buffer.write(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        print(text)
    return 0
