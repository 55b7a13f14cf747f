"""Thin script: the benchmark lives in the package (nnkit/bench/rnn.py).

    python benchmarks/bench_rnn.py [--quick] [--runs N] [--json FILE] [--no-torch]

is `nnkit bench rnn ...`.
"""
import sys

from nnkit.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "rnn", *sys.argv[1:]]))
