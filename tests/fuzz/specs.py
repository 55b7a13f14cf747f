"""The spec table: one entry per public function and layer of nnkit.

A new family adds a few lines here: how to build a valid call (`build`), the
call itself (`fn`, usually the public function), which scalars to corrupt,
and a float64 reference (tests/fuzz/refs.py) if it has one; array arguments
are corrupted automatically. tests/fuzz/test_fuzz.py fails when a public
name of `nnkit` has no spec (and is not in NOT_FUZZED with a reason).
"""
from __future__ import annotations

import numpy as np

import nnkit as nk

from . import refs as R
from .engine import Draw, Spec

SPECS: dict[str, Spec] = {}

# public names deliberately without a spec, with the reason
NOT_FUZZED = {
    "get_nan_policy": "no arguments",
    "trace": "module (walkthroughs: fuzzed through the TUI monkey test and nnkit gradcheck)",
    "init": "module: every initializer has its own spec (init.<name>)",
    "optim": "module: every optimizer and schedule has its own spec (optim.<name>)",
    "train": "module: train.fit has its own spec",
    "save": "writes a file: its inputs (nested dicts, unsavable leaves, paths) are "
            "tests/training/test_checkpoint.py's",
    "load": "reads a file nk.save wrote: tests/training/test_checkpoint.py",
    "conv": "module: its public functions are re-exported and fuzzed by name",
    "Layer": "abstract base (forward raises NotImplementedError)",
    "check_derivation": "runs a student's file in a child process: its hostile inputs "
                        "(raises, loops, exits, crashes, bad returns) are "
                        "tests/derivation_check's",
    "jacobian_check": "takes callables; fuzzed through gradcheck's input handling only "
                      "via nk.gradcheck (same input checks)",
}


def spec(name, fn, build, **kw):
    SPECS[name] = Spec(name, fn, build, **kw)


def g(out, *names):
    """Selected fields of a NamedTuple result."""
    return [getattr(out, n) for n in names]


EPS = [0.0, 1e-5, 1.0, -1e-5]
ACTS = ["tanh", "sigmoid", "relu", "TANH", "softmax", ""]
OUT_KW = {}


def rows(d: Draw, lo_b=1):
    return d.dim(lo_b), d.dim()


# ===================================================================== dense
def b_affine(d):
    B, N = rows(d)
    M = d.dim()
    return dict(X=d.arr(B, N), W=d.arr(M, N), b=d.arr(M))


spec("affine_forward", nk.affine_forward, b_affine,
     ref=lambda a: [R.affine(a["X"], a["W"], a["b"])])


def b_affine_bwd(d):
    a = b_affine(d)
    Y, cache = nk.affine_forward(**a)
    return dict(dY=d.arr(*Y.shape), cache=cache)


spec("affine_backward", nk.affine_backward, b_affine_bwd, cache_arg="cache",
     ref=lambda a: R.affine_backward(a["dY"], a["cache"].X, a["cache"].W))


def b_relu(d):
    shape = tuple(d.dim() for _ in range(int(d.rng.integers(1, 4))))
    return dict(Y=d.arr(*shape))


spec("relu_forward", nk.relu_forward, b_relu, ref=lambda a: [R.relu(a["Y"])])


def b_relu_bwd(d):
    H, cache = nk.relu_forward(**b_relu(d))
    return dict(dH=d.arr(*H.shape), cache=cache)


spec("relu_backward", nk.relu_backward, b_relu_bwd, cache_arg="cache",
     ref=lambda a: [R.relu_backward(a["dH"], a["cache"].H)])


# =================================================================== softmax
def b_softmax(d):
    B, K = rows(d)
    return dict(logits=d.arr(B, K), labels=d.rng.integers(0, K, B))


def b_softmax_soft(d):
    B, K = rows(d)
    T = np.abs(d.arr(B, K)) + 0.1
    return dict(logits=d.arr(B, K), labels=(T / T.sum(axis=1, keepdims=True)).astype(d.dtype))


def sm_outputs(r):
    return [np.asarray(r[0]), r[1].P]


def sm_ref(a):
    loss, P, _ = R.softmax_xent(a["logits"], a["labels"])
    return [np.asarray(loss), P]


spec("softmax_cross_entropy", nk.softmax_cross_entropy, b_softmax, outputs=sm_outputs,
     ref=sm_ref, int_arrays=("labels",))
spec("softmax_cross_entropy[soft]", nk.softmax_cross_entropy, b_softmax_soft,
     outputs=sm_outputs, ref=sm_ref)


def b_softmax_bwd(d):
    a = b_softmax(d) if d.rng.random() < 0.5 else b_softmax_soft(d)
    _, cache = nk.softmax_cross_entropy(**a)
    return dict(cache=cache, dloss=float(d.rng.standard_normal()))


def sm_bwd_ref(a):
    c = a["cache"]
    if abs(float(a["dloss"])) > 1e30:    # overflows float32 outputs to inf (IEEE, right)
        return None
    T = np.eye(c.P.shape[1])[c.labels] if c.labels is not None else R.f64(c.targets)
    return [R.softmax_xent_backward(R.f64(c.P), T, a["dloss"])]


spec("softmax_cross_entropy_backward", nk.softmax_cross_entropy_backward, b_softmax_bwd,
     cache_arg="cache", ref=sm_bwd_ref, scalars={"dloss": [0.0, -2.5, "1", None]})


# ================================================================ batch norm
def b_bn(d):
    B, M = d.dim(2), d.dim()
    return dict(Y=d.arr(B, M), gamma=d.arr(M), beta=d.arr(M), eps=1e-5)


spec("batchnorm_forward", nk.batchnorm_forward, b_bn, scalars={"eps": EPS},
     ref=lambda a: [R.bn(a["Y"], a["gamma"], a["beta"], a["eps"])])
spec("bn_relu_forward", nk.bn_relu_forward, b_bn, scalars={"eps": EPS},
     ref=lambda a: [R.bn(a["Y"], a["gamma"], a["beta"], a["eps"], True)])


def b_bn_bwd(relu):
    def build(d):
        a = b_bn(d)
        Z, cache = (nk.bn_relu_forward if relu else nk.batchnorm_forward)(**a)
        return {("dH" if relu else "dZ"): d.arr(*Z.shape), "cache": cache,
                "full": bool(d.rng.integers(2))}
    return build


def bn_bwd_ref(relu):
    def ref(a):
        c = a["cache"]
        dz = a["dH" if relu else "dZ"]
        return R.bn_backward(dz, c.Y, c.gamma, c.eps, relu, c.beta) + [None] * (3 + relu)
    return ref


spec("batchnorm_backward", nk.batchnorm_backward, b_bn_bwd(False), cache_arg="cache",
     scalars={"full": [1, "yes"]}, ref=bn_bwd_ref(False))
spec("bn_relu_backward", nk.bn_relu_backward, b_bn_bwd(True), cache_arg="cache",
     scalars={"full": [1, "yes"]}, ref=bn_bwd_ref(True))


def b_bn_eval(d):
    a = b_bn(d)
    M = a["Y"].shape[1]
    a.update(running_mean=d.arr(M), running_var=d.arr(M, pos=True),
             relu=bool(d.rng.integers(2)))
    return a


spec("batchnorm_eval_forward", nk.batchnorm_eval_forward, b_bn_eval,
     scalars={"eps": EPS, "relu": [1, "no"]},
     ref=lambda a: [R.bn_eval(a["Y"], a["gamma"], a["beta"], a["running_mean"],
                              a["running_var"], a["eps"], bool(a["relu"]))])


def update_running_stats(running_mean, running_var, cache, momentum):
    nk.update_running_stats(running_mean, running_var, cache, momentum)
    return [np.array(running_mean, copy=True), np.array(running_var, copy=True)]


def b_running(d):
    a = b_bn(d)
    _, cache = nk.batchnorm_forward(**a)
    M = a["Y"].shape[1]
    return dict(running_mean=d.arr(M), running_var=d.arr(M, pos=True), cache=cache,
                momentum=0.1)


def running_ref(a):
    c, m = a["cache"], float(a["momentum"])
    B = c.Y.shape[0]
    return [(1 - m) * R.f64(a["running_mean"]) + m * R.f64(c.mean),
            (1 - m) * R.f64(a["running_var"]) + m * B / (B - 1) * R.f64(c.var)]


# batchnorm_forward's and bn_relu_forward's caches both hold the batch statistics
spec("update_running_stats", update_running_stats, b_running, cache_arg="cache",
     inplace=("running_mean", "running_var"), scalars={"momentum": [0.0, 1.0, 1.5, -0.1]},
     ref=running_ref, any_variant=True)


# ================================================================= whitening
METHODS = ["zca", "pca", "cholesky", "newton"]


def b_wh(d):
    B, M = d.dim(2), d.dim(1, 24)
    return dict(Y=d.arr(B, M), gamma=d.arr(M), beta=d.arr(M), eps=1e-3,
                method=d.choice(METHODS),
                group_size=d.choice([None, int(d.rng.integers(1, M + 1))]),
                iterations=int(d.rng.integers(1, 8)))


def wh_ref(relu):
    def ref(a):
        if a["method"] not in ("zca", "cholesky") or float(a["eps"]) < 1e-6:
            return None
        Y = np.asarray(a["Y"], np.float64)
        C = np.cov(Y.T, bias=True).reshape(Y.shape[1], Y.shape[1]) + float(a["eps"]) * np.eye(Y.shape[1])
        lam = np.linalg.eigvalsh(C)
        dt = np.asarray(a["Y"]).dtype
        if lam[0] <= 0 or lam[-1] / lam[0] > (1e3 if dt == np.float32 else 1e7):
            return None              # ill-conditioned: clean-call comparison only
        return [R.whitening(a["Y"], a["gamma"], a["beta"], a["eps"], a["method"],
                            a["group_size"], relu)]
    return ref


WH_SCALARS = {"eps": [0.0, 1e-5, -1.0], "method": ["ZCA", "svd", "zca "],
              "group_size": [0, 1, 10**6, 2.0], "iterations": [0, 1, 50, 2.5]}
