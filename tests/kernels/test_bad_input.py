"""Bad input: each raises TypeError/ValueError naming the argument (and the
expected and actual values) before any kernel runs."""
import math

import numpy as np
import pytest

import nnkit as nk
from nnkit import trace
from nnkit.trace import Param


@pytest.fixture
def dense(rng):
    X = rng.standard_normal((4, 3))
    W = rng.standard_normal((5, 3))
    b = rng.standard_normal(5)
    return X, W, b


# ------------------------------------------------------------------ affine
def test_affine_wrong_ndim(dense):
    X, W, b = dense
    with pytest.raises(ValueError, match=r"^X: expected a 2-D array.*got shape \(3,\)"):
        nk.affine_forward(X[0], W, b)
    with pytest.raises(ValueError, match=r"^W: expected a 2-D array.*got shape \(1, 5, 3\)"):
        nk.affine_forward(X, W[None], b)
    with pytest.raises(ValueError, match=r"^b: expected a 1-D array.*got shape \(1, 5\)"):
        nk.affine_forward(X, W, b[None])


def test_affine_mismatched_n(dense):
    X, W, b = dense
    with pytest.raises(ValueError, match=r"^W: expected W\.shape\[1\].* = 3, got 4"):
        nk.affine_forward(X, np.ones((5, 4)), b)


def test_affine_bias_wrong_length(dense):
    X, W, b = dense
    with pytest.raises(ValueError, match=r"^b: expected b\.shape\[0\].* = 5, got 4"):
        nk.affine_forward(X, W, b[:4])


@pytest.mark.parametrize("bad", [np.int64, np.int32, np.bool_, np.complex128, np.float16])
def test_affine_non_float_dtype(dense, bad):
    X, W, b = dense
    with pytest.raises(TypeError, match=rf"^X: expected dtype float32 or float64, got {np.dtype(bad)}"):
        nk.affine_forward(X.astype(bad), W, b)
    with pytest.raises(TypeError, match=r"^W: expected dtype float32 or float64"):
        nk.affine_forward(X, W.astype(bad), b)


def test_affine_mixed_precision(dense):
    X, W, b = dense
    with pytest.raises(TypeError, match=r"^W: expected dtype float32.*got float64"):
        nk.affine_forward(X.astype(np.float32), W, b.astype(np.float32))
    with pytest.raises(TypeError, match=r"^b: expected dtype float64.*got float32"):
        nk.affine_forward(X, W, b.astype(np.float32))


def test_affine_empty_and_ragged(dense):
    X, W, b = dense
    with pytest.raises(ValueError, match=r"^X: expected a non-empty array"):
        nk.affine_forward(np.empty((0, 3)), W, b)
    with pytest.raises(TypeError, match=r"^X:"):
        nk.affine_forward([[1.0, 2.0], [3.0]], W, b)


def test_affine_backward_bad_dY(dense):
    X, W, b = dense
    _, cache = nk.affine_forward(X, W, b)
    with pytest.raises(ValueError, match=r"^dY: expected dY\.shape\[0\] \(B\) = 4, got 3"):
        nk.affine_backward(np.ones((3, 5)), cache)
    with pytest.raises(ValueError, match=r"^dY: expected dY\.shape\[1\] \(M\) = 5, got 6"):
        nk.affine_backward(np.ones((4, 6)), cache)
    with pytest.raises(TypeError, match=r"^dY: expected dtype float64"):
        nk.affine_backward(np.ones((4, 5), np.float32), cache)
    with pytest.raises(ValueError, match=r"^dY: expected a 2-D array"):
        nk.affine_backward(np.ones(20), cache)


def test_relu_bad_input():
    with pytest.raises(TypeError, match=r"^Y: expected dtype float32 or float64, got int64"):
        nk.relu_forward(np.arange(4))
    _, cache = nk.relu_forward(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"^dH: expected shape \(2, 3\).*got \(3, 2\)"):
        nk.relu_backward(np.ones((3, 2)), cache)
    with pytest.raises(TypeError, match=r"^dH: expected dtype float64"):
        nk.relu_backward(np.ones((2, 3), np.float32), cache)


# -------------------------------------------------------------- batch norm
@pytest.fixture
def bn(rng):
    return rng.standard_normal((6, 4)), np.ones(4), np.zeros(4)


