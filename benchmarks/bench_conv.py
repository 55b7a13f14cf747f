"""Thin script: the benchmark lives in the package (nnkit/bench/conv.py).

    python benchmarks/bench_conv.py [--quick] [--runs N] [--json FILE] [--no-torch]

is `nnkit bench conv ...`.
"""
import sys

from nnkit.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "conv", *sys.argv[1:]]))
