"""The families of nnkit, each named once: the one list that the build, the
benchmarks, the walkthrough registry and the tests read.

Plain data (this module imports nothing), so setup.py reads it with runpy
before the package is built. Each family names:

  name          what it is called
  kernels       its Cython extensions: pyx/<k>.pyx builds nnkit._kernels.<k>
                (a kernel file may serve two families: softmax is in dense.pyx)
  module        its functional module, nnkit/<module>.py: the (out, cache)
                forwards, the backwards, its caches and named gradients
  walkthroughs  its walkthrough modules, nnkit/walkthroughs/<w>.py (a graph
                may walk through two families: mlp is affine, ReLU and softmax)
  bench         its benchmark modules, nnkit/bench/<b>.py (`nnkit bench <b>`)
  problems      the problems of the problem set it answers (P1..P10), whose
                identities nnkit/lessons/ checks (`nnkit lessons`)

Adding a family is adding an entry here (CONTRIBUTING.md). The order is the
order `nnkit bench` runs its benchmarks in.
"""

FAMILIES = (
    dict(name="dense", kernels=("dense",), module="dense", walkthroughs=("mlp",),
         bench=("bn_affine",), problems=("P1",)),
    dict(name="softmax", kernels=("dense",), module="softmax", walkthroughs=("mlp",),
         bench=(), problems=("P4",)),
    dict(name="batchnorm", kernels=("batchnorm",), module="batchnorm",
         walkthroughs=("bn_relu",), bench=("bn_affine",), problems=("P2",)),
    dict(name="whitening", kernels=("whitening",), module="whitening",
         walkthroughs=("whitening",), bench=("whitening",), problems=("P2",)),
    dict(name="rnn", kernels=("rnn",), module="rnn", walkthroughs=("rnn",),
         bench=("rnn",), problems=("P9",)),
    dict(name="gated", kernels=("gated",), module="gated", walkthroughs=("gated",),
         bench=("lstm",), problems=("P9",)),
    dict(name="conv", kernels=("conv", "pool"), module="conv", walkthroughs=("conv",),
         bench=("conv",), problems=("P3", "P10")),
    dict(name="norms", kernels=("norms",), module="norms", walkthroughs=("norms",),
         bench=("norms",), problems=("P8",)),
    dict(name="weightnorm", kernels=(), module="weightnorm", walkthroughs=("weightnorm",),
         bench=(), problems=("P8",)),
    dict(name="dropout", kernels=(), module="dropout", walkthroughs=("dropout",),
         bench=(), problems=("P6",)),
    dict(name="optim", kernels=("optim",), module="optim_functional", walkthroughs=(),
         bench=("optim",), problems=("P5",)),
    dict(name="activations", kernels=("activations",), module="activations",
         walkthroughs=("activations",), bench=("activations",),
         problems=("P1", "P4")),     # the MLP's nonlinearities; losses beside P4's
    dict(name="init", kernels=(), module="init", walkthroughs=(), bench=(),
         problems=("P7",)),
)


def _union(key):
    """Every family's `key` entries, each once, in the order of FAMILIES."""
    return tuple(dict.fromkeys(x for f in FAMILIES for x in f[key]))


KERNELS = _union("kernels")            # setup.py: the extensions to build
BENCH = _union("bench")                # nnkit.bench.FAMILIES
# in name order: the order they register in, which the TUI's picker and
# `nnkit walkthroughs` list them in
WALKTHROUGHS = tuple(sorted(_union("walkthroughs")))
PROBLEMS = tuple(sorted(_union("problems"), key=lambda p: int(p[1:])))
