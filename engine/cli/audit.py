"""`layergate audit verify LOG...`: check a decision log's hash chain (files oldest first)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..decisionlog import verify


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("audit", help="check decision logs")
    steps = parser.add_subparsers(dest="step", required=True)
    check = steps.add_parser("verify", help="detect deleted, reordered or edited records")
    check.add_argument("logs", nargs="+", type=Path,
                       help="log files, oldest first (e.g. decisions.log.2 decisions.log.1 "
                            "decisions.log)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    count, problem = verify(args.logs)
    if problem:
        print(f"layergate: chain broken after {count} good record(s): {problem}",
              file=sys.stderr)
        return 1
    print(f"ok: {count} record(s), chain intact")
    return 0
