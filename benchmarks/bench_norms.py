"""Thin script: the benchmark lives in the package (nnkit/bench/norms.py).

    python benchmarks/bench_norms.py [--quick] [--runs N] [--json FILE] [--no-torch]

is `nnkit bench norms ...`.
"""
import sys

from nnkit.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "norms", *sys.argv[1:]]))
