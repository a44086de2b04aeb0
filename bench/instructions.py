"""Instructions per decision, counted by callgrind: a figure machine load does not change.

    python -m layergate.bench.instructions [--size 1000] [--modes batch,single,baseline]

Each mode runs under `valgrind --tool=callgrind` twice, deciding the workload's 10,000
requests once and three times; the difference divided by 20,000 is the cost of one decision
(setup and interpreter start-up cancel out). Needs valgrind on the PATH.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson

from .micro import CLOCK_SECONDS
from .workload import build

MODES = ("batch", "single", "baseline")

# Run under valgrind: decide the requests `calls` times in the given mode.
_RUNNER = """
import gc, sys, orjson
from layergate.engine import Authorizer
from layergate.engine.tables import Tables
tables_path, requests_path, mode, calls, now = sys.argv[1:6]
authorizer = Authorizer(Tables.from_bytes(open(tables_path, "rb").read()),
                        clock=lambda: float(now))
requests = orjson.loads(open(requests_path, "rb").read())
authorizer.check_batch(requests)
gc.collect(); gc.freeze()
def batch(): authorizer.check_batch(requests)
def single():
    check = authorizer.check
    for request in requests: check(request)
def baseline():
    return [(r["subject"]["id"], r["action"]["name"], r["resource"]["type"]) for r in requests]
run = {"batch": batch, "single": single, "baseline": baseline}[mode]
for _ in range(int(calls)): run()
"""


def _instructions(folder: Path, mode: str, calls: int) -> int:
    out = folder / f"callgrind.{mode}.{calls}"
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
         str(folder / "runner.py"), str(folder / "tables.bin"), str(folder / "requests.json"),
         mode, str(calls), repr(CLOCK_SECONDS)],
        capture_output=True, text=True, check=True, env={**os.environ, "PYTHONHASHSEED": "0"})
    found = re.search(r"Collected : ([\d,]+)", done.stderr)
    if found is None:
        raise SystemExit(f"callgrind printed no total:\n{done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def measure(size: int, modes: list[str]) -> dict[str, float]:
    """Instructions per decision of each mode at size S."""
    from layergate.dsl import parse_policy
    from layergate.engine import compile_policy

    workload = build(size)
    tables = compile_policy(parse_policy(workload.policy, f"synthetic-{size}.lg", workload.data),
                            workload.data)
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        (folder / "runner.py").write_text(_RUNNER)
        (folder / "tables.bin").write_bytes(tables.to_bytes())
        (folder / "requests.json").write_bytes(orjson.dumps(workload.requests))
        count = len(workload.requests)
        return {mode: (_instructions(folder, mode, 3) - _instructions(folder, mode, 1))
                / (2 * count) for mode in modes}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--modes", default=",".join(MODES))
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt install valgrind)")
    for mode, per_decision in measure(args.size, args.modes.split(",")).items():
        print(f"S = {args.size:,} {mode:<8} {per_decision:>9,.0f} instructions per decision")
    return 0


if __name__ == "__main__":
    sys.exit(main())
