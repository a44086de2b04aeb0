"""Layergate benchmark harness (workloads, micro-benchmarks)."""