spec("whitening_forward", nk.whitening_forward, b_wh, scalars=WH_SCALARS, ref=wh_ref(False),
     sizes=("small", "small", "small", "one", "large"))
spec("whitening_relu_forward", nk.whitening_relu_forward, b_wh, scalars=WH_SCALARS,
     ref=wh_ref(True), sizes=("small", "small", "small", "one", "large"))


def b_wh_bwd(relu):
    def build(d):
        a = b_wh(d)
        Z, cache = (nk.whitening_relu_forward if relu else nk.whitening_forward)(**a)
        return {("dH" if relu else "dZ"): d.arr(*Z.shape), "cache": cache,
                "full": bool(d.rng.integers(2))}
    return build


spec("whitening_backward", nk.whitening_backward, b_wh_bwd(False), cache_arg="cache",
     scalars={"full": [1]}, sizes=("small", "small", "one", "large"))
spec("whitening_relu_backward", nk.whitening_relu_backward, b_wh_bwd(True),
     cache_arg="cache", scalars={"full": [1]}, sizes=("small", "small", "one", "large"))


def b_wh_eval(d):
    B, M = d.dim(), d.dim(1, 24)
    return dict(Y=d.arr(B, M), gamma=d.arr(M), beta=d.arr(M), running_mean=d.arr(M),
                running_whitening=d.arr(M, M),
                group_size=d.choice([None, int(d.rng.integers(1, M + 1))]),
                relu=bool(d.rng.integers(2)))


spec("whitening_eval_forward", nk.whitening_eval_forward, b_wh_eval,
     scalars={"group_size": [0, 2.0, -1], "relu": ["yes"]},
     ref=lambda a: [R.whitening_eval(a["Y"], a["gamma"], a["beta"], a["running_mean"],
                                     a["running_whitening"], a["group_size"],
                                     bool(a["relu"]))])


# (B, C, ...) input: the C channels whitened over every other axis, through
# the (B·F, C) channel-last rows (the references above on those rows)
def _channel_rows(Y):
    Y = np.asarray(Y)
    return np.moveaxis(Y.reshape(Y.shape[0], Y.shape[1], -1), 1, 2).reshape(-1, Y.shape[1])


def _from_channel_rows(A, shape):
    return np.moveaxis(A.reshape(shape[0], -1, shape[1]), 2, 1).reshape(shape)


def b_wh_channels(d):
    B, C = d.dim(2, 6), d.dim(1, 12)
    sp = (d.dim(1, 5),) + tuple(d.dim(1, 5) for _ in range(int(d.rng.integers(0, 2))))
    return dict(Y=d.arr(B, C, *sp), gamma=d.arr(C), beta=d.arr(C), eps=1e-3,
                method=d.choice(METHODS),
                group_size=d.choice([None, int(d.rng.integers(1, C + 1))]),
                iterations=int(d.rng.integers(1, 8)))


def wh_channels_ref(relu):
    rows_ref = wh_ref(relu)

    def ref(a):
        shape = np.shape(a["Y"])
        if len(shape) < 3:
            return None
        want = rows_ref({**a, "Y": _channel_rows(a["Y"])})
        return None if want is None else [_from_channel_rows(want[0], shape)]
    return ref


spec("whitening_forward[channels]", nk.whitening_forward, b_wh_channels, scalars=WH_SCALARS,
     ref=wh_channels_ref(False), sizes=("small", "small", "small", "one", "large"))
spec("whitening_relu_forward[channels]", nk.whitening_relu_forward, b_wh_channels,
     scalars=WH_SCALARS, ref=wh_channels_ref(True),
     sizes=("small", "small", "small", "one", "large"))


def b_wh_channels_bwd(d):
    Z, cache = nk.whitening_forward(**b_wh_channels(d))
    return dict(dZ=d.arr(*Z.shape), cache=cache, full=bool(d.rng.integers(2)))


spec("whitening_backward[channels]", nk.whitening_backward, b_wh_channels_bwd,
     cache_arg="cache", scalars={"full": [1]}, sizes=("small", "small", "one", "large"))


def b_wh_channels_eval(d):
    a = b_wh_channels(d)
    C = a["Y"].shape[1]
    return dict(Y=a["Y"], gamma=a["gamma"], beta=a["beta"], running_mean=d.arr(C),
                running_whitening=d.arr(C, C), group_size=a["group_size"],
                relu=bool(d.rng.integers(2)))


def wh_channels_eval_ref(a):
    shape = np.shape(a["Y"])
    if len(shape) < 3:
        return None
    Z = R.whitening_eval(_channel_rows(a["Y"]), a["gamma"], a["beta"], a["running_mean"],
                         a["running_whitening"], a["group_size"], bool(a["relu"]))
    return [_from_channel_rows(Z, shape)]


spec("whitening_eval_forward[channels]", nk.whitening_eval_forward, b_wh_channels_eval,
     scalars={"group_size": [0, 2.0, -1], "relu": ["yes"]}, ref=wh_channels_eval_ref)


# ======================================================================= rnn
def b_rnn(d):
    T, B, N, M = d.dim(1, 24), d.dim(), d.dim(), d.dim(1, 32)
    return dict(X=d.arr(T, B, N), h0=d.choice([None, d.arr(B, M)]), Wx=d.arr(M, N) * 0.5,
                Wh=d.arr(M, M) * float(0.5 / np.sqrt(M)), b=d.choice([None, d.arr(M)]),
                activation=d.choice(["tanh", "sigmoid", "relu"]),
                form=d.choice(["standard", "standard", "preactivation"]))


def rnn_ref(a):
    if a["form"] != "standard":
        return None
    return [R.rnn(a["X"], a["h0"], a["Wx"], a["Wh"], a["b"], a["activation"])]


spec("rnn_forward", nk.rnn_forward, b_rnn, ref=rnn_ref,
     scalars={"activation": ACTS, "form": ["pre", "STANDARD"]})


def b_rnn_bwd(d):
    a = b_rnn(d)
    H, cache = nk.rnn_forward(**a)
    return dict(dH=d.arr(*H.shape), cache=cache,
                truncate=d.choice([None, int(d.rng.integers(1, 5))]),
                full=bool(d.rng.integers(2)))


def rnn_bwd_ref(a):
    c = a["cache"]
    if c.form != "standard" or a["truncate"] is not None:
        return None
    return R.rnn_backward(a["dH"], c.X, c.h0, c.Wx, c.Wh, c.H, c.activation) + [None] * 3


spec("rnn_backward", nk.rnn_backward, b_rnn_bwd, cache_arg="cache", ref=rnn_bwd_ref,
     scalars={"truncate": [0, -1, 2.0, True], "full": [1]})


def b_birnn(d):
    T, B, N, M, K = d.dim(1, 16), d.dim(), d.dim(), d.dim(1, 24), d.dim()
    s = float(0.5 / np.sqrt(M))
    return dict(X=d.arr(T, B, N), hf0=d.choice([None, d.arr(B, M)]),
                hb0=d.choice([None, d.arr(B, M)]), Wxf=d.arr(M, N) * 0.5,
                Whf=d.arr(M, M) * s, Wxb=d.arr(M, N) * 0.5, Whb=d.arr(M, M) * s,
                Wy=d.arr(K, 2 * M), by=d.arr(K),
                activation=d.choice(["tanh", "sigmoid", "relu"]),
                bf=d.choice([None, d.arr(M)]), bb=d.choice([None, d.arr(M)]))


spec("birnn_forward", nk.birnn_forward, b_birnn, scalars={"activation": ACTS},
     ref=lambda a: [R.birnn(a["X"], a["hf0"], a["hb0"], a["Wxf"], a["Whf"], a["Wxb"],
                            a["Whb"], a["Wy"], a["by"], a["activation"], a["bf"], a["bb"])])


def b_birnn_bwd(d):
    Y, cache = nk.birnn_forward(**b_birnn(d))
    return dict(dY=d.arr(*Y.shape), cache=cache, full=bool(d.rng.integers(2)))


spec("birnn_backward", nk.birnn_backward, b_birnn_bwd, cache_arg="cache",
     scalars={"full": [1]})


# ==================================================================== gated
def b_lstm(d):
    T, B, N, H = d.dim(1, 16), d.dim(), d.dim(), d.dim(1, 20)
    s = float(1 / np.sqrt(H))
    return dict(X=d.arr(T, B, N), h0=d.choice([None, d.arr(B, H)]),
                c0=d.choice([None, d.arr(B, H)]), W_ih=d.arr(4 * H, N) * s,
                W_hh=d.arr(4 * H, H) * s, b_ih=d.choice([None, d.arr(4 * H)]),
                b_hh=d.choice([None, d.arr(4 * H)]), reverse=bool(d.rng.integers(2)))


spec("lstm_forward", nk.lstm_forward, b_lstm, scalars={"reverse": [1, "yes"]})


def b_lstm_bwd(d):
    H, cache = nk.lstm_forward(**b_lstm(d))
    return dict(dH=d.arr(*H.shape), cache=cache,
                truncate=d.choice([None, int(d.rng.integers(1, 5))]),
                full=bool(d.rng.integers(2)))


spec("lstm_backward", nk.lstm_backward, b_lstm_bwd, cache_arg="cache",
     scalars={"truncate": [0, -1, 2.0, True], "full": [1]})


def b_gru(d):
    T, B, N, H = d.dim(1, 16), d.dim(), d.dim(), d.dim(1, 20)
    s = float(1 / np.sqrt(H))
    return dict(X=d.arr(T, B, N), h0=d.choice([None, d.arr(B, H)]),
                W_ih=d.arr(3 * H, N) * s, W_hh=d.arr(3 * H, H) * s,
                b_ih=d.choice([None, d.arr(3 * H)]), b_hh=d.choice([None, d.arr(3 * H)]),
                reverse=bool(d.rng.integers(2)))


spec("gru_forward", nk.gru_forward, b_gru, scalars={"reverse": [1, "yes"]})


