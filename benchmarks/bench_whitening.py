"""Thin script: the benchmark lives in the package (nnkit/bench/whitening.py).

    python benchmarks/bench_whitening.py [--quick] [--runs N] [--json FILE] [--no-torch]

is `nnkit bench whitening ...`.
"""
import sys

from nnkit.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "whitening", *sys.argv[1:]]))