@pytest.mark.parametrize("fwd", [nk.batchnorm_forward, nk.bn_relu_forward])
def test_batchnorm_batch_of_one(bn, fwd):
    Y, g, b = bn
    with pytest.raises(ValueError, match=r"^Y: .*at least 2 rows, got B = 1.*variance is 0"):
        fwd(Y[:1], g, b)


def test_batchnorm_eval_allows_batch_of_one(bn):
    Y, g, b = bn
    Z = nk.batchnorm_eval_forward(Y[:1], g, b, np.zeros(4), np.ones(4), eps=0.0)
    np.testing.assert_allclose(Z, Y[:1], rtol=1e-15)


@pytest.mark.parametrize("fwd", [nk.batchnorm_forward, nk.bn_relu_forward])
def test_batchnorm_negative_eps(bn, fwd):
    Y, g, b = bn
    with pytest.raises(ValueError, match=r"^eps: expected a finite number >= 0, got -1e-05"):
        fwd(Y, g, b, eps=-1e-5)


@pytest.mark.parametrize("eps", [math.nan, math.inf, -math.inf, np.float32("nan")])
def test_batchnorm_nonfinite_eps(bn, eps):
    Y, g, b = bn
    with pytest.raises(ValueError, match=r"^eps: expected a finite number >= 0, got (nan|inf|-inf)"):
        nk.batchnorm_forward(Y, g, b, eps=eps)
    with pytest.raises(ValueError, match=r"^eps:"):
        nk.batchnorm_eval_forward(Y, g, b, np.zeros(4), np.ones(4), eps=eps)


@pytest.mark.parametrize("eps", ["small", None, [1e-5]])
def test_batchnorm_eps_not_a_number(bn, eps):
    Y, g, b = bn
    with pytest.raises(TypeError, match=r"^eps: expected a finite number"):
        nk.batchnorm_forward(Y, g, b, eps=eps)


def test_batchnorm_gamma_beta_wrong_length(bn):
    Y, g, b = bn
    with pytest.raises(ValueError, match=r"^gamma: expected gamma\.shape\[0\].* = 4, got 3"):
        nk.batchnorm_forward(Y, g[:3], b)
    with pytest.raises(ValueError, match=r"^beta: expected beta\.shape\[0\].* = 4, got 5"):
        nk.bn_relu_forward(Y, g, np.zeros(5))
    with pytest.raises(ValueError, match=r"^gamma: expected a 1-D array"):
        nk.batchnorm_forward(Y, g[None], b)


def test_batchnorm_wrong_ndim_and_dtype(bn):
    Y, g, b = bn
    with pytest.raises(ValueError, match=r"^Y: expected a 2-D array.*got shape \(6, 4, 1\)"):
        nk.batchnorm_forward(Y[..., None], g, b)
    with pytest.raises(TypeError, match=r"^Y: expected dtype float32 or float64, got int64"):
        nk.batchnorm_forward(np.arange(8).reshape(4, 2), g[:2], b[:2])
    with pytest.raises(TypeError, match=r"^gamma: expected dtype float32.*got float64"):
        nk.batchnorm_forward(Y.astype(np.float32), g, b.astype(np.float32))


def test_batchnorm_backward_bad_dout(bn):
    Y, g, b = bn
    _, c = nk.batchnorm_forward(Y, g, b)
    with pytest.raises(ValueError, match=r"^dZ: expected shape \(6, 4\).*got \(6, 3\)"):
        nk.batchnorm_backward(np.ones((6, 3)), c)
    _, cf = nk.bn_relu_forward(Y, g, b)
    with pytest.raises(ValueError, match=r"^dH: expected shape \(6, 4\)"):
        nk.bn_relu_backward(np.ones((5, 4)), cf)
    with pytest.raises(TypeError, match=r"^dH: expected dtype float64"):
        nk.bn_relu_backward(np.ones((6, 4), np.float32), cf)


