"""The benchmark's Layergate server: `layergate serve`'s own code path, on the workload's clock.

    python -m layergate.bench.server POLICY DATA [--workers N]

The workload has a fixed `now` (requests with `context.elevation_expires` depend on it), so
the server is built from the same `PolicySource` / `ServerOptions` / `workers.serve` as
`layergate serve`, with only the clock injected. It binds 127.0.0.1 on a free port and prints
the usual `layergate: serving ... on HOST:PORT` line once every worker listens.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from layergate.engine.server import PolicySource, ServerOptions
from layergate.engine.workers import serve

from .micro import fixed_clock


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("policy", type=Path)
    parser.add_argument("data", type=Path)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    source = PolicySource((args.policy,), args.data, clock=fixed_clock)
    options = ServerOptions(host="127.0.0.1", port=0, watch_seconds=0, clock=fixed_clock)
    return serve(source, options, args.workers)


if __name__ == "__main__":
    sys.exit(main())
