"""Shared pieces of the subcommands: loading a policy with its data, reporting errors."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from layergate.dsl import PolicyError, ast, load_data, read_sources
from layergate.dsl.loader import compile_sources


def add_policy_arguments(parser: Any) -> None:
    parser.add_argument("policy", nargs="+", type=Path,
                        help="policy file(s), or a directory of *.lg files")
    parser.add_argument("--data", type=Path, help="data documents (JSON or YAML)")


def load(args: Any) -> tuple[ast.Policy, dict[str, Any]]:
    """Read the policy and data named on the command line; raises PolicyError."""
    data = load_data(args.data) if args.data else {}
    policy = compile_sources(read_sources(args.policy), data if args.data else None)
    return policy, data


def report(error: PolicyError) -> int:
    """Print every diagnostic as `file:line:col: code: message` with its source line."""
    print(error.format(), file=sys.stderr)
    count = len(error.diagnostics)
    print(f"{count} error{'s' if count != 1 else ''}", file=sys.stderr)
    return 1