def b_gru_bwd(d):
    H, cache = nk.gru_forward(**b_gru(d))
    return dict(dH=d.arr(*H.shape), cache=cache,
                truncate=d.choice([None, int(d.rng.integers(1, 5))]),
                full=bool(d.rng.integers(2)))


spec("gru_backward", nk.gru_backward, b_gru_bwd, cache_arg="cache",
     scalars={"truncate": [0, -1, 2.0, True], "full": [1]})


# =================================================================== dropout
def dropout_forward(X, keep, rng="seeded", training=True):
    r = np.random.default_rng(7) if isinstance(rng, str) and rng == "seeded" else rng
    Y, cache = nk.dropout_forward(X, keep, r, training)
    return Y, cache


def b_dropout(d):
    shape = tuple(d.dim() for _ in range(int(d.rng.integers(1, 4))))
    return dict(X=d.arr(*shape), keep=d.choice([0.5, 0.9, 1.0, 0.01]),
                training=bool(d.rng.integers(4)))


def dropout_outputs(r):
    return [r[0], r[1].mask]


def dropout_ref(a):
    if not a["training"]:
        return [R.f64(a["X"]), None]
    return None        # the mask is random: checked in dropout_backward's ref


spec("dropout_forward", dropout_forward, b_dropout, outputs=dropout_outputs, ref=dropout_ref,
     random=True,
     scalars={"keep": [0.0, 1.0, 1.5, -0.5], "training": [1, "yes"],
              "rng": [42, np.random.RandomState(0)]})


def b_dropout_bwd(d):
    a = b_dropout(d)
    Y, cache = dropout_forward(**a)
    return dict(dY=d.arr(*Y.shape), cache=cache)


def dropout_bwd_ref(a):
    c = a["cache"]
    dY = R.f64(a["dY"])
    return [dY if c.mask is None else dY * c.mask / c.keep]


spec("dropout_backward", nk.dropout_backward, b_dropout_bwd,
     cache_arg="cache", ref=dropout_bwd_ref, names=("dY", "cache"))


# ===================================================================== norms
def b_layernorm(d):
    shape = (d.dim(), d.dim()) + tuple(d.dim(1, 6) for _ in range(int(d.rng.integers(0, 2))))
    return dict(X=d.arr(*shape), gamma=d.arr(*shape[1:]), beta=d.arr(*shape[1:]), eps=1e-5)


spec("layernorm_forward", nk.layernorm_forward, b_layernorm, scalars={"eps": EPS},
     ref=lambda a: [R.layernorm(a["X"], a["gamma"], a["beta"], a["eps"])])


def b_instnorm(d):
    B, C = d.dim(), d.dim()
    sp = (d.dim(2),) + tuple(d.dim(1, 6) for _ in range(int(d.rng.integers(0, 2))))
    return dict(X=d.arr(B, C, *sp), gamma=d.arr(C), beta=d.arr(C), eps=1e-5)


spec("instancenorm_forward", nk.instancenorm_forward, b_instnorm, scalars={"eps": EPS},
     ref=lambda a: [R.instancenorm(a["X"], a["gamma"], a["beta"], a["eps"])])


def b_rownorm_bwd(fwd, build):
    def b(d):
        Z, cache = fwd(**build(d))
        return dict(dZ=d.arr(*Z.shape), cache=cache, full=bool(d.rng.integers(2)))
    return b


def rownorm_bwd_ref(axes_from):
    def ref(a):
        c = a["cache"]
        X = c.X
        gshape = ((1,) + X.shape[1:]) if axes_from == 1 else \
            ((1, X.shape[1]) + (1,) * (X.ndim - 2))
        return R.norm_backward(a["dZ"], X, c.gamma, c.eps, axes_from, gshape) + [None] * 3
    return ref


spec("layernorm_backward", nk.layernorm_backward,
     b_rownorm_bwd(nk.layernorm_forward, b_layernorm), cache_arg="cache",
     scalars={"full": [1]}, ref=rownorm_bwd_ref(1))
spec("instancenorm_backward", nk.instancenorm_backward,
     b_rownorm_bwd(nk.instancenorm_forward, b_instnorm), cache_arg="cache",
     scalars={"full": [1]}, ref=rownorm_bwd_ref(2))


def _divisor(d, C):
    return d.choice([k for k in range(1, C + 1) if C % k == 0])


def b_groupnorm(d):
    B, C = d.dim(), d.dim()
    sp = tuple(d.dim(1, 6) for _ in range(int(d.rng.integers(0, 3))))
    return dict(X=d.arr(B, C, *sp), gamma=d.arr(C), beta=d.arr(C),
                num_groups=_divisor(d, C), eps=1e-5)


GN_GROUPS = [0, -1, 2.0, "2", True, 7, 10**6]
spec("groupnorm_forward", nk.groupnorm_forward, b_groupnorm,
     scalars={"eps": EPS, "num_groups": GN_GROUPS},
     ref=lambda a: [R.groupnorm(a["X"], a["gamma"], a["beta"], a["num_groups"], a["eps"])])


def b_groupnorm_bwd(d):
    Z, cache = nk.groupnorm_forward(**b_groupnorm(d))
    return dict(dZ=d.arr(*Z.shape), cache=cache, full=bool(d.rng.integers(2)))


def groupnorm_bwd_ref(a):
    c = a["cache"]
    dX, dg, db, dxh = R.groupnorm_backward(a["dZ"], c.X, c.gamma, c.num_groups, c.eps)
    return [dX, dg, db, None, None, dxh if a["full"] is True else None]


spec("groupnorm_backward", nk.groupnorm_backward, b_groupnorm_bwd, cache_arg="cache",
     scalars={"full": [1]}, ref=groupnorm_bwd_ref)


def b_bnc(d):
    B, C = d.dim(2), d.dim()
    sp = (d.dim(),) + tuple(d.dim(1, 6) for _ in range(int(d.rng.integers(0, 2))))
    return dict(X=d.arr(B, C, *sp), gamma=d.arr(C), beta=d.arr(C), eps=1e-5)


spec("batchnorm_channels_forward", nk.batchnorm_channels_forward, b_bnc,
     scalars={"eps": EPS},
     ref=lambda a: [R.batchnorm_channels(a["X"], a["gamma"], a["beta"], a["eps"])])


def b_bnc_eval(d):
    a = b_bnc(d)
    C = a["X"].shape[1]
    a.update(running_mean=d.arr(C), running_var=d.arr(C, pos=True),
             relu=bool(d.rng.integers(2)))
    return a


def bnc_eval_ref(a):
    # channels last, as rows: inference batch norm per channel (bn_eval's formula)
    X = R.f64(a["X"])
    rows = np.moveaxis(X, 1, -1)
    Z = R.bn_eval(rows, a["gamma"], a["beta"], a["running_mean"], a["running_var"],
                  a["eps"], bool(a["relu"]))
    return [np.moveaxis(Z, -1, 1)]


spec("batchnorm_channels_eval_forward", nk.batchnorm_channels_eval_forward, b_bnc_eval,
     scalars={"eps": EPS, "relu": [1, "no"]}, ref=bnc_eval_ref)


def b_bnc_bwd(d):
    Z, cache = nk.batchnorm_channels_forward(**b_bnc(d))
    return dict(dZ=d.arr(*Z.shape), cache=cache)


def bnc_bwd_ref(a):
    c = a["cache"]
    shape = c.shape
    # move channels first and normalize over every other axis: layer norm's
    # backward with γ broadcast per channel
    X = np.moveaxis(R.f64(c.bn.Y).reshape(shape[0], -1, shape[1]), 2, 0)   # (C, B, F)
    dZ = np.moveaxis(R.f64(a["dZ"]).reshape(shape[0], shape[1], -1), 1, 0)  # (C, B, F)
    gam = R.f64(c.bn.gamma)
    out = R.norm_backward(dZ, X, gam, c.bn.eps, 1, (shape[1], 1, 1))
    dX = np.moveaxis(out[0], 0, 1).reshape(shape)
    xh, _, _ = R.rownorm(X, None, None, c.bn.eps, 1)
    dXhat = np.moveaxis(dZ * gam[:, None, None], 0, 1).reshape(shape)
    return [dX, (dZ * xh).sum(axis=(1, 2)), dZ.sum(axis=(1, 2)), None, None, dXhat, None]


spec("batchnorm_channels_backward", nk.batchnorm_channels_backward, b_bnc_bwd,
     cache_arg="cache", ref=bnc_bwd_ref)


def b_wn(d):
    M, N = d.dim(), d.dim()
    return dict(u=d.arr(M, N, pos=True), gamma=d.arr(M))


spec("weightnorm_forward", nk.weightnorm_forward, b_wn,
     ref=lambda a: [R.weightnorm(a["u"], a["gamma"])])


def b_wn_bwd(d):
    w, cache = nk.weightnorm_forward(**b_wn(d))
    return dict(dw=d.arr(*w.shape), cache=cache)


spec("weightnorm_backward", nk.weightnorm_backward, b_wn_bwd, cache_arg="cache",
     ref=lambda a: R.weightnorm_backward(a["dw"], a["cache"].u, a["cache"].gamma))


# ====================================================== conv and pooling (P3, P10)
GEOM = [0, -1, (1, 2), (2, 0), (1, 2, 3), 10**9, "same", "valid", "full", 1.0, [1, 1]]


def b_conv(d):
    B, C, Co = d.dim(), d.dim(1, 8), d.dim(1, 8)
    kh, kw = int(d.rng.integers(1, 4)), int(d.rng.integers(1, 4))
    dil = int(d.rng.integers(1, 3))
    st = int(d.rng.integers(1, 3))
    pad = int(d.rng.integers(0, 2))
    H = max(d.dim(1, 12), dil * (kh - 1) + 1)
    Wd = max(d.dim(1, 12), dil * (kw - 1) + 1)
    return dict(X=d.arr(B, C, H, Wd), W=d.arr(Co, C, kh, kw), b=d.choice([None, d.arr(Co)]),
                stride=st, padding=pad, dilation=dil)


