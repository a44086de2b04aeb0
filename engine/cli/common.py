"""Shared pieces of the subcommands: loading a policy with its data, reporting errors."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from layergate.dsl import PolicyError, ast, load_data, read_sources
from layergate.dsl.loader import compile_sources

from ..authorizer import Authorizer
from ..compiler import compile_policy
from ..interpreter import Interpreter
from ..revision import policy_revision
from ..tables import TablesFormatError

ENGINES = ("cython", "python", "reference")


def add_policy_arguments(parser: argparse.ArgumentParser, compiled: bool = False) -> None:
    parser.add_argument("policy", nargs="*" if compiled else "+", type=Path,
                        help="policy file(s), or a directory of *.lg files")
    parser.add_argument("--data", type=Path, help="data documents (JSON or YAML)")
    if compiled:
        parser.add_argument("--compiled", type=Path, metavar="FILE",
                            help="tables written by `layergate compile` (instead of POLICY)")


def load(args: argparse.Namespace) -> tuple[ast.Policy, dict[str, Any]]:
    """Read the policy and data named on the command line; raises PolicyError."""
    data = load_data(args.data) if args.data else {}
    policy = compile_sources(read_sources(args.policy), data if args.data else None)
    return policy, data


def load_evaluator(args: argparse.Namespace, engine: str) -> Any:
    """An evaluator for `--engine`, from POLICY [--data] or from `--compiled`."""
    if getattr(args, "compiled", None):
        if args.policy or args.data:
            raise SystemExit("layergate: give either POLICY [--data] or --compiled, not both")
        if engine == "reference":
            raise SystemExit("layergate: the reference interpreter needs the policy source")
        try:
            return Authorizer.from_compiled(args.compiled, backend=engine)
        except (OSError, TablesFormatError) as exc:
            raise SystemExit(f"layergate: {args.compiled}: {exc}") from None
    if not args.policy:
        raise SystemExit("layergate: give POLICY files (or --compiled FILE)")
    policy, data = load(args)
    if engine == "reference":
        return Interpreter(policy, data, policy_revision(policy.sources, data))
    return Authorizer(compile_policy(policy, data), backend=engine)


def report(error: PolicyError) -> int:
    """Print every diagnostic as `file:line:col: code: message` with its source line."""
    print(error.format(), file=sys.stderr)
    count = len(error.diagnostics)
    print(f"{count} error{'s' if count != 1 else ''}", file=sys.stderr)
    return 1
