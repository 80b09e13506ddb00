"""otel-asyncres benchmark suite: ``python -m benchmarks --help`` (from the repository root).

See docs/performance.md for the results and how to reproduce them.
"""
