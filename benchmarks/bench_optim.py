"""Thin script: the benchmark lives in the package (nnkit/bench/optim.py).

    python benchmarks/bench_optim.py [--quick] [--runs N] [--json FILE] [--no-torch]

is `nnkit bench optim ...`.
"""
import sys

from nnkit.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "optim", *sys.argv[1:]]))