def conv_ref(a):
    if a.get("layout", "NCHW") != "NCHW":
        return None
    return [R.conv2d(a["X"], a["W"], a["b"], a["stride"], a["padding"], a["dilation"])]


CONV_SCALARS = {"stride": GEOM, "padding": GEOM, "dilation": GEOM,
                "layout": ["nchw", "NHWC", 0]}
if hasattr(nk, "conv2d_forward"):
    spec("conv2d_forward", nk.conv2d_forward, b_conv, scalars=CONV_SCALARS, ref=conv_ref,
         sizes=("small", "small", "one", "large"),
         # KNOWN (issue 12 report): a kernel that, dilated, outgrows the input is
         # reported as "kernel_size: ..." (conv2d_output_shape's argument), while
         # conv2d_forward's arguments are W and dilation
         known=(r"not naming an argument: .kernel_size: the kernel",))

    def b_conv_bwd(d):
        a = b_conv(d)
        Y, cache = nk.conv2d_forward(**a)
        return dict(dY=d.arr(*Y.shape), cache=cache)

    def conv_bwd_ref(a):
        c = a["cache"]
        return R.conv2d_backward(a["dY"], c.X, c.W, c.stride, c.padding, c.dilation)

    spec("conv2d_backward", nk.conv2d_backward, b_conv_bwd, cache_arg="cache",
         ref=conv_bwd_ref, sizes=("small", "small", "one", "large"))

    def b_pool(kind):
        def build(d):
            B, C = d.dim(), d.dim(1, 6)
            kh, kw = int(d.rng.integers(1, 4)), int(d.rng.integers(1, 4))
            H, Wd = max(d.dim(1, 12), kh), max(d.dim(1, 12), kw)
            a = dict(X=d.arr(B, C, H, Wd), kernel_size=(kh, kw),
                     stride=d.choice([None, int(d.rng.integers(1, 3))]))
            if kind == "lp":
                a["p"] = d.choice([1.0, 2.0, 3.0, 1.5])
            else:
                a["padding"] = d.choice([0, (kh // 2, kw // 2)])
            return a
        return build

    def pool_ref(kind):
        def ref(a):
            return [R.pool2d(kind, a["X"], a["kernel_size"], a["stride"],
                             a.get("padding", 0), a.get("p"))]
        return ref

    def pool_bwd_ref(kind):
        def ref(a):
            c = a["cache"]
            return [R.pool2d_backward(kind, a["dY"], c.X, c.kernel_size, c.stride,
                                      c.padding, c.p)]
        return ref

    POOL_SCALARS = {"kernel_size": GEOM, "stride": GEOM, "padding": GEOM}
    for kind in ("max", "avg", "lp"):
        fwd = getattr(nk, f"{kind}pool2d_forward")
        bwd = getattr(nk, f"{kind}pool2d_backward")
        sc = dict(POOL_SCALARS)
        if kind == "lp":
            sc.pop("padding")
            sc["p"] = [0.0, -1.0, float("inf"), "2"]
        spec(f"{kind}pool2d_forward", fwd, b_pool(kind), scalars=sc, ref=pool_ref(kind))

        def b_pool_bwd(d, kind=kind, fwd=fwd):
            Y, cache = fwd(**b_pool(kind)(d))
            return dict(dY=d.arr(*Y.shape), cache=cache)

        spec(f"{kind}pool2d_backward", bwd, b_pool_bwd, cache_arg="cache",
             ref=pool_bwd_ref(kind))

    def shape_outputs(r):
        return [np.asarray(tuple(r), dtype=np.float64)]

    def b_conv_shape(d):
        return dict(input_shape=(d.dim(), d.dim(3, 12), d.dim(3, 12), d.dim()),
                    out_channels=d.dim(), kernel_size=int(d.rng.integers(1, 4)),
                    stride=int(d.rng.integers(1, 3)), padding=int(d.rng.integers(0, 2)),
                    dilation=1, layout="BWHC")

    def conv_shape_ref(a):
        if a["layout"] != "BWHC" or isinstance(a["padding"], str):
            return None
        B, Wd, H, _ = a["input_shape"]
        (k1, k2), (s1, s2) = R.pair(a["kernel_size"]), R.pair(a["stride"])
        (p1, p2), (d1, d2) = R.pair(a["padding"]), R.pair(a["dilation"])
        return [np.array([B, R._out(Wd, k1, s1, p1, d1), R._out(H, k2, s2, p2, d2),
                          a["out_channels"]], np.float64)]

    spec("conv2d_output_shape", nk.conv2d_output_shape, b_conv_shape, outputs=shape_outputs,
         ref=conv_shape_ref,
         scalars={"input_shape": [(1, 2, 3), (0, 5, 5, 1), (1, -5, 5, 1), np.array([1, 5, 5, 1]),
                                  (1.0, 5, 5, 1), "1,5,5,1"],
                  "out_channels": [0, 2.0], "kernel_size": GEOM, "stride": GEOM,
                  "padding": GEOM, "dilation": GEOM, "layout": ["bwhc", "NHWC"],
                  "in_channels": [0, 3, "3"]})

    def b_pool_shape(d):
        k = int(d.rng.integers(1, 4))
        return dict(input_shape=(d.dim(), d.dim(3, 12), d.dim(3, 12), d.dim()),
                    kernel_size=k, stride=None, padding=0, layout="BWHC",
                    kind=d.choice(["max", "avg", "lp"]))

    spec("pool2d_output_shape", nk.pool2d_output_shape, b_pool_shape, outputs=shape_outputs,
         scalars={"input_shape": [(1, 2, 3), (0, 5, 5, 1)], "kernel_size": GEOM,
                  "stride": GEOM, "padding": GEOM, "layout": ["x"], "kind": ["MAX", "l2"]})

    spec("solve_bottleneck", nk.solve_bottleneck,
         lambda d: dict(channels=d.choice([16, 64, 256]), reduction=(0.5, 0.6),
                        kernel_size=3, bias=False),
         outputs=lambda r: [],
         scalars={"channels": [0, 1, 2.0], "reduction": [(0.6, 0.5), (0, 1), (-1, 0.5),
                                                          ("a", "b"), 0.5],
                  "kernel_size": [0, 2, 4.0], "bias": [1, "no"]})


# ============================================================ misc public API
def seed(n):
    try:
        return [np.asarray(nk.seed(n).random())]
    finally:
        nk.seed(0)


spec("seed", seed, lambda d: dict(n=int(d.rng.integers(0, 2**31))),
     scalars={"n": [-1, None, 2.5]}, names=("seed",))   # nk.seed(n) names itself "seed"


def set_nan_policy(policy):
    old = nk.set_nan_policy(policy)
    nk.set_nan_policy(old)
    return []


spec("set_nan_policy", set_nan_policy, lambda d: dict(policy=d.choice(["raise", "propagate"])),
     scalars={"policy": ["RAISE", "ignore", None, 1]})


def numeric_gradient(x, h=1e-6):
    return nk.numeric_gradient(lambda: float(np.sum(np.square(x))), x, h)


def num_grad_ref(a):
    x = a["x"]
    h = a.get("h", 1e-6)
    if not isinstance(x, np.ndarray) or x.dtype != np.float64 or x.ndim < 1 \
            or not isinstance(h, float) or not 1e-8 <= h <= 1e-3:
        return None
    # central differences of Σx² are exact up to rounding: 2x ± ~1e-10/h-scaled
    return [2 * x]


spec("numeric_gradient", numeric_gradient,
     lambda d: dict(x=d.rng.standard_normal((d.dim(), d.dim()))), ref=num_grad_ref,
     inplace=("x",), scalars={"h": [0.0, -1e-6, float("nan"), "1e-6"]},
     ref_tol={np.dtype(np.float64): 1e-6, np.dtype(np.float32): 1e-6},
     sizes=("small", "one"))


def gradcheck(X, W, b, h=1e-6):
    rep = nk.gradcheck(nk.affine_forward, nk.affine_backward, {"X": X, "W": W, "b": b}, h=h)
    return [np.asarray(float(rep.passed))]


def gradcheck_ref(a):
    if not all(isinstance(a[k], np.ndarray) and a[k].dtype == np.float64 for k in "XWb"):
        return None
    if not isinstance(a.get("h", 1e-6), float) or not 1e-8 <= a.get("h", 1e-6) <= 1e-4:
        return None
    return [np.asarray(1.0)]


spec("gradcheck", gradcheck, lambda d: b_affine(d), ref=gradcheck_ref,
     scalars={"h": [0.0, -1.0, float("nan"), "x"]}, sizes=("small", "one"),
     names=("inputs", "forward", "backward", "wrt"))


# ====================================================================== init
INIT_NAMES = ["lecun_normal", "xavier_normal", "xavier_uniform", "he_normal", "he_uniform",
              "kaiming_normal", "kaiming_uniform", "constant", "zeros"]


def make_init(name):
    fn = getattr(nk.init, name)

    def call(shape, rng="seeded", dtype=np.float64):
        r = np.random.default_rng(3) if isinstance(rng, str) and rng == "seeded" else rng
        W = fn(shape, r, dtype=dtype)
        return [np.asarray(W.shape, np.float64), np.asarray(W.dtype == np.dtype(dtype), float)]
    call.__name__ = name
    return call


for _name in INIT_NAMES:
    if hasattr(nk.init, _name):
        spec(f"init.{_name}", make_init(_name),
             lambda d: dict(shape=(d.dim(), d.dim()), dtype=d.dtype),
             ref=lambda a: [np.atleast_1d(np.asarray(a["shape"], np.float64)), np.asarray(1.0)],
             scalars={"shape": [(3,), (0, 3), (3, -1), (2.0, 3), "3x3", (3, 3, 3, 3)],
                      "rng": [3, np.random.RandomState(1)],
                      "dtype": [np.int32, "float16", "nope"]})


# =============================================================== optimizers
OPT_SCALARS = {"lr": [0.0, -1.0, float("nan"), "0.1", None, 10**400 if False else 1e308],
               "weight_decay": [-0.1, float("inf"), "0"]}
OPT_EXTRA = {
    "SGD": {"momentum": [0.0, 0.9, -0.5, "0.9"], "nesterov": [1, "yes", True]},
    "Momentum": {"momentum": [0.0, 1.5, -1.0]},
    "RunningAverage": {"beta": [0.0, 1.0, 0.999], "bias_correction": [1, True]},
    "Adam": {"betas": [(0.9,), (1.0, 0.999), (0.9, 1.0), [0.5, 0.5], "ab"],
             "eps": [0.0, -1.0]},
    "AdaGrad": {"eps": [0.0, -1.0], "initial_accumulator_value": [-1.0, 0.5],
                "lr_decay": [-1.0, 0.1]},
}


def make_opt(kind):
    cls = getattr(nk.optim, kind)

    def call(params, grads, **kw):
        opt = cls([(params, grads)], **kw)
        opt.step()
        return [np.array(params, copy=True)]
    call.__name__ = kind
    return call


def opt_ref(kind):
    def ref(a):
        kw = {k: v for k, v in a.items() if k not in ("params", "grads")}
        if max(abs(float(kw.get("lr", 0.0))),
               abs(float(kw.get("weight_decay", 0.0)))) > 1e30:   # θ overflows (IEEE, right)
            return None
        return [R.optim_first_step(kind, a["params"], a["grads"], kw)]
    return ref


def b_opt(d):
    shape = tuple(d.dim() for _ in range(int(d.rng.integers(1, 4))))
    return dict(params=d.arr(*shape), grads=d.arr(*shape))


for _kind in ("SGD", "Momentum", "RunningAverage", "Adam", "AdaGrad"):
    if hasattr(nk.optim, _kind):
        # nan_policy covers the functional API; an optimizer step reads its
        # gradients without an extra pass (see the report of issue 12)
        spec(f"optim.{_kind}", make_opt(_kind), b_opt, ref=opt_ref(_kind), inplace=("params",),
             nan_policy=False,
             scalars={**OPT_SCALARS, **OPT_EXTRA[_kind]}, names=("params", "grads"))


def schedule(kind):
    def call(lr, step_size=None, gamma=None, optimizer="sgd"):
        p = np.zeros(3)
        opt = nk.optim.SGD([(p, np.ones(3))], lr=lr) if isinstance(optimizer, str) and \
            optimizer == "sgd" else optimizer
        if kind == "StepLR":
            kw = {} if gamma is None else {"gamma": gamma}
            s = nk.optim.StepLR(opt, step_size, **kw)
        else:
            s = nk.optim.InverseSqrt(opt)
        return [np.asarray([s.step() for _ in range(4)])]
    return call


def schedule_ref(kind):
    def ref(a):
        lr = float(a["lr"])
        if kind == "StepLR":
            gm = 0.1 if a.get("gamma") is None else float(a["gamma"])
            if gm > 1e30:          # gamma^k overflows: inf (IEEE, right)
                return None
            return [np.asarray([lr * gm ** (k // int(a["step_size"])) for k in range(1, 5)])]
        return [np.asarray([lr / np.sqrt(k + 1) for k in range(1, 5)])]
    return ref


if hasattr(nk.optim, "StepLR"):
    spec("optim.StepLR", schedule("StepLR"),
         lambda d: dict(lr=0.1, step_size=int(d.rng.integers(1, 4)), gamma=0.5),
         ref=schedule_ref("StepLR"),
         scalars={"step_size": [0, 2.0], "gamma": [-1.0, "x"], "optimizer": [None, "adam"]},
         # KNOWN (issue 12 report): gamma is any real >= 0; gamma**k overflows for a
         # huge gamma (OverflowError from float ** int in StepLR.factor)
         known=(r"unexpected OverflowError.*optim.py",))
    spec("optim.InverseSqrt", schedule("InverseSqrt"), lambda d: dict(lr=0.1),
         ref=schedule_ref("InverseSqrt"), scalars={"optimizer": [None, 3]})


# the same steps as functions (nk.optim.functional): θ and the state arrays
# are the caller's, updated in place; the first step from zero state
# (AdaGrad's sum at 0) is the class's first step
FUNCTIONAL = {"sgd": ("SGD", ("buf",)), "momentum": ("Momentum", ("v",)),
              "running_average": ("RunningAverage", ("v",)), "adam": ("Adam", ("m", "v")),
              "adagrad": ("AdaGrad", ("sum",))}


def make_functional(name):
    fn = getattr(nk.optim.functional, name)

    def call(param, grad, **kw):
        fn(param, grad, **kw)
        return [np.array(param, copy=True)]
    call.__name__ = name
    return call


def b_functional(name):
    states = FUNCTIONAL[name][1]

    def build(d):
        a = b_opt(d)
        a = dict(param=a["params"], grad=a["grads"], lr=0.05)
        for s in states:
            a[s] = np.zeros_like(a["param"])
        if name in ("running_average", "adam", "adagrad"):
            a["step"] = 1
        if name == "sgd":
            a["momentum"] = 0.9
        return a
    return build


def functional_ref(name):
    kind = FUNCTIONAL[name][0]

    def ref(a):
        kw = {k: v for k, v in a.items()
              if k not in ("param", "grad", "step", "buf", "m", "v", "sum")}
        if max(abs(float(kw.get("lr", 0.0))),
               abs(float(kw.get("weight_decay", 0.0)))) > 1e30:   # θ overflows (IEEE, right)
            return None
        if a.get("step", 1) != 1 or any(np.any(a[s] != 0) for s in FUNCTIONAL[name][1]):
            return None            # not the first step from zero state
        return [R.optim_first_step(kind, a["param"], a["grad"], kw)]
    return ref


if hasattr(nk.optim, "functional"):
    for _name, (_kind, _states) in FUNCTIONAL.items():
        extra = dict(OPT_EXTRA[_kind])
        extra.pop("initial_accumulator_value", None)
        if _name in ("running_average", "adam", "adagrad"):
            extra["step"] = [0, 2, 1.0, True, None]
        spec(f"optim.functional.{_name}", make_functional(_name), b_functional(_name),
             ref=functional_ref(_name), inplace=("param",) + _states, nan_policy=False,
             scalars={**OPT_SCALARS, **extra}, names=("param", "grad") + _states)


# ================================================================ train.fit
def fit(X, y, epochs=1, batch_size=4):
    model = nk.Sequential(nk.Linear(3, 3, seed=0,
                                    dtype=getattr(X, "dtype", np.float64)
                                    if getattr(X, "dtype", None) in (np.float32, np.float64)
                                    else np.float64))
    h = nk.train.fit(model, nk.SoftmaxCrossEntropy(), nk.optim.SGD(model, lr=0.1), X, y,
                     epochs, batch_size, progress=False, rng=np.random.default_rng(0))
    return [np.asarray(model.params["0.W"])]


spec("train.fit", fit,
     lambda d: dict(X=d.arr(d.dim(2), 3), y=None, epochs=1, batch_size=4) | {},
     outputs=None, int_arrays=("y",), sizes=("small", "one"),
     scalars={"epochs": [0, 1.0], "batch_size": [0, "4"]},
     names=("model", "loss", "optimizer", "X_val", "y_val"),
     # KNOWN (issue 12 report): fit passes y to the loss batch by batch; an
     # out-of-range label is reported as "labels: ..." (the loss's argument), not "y"
     known=(r"not naming an argument: '(labels|logits): ",))


def _fit_build(d):
    n = d.dim(2)
    return dict(X=d.arr(n, 3), y=d.rng.integers(0, 3, n), epochs=1, batch_size=4)


SPECS["train.fit"].build = _fit_build


# =================================================================== layers
def layer_outputs(r):
    return list(r)


def run_layer(layer, X, dY, *extra):
    """forward, backward, then every gradient (sorted by name)."""
    Y = layer.forward(X, *extra) if extra else layer.forward(X)
    if callable(dY):                  # the upstream gradient from the output's shape
        dY = dY(np.shape(Y))
    dX = layer.backward(dY)
    return [Y, dX] + [np.array(layer.grads[k]) for k in sorted(layer.grads)]


def upstream_like(d):
    seed = int(d.rng.integers(2**31))
    dtype = d.dtype
    return lambda shape: np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def layer_spec(name, make, build, ref=None, scalars=None, names=(), views=(), sizes=None):
    """make(**ctor_kwargs) -> layer; build(d) -> ctor kwargs + X, dY."""
    def call(X, dY, **kw):
        extra = kw.pop("_extra", ())
        training = kw.pop("_training", True)
        layer = make(**kw)
        layer.train(training)
        return run_layer(layer, X, dY, *extra)
    call.__name__ = name
    kw = dict(outputs=layer_outputs, ref=ref, scalars=scalars or {},
              names=tuple(names) + ("X", "dY"), views=views)
    if sizes:
        kw["sizes"] = sizes
    spec(name, call, build, **kw)


def b_linear(d):
    B, N, M = d.dim(), d.dim(), d.dim()
    lead = tuple(d.dim() for _ in range(int(d.rng.integers(0, 2))))
    return dict(in_features=N, out_features=M, dtype=d.dtype, seed=1,
                bias=bool(d.rng.integers(4)), weight_norm=bool(d.rng.integers(3) == 0),
                X=d.arr(*lead, B, N), dY=d.arr(*lead, B, M))


def linear_ref(a):
    # seed=None draws from the library generator: a second layer made here
    # would get the next draw, not the weights the call used
    if a.get("weight_norm") or not isinstance(a["dY"], np.ndarray) or a.get("seed") is None:
        return None
    lay = nk.Linear(a["in_features"], a["out_features"], seed=a["seed"], dtype=a["dtype"])
    W = lay.params["W"]
    X = R.f64(a["X"]).reshape(-1, W.shape[1])
    dY = R.f64(a["dY"]).reshape(-1, W.shape[0])
    Y = R.affine(X, W, np.zeros(W.shape[0]))
    dX, dW, db = R.affine_backward(dY, X, W)
    return [Y.reshape(np.shape(a["X"])[:-1] + (W.shape[0],)), dX.reshape(np.shape(a["X"])),
            dW, db if a.get("bias", True) else np.zeros_like(db)]


layer_spec("Linear", nk.Linear, b_linear, ref=linear_ref,
           scalars={"in_features": [0, 2.0, True], "out_features": [-3, "4"],
                    "dtype": [np.int32, "float16", None], "bias": ["no"],
                    "weight_norm": [1, "yes"], "seed": [-1, 1.5, "s"]},
           names=("in_features", "out_features", "dtype", "seed", "rng", "init",
                  "weight_norm"))


def b_relu_layer(d):
    shape = tuple(d.dim() for _ in range(int(d.rng.integers(1, 4))))
    return dict(X=d.arr(*shape), dY=d.arr(*shape))


layer_spec("ReLU", lambda: nk.ReLU(), b_relu_layer,
           ref=lambda a: [R.relu(a["X"]), R.relu_backward(a["dY"], a["X"])],
           names=("Y", "dH"))


def sce_layer(X, dY, labels=None):
    lay = nk.SoftmaxCrossEntropy()
    loss = lay.forward(X, labels)
    return [np.asarray(loss), lay.backward(dY)]


def b_sce(d):
    a = b_softmax(d)
    return dict(X=a["logits"], labels=a["labels"], dY=float(d.rng.standard_normal()))


def sce_ref(a):
    loss, P, T = R.softmax_xent(a["X"], a["labels"])
    return [np.asarray(loss), R.softmax_xent_backward(P, T, a["dY"])]


spec("SoftmaxCrossEntropy", sce_layer, b_sce, ref=sce_ref, int_arrays=("labels",),
     scalars={"dY": ["1", None]}, names=("logits", "labels", "dloss"))


def b_bn_layer(d):
    B, M = d.dim(2), d.dim()
    three = d.rng.integers(3) == 0
    shape = (B, M, d.dim()) if three else (B, M)
    return dict(num_features=M, eps=1e-5, momentum=0.1, relu=bool(d.rng.integers(2)),
                dtype=d.dtype, X=d.arr(*shape), dY=d.arr(*shape))


def bn_layer_ref(a):
    X = R.f64(a["X"])
    if X.ndim != 2:
        return None
    Z = R.bn(X, np.ones(X.shape[1]), np.zeros(X.shape[1]), a["eps"], a["relu"])
    g = R.bn_backward(a["dY"], X, np.ones(X.shape[1]), a["eps"], a["relu"],
                      np.zeros(X.shape[1]))
    return [Z, g[0], g[2], g[1]]          # grads sorted: beta, gamma


layer_spec("BatchNorm", nk.BatchNorm, b_bn_layer, ref=bn_layer_ref,
           scalars={"num_features": [0, 2.5], "eps": EPS, "momentum": [1.5, -0.1, "0.1"],
                    "relu": ["yes"], "dtype": [np.int64]},
           names=("num_features", "eps", "momentum", "dtype", "Y", "dZ", "dH"))


def b_wbn_layer(d):
    B, M = d.dim(2), d.dim(1, 16)
    return dict(num_features=M, eps=1e-3, momentum=0.1, method=d.choice(METHODS),
                group_size=d.choice([None, int(d.rng.integers(1, M + 1))]),
                iterations=int(d.rng.integers(1, 6)), relu=bool(d.rng.integers(2)),
                dtype=d.dtype, X=d.arr(B, M), dY=d.arr(B, M))


layer_spec("WhiteningBatchNorm", nk.WhiteningBatchNorm, b_wbn_layer,
           scalars={"num_features": [0], "eps": [0.0, -1.0], "method": ["ZCA"],
                    "group_size": [0, 2.0], "iterations": [0, 1.5]},
           names=("num_features", "eps", "momentum", "method", "group_size", "iterations",
                  "dtype", "Y", "dZ", "dH"),
           sizes=("small", "small", "one", "large"))


def b_wbn_channels_layer(d):
    a = b_wbn_layer(d)
    B, C = a["X"].shape
    shape = (B, C, d.dim(1, 5), d.dim(1, 5))
    return {**a, "X": d.arr(*shape), "dY": d.arr(*shape)}


layer_spec("WhiteningBatchNorm[channels]", nk.WhiteningBatchNorm, b_wbn_channels_layer,
           scalars={"num_features": [0], "group_size": [0, 2.0]},
           names=("num_features", "eps", "momentum", "method", "group_size", "iterations",
                  "dtype", "Y", "dZ", "dH"),
           sizes=("small", "small", "one", "large"))


def b_rnn_layer(d):
    T, B, N, M = d.dim(1, 16), d.dim(), d.dim(), d.dim(1, 24)
    return dict(input_size=N, hidden_size=M, activation=d.choice(["tanh", "sigmoid", "relu"]),
                bias=bool(d.rng.integers(2)), dtype=d.dtype, seed=2,
                X=d.arr(T, B, N), dY=d.arr(T, B, M))


layer_spec("RNN", nk.RNN, b_rnn_layer,
           scalars={"input_size": [0], "hidden_size": [2.0], "activation": ACTS},
           names=("input_size", "hidden_size", "activation", "dtype", "seed", "h0", "dH"))



def b_gated_layer(gates):
    def build(d):
        T, B, N, H = d.dim(1, 10), d.dim(), d.dim(), d.dim(1, 12)
        D = 2 if d.rng.integers(2) else 1
        bf = bool(d.rng.integers(2))
        return dict(input_size=N, hidden_size=H, num_layers=int(d.rng.integers(1, 3)),
                    bidirectional=D == 2, batch_first=bf, bias=bool(d.rng.integers(4)),
                    dropout=d.choice([0.0, 0.5]),
                    truncate=d.choice([None, int(d.rng.integers(1, 4))]), dtype=d.dtype,
                    seed=2, X=d.arr(B, T, N) if bf else d.arr(T, B, N),
                    dY=d.arr(B, T, D * H) if bf else d.arr(T, B, D * H))
    return build


for _name, _gates in (("LSTM", 4), ("GRU", 3)):
    layer_spec(_name, getattr(nk, _name), b_gated_layer(_gates),
               scalars={"input_size": [0], "hidden_size": [2.0], "num_layers": [0, -1, 1.5],
                        "bidirectional": [1, "yes"], "batch_first": [1],
                        "dropout": [-0.1, 1.0, "0.5"], "truncate": [0, 2.0]},
               names=("input_size", "hidden_size", "num_layers", "bidirectional",
                      "batch_first", "bias", "dropout", "truncate", "dtype", "seed", "h0",
                      "dH"))

def b_birnn_layer(d):
    T, B, N, M, K = d.dim(1, 12), d.dim(), d.dim(), d.dim(1, 16), d.dim()
    return dict(input_size=N, hidden_size=M, output_size=K,
                activation=d.choice(["tanh", "sigmoid", "relu"]),
                bias=bool(d.rng.integers(2)), dtype=d.dtype, seed=2,
                X=d.arr(T, B, N), dY=d.arr(T, B, K))


layer_spec("BiRNN", nk.BiRNN, b_birnn_layer,
           scalars={"output_size": [0], "activation": ACTS},
           names=("input_size", "hidden_size", "output_size", "activation", "dtype", "seed",
                  "hf0", "hb0"))


def sequential(X, dY, hidden=4, dtype=np.float64, reuse_buffers=False):
    N = X.shape[-1] if isinstance(X, np.ndarray) and X.ndim == 2 else 3
    m = nk.Sequential(nk.Linear(N, hidden, seed=3, dtype=dtype), nk.ReLU(),
                      nk.Linear(hidden, 2, seed=4, dtype=dtype), reuse_buffers=reuse_buffers)
    return run_layer(m, X, dY)


spec("Sequential", sequential,
     lambda d: dict(X=d.arr(d.dim(), 3), dY=upstream_like(d), hidden=d.dim(), dtype=d.dtype,
                    reuse_buffers=bool(d.rng.integers(2))),
     outputs=layer_outputs, scalars={"hidden": [0], "reuse_buffers": [1, "yes"]},
     names=("in_features", "out_features", "layers", "Y", "dH"))


def b_dropout_layer(d):
    shape = tuple(d.dim() for _ in range(int(d.rng.integers(1, 4))))
    return dict(keep=d.choice([0.5, 1.0, 0.9]), seed=5, X=d.arr(*shape), dY=d.arr(*shape),
                _training=bool(d.rng.integers(3)))


layer_spec("Dropout", nk.Dropout, b_dropout_layer,
           scalars={"keep": [0.0, 1.5, "0.5"], "seed": [-1, "x"], "_training": [1]},
           names=("keep", "seed", "rng", "training"))


def b_ln_layer(d):
    lead = (d.dim(),) + tuple(d.dim() for _ in range(int(d.rng.integers(0, 2))))
    ns = (d.dim(),) + tuple(d.dim(1, 6) for _ in range(int(d.rng.integers(0, 2))))
    return dict(normalized_shape=ns if len(ns) > 1 or d.rng.integers(2) else ns[0], eps=1e-5,
                dtype=d.dtype, X=d.arr(*lead, *ns), dY=d.arr(*lead, *ns))


layer_spec("LayerNorm", nk.LayerNorm, b_ln_layer,
           scalars={"normalized_shape": [0, (), (2.0,), "3"], "eps": EPS},
           names=("normalized_shape", "eps", "dtype", "dZ"))


def b_in_layer(d):
    B, C = d.dim(), d.dim()
    sp = (d.dim(2),) + tuple(d.dim(1, 6) for _ in range(int(d.rng.integers(0, 2))))
    return dict(num_channels=C, eps=1e-5, dtype=d.dtype, X=d.arr(B, C, *sp),
                dY=d.arr(B, C, *sp))


def in_layer_ref(a):
    X = R.f64(a["X"])
    C = X.shape[1]
    Z = R.instancenorm(X, np.ones(C), np.zeros(C), a["eps"])
    gs = (1, C) + (1,) * (X.ndim - 2)
    dX, dg, db = R.norm_backward(a["dY"], X, np.ones(C), a["eps"], 2, gs)
    return [Z, dX, db, dg]


layer_spec("InstanceNorm", nk.InstanceNorm, b_in_layer, ref=in_layer_ref,
           scalars={"num_channels": [0], "eps": EPS},
           names=("num_channels", "eps", "dtype", "dZ"))


def b_gn_layer(d):
    B, C = d.dim(), d.dim()
    sp = tuple(d.dim(1, 6) for _ in range(int(d.rng.integers(0, 3))))
    return dict(num_groups=_divisor(d, C), num_channels=C, eps=1e-5, dtype=d.dtype,
                X=d.arr(B, C, *sp), dY=d.arr(B, C, *sp))


def gn_layer_ref(a):
    X = R.f64(a["X"])
    C, G = X.shape[1], a["num_groups"]
    Z = R.groupnorm(X, np.ones(C), np.zeros(C), G, a["eps"])
    dX, dg, db, _ = R.groupnorm_backward(a["dY"], X, np.ones(C), G, a["eps"])
    return [Z, dX, db, dg]


layer_spec("GroupNorm", nk.GroupNorm, b_gn_layer, ref=gn_layer_ref,
           scalars={"num_groups": GN_GROUPS, "num_channels": [0, 2.5], "eps": EPS},
           names=("num_groups", "num_channels", "eps", "dtype", "dZ"))

if hasattr(nk, "Conv2d"):
    def b_conv_layer(d):
        a = b_conv(d)
        X, W = a["X"], a["W"]
        return dict(in_channels=X.shape[1], out_channels=W.shape[0],
                    kernel_size=W.shape[2:], stride=a["stride"], padding=a["padding"],
                    dilation=a["dilation"], bias=a["b"] is not None, dtype=d.dtype, seed=6,
                    X=X, dY=upstream_like(d))

    layer_spec("Conv2d", nk.Conv2d, b_conv_layer,
               scalars={"in_channels": [0], "kernel_size": GEOM, "stride": GEOM,
                        "padding": GEOM, "dilation": GEOM},
               names=("in_channels", "out_channels", "kernel_size", "stride", "padding",
                      "dilation", "dtype", "seed", "input_shape"),
               sizes=("small", "small", "one", "large"))

    def b_pool_layer(d):
        a = b_pool("max")(d)
        return dict(kernel_size=a["kernel_size"], stride=a["stride"], padding=a["padding"],
                    X=a["X"], dY=upstream_like(d))

    for _cls in ("MaxPool2d", "AvgPool2d"):
        kind = "max" if _cls == "MaxPool2d" else "avg"

        def pool_layer_ref(a, kind=kind):
            Y = R.pool2d(kind, a["X"], a["kernel_size"], a["stride"], a["padding"])
            return None if Y is None else [Y, None]

        layer_spec(_cls, getattr(nk, _cls), b_pool_layer, ref=pool_layer_ref,
                   scalars={"kernel_size": GEOM, "stride": GEOM, "padding": GEOM},
                   names=("kernel_size", "stride", "padding", "input_shape"))

    layer_spec("Flatten", nk.Flatten,
               lambda d: dict(X=d.arr(d.dim(), d.dim(), d.dim()), dY=upstream_like(d)),
               ref=lambda a: [R.f64(a["X"]).reshape(np.shape(a["X"])[0],
                                                    int(np.prod(np.shape(a["X"])[1:]))), None],
               views=("X", "dY"))


if hasattr(nk, "LastStep"):
    layer_spec("LastStep", nk.LastStep,
               lambda d: dict(X=d.arr(d.dim(), d.dim(), d.dim()), dY=upstream_like(d)),
               ref=lambda a: [R.f64(a["X"])[-1], None], names=("H",))


# ============================================================ foreign caches
_CACHES: list = []


def _cache_pool():
    """One cache (or cache-like object) of every family, made once."""
    if not _CACHES:
        rng = np.random.default_rng(11)
        d = Draw(rng, np.float64, "small")
        for name, s in SPECS.items():
            if s.cache_arg:
                try:
                    _CACHES.append((name, s.build(d)[s.cache_arg]))
                except Exception:     # noqa: BLE001 -- a spec that cannot build is skipped
                    pass
        _CACHES.extend([("None", None), ("tuple", (np.zeros((2, 2)),) * 3),
                        ("dict", {"X": np.zeros((2, 2))}), ("array", np.zeros((2, 2))),
                        ("str", "cache")])
    return _CACHES


def _variant(a, b) -> bool:
    """Same cache class, another variant (bn vs bn_relu, layer vs instance norm, pool kinds)."""
    return any(getattr(a, f, None) != getattr(b, f, None) for f in ("relu", "channels", "kind"))


def foreign_cache(spec: Spec, rng):
    caches = _cache_pool()
    own = dict(caches).get(spec.name)
    pool = [(n, c) for n, c in caches if n != spec.name
            and (own is None or type(c) is not type(own)
                 or (_variant(c, own) and not spec.any_variant))]
    name, c = pool[int(rng.integers(len(pool)))]
    return c, f"cache of {name}"


# ======================================= activations and losses (nnkit.activations)
def _act_ref_fns():
    from scipy import special

    def gelu(x, approx):
        if approx == "tanh":
            return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
        return 0.5 * x * (1 + special.erf(x / np.sqrt(2)))

    def dgelu(x, approx):
        if approx == "tanh":
            k = np.sqrt(2 / np.pi)
            t = np.tanh(k * (x + 0.044715 * x ** 3))
            return 0.5 * (1 + t) + 0.5 * x * (1 - t ** 2) * k * (1 + 3 * 0.044715 * x ** 2)
        return 0.5 * (1 + special.erf(x / np.sqrt(2))) + x * np.exp(-x * x / 2) / np.sqrt(2 * np.pi)

    return {
        "tanh": (lambda x, **k: np.tanh(x), lambda x, **k: 1 - np.tanh(x) ** 2),
        "sigmoid": (lambda x, **k: special.expit(x),
                    lambda x, **k: special.expit(x) * (1 - special.expit(x))),
        "leaky_relu": (lambda x, negative_slope=0.01, **k: np.where(x > 0, x, negative_slope * x),
                       lambda x, negative_slope=0.01, **k: np.where(x > 0, 1.0, negative_slope)),
        "gelu": (lambda x, approximate="none", **k: gelu(x, approximate),
                 lambda x, approximate="none", **k: dgelu(x, approximate)),
    }


ACT_REFS = _act_ref_fns()
ACT_OPTS = {"tanh": {}, "sigmoid": {}, "leaky_relu": {"negative_slope": [float("nan"), "0.1", None]},
            "gelu": {"approximate": ["erf", None, 1]}}
ACT_LAYERS = {"tanh": ("Tanh", nk.Tanh), "sigmoid": ("Sigmoid", nk.Sigmoid),
              "leaky_relu": ("LeakyReLU", nk.LeakyReLU), "gelu": ("GELU", nk.GELU)}


def _act_opts(name, d):
    if name == "leaky_relu":
        return {"negative_slope": d.choice([0.01, 0.2, -0.5])}
    if name == "gelu":
        return {"approximate": d.choice(["none", "tanh"])}
    return {}


def _act_specs(name):
    fwd, bwd = ACT_REFS[name]
    f_fn = getattr(nk, f"{name}_forward")
    b_fn = getattr(nk, f"{name}_backward")
    up = "dS" if name == "sigmoid" else "dH"

    def b_fwd(d):
        shape = tuple(d.dim() for _ in range(int(d.rng.integers(1, 4))))
        return dict(X=d.arr(*shape), **_act_opts(name, d))

    def opts(a):
        return {k: a[k] for k in ("negative_slope", "approximate") if k in a}

    spec(f"{name}_forward", f_fn, b_fwd, ref=lambda a: [fwd(R.f64(a["X"]), **opts(a))],
         scalars=ACT_OPTS[name])

    def b_bwd(d):
        a = b_fwd(d)
        X = a.pop("X")
        H, cache = f_fn(X, **a)
        return {up: d.arr(*H.shape), "cache": cache}

    def bwd_ref(a):
        c = a["cache"]
        X = getattr(c, "X", None)
        if X is None:
            return None          # tanh/sigmoid keep only the output: checked in the forward's ref
        kw = {k: getattr(c, k) for k in ("negative_slope", "approximate") if hasattr(c, k)}
        return [R.f64(a[up]) * bwd(R.f64(X), **kw)]

    spec(f"{name}_backward", b_fn, b_bwd, cache_arg="cache", ref=bwd_ref)

    lname, cls = ACT_LAYERS[name]

    def b_layer(d):
        shape = tuple(d.dim() for _ in range(int(d.rng.integers(1, 4))))
        return dict(X=d.arr(*shape), dY=d.arr(*shape), **_act_opts(name, d))

    def layer_ref(a):
        x = R.f64(a["X"])
        return [fwd(x, **opts(a)), R.f64(a["dY"]) * bwd(x, **opts(a))]

    layer_spec(lname, cls, b_layer, ref=layer_ref, scalars=ACT_OPTS[name],
               names=("negative_slope", "approximate", "Y", up))


for _act in ACT_REFS:
    _act_specs(_act)


def _loss_refs(kind, P, T):
    P, T = R.f64(P), R.f64(T)
    n = P.size
    if kind == "mse":
        return np.asarray(np.mean((P - T) ** 2)), 2 * (P - T) / n
    from scipy import special
    L = np.maximum(P, 0) - P * T + np.log1p(np.exp(-np.abs(P)))
    return np.asarray(L.mean()), (special.expit(P) - T) / n


def _loss_specs(kind, fn, bfn, lname, cls, pred):
    def b_loss(d):
        shape = tuple(d.dim() for _ in range(int(d.rng.integers(1, 4))))
        T = d.arr(*shape)
        if kind == "bce":
            T = (np.abs(T) / (1 + np.abs(T))).astype(T.dtype)
        return {pred: d.arr(*shape), "target": T}

    spec(fn.__name__, fn, b_loss, outputs=lambda r: [np.asarray(r[0])],
         ref=lambda a: [_loss_refs(kind, a[pred], a["target"])[0]])

    def b_bwd(d):
        _, cache = fn(**b_loss(d))
        return dict(dloss=float(d.rng.standard_normal()), cache=cache)

    def bwd_ref(a):
        c = a["cache"]
        if abs(float(a["dloss"])) > 1e30:   # float32 dpred overflows to inf (IEEE, right)
            return None
        if kind == "mse":
            return [R.f64(a["dloss"]) * 2 * R.f64(c.diff) / c.diff.size]
        return [R.f64(a["dloss"]) * _loss_refs(kind, c.logits, c.target)[1]]

    spec(bfn.__name__, bfn, b_bwd, cache_arg="cache", ref=bwd_ref,
         scalars={"dloss": ["1", None, float("nan")]})

    def layer_call(X, target, dY):
        lay = cls()
        loss = lay.forward(X, target)
        return [np.asarray(loss), lay.backward(dY)]

    def b_layer(d):
        a = b_loss(d)
        return dict(X=a[pred], target=a["target"], dY=float(d.rng.standard_normal()))

    def layer_ref(a):
        L, dP = _loss_refs(kind, a["X"], a["target"])
        if abs(float(a["dY"])) > 1e30:      # float32 dpred overflows to inf (IEEE, right)
            return [L, None]
        return [L, dP * R.f64(a["dY"])]

    spec(lname, layer_call, b_layer, ref=layer_ref, scalars={"dY": ["1", None]},
         names=(pred, "target", "dloss"))


_loss_specs("mse", nk.mse_loss, nk.mse_loss_backward, "MSELoss", nk.MSELoss, "pred")
_loss_specs("bce", nk.bcewithlogits_loss, nk.bcewithlogits_loss_backward, "BCEWithLogitsLoss",
            nk.BCEWithLogitsLoss, "logits")


# ============================ optimizers, schedules, clipping (issue 27, PyTorch-style)
def _first_step_ref(kind):
    """The first step from zero state, float64, written from torch's update rules."""
    def ref(a):
        kw = {k: x for k, x in a.items() if k not in ("params", "grads")}
        lr = float(kw.get("lr", 1e-3 if kind == "AdamW" else 1e-2))
        wd = float(kw.get("weight_decay", 1e-2 if kind == "AdamW" else 0.0))
        if max(abs(lr), abs(wd)) > 1e30:
            return None
        p, g = R.f64(a["params"]), R.f64(a["grads"])
        if kind == "AdamW":
            b1, b2 = kw.get("betas", (0.9, 0.999))
            eps = float(kw.get("eps", 1e-8))
            p = p * (1 - lr * wd)
            m, v2 = (1 - b1) * g, (1 - b2) * g * g
            return [p - lr / (1 - b1) * m / (np.sqrt(v2 / (1 - b2)) + eps)]
        alpha, eps = float(kw.get("alpha", 0.99)), float(kw.get("eps", 1e-8))
        mu, centered = float(kw.get("momentum", 0.0)), bool(kw.get("centered", False))
        g = g + wd * p
        s = (1 - alpha) * g * g
        if centered:
            ga = (1 - alpha) * g
            s = s - ga * ga
        d = np.sqrt(s) + eps
        return [p - lr * g / d]        # buf = g/d on the first step with momentum too
    return ref


OPT_EXTRA["AdamW"] = OPT_EXTRA["Adam"]
OPT_EXTRA["RMSprop"] = {"alpha": [-0.1, 1.5, "0.9"], "eps": [-1.0, 0.0],
                        "momentum": [-0.5, 0.9], "centered": [1, "yes", True]}
for _kind in ("AdamW", "RMSprop"):
    spec(f"optim.{_kind}", make_opt(_kind), b_opt, ref=_first_step_ref(_kind),
         inplace=("params",), nan_policy=False,
         scalars={**OPT_SCALARS, **OPT_EXTRA[_kind]}, names=("params", "grads"))


def _sched_call(kind):
    def call(lr, optimizer="sgd", **kw):
        p = np.zeros(3)
        opt = nk.optim.SGD([(p, np.ones(3))], lr=lr, momentum=0.9) \
            if isinstance(optimizer, str) and optimizer == "sgd" else optimizer
        s = getattr(nk.optim, kind)(opt, **kw)
        if kind == "ReduceLROnPlateau":
            return [np.asarray([s.step(1.0) for _ in range(4)])]
        return [np.asarray([s.step() for _ in range(4)])]
    call.__name__ = kind
    return call


SCHEDULES = {
    "MultiStepLR": (lambda d: dict(lr=0.1, milestones=[1, 3], gamma=0.5),
                    {"milestones": [3, [0], ["a"], None], "gamma": [-1.0, "x"]},
                    lambda a: [0.1 * a["gamma"] ** sum(m <= k for m in a["milestones"])
                               for k in range(1, 5)]),
    "ExponentialLR": (lambda d: dict(lr=0.1, gamma=0.5), {"gamma": [-1.0, "x", None]},
                      lambda a: [0.1 * a["gamma"] ** k for k in range(1, 5)]),
    "CosineAnnealingLR": (lambda d: dict(lr=0.1, T_max=8, eta_min=0.0),
                          {"T_max": [0, 2.5, "8"], "eta_min": [-1.0, "0"]},
                          lambda a: [a["eta_min"] + (0.1 - a["eta_min"])
                                     * (1 + np.cos(np.pi * k / a["T_max"])) / 2
                                     for k in range(1, 5)]),
    "OneCycleLR": (lambda d: dict(lr=0.1, max_lr=1.0, total_steps=10),
                   {"max_lr": [-1.0, "1", None], "total_steps": [0, 2.0],
                    "pct_start": [1.5, -0.1], "anneal_strategy": ["sin", 1],
                    "div_factor": [-1.0]}, None),
    "ReduceLROnPlateau": (lambda d: dict(lr=0.1, patience=1, factor=0.5),
                          {"patience": [-1, 1.5], "factor": [1.0, -0.5, "x"],
                           "mode": ["mean", None], "threshold_mode": ["x"]},
                          lambda a: [0.1, 0.1, 0.05, 0.05]),
}
def _sched_ref(f):
    def ref(a):
        a = {k: (float(x) if k in ("gamma", "eta_min") else x) for k, x in a.items()}
        if a.get("gamma", 0.0) > 1e30:    # gamma^k overflows: inf (IEEE, right)
            return None
        return [np.asarray(f(a))]
    return ref


for _kind, (_build, _scalars, _ref) in SCHEDULES.items():
    spec(f"optim.{_kind}", _sched_call(_kind), _build,
         ref=None if _ref is None else _sched_ref(_ref),
         scalars={**_scalars, "optimizer": [None, 3]})


def clip_call(grads, max_norm=1.0, norm_type=2.0):
    # copies: the engine keeps copies of top-level arrays for the reference, not of lists
    if isinstance(grads, list):
        grads = [np.array(g) if isinstance(g, np.ndarray) else g for g in grads]
    total = nk.clip_grad_norm_(grads, max_norm, norm_type)
    return [np.asarray(total)] + [np.array(g) for g in (grads if isinstance(grads, list) else [])]


def clip_ref(a):
    gs = [R.f64(g) for g in a["grads"]]
    nt = float(a["norm_type"])
    total = max(np.max(np.abs(g)) for g in gs) if np.isinf(nt) else \
        np.linalg.norm([np.linalg.norm(g.ravel(), nt) for g in gs], nt)
    c = min(1.0, float(a["max_norm"]) / (total + 1e-6))
    return [np.asarray(total)] + [g * c for g in gs]


spec("clip_grad_norm_", clip_call,
     lambda d: dict(grads=[d.arr(d.dim(), d.dim()), d.arr(d.dim())],
                    max_norm=d.choice([0.5, 1.0, 100.0]), norm_type=d.choice([2.0, 1.0, np.inf])),
     ref=clip_ref, inplace=("grads",), nan_policy=False,
     scalars={"max_norm": [-1.0, "1", None], "norm_type": [0.0, -2.0, "2", None]},
     names=("params",))


# the two new steps as functions (nk.optim.functional.adamw / rmsprop), first step
# from zero state against the same references as the classes
def _b_fn_new(name):
    def build(d):
        a = b_opt(d)
        out = dict(param=a["params"], grad=a["grads"], lr=0.05)
        if name == "adamw":
            out.update(m=np.zeros_like(out["param"]), v=np.zeros_like(out["param"]), step=1)
        else:
            out["square_avg"] = np.zeros_like(out["param"])
        return out
    return build


def _fn_new_ref(name):
    kind = {"adamw": "AdamW", "rmsprop": "RMSprop"}[name]
    states = ("m", "v") if name == "adamw" else ("square_avg",)

    def ref(a):
        if a.get("step", 1) != 1 or any(np.any(a[s] != 0) for s in states if s in a):
            return None
        if name == "rmsprop" and (a.get("centered") or float(a.get("momentum", 0)) > 0):
            return None           # grad_avg / momentum_buffer not given: refused or not first
        kw = {k: x for k, x in a.items() if k not in ("param", "grad", "step") + states}
        return _first_step_ref(kind)(dict(params=a["param"], grads=a["grad"], **kw))
    return ref


for _name, _states, _extra in (("adamw", ("m", "v"), {**OPT_EXTRA["Adam"],
                                                      "step": [0, 2, 1.0, True, None]}),
                               ("rmsprop", ("square_avg",), OPT_EXTRA["RMSprop"])):
    spec(f"optim.functional.{_name}", make_functional(_name), _b_fn_new(_name),
         ref=_fn_new_ref(_name), inplace=("param",) + _states, nan_policy=False,
         scalars={**OPT_SCALARS, **_extra},
         names=("param", "grad", "grad_avg", "momentum_buffer") + _states)
