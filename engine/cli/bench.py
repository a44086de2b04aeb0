"""`layergate bench [--quick] [--sizes] [--rounds] [--out DIR] [--write README]`: the benchmarks.

In-process evaluators, peer engines and gRPC on loopback (against a do-nothing baseline
server), on the seeded workload of `layergate.bench.workload`; see bench/README.md.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import orjson

from layergate.bench.harness import SECTIONS, Settings
from layergate.bench.loadgen import MODES as GRPC_MODES


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("bench", help="measure Layergate in-process, over gRPC and "
                                               "against peer engines")
    parser.add_argument("--quick", action="store_true",
                        help="S = 10, 3 short rounds: a check that everything runs (< 2 min)")
    parser.add_argument("--sizes", type=_ints, help="roles per workload (default 10,100,1000)")
    parser.add_argument("--rounds", type=int, help="rounds per measurement (default 5)")
    parser.add_argument("--seconds", type=float,
                        help="seconds per gRPC round and per peer round (default 1)")
    parser.add_argument("--workers", type=_ints, default=[1, 2],
                        help="server processes for the gRPC modes (default 1,2)")
    parser.add_argument("--modes", type=_names, default=list(SECTIONS),
                        help="what to run: in-process, peers, grpc, or single gRPC modes ("
                             f"{', '.join(GRPC_MODES)}); default all")
    parser.add_argument("--peers", type=_names, help="peer engines to run (default: all)")
    parser.add_argument("--out", type=Path, default=Path("bench-results"),
                        help="directory for bench.json and the charts (default %(default)s)")
    parser.add_argument("--write", type=Path, metavar="README",
                        help="replace the <!-- bench:start --> block of this file")
    parser.add_argument("--render", type=Path, metavar="JSON",
                        help="measure nothing: redraw the tables and charts of this bench.json")
    parser.set_defaults(run=run)


def _settings(args: argparse.Namespace) -> Settings:
    unknown = set(args.modes) - set(SECTIONS) - set(GRPC_MODES)
    if unknown:
        raise SystemExit(f"layergate: unknown mode(s) {', '.join(sorted(unknown))}")
    grpc_modes = [m for m in GRPC_MODES if "grpc" in args.modes or m in args.modes]
    sections = [s for s in SECTIONS if s in args.modes or (s == "grpc" and grpc_modes)]
    quick = args.quick
    return Settings(
        sizes=args.sizes or ([10] if quick else [10, 100, 1000]),
        rounds=args.rounds or (3 if quick else 5),
        seconds=args.seconds or (0.25 if quick else 1.0),
        workers=args.workers, sections=sections, grpc_modes=grpc_modes, peers=args.peers,
        quick=quick)


def run(args: argparse.Namespace) -> int:
    from layergate.bench import charts, harness, report  # matplotlib only when benchmarking

    if args.render:
        document = orjson.loads(args.render.read_bytes())
    else:
        settings = _settings(args)
        command = " ".join([settings.command(), f"--out {args.out}",
                            *([f"--write {args.write}"] if args.write else [])])
        document = harness.run(settings, command,
                               log=lambda line: print(f"layergate bench: {line}", flush=True))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench.json").write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    drawn = charts.draw(document, args.out)
    print(report.markdown(document))
    print(f"layergate bench: wrote {args.out / 'bench.json'} and {len(drawn)} charts")
    if args.write:
        links = [os.path.relpath(path, args.write.resolve().parent) for path in drawn]
        report.write_block(args.write, report.markdown(document, links))
        print(f"layergate bench: updated {args.write}")
    return 0
