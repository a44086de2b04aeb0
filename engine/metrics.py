"""Prometheus metrics of one server process, on an optional HTTP port."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from .decision import Decision

LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                   0.25, 0.5, 1.0, 2.5)


class Metrics:
    """Decisions by result and deciding layer, RPC latency, the revision, reload outcomes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.decisions = Counter("layergate_decisions", "Decisions made, by result and "
                                 "deciding layer", ["decision", "layer"], registry=self.registry)
        self.latency = Histogram("layergate_rpc_duration_seconds", "Time to serve one RPC "
                                 "(or one stream message)", ["rpc"], buckets=LATENCY_BUCKETS,
                                 registry=self.registry)
        self.policy = Gauge("layergate_policy_revision_info", "The policy revision being "
                            "served (value 1)", ["revision"], registry=self.registry)
        self.reloads = Counter("layergate_reloads", "Policy reloads, by outcome", ["outcome"],
                               registry=self.registry)
        self.log_dropped = Counter("layergate_decision_log_dropped", "Decision records "
                                   "dropped because the log buffer was full",
                                   registry=self.registry)

    def serve(self, host: str, port: int) -> None:
        start_http_server(port, addr=host, registry=self.registry)

    def record(self, rpc: str, decisions: Iterable[Decision], seconds: float) -> None:
        self.latency.labels(rpc).observe(seconds)
        for (decision, layer), count in Tally((d.decision, d.layer or "") for d in
                                              decisions).items():
            self.decisions.labels(decision, layer).inc(count)

    def revision(self, revision: str) -> None:
        self.policy.clear()
        self.policy.labels(revision).set(1)

    def reloaded(self, ok: bool) -> None:
        self.reloads.labels("ok" if ok else "rejected").inc()
