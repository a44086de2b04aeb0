"""The harness's JSON document as Markdown tables: per size, then against the issue's targets."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

MODE_LABELS = {
    "unary_c1": "Check, concurrency 1",
    "unary_concurrent": "Check, high concurrency",
    "batch_100": "BatchCheck, 100 items",
    "batch_1000": "BatchCheck, 1,000 items",
    "stream": "StreamCheck, pipelined",
}
LATENCY_MODES = ("unary_c1",)  # modes whose headline figure is a latency, not a throughput


def _per_decision(seconds: float) -> str:
    return f"{seconds * 1e6:,.2f} µs" if seconds >= 1e-5 else f"{seconds * 1e9:,.0f} ns"


def _spread(entry: dict[str, Any]) -> list[str]:
    """Median, min to max and decisions/s of an in-process entry."""
    median, low, high = (entry[k]["seconds_per_decision"] for k in ("median", "min", "max"))
    return [_per_decision(median), f"{_per_decision(low)} to {_per_decision(high)}",
            f"{1 / median:,.0f}"]


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def in_process_table(size: dict[str, Any]) -> list[str]:
    lines = ["| mode | per decision (median) | min to max | decisions/s |", "|---|---|---|---|"]
    for entry in size.get("in_process", {}).values():
        lines.append(_row([entry["label"], *_spread(entry)]))
    for name, peer in size.get("peers", {}).get("engines", {}).items():
        for key in ("check", "check_batch"):
            if key in peer:
                label = f"peer {name} {peer['version']}: {key} ({peer[key]['decisions']:,})"
                lines.append(_row([label, *_spread(peer[key])]))
    return lines


def peers_lines(size: dict[str, Any]) -> list[str]:
    peers = size.get("peers")
    if peers is None:
        return []
    lines = []
    for name, peer in peers["engines"].items():
        verdict = ("agrees with Layergate on all" if peer["agreed"]
                   else f"**disagrees** on {len(peer['disagreements']):,} of")
        if peer.get("check_disagreements"):
            verdict = (f"**`check` disagrees** on {len(peer['check_disagreements']):,} "
                       "timed requests (its batch call agreed with Layergate on all")
        closing = ")" if peer.get("check_disagreements") else ""
        lines.append(f"- {name} {peer['version']}: {verdict} {peer['compared']:,} "
                     f"requests{closing}")
        lines += [f"  - {note}" for note in peer["notes"]]
    lines += [f"- {name}: not run ({why})" for name, why in peers["unavailable"].items()]
    for key, ratio in size.get("peer_ratios", {}).items():
        lines.append(f"- Layergate `{key}` vs the fastest peer ({ratio['fastest_peer']}): "
                     f"**{ratio['ratio']:,.1f}x** faster per decision")
    return lines


def _headline(mode: str, median: dict[str, float]) -> str:
    if mode in LATENCY_MODES:
        return f"p50 {median['p50_us']:,.0f} µs"
    return f"{median['decisions_per_s']:,.0f}/s"


def _ratio(mode: str, ratios: dict[str, float]) -> str:
    if mode in LATENCY_MODES:
        return f"p50 {ratios['p50_us']:.2f}x"
    return f"{ratios['decisions_per_s']:.0%} of its items/s"


def _latencies(median: dict[str, float]) -> str:
    return " / ".join(f"{median[f'{p}_us']:,.0f}" for p in ("p50", "p90", "p99", "p99.9"))


def grpc_table(size: dict[str, Any]) -> list[str]:
    lines = [
        "| mode | workers | Layergate | baseline | Layergate vs baseline "
        "| latency µs p50 / p90 / p99 / p99.9, Layergate | same, baseline "
        "| server CPU µs per decision, Layergate / baseline |",
        "|---|---|---|---|---|---|---|---|",
    ]
    by_workers = size.get("grpc", {})
    modes = next(iter(by_workers.values()), {}).get("modes", {})
    for mode in modes:
        for workers, measured in by_workers.items():
            ours = measured["modes"][mode]["layergate"]["median"]
            base = measured["modes"][mode]["baseline"]["median"]
            cpu = (f"{ours['server_cpu_us_per_decision']:,.1f} / "
                   f"{base['server_cpu_us_per_decision']:,.1f}")
            lines.append(_row([MODE_LABELS.get(mode, mode), workers, _headline(mode, ours),
                               _headline(mode, base), _ratio(mode, measured["ratios"][mode]),
                               _latencies(ours), _latencies(base), cpu]))
    return lines


def _agreement(size: dict[str, Any]) -> str:
    wrong = {f"{rpc} (workers={workers})": len(result["disagreements"])
             for workers, measured in size.get("grpc", {}).items()
             for rpc, result in measured["agreement"].items() if result["disagreements"]}
    if not size.get("grpc"):
        return ""
    if not wrong:
        return ("Over gRPC, Check (first 200 requests), BatchCheck and StreamCheck (all "
                "requests) gave the in-process decisions.")
    return f"Over gRPC, decisions **differed** from in-process: {wrong}."


def size_section(size_key: str, size: dict[str, Any]) -> list[str]:
    workload = size["workload"]
    lines = [f"#### S = {int(size_key):,} roles ({workload['service_accounts']:,} service "
             f"accounts, {workload['requests']:,} requests, "
             f"{workload['allowed_fraction']:.0%} allowed, "
             f"{workload['errors_fraction']:.1%} with evaluation errors)", ""]
    if "in_process" in size or size.get("peers", {}).get("engines"):
        lines += [*in_process_table(size), ""]
    if size.get("peers"):
        lines += [*peers_lines(size), ""]
    if size.get("grpc"):
        lines += [*grpc_table(size), "", _agreement(size), ""]
    return lines


def _cell(values: list[float], style: str) -> str:
    return " / ".join(format(v, style) for v in values) if values else "—"


def targets_table(document: dict[str, Any]) -> list[str]:
    """The targets of issue 5 against this run, one column per size."""
    sizes = document["sizes"]
    lines = ["| target (issue 5) | " + " | ".join(f"S = {int(s):,}" for s in sizes)
             + " | met? |", "|---" * (len(sizes) + 2) + "|"]

    def peer_row(label: str, key: str, goal: float) -> None:
        values = [sizes[s].get("peer_ratios", {}).get(key, {}).get("ratio") for s in sizes]
        found = [v for v in values if v is not None]
        met = "—" if not found else ("yes" if min(found) >= goal else "**no**")
        lines.append(_row([label, *(f"{v:,.1f}x" if v is not None else "—" for v in values),
                           met]))

    def grpc_row(label: str, mode: str, key: str, goal: float, higher: bool, style: str) -> None:
        cells, found = [], []
        for size in sizes.values():
            values = [m["ratios"][mode][key] for m in size.get("grpc", {}).values()
                      if mode in m["ratios"]]
            found += values
            cells.append(_cell(values, style))
        met = "—" if not found else (
            "yes" if all((v >= goal) if higher else (v <= goal) for v in found) else "**no**")
        lines.append(_row([label, *cells, met]))

    peer_row("in-process `check` ≥ 10x faster than the fastest peer", "check", 10)
    peer_row("in-process `check_batch` ≥ 50x faster than the fastest peer", "check_batch", 50)
    for mode in ("batch_100", "batch_1000", "stream"):
        grpc_row(f"{MODE_LABELS[mode]} ≥ 70% of the baseline's items/s (workers "
                 f"{' / '.join(_workers(document))})", mode, "decisions_per_s", 0.7, True,
                 ".0%")
    grpc_row(f"Check p50 ≤ 1.2x the baseline's (workers {' / '.join(_workers(document))})",
             "unary_c1", "p50_us", 1.2, False, ".2f")
    return lines


def _workers(document: dict[str, Any]) -> list[str]:
    return [str(w) for w in document["settings"]["workers"]]


def environment_lines(document: dict[str, Any]) -> list[str]:
    machine, versions = document["machine"], document["versions"]
    load = " / ".join(f"{value:.2f}" for value in machine["load_average_at_start"])
    peers = ", ".join(f"{name} {version}" for name, version in versions.get("peers", {}).items())
    return [
        f"Machine: {machine['cpu']}, {machine['cpus']} CPUs, {machine['platform']}; load "
        f"average at start {load}.",
        f"Versions: {versions['implementation']} {versions['python']}, grpcio "
        f"{versions['grpcio']}, protobuf {versions['protobuf']} ({versions['protobuf_backend']})"
        f", Cython {versions['cython']}, orjson {versions['orjson']}"
        + (f"; peers: {peers}" if peers else "") + ".",
        f"Command: `{document['command']}` ({document['seconds']:.0f} s, started "
        f"{document['started_at']}).",
    ]


def markdown(document: dict[str, Any], charts: Sequence[str] = ()) -> str:
    """The whole report; `charts` are image paths relative to where the text will live."""
    settings = document["settings"]
    lines = [
        f"Medians of {settings['rounds']} rounds, all measured in this one run; gRPC rounds "
        f"alternate between Layergate and the baseline, {settings['seconds']:g} s each.", "",
        *targets_table(document), "",
    ]
    for size_key, size in document["sizes"].items():
        lines += size_section(size_key, size)
    lines += [f"![{Path(chart).stem}]({chart})" for chart in charts]
    lines += ["", *environment_lines(document)]
    return "\n".join(lines).rstrip() + "\n"


def write_block(path: Path, text: str, name: str = "bench") -> None:
    """Replace the `name` block of `path`: the lines between `<!-- name:start -->` and
    `<!-- name:end -->` (markers on lines of their own; the block is appended if absent)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    pattern = re.compile(rf"^{re.escape(start)}$.*?^{re.escape(end)}$", re.MULTILINE | re.DOTALL)
    current = path.read_text() if path.exists() else ""
    block = f"{start}\n{text.rstrip(chr(10))}\n{end}"
    replaced, count = pattern.subn(lambda match: block, current, count=1)
    path.write_text(replaced if count else current.rstrip("\n") + f"\n\n{block}\n")
