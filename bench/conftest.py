"""pytest configuration for the benchmarks (run explicitly: `pytest bench/`)."""
