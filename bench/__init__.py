"""Benchmarks (run as modules, e.g. ``python -m bench.store_bench``); not part of the test suite."""