def test_batchnorm_eval_bad_running_stats(bn):
    Y, g, b = bn
    with pytest.raises(ValueError, match=r"^running_mean: expected running_mean\.shape\[0\].* = 4, got 3"):
        nk.batchnorm_eval_forward(Y, g, b, np.zeros(3), np.ones(4))
    with pytest.raises(ValueError, match=r"^running_var: expected finite values >= 0, got -1"):
        nk.batchnorm_eval_forward(Y, g, b, np.zeros(4), np.array([1.0, -1.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match=r"^running_var: expected finite values >= 0, got nan"):
        nk.batchnorm_eval_forward(Y, g, b, np.zeros(4), np.array([1.0, np.nan, 1.0, 1.0]))
    with pytest.raises(TypeError, match=r"^running_var: expected dtype float64"):
        nk.batchnorm_eval_forward(Y, g, b, np.zeros(4), np.ones(4, np.float32))


# ----------------------------------------------------------------- softmax
def test_softmax_labels_out_of_range():
    z = np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"^labels: expected class indices in \[0, 4\), got 4"):
        nk.softmax_cross_entropy(z, np.array([0, 4, 1]))
    with pytest.raises(ValueError, match=r"^labels: expected class indices in \[0, 4\), got -1"):
        nk.softmax_cross_entropy(z, np.array([0, -1, 1]))


def test_softmax_labels_wrong_length_or_kind():
    z = np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"^labels: expected labels\.shape\[0\].* = 3, got 2"):
        nk.softmax_cross_entropy(z, np.array([0, 1]))
    with pytest.raises(TypeError, match=r"^labels: expected integer class indices"):
        nk.softmax_cross_entropy(z, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match=r"^labels: expected targets of shape \(3, 4\)"):
        nk.softmax_cross_entropy(z, np.zeros((3, 5)))
    with pytest.raises(TypeError, match=r"^labels: expected dtype float64"):
        nk.softmax_cross_entropy(z, np.zeros((3, 4), np.float32))
    with pytest.raises(ValueError, match=r"^logits: expected a 2-D array"):
        nk.softmax_cross_entropy(np.zeros(4), np.array([1]))


# ------------------------------------------------------------------ layers
def test_layer_constructor_bad_values():
    with pytest.raises(ValueError, match=r"^in_features: expected a positive integer, got 0"):
        nk.Linear(0, 3)
    # the rule (nnkit._validate): a wrong type is a TypeError, a wrong value a ValueError
    with pytest.raises(TypeError, match=r"^out_features: expected a positive integer, got float 2\.5"):
        nk.Linear(3, 2.5)
    with pytest.raises(TypeError, match=r"^dtype: expected float32 or float64, got int32"):
        nk.Linear(3, 2, dtype=np.int32)
    with pytest.raises(ValueError, match=r"^num_features: expected a positive integer"):
        nk.BatchNorm(-1)
    with pytest.raises(ValueError, match=r"^momentum: expected a value in \[0, 1\], got 1.5"):
        nk.BatchNorm(3, momentum=1.5)
    with pytest.raises(ValueError, match=r"^eps:"):
        nk.BatchNorm(3, eps=-1.0)
    with pytest.raises(TypeError, match=r"^layers\[1\]: expected an nnkit Layer, got function"):
        nk.Sequential(nk.ReLU(), lambda x: x)


def test_layers_bad_calls(rng):
    lin = nk.Linear(3, 2)
    with pytest.raises(RuntimeError, match="backward: call forward first"):
        lin.backward(np.ones((4, 2)))
    with pytest.raises(TypeError, match=r"^X: expected dtype float64"):
        lin.forward(np.ones((4, 3), np.float32))
    bnl = nk.BatchNorm(2)
    with pytest.raises(ValueError, match=r"^Y: .*at least 2 rows"):
        bnl.forward(np.ones((1, 2)))
    bnl.eval()
    bnl.forward(np.ones((1, 2)))                  # eval mode: one sample is fine
    with pytest.raises(RuntimeError, match="backward: needs a training-mode forward"):
        bnl.backward(np.ones((1, 2)))
    loss = nk.SoftmaxCrossEntropy()
    with pytest.raises(TypeError, match=r"^labels: expected class indices"):
        loss(np.zeros((2, 3)))


