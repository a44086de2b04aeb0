"""`layergate lint POLICY [--data DATA] [--require-layers a,b] [--format json]`: the analyzer."""

from __future__ import annotations

import argparse
import sys

import orjson

from layergate.dsl import PolicyError

from ..analyzer import ERROR, analyze
from .common import add_policy_arguments, load, report


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("lint", help="find layers that do not really gate")
    add_policy_arguments(parser)
    parser.add_argument("--require-layers", default="", metavar="A,B,C",
                        help="layers that must each apply a real condition to every allow")
    parser.add_argument("--min-layers", type=int, default=2,
                        help="fewest layers that must really gate each allowed action "
                             "(default: 2)")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        policy, data = load(args)
    except PolicyError as error:
        return report(error)
    required = [name for name in args.require_layers.split(",") if name]
    findings = analyze(policy, data if args.data else None, required, args.min_layers)
    errors = sum(f.level == ERROR for f in findings)
    if args.format == "json":
        sys.stdout.buffer.write(orjson.dumps([f.to_json() for f in findings],
                                             option=orjson.OPT_INDENT_2) + b"\n")
    else:
        for finding in findings:
            print(finding.format())
        print(f"{errors} error(s), {len(findings) - errors} warning(s)")
    return 1 if errors else 0
