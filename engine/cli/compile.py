"""`layergate compile POLICY [--data DATA] -o FILE`: write the compiled decision tables."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from layergate.dsl import PolicyError

from ..compiler import CompileReport, compile_policy
from .common import add_policy_arguments, load, report


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("compile", help="compile a policy and its data to tables")
    add_policy_arguments(parser)
    parser.add_argument("-o", "--output", type=Path, required=True, help="file to write")
    parser.add_argument("--timings", action="store_true", help="print each stage's time")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    timings = CompileReport()
    try:
        policy, data = load(args)
        tables = compile_policy(policy, data, timings)
    except PolicyError as error:
        return report(error)
    blob = tables.to_bytes()
    temporary = args.output.with_name(args.output.name + ".tmp")
    temporary.write_bytes(blob)
    temporary.replace(args.output)  # never leave a half-written file where a server reads
    print(f"{args.output}: {tables.revision}, {len(tables.layer_names)} layers, "
          f"{tables.rule_count} rules, {len(blob)} bytes")
    if args.timings:
        for stage, seconds in timings.stages.items():
            print(f"  {stage:<10} {seconds * 1000:8.2f} ms", file=sys.stderr)
    return 0