# ---------------------------------------------------------- trace / params
@pytest.mark.parametrize("param,raw,pattern", [
    (Param("B", 4, minimum=2, maximum=4096), "four", r"^B: expected int, got 'four'"),
    (Param("B", 4, minimum=2, maximum=4096), 1, r"^B: expected >= 2, got 1"),
    (Param("B", 4, minimum=2, maximum=4096), 5000, r"^B: expected <= 4096, got 5000"),
    (Param("B", 4, minimum=2), 2.5, r"^B: expected int, got 2\.5"),
    (Param("eps", 1e-5, minimum=0.0), "nan", r"^eps: expected float, got 'nan'"),
    (Param("eps", 1e-5, minimum=0.0), float("inf"), r"^eps: expected float"),
    (Param("eps", 1e-5, minimum=0.0), -1.0, r"^eps: expected >= 0\.0, got -1\.0"),
    (Param("dtype", "float64", choices=("float64", "float32")), "float16",
     r"^dtype: expected one of \['float64', 'float32'\], got 'float16'"),
    (Param("constant_feature", False), "maybe", r"^constant_feature: expected bool, got 'maybe'"),
    (Param("B", 4), None, r"^B: expected int, got None"),
])
def test_param_parse_bad_values(param, raw, pattern):
    with pytest.raises(ValueError, match=pattern):
        param.parse(raw)


@pytest.mark.parametrize("param,raw,value", [
    (Param("B", 4, minimum=2), "7", 7), (Param("B", 4), 3.0, 3),
    (Param("eps", 1e-5, minimum=0.0), "0", 0.0),
    (Param("flag", False), "yes", True), (Param("flag", True), "off", False),
    (Param("dtype", "float64", choices=("float64", "float32")), "float32", "float32"),
])
def test_param_parse_good_values(param, raw, value):
    got = param.parse(raw)
    assert got == value and type(got) is type(value)


def test_unknown_walkthrough():
    with pytest.raises(ValueError, match=r"^walkthrough: expected one of \[.*'bn-relu'.*\], got 'nope'"):
        trace.get("nope")
    with pytest.raises(ValueError, match=r"^walkthrough: .*got 'nope'"):
        trace.Trace("nope")


def test_walkthrough_unknown_or_bad_config():
    with pytest.raises(ValueError, match=r"^C: not a parameter of walkthrough 'bn-relu'"):
        trace.Trace("bn-relu", C=3)
    with pytest.raises(ValueError, match=r"^B: expected >= 2, got 1"):
        trace.Trace("bn-relu", B=1)
    t = trace.Trace("bn-relu")
    with pytest.raises(ValueError, match=r"^key: node 'G' is a constant"):
        t.check("G")


def test_eps_bool_refused(bn):
    Y, g, b = bn
    with pytest.raises(TypeError, match=r"^eps: expected a finite number >= 0, got True"):
        nk.batchnorm_forward(Y, g, b, eps=True)


def test_scalar_labels_refused():
    z = np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"^labels: expected class indices \(B,\) = \(3,\)"):
        nk.softmax_cross_entropy(z, 1)


def test_relu_ragged_list_is_a_clear_type_error():
    with pytest.raises(TypeError, match=r"^Y: expected a float array \(any shape\), got list"):
        nk.relu_forward([[1.0, 2.0], [3.0]])


def test_backward_with_another_layers_cache_is_a_clear_type_error():
    rng = np.random.default_rng(0)
    Y = rng.standard_normal((5, 4))
    _, aff = nk.affine_forward(Y, np.ones((3, 4)), np.zeros(3))
    _, bn = nk.batchnorm_forward(Y, np.ones(4), np.zeros(4))
    _, sm = nk.softmax_cross_entropy(Y, np.zeros(5, int))
    with pytest.raises(TypeError, match=r"^cache: expected the cache returned by batchnorm_forward "
                                        r"\(BatchNormCache\), got AffineCache"):
        nk.batchnorm_backward(np.ones((5, 4)), aff)
    with pytest.raises(TypeError, match=r"^cache: expected the cache returned by affine_forward"):
        nk.affine_backward(np.ones((5, 3)), bn)
    with pytest.raises(TypeError, match=r"^cache: expected the cache returned by relu_forward"):
        nk.relu_backward(np.ones((5, 4)), bn)
    with pytest.raises(TypeError, match=r"^cache: expected the cache returned by whitening_forward"):
        nk.whitening_backward(np.ones((5, 4)), bn)
    with pytest.raises(TypeError, match=r"^cache: expected the cache returned by softmax_cross_entropy"):
        nk.softmax_cross_entropy_backward(bn)
    with pytest.raises(TypeError, match=r"^dloss: expected a finite number"):
        nk.softmax_cross_entropy_backward(sm, "x")


