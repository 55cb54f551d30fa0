"""Benchmarks of live_matview: ``python -m benchmarks`` (see benchmarks/README.md).

They measure what SPEC §6 promises, side by side in one run against one PostgreSQL:
each workload runs in several rounds, every variant once per round in random order,
and ratios are taken within a round (the machine drifts too much between rounds for
independent medians to compare).
"""
