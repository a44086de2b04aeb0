"""PNG charts of a harness document (matplotlib, Agg): latency percentiles and throughput."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from .report import MODE_LABELS

PERCENTILES = ("p50", "p90", "p99", "p99.9")
COLOURS = {"layergate": "#1f6feb", "baseline": "#9aa4ae"}


def _error(entry: dict[str, Any], key: str) -> list[float]:
    """Distances from the median to the min and max over rounds (for error bars)."""
    median = entry["median"][key]
    return [median - entry["min"][key], entry["max"][key] - median]


def latency_chart(size_key: str, size: dict[str, Any], path: Path) -> Path:
    """One panel per gRPC mode and worker count: percentiles, Layergate beside the baseline."""
    by_workers = size["grpc"]
    modes = list(next(iter(by_workers.values()))["modes"])
    figure, axes = plt.subplots(len(by_workers), len(modes), squeeze=False,
                                figsize=(3.2 * len(modes), 3.0 * len(by_workers)))
    for row, (workers, measured) in enumerate(by_workers.items()):
        for column, mode in enumerate(modes):
            axis = axes[row][column]
            for offset, target in ((-0.2, "layergate"), (0.2, "baseline")):
                entry = measured["modes"][mode][target]
                keys = [f"{p}_us" for p in PERCENTILES]
                errors = list(zip(*(_error(entry, key) for key in keys), strict=True))
                axis.bar([i + offset for i in range(len(keys))],
                         [entry["median"][key] / 1000 for key in keys], 0.4,
                         yerr=[[e / 1000 for e in side] for side in errors], capsize=2,
                         color=COLOURS[target], label=target)
            axis.set_xticks(range(len(PERCENTILES)), PERCENTILES)
            axis.set_yscale("log")
            axis.set_title(f"{MODE_LABELS.get(mode, mode)}\nworkers={workers}", fontsize=8)
            axis.set_ylabel("ms per call / message", fontsize=7)
            axis.tick_params(labelsize=7)
    axes[0][0].legend(fontsize=7)
    figure.suptitle(f"gRPC latency on loopback, S = {int(size_key):,} roles", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(figure)
    return path


def throughput_chart(size_key: str, size: dict[str, Any], path: Path) -> Path:
    """Decisions/s of every mode: gRPC (Layergate vs baseline) and in-process (with peers)."""
    rows: list[tuple[str, str, dict[str, Any]]] = []
    for workers, measured in size.get("grpc", {}).items():
        for mode, targets in measured["modes"].items():
            for target in ("layergate", "baseline"):
                rows.append((f"gRPC {MODE_LABELS.get(mode, mode)}, w={workers}", target,
                             targets[target]))
    for entry in size.get("in_process", {}).values():
        rows.append((f"in-process {entry['label']}", "layergate", entry))
    for name, peer in size.get("peers", {}).get("engines", {}).items():
        for key in ("check", "check_batch"):
            if key in peer:
                rows.append((f"peer {name} {key}", "peer", peer[key]))
    figure, axis = plt.subplots(figsize=(9, 0.28 * len(rows) + 1.2))
    for index, (_, target, entry) in enumerate(rows):
        axis.barh(index, entry["median"]["decisions_per_s"],
                  xerr=[[v] for v in _error(entry, "decisions_per_s")], capsize=2,
                  color=COLOURS.get(target, "#d29922"))
        axis.text(entry["median"]["decisions_per_s"], index,
                  f" {entry['median']['decisions_per_s']:,.0f}", va="center", fontsize=6)
    axis.set_yticks(range(len(rows)), [f"{label} ({target})" if target == "baseline" else label
                                       for label, target, _ in rows], fontsize=6)
    axis.invert_yaxis()
    axis.set_xscale("log")
    axis.set_xlabel("decisions per second (log scale; blue Layergate, grey baseline, "
                    "orange peers)", fontsize=7)
    axis.set_title(f"Throughput per mode, S = {int(size_key):,} roles", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(figure)
    return path


def draw(document: dict[str, Any], out: Path) -> list[Path]:
    """Every chart of the document into `out`; returns the files written."""
    written = []
    for size_key, size in document["sizes"].items():
        if size.get("grpc"):
            written.append(latency_chart(size_key, size, out / f"latency-S{size_key}.png"))
        written.append(throughput_chart(size_key, size, out / f"throughput-S{size_key}.png"))
    return written