@pytest.mark.parametrize("make", [
    lambda: nk.Linear(True, 3), lambda: nk.Linear(3, 2.0), lambda: nk.BatchNorm(True),
    lambda: nk.WhiteningBatchNorm(np.bool_(True)),
])
def test_layer_sizes_refuse_bools_and_floats(make):
    with pytest.raises(TypeError, match=r"^(in_features|out_features|num_features): "
                                         r"expected a positive integer"):
        make()


def test_momentum_not_a_number():
    with pytest.raises(TypeError, match=r"^momentum: expected a value in \[0, 1\], got 'fast'"):
        nk.BatchNorm(3, momentum="fast")


def test_softmax_integer_labels_in_a_column_say_what_is_wrong():
    """Issue 8.8: int labels (B, 1) got "expected dtype float32 or float64, got int64"."""
    z = np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"^labels: expected class indices \(B,\) = \(3,\) "
                                         r"or float targets \(B, K\) = \(3, 4\), got integer "
                                         r"labels of shape \(3, 1\): class indices must have "
                                         r"shape \(3,\)"):
        nk.softmax_cross_entropy(z, np.array([[0], [1], [2]]))
    # integer one-hot rows: the dtype is what is wrong
    with pytest.raises(TypeError, match=r"^labels: .*integer array of shape \(3, 4\): soft "
                                        r"targets must be float"):
        nk.softmax_cross_entropy(z, np.eye(4, dtype=np.int64)[:3])


# ------------------------------------------- issue 24: scalars that are not numbers
# float() parses "1e-5", so a string eps once ran; every eps/real-number check
# refuses what is not a real number with a TypeError naming the argument.
NOT_REAL = ["1e-5", np.str_("1e-5"), b"1e-5", None, True, np.bool_(False), 1e-5j, [1e-5]]


@pytest.mark.parametrize("eps", NOT_REAL, ids=repr)
@pytest.mark.parametrize("fwd", [nk.bn_relu_forward, nk.batchnorm_forward])
def test_eps_not_a_real_number_is_a_type_error(bn, fwd, eps):
    Y, g, b = bn
    with pytest.raises(TypeError, match=r"^eps: expected a finite number >= 0, got "):
        fwd(Y, g, b, eps=eps)


@pytest.mark.parametrize("make", [
    lambda eps: nk.layernorm_forward(np.ones((3, 4)) + np.arange(4), np.ones(4), np.zeros(4),
                                     eps=eps),
    lambda eps: nk.batchnorm_eval_forward(np.ones((3, 4)), np.ones(4), np.zeros(4),
                                          np.zeros(4), np.ones(4), eps=eps),
    lambda eps: nk.BatchNorm(4, eps=eps),
    lambda eps: nk.LayerNorm(4, eps=eps),
], ids=["layernorm_forward", "batchnorm_eval_forward", "BatchNorm", "LayerNorm"])
def test_eps_as_a_string_refused_everywhere(make):
    with pytest.raises(TypeError, match=r"^eps: expected a finite number >= 0, got '1e-5'$"):
        make("1e-5")


def test_whitening_eps_as_a_string_refused(rng):
    Y = rng.standard_normal((8, 3))
    with pytest.raises(TypeError, match=r"^eps: expected a finite number > 0, got '1e-3'"):
        nk.whitening_forward(Y, np.ones(3), np.zeros(3), eps="1e-3")


@pytest.mark.parametrize("call,pattern", [
    (lambda: nk.BatchNorm(3, momentum="0.1"), r"^momentum: expected a value in \[0, 1\], got '0.1'"),
    (lambda: nk.dropout_forward(np.ones((2, 3)), keep="0.5"), r"^keep: expected a probability"),
    (lambda: nk.Dropout(keep=None), r"^keep: expected a probability"),
    (lambda: nk.lppool2d_forward(np.ones((1, 1, 4, 4)), "2", 2), r"^p: expected a finite number > 0"),
    (lambda: nk.solve_bottleneck(64, ("0.5", "0.6")), r"^reduction: expected a pair"),
])
def test_other_real_scalars_refuse_strings(call, pattern):
    with pytest.raises(TypeError, match=pattern):
        call()


@pytest.mark.parametrize("eps", [np.float32(1e-5), np.array(1e-5), 0, np.int64(0),
                                 np.float64(1e-3)], ids=repr)
def test_eps_real_numbers_of_any_kind_still_accepted(bn, eps):
    Y, g, b = bn
    Z, _ = nk.bn_relu_forward(Y, g, b, eps=eps)
    ref, _ = nk.bn_relu_forward(Y, g, b, eps=float(eps))
    np.testing.assert_array_equal(Z, ref)


