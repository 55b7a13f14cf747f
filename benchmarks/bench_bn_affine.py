"""Thin script: the benchmark lives in the package (nnkit/bench/bn_affine.py).

    python benchmarks/bench_bn_affine.py [--quick] [--runs N] [--json FILE] [--no-torch]

is `nnkit bench bn_affine ...`.
"""
import sys

from nnkit.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "bn_affine", *sys.argv[1:]]))
