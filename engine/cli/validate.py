"""`layergate validate POLICY [--data DATA]`: parse and check a policy; exit 1 on errors."""

from __future__ import annotations

import argparse

from layergate.dsl import PolicyError

from .common import add_policy_arguments, load, report


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("validate", help="check a policy and its data for errors")
    add_policy_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        policy, _ = load(args)
    except PolicyError as error:
        return report(error)
    rules = sum(len(layer.rules) for layer in policy.layers)
    print(f"ok: {len(policy.layers)} layers ({', '.join(la.name for la in policy.layers)}), "
          f"{rules} rules, {len(policy.roles)} roles")
    return 0