def test_none_for_a_required_array_says_so(dense, bn):
    X, W, b = dense
    with pytest.raises(TypeError, match=r"^b: expected an array \(M,\), got None$"):
        nk.affine_forward(X, W, None)
    with pytest.raises(TypeError, match=r"^X: expected an array \(B, N\), got None$"):
        nk.affine_forward(None, W, b)
    Y, g, beta = bn
    with pytest.raises(TypeError, match=r"^gamma: expected an array .*got None$"):
        nk.batchnorm_forward(Y, None, beta)
    with pytest.raises(TypeError, match=r"^Y: expected an array .*got None$"):
        nk.relu_forward(None)
    # where None means "none" it still does: conv2d_forward's bias is optional
    Xc, Wc = np.ones((1, 2, 4, 4)), np.ones((3, 2, 3, 3))
    out, _ = nk.conv2d_forward(Xc, Wc, None)
    assert out.shape == (1, 3, 2, 2)


# ------------------------------------ issue 24: "a real number in [0.0, inf], got inf"
def _model():
    return nk.Linear(3, 2, rng=np.random.default_rng(0))


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
@pytest.mark.parametrize("make,name", [
    (lambda x: nk.optim.Adam(_model(), lr=x), "lr"),
    (lambda x: nk.optim.SGD(_model(), lr=x), "lr"),
    (lambda x: nk.optim.AdaGrad(_model(), lr=x), "lr"),
    (lambda x: nk.optim.Momentum(_model(), lr=0.1, momentum=x), "momentum"),
    (lambda x: nk.optim.SGD(_model(), lr=0.1, momentum=x), "momentum"),
    (lambda x: nk.optim.Adam(_model(), eps=x), "eps"),
    (lambda x: nk.optim.AdaGrad(_model(), eps=x), "eps"),
    (lambda x: nk.optim.Adam(_model(), weight_decay=x), "weight_decay"),
    (lambda x: nk.optim.AdaGrad(_model(), lr_decay=x), "lr_decay"),
])
def test_unbounded_hyperparameters_say_finite(make, name, value):
    """The message said "expected a real number in [0.0, inf], got inf": inf
    seemed to be in the range it was refused for."""
    with pytest.raises(ValueError) as info:
        make(value)
    msg = str(info.value)
    assert msg == f"{name}: expected a finite number >= 0, got {value!r}", msg
    assert "inf]" not in msg


def test_lr_bounds_follow_torch():
    """torch.optim checks `0.0 <= lr`: lr = 0 is allowed (a schedule may reach
    it); nnkit refuses what torch refuses, and a non-finite lr besides."""
    opt = nk.optim.Adam(_model(), lr=0.0)
    assert opt.lr == 0.0
    with pytest.raises(ValueError, match=r"^lr: expected a finite number >= 0, got -0.001$"):
        nk.optim.Adam(_model(), lr=-1e-3)
    with pytest.raises(TypeError, match=r"^lr: expected a finite number >= 0, got str '0.1'$"):
        nk.optim.SGD(_model(), lr="0.1")
    with pytest.raises(ValueError, match=r"^lr: expected a finite number >= 0, got inf$"):
        opt.lr = math.inf


def test_real_number_messages_by_range():
    from nnkit import _validate as v
    with pytest.raises(ValueError, match=r"^h: expected a finite number > 0, got inf$"):
        v.real_number("h", math.inf, 0.0, low_open=True)
    with pytest.raises(ValueError, match=r"^value: expected a finite number, got nan$"):
        v.real_number("value", math.nan, -math.inf)
    with pytest.raises(ValueError, match=r"^beta: expected a real number in \[0.0, 1.0\), got 1.0"):
        v.real_number("beta", 1.0, 0.0, 1.0, high_open=True)
    with pytest.raises(TypeError, match=r"^gain: expected a finite number > 0, got NoneType None$"):
        v.real_number("gain", None, 0.0, low_open=True)
    assert v.real_number("x", np.float32(2.5)) == 2.5
    assert v.real_number("x", np.array(3)) == 3.0


def test_init_constant_inf_says_finite():
    with pytest.raises(ValueError, match=r"^value: expected a finite number, got inf$"):
        nk.init.constant((2, 3), value=math.inf)
