"""P3, P10: convolution and pooling shapes that explain themselves; counting
(weights, biases, multiply-accumulates, receptive field); model summaries;
ResNet basic-block / bottleneck parameter counts and the bottleneck-width
solver.

Every size comes from the Cython shape logic (nnkit._kernels.conv: the same
`out_dim` the kernels use); this module fills in the formulas:

    W' = ⌊(W + 2p − k)/s⌋ + 1                         (P3, dilation 1)
    W' = ⌊(W + 2p − d·(k − 1) − 1)/s⌋ + 1             (dilation d)

Layouts: "NCHW" is PyTorch's (B, C, H, W), the one the kernels run and the
default of every function here and in nnkit.conv; layout="BWHC" takes P3's
(B, W, H, C) instead. A pair (kernel, stride, padding, dilation) follows the
spatial axes in the order the layout lists them: (H-axis, W-axis) in NCHW,
as PyTorch, and (W-axis, H-axis) in BWHC, exactly as P3 (p1 pads left and
right, p2 top and bottom). An int means the same value on both axes.

padding="same" (stride 1) pads d·(k − 1) in all along each axis, as PyTorch:
⌊d·(k − 1)/2⌋ before (left / top) and the rest after (right / bottom), so an
even kernel pads one more at the end; the axis then reads
W' = ⌊(W + p + p_end − d·(k − 1) − 1)/s⌋ + 1 (`Axis.extra` = p_end − p).
"""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

from . import _validate as v
from ._kernels import conv as _kc

LAYOUTS = v.CONV_LAYOUTS
POOL_KINDS = ("max", "avg", "lp")


def _n(x: int) -> str:
    """A filled-in term: negatives with a real minus sign, in parentheses."""
    return f"(−{-x})" if x < 0 else f"{x}"


def axis_formula(label: str, n: int, k: int, s: int, p: int, d: int = 1,
                 extra: int = 0) -> str:
    """One filled-in line: "W' = ⌊(32 + 2·1 − 3)/2⌋ + 1 = 16" (P3's form when d = 1).

    extra > 0: the end of the axis pads p + extra (padding="same" with an even
    d·(k − 1)), and the line shows both: "W' = ⌊(9 + 1 + 2 − 4)/1⌋ + 1 = 9".
    """
    pads = f"2·{_n(p)}" if extra == 0 else f"{_n(p)} + {_n(p + extra)}"
    if d == 1:
        inner = f"{_n(n)} + {pads} − {_n(k)}"
    else:
        inner = f"{_n(n)} + {pads} − {_n(d)}·({_n(k)} − 1) − 1"
    text = f"{label}' = ⌊({inner})/{_n(s)}⌋ + 1"
    if s == 0:
        return text + " (division by zero)"
    if s < 0:
        return text + " (a negative stride walks backwards)"
    # n + p + (p + extra) = (n + extra) + 2p: the kernels' symmetric out_dim
    out = _kc.output_size(n + extra, k, s, p, d)
    return text + f" = {out}" if out >= 1 else text + f" = {out} ≤ 0".replace("-", "−")


class Axis(NamedTuple):
    """One spatial axis of a geometry: size in, kernel, stride, padding, dilation, size out.

    p pads the start (left / top); the end (right / bottom) pads p + extra:
    extra is 0 except for padding="same" with an odd d·(k − 1) (1, as PyTorch).
    """
    name: str      # "W" or "H"
    n: int
    k: int
    s: int
    p: int
    d: int
    out: int
    formula: str
    extra: int = 0

    @property
    def effective_kernel(self) -> int:
        return self.d * (self.k - 1) + 1

    @property
    def p_end(self) -> int:
        """The padding at the end of the axis (right / bottom)."""
        return self.p + self.extra


class ConvShape(tuple):
    """An output shape (a tuple: it compares equal to the plain tuple) that
    also carries `.formula`, one filled-in line per spatial axis."""

    def __new__(cls, shape, axes: tuple[Axis, Axis], layout: str, kind: str):
        self = super().__new__(cls, tuple(int(x) for x in shape))
        self.axes = axes
        self.layout = layout
        self.kind = kind
        return self

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self)

    @property
    def lines(self) -> tuple[str, ...]:
        return tuple(a.formula for a in self.axes)

    @property
    def formula(self) -> str:
        return "\n".join(self.lines)

    def __repr__(self) -> str:
        return f"ConvShape({tuple(self)}, layout={self.layout!r})"


def _spatial(shape, layout):
    """((axis names in pair order), (sizes), batch, channels) of a 4-D shape."""
    if layout == "BWHC":
        B, W, H, C = shape
        return ("W", "H"), (W, H), B, C
    B, C, H, W = shape
    return ("H", "W"), (H, W), B, C


def _assemble(layout, B, C, outs):
    if layout == "BWHC":
        return (B, outs[0], outs[1], C)
    return (B, C, outs[0], outs[1])


def _resolve_padding(padding, ks, ss, ds, names):
    """(start pads, extra end pads), both pairs: an int or a pair pads both ends
    equally; "valid" is 0; "same" (stride 1, as PyTorch) pads d·(k − 1) in all,
    ⌊d·(k − 1)/2⌋ at the start and the rest at the end (one more where
    d·(k − 1) is odd: an even kernel)."""
    if isinstance(padding, str):
        mode = v.choice("padding", padding, ("valid", "same"))
        if mode == "valid":
            return (0, 0), (0, 0)
        pads, extra = [], []
        for i, (k, s, d, ax) in enumerate(zip(ks, ss, ds, names)):
            if s != 1:
                raise ValueError(f"padding: 'same' needs stride 1 (as PyTorch), got "
                                 f"s{i + 1} = {s} along {ax}")
            # k or d < 1 leaves `total` meaningless: pad 0 and let conv_axis name them
            total = d * (k - 1) if k >= 1 and d >= 1 else 0
            pads.append(total // 2)
            extra.append(total - 2 * (total // 2))
        return tuple(pads), tuple(extra)
    return v.int_pair("padding", padding), (0, 0)


# the kernels' geometry status codes as the fault _validate.conv_axis names
_FAULTS = {_kc.GEOM_OK: None, _kc.GEOM_SIZE: "size", _kc.GEOM_KERNEL: "kernel",
           _kc.GEOM_STRIDE: "stride", _kc.GEOM_DILATION: "dilation",
           _kc.GEOM_PADDING: "padding", _kc.GEOM_EMPTY: "empty"}


def _axes(names, sizes, ks, ss, ps, ds, kernel_text="kernel", extras=(0, 0)):
    axes = []
    for i, (ax, n, k, s, p, d, e) in enumerate(zip(names, sizes, ks, ss, ps, ds, extras)):
        f = axis_formula(ax, n, k, s, p, d, e)
        # an extra end pad ("same", even kernel) is one more input row for the
        # kernels' symmetric shape logic; the size itself is checked as given
        status = _kc.geometry_status(n, k, s, p, d)
        if e and status in (_kc.GEOM_OK, _kc.GEOM_EMPTY):
            status = _kc.geometry_status(n + e, k, s, p, d)
        v.conv_axis(ax, n, k, s, p, d, f, str(i + 1), _FAULTS[status], kernel_text)
        axes.append(Axis(ax, n, k, s, p, d, _kc.output_size(n + e, k, s, p, d), f, e))
    return tuple(axes)


def conv2d_output_shape(input_shape, out_channels, kernel_size, stride=1, padding=0,
                        dilation=1, layout="NCHW", *, in_channels=None) -> ConvShape:
    """P3: the output shape of a 2-D convolution, with its formula.

    input_shape is (B, C_in, H, W) as conv2d_forward's X (PyTorch's NCHW, the
    default); layout="BWHC" takes P3's (B, W, H, C_in) and answers in it.

    >>> s = conv2d_output_shape((8, 3, 32, 32), 16, 3, stride=2, padding=1)
    >>> s == (8, 16, 16, 16), s.lines[0]
    (True, "H' = ⌊(32 + 2·1 − 3)/2⌋ + 1 = 16")
    >>> conv2d_output_shape((8, 32, 32, 3), 16, 3, 2, 1, layout="BWHC").lines[0]
    "W' = ⌊(32 + 2·1 − 3)/2⌋ + 1 = 16"

    padding: an int, a pair, "valid" or "same" (see the module docstring).
    in_channels (optional) is checked against the input's channel axis.
    Impossible geometry raises ValueError with the formula filled in.
    """
    layout = v.choice("layout", layout, LAYOUTS)
    shape = v.conv_shape("input_shape", input_shape, layout)
    C_out = v.positive_int("out_channels", out_channels)
    names, sizes, B, C = _spatial(shape, layout)
    if in_channels is not None:
        c_in = v.positive_int("in_channels", in_channels)
        if c_in != C:
            raise ValueError(f"in_channels: expected C_in = {C} (the channel axis of "
                             f"input_shape {shape} in {layout}), got {c_in}; the weights "
                             f"are k1·k2·C_in·C_out, so C_in must match the input")
    ks = v.int_pair("kernel_size", kernel_size)
    ss = v.int_pair("stride", stride)
    ds = v.int_pair("dilation", dilation)
    ps, extras = _resolve_padding(padding, ks, ss, ds, names)
    axes = _axes(names, sizes, ks, ss, ps, ds, extras=extras)
    return ConvShape(_assemble(layout, B, C_out, [a.out for a in axes]), axes, layout, "conv")


def pool2d_output_shape(input_shape, kernel_size, stride=None, padding=0, layout="NCHW",
                        kind="max") -> ConvShape:
    """P10: the output shape of max / average / Lp pooling (stride defaults to
    the kernel size; padding at most half a window, as PyTorch; Lp: none).
    input_shape (B, C, H, W); layout="BWHC": P3's (B, W, H, C)."""
    layout = v.choice("layout", layout, LAYOUTS)
    kind = v.choice("kind", kind, POOL_KINDS)
    shape = v.conv_shape("input_shape", input_shape, layout)
    names, sizes, B, C = _spatial(shape, layout)
    ks = v.int_pair("kernel_size", kernel_size)
    ss = ks if stride is None else v.int_pair("stride", stride)
    ps = v.int_pair("padding", padding)
    if kind == "lp" and ps != (0, 0):
        raise ValueError(f"padding: Lp pooling takes no padding (as PyTorch), got {ps}")
    axes = _axes(names, sizes, ks, ss, ps, (1, 1), kernel_text="window")
    for i, a in enumerate(axes):
        v.pool_padding(a.name, a.k, a.p, str(i + 1))
    return ConvShape(_assemble(layout, B, C, [a.out for a in axes]), axes, layout, kind)


# ---------------------------------------------------------------- counting
class Count(NamedTuple):
    """What one layer costs: parameters and multiply-accumulates (batch included)."""
    weights: int
    biases: int
    macs: int

    @property
    def params(self) -> int:
        return self.weights + self.biases


def conv2d_count(input_shape, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 layout="NCHW", *, bias=True) -> Count:
    """Weights k1·k2·C_in·C_out, biases C_out, MACs B·H'·W'·C_out·k1·k2·C_in."""
    out = conv2d_output_shape(input_shape, out_channels, kernel_size, stride, padding,
                              dilation, layout)
    _, _, B, C_in = _spatial(v.conv_shape("input_shape", input_shape, layout), layout)
    (a1, a2), C_out = out.axes, int(out_channels)
    w = a1.k * a2.k * C_in * C_out
    return Count(w, C_out if bias else 0, B * a1.out * a2.out * w)


def pool2d_count(input_shape, kernel_size, stride=None, padding=0, layout="NCHW",
                 kind="max") -> Count:
    """No parameters; "MACs" counts window reads (compares for max, adds for
    average, powers for Lp): B·C·H'·W'·k1·k2."""
    out = pool2d_output_shape(input_shape, kernel_size, stride, padding, layout, kind)
    _, _, B, C = _spatial(tuple(input_shape), layout)
    a1, a2 = out.axes
    return Count(0, 0, B * C * a1.out * a2.out * a1.k * a2.k)


def linear_count(in_features, out_features, batch=1, *, bias=True) -> Count:
    """Weights N·M, biases M, MACs B·N·M."""
    N = v.positive_int("in_features", in_features)
    M = v.positive_int("out_features", out_features)
    B = v.positive_int("batch", batch)
    return Count(N * M, M if bias else 0, B * N * M)


def receptive_field(layers: Sequence[tuple]) -> tuple[int, int]:
    """(receptive field, jump) along one axis after a stack of (k, s[, d]) layers:
    r ← r + d·(k − 1)·j,  j ← j·s, from r = j = 1."""
    r = j = 1
    for i, spec in enumerate(layers):
        if not isinstance(spec, (tuple, list)) or len(spec) not in (2, 3):
            raise TypeError(f"layers[{i}]: expected (kernel, stride) or (kernel, stride, "
                            f"dilation), got {spec!r}")
        k, s = v.positive_int(f"layers[{i}] kernel", spec[0]), \
            v.positive_int(f"layers[{i}] stride", spec[1])
        d = v.positive_int(f"layers[{i}] dilation", spec[2]) if len(spec) == 3 else 1
        r += d * (k - 1) * j
        j *= s
    return r, j


# ----------------------------------------------------------------- summary
class SummaryRow(NamedTuple):
    """One layer of `summary`: its output shape, parameters, MACs and the
    receptive field of one output element (None past a Flatten or Linear)."""
    index: int
    layer: str            # "Conv2d(3→16, k=3, s=1, p=1)"
    output_shape: tuple
    params: int
    macs: int
    receptive_field: tuple | None   # per spatial axis, in the layout's pair order


class Summary(NamedTuple):
    """What `summary(model, input_shape)` returns: a `SummaryRow` per layer and
    the totals; `table()` is the text it prints."""
    input_shape: tuple
    layout: str
    rows: list
    total_params: int
    total_macs: int

    def table(self) -> str:
        head = ["#", "layer", "output shape", "params", "MACs", "receptive field"]
        body = [[str(r.index), r.layer, str(tuple(r.output_shape)), f"{r.params:,}",
                 f"{r.macs:,}", "—" if r.receptive_field is None else
                 "×".join(str(x) for x in r.receptive_field)] for r in self.rows]
        body.append(["", "total", "", f"{self.total_params:,}", f"{self.total_macs:,}", ""])
        w = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
        line = lambda cells: "  ".join(c.ljust(w[i]) if i < 3 else c.rjust(w[i])
                                       for i, c in enumerate(cells)).rstrip()
        out = [f"input {tuple(self.input_shape)} ({self.layout}); MACs for the whole batch",
               line(head), line(["-" * x for x in w])]
        out += [line(b) for b in body[:-1]] + [line(["-" * x for x in w]), line(body[-1])]
        return "\n".join(out)

    def __str__(self) -> str:
        return self.table()


def summary(layers, input_shape, layout="NCHW", *, print_table=True) -> Summary:
    """A per-layer table of a stack (nnkit layers or a Sequential): output shape,
    parameters, MACs (whole batch) and receptive field; printed, and returned
    as data (`.rows`, `.total_params`, `.total_macs`).

    Conv2d, MaxPool2d, AvgPool2d, Flatten and Linear change the shape; any
    other layer (ReLU, BatchNorm, ...) keeps it and contributes its parameters.
    """
    # layers are read through their `geometry` and attributes (nnkit.layers.Layer),
    # so this module does not import the layer classes (they import conv)
    layout = v.choice("layout", layout, LAYOUTS)
    layers = list(getattr(layers, "layers", layers))       # a Sequential or a list
    shape = v.conv_shape("input_shape", input_shape, layout)
    start = shape
    rf, jump = [1, 1], [1, 1]
    rows = []
    for i, layer in enumerate(layers):
        if not hasattr(layer, "params") or not hasattr(layer, "geometry"):
            raise TypeError(f"layers[{i}]: expected an nnkit Layer, got {type(layer).__name__}")
        name, macs, params = type(layer).__name__, 0, sum(p.size for p in layer.params.values())
        try:
            if layer.geometry == "conv2d":
                C_out, C_in, kh, kw = layer.params["W"].shape
                s = conv2d_output_shape(shape, C_out, _order((kh, kw), layout), _order(layer.stride, layout),
                                        _order(layer.padding, layout), _order(layer.dilation, layout),
                                        layout, in_channels=C_in)
                c = conv2d_count(shape, C_out, _order((kh, kw), layout), _order(layer.stride, layout),
                                 _order(layer.padding, layout), _order(layer.dilation, layout),
                                 layout, bias=layer.bias)
                name = f"Conv2d({C_in}→{C_out}, k={kh}×{kw}, s={_t(layer.stride)}, p={_t(layer.padding)})"
                macs, shape = c.macs, tuple(s)
                _grow(rf, jump, s.axes)
            elif layer.geometry == "pool2d":
                kind = layer.kind
                s = pool2d_output_shape(shape, _order(layer.kernel_size, layout),
                                        _order(layer.stride, layout), _order(layer.padding, layout),
                                        layout, kind)
                macs = pool2d_count(shape, _order(layer.kernel_size, layout),
                                    _order(layer.stride, layout), _order(layer.padding, layout),
                                    layout, kind).macs
                name = f"{type(layer).__name__}(k={_t(layer.kernel_size)}, s={_t(layer.stride)})"
                shape = tuple(s)
                _grow(rf, jump, s.axes)
            elif layer.geometry == "flatten":
                shape = (shape[0], math.prod(shape[1:]))
            elif layer.geometry == "linear":
                M, N = (layer.params["W"] if "W" in layer.params else layer.params["u"]).shape
                if shape[-1] != N:
                    raise ValueError(f"layers[{i}]: Linear expects {N} input features, the "
                                     f"previous layer gives shape {shape} (add a Flatten?)")
                c = linear_count(N, M, math.prod(shape[:-1]), bias=getattr(layer, "bias", True))
                macs, params = c.macs, c.params
                name, shape = f"Linear({N}→{M})", shape[:-1] + (M,)
                rf = None
        except ValueError as exc:
            raise ValueError(f"layers[{i}] ({type(layer).__name__}) on input {shape}: {exc}") from None
        if len(shape) != 4:
            rf = None
        rows.append(SummaryRow(i, name, shape, int(params), int(macs),
                               None if rf is None else tuple(rf)))
    out = Summary(start, layout, rows, sum(r.params for r in rows), sum(r.macs for r in rows))
    if print_table:
        print(out.table())
    return out


def _order(pair, layout):
    """A layer's (H, W)-ordered pair in the layout's pair order ("same" as it is)."""
    if isinstance(pair, str):
        return pair
    a, b = (pair, pair) if isinstance(pair, int) else pair
    return (b, a) if layout == "BWHC" else (a, b)


def _t(pair):
    if isinstance(pair, str):
        return pair
    return f"{pair[0]}" if pair[0] == pair[1] else f"{pair[0]}×{pair[1]}"


def _grow(rf, jump, axes):
    if rf is None:
        return
    for i, a in enumerate(axes):
        rf[i] += (a.effective_kernel - 1) * jump[i]
        jump[i] *= a.s


# ----------------------------------------------------------- ResNet blocks
def basic_block_params(channels: int = 64, kernel_size: int = 3, *, bias: bool = False) -> int:
    """Two k×k convs C → C: 2·k²·C² weights (+ 2C biases). P3: 73,728 / 73,856."""
    C = v.positive_int("channels", channels)
    k = v.positive_int("kernel_size", kernel_size)
    return 2 * k * k * C * C + (2 * C if bias else 0)


def _bottleneck_coeffs(C: int, k: int, bias: bool) -> tuple[int, int, int]:
    """Bottleneck params as a·w² + b·w + c for width w: 1×1 C→w, k×k w→w, 1×1 w→C."""
    return k * k, 2 * C + (2 if bias else 0), C if bias else 0


def bottleneck_params(channels: int = 64, width: int = 64, kernel_size: int = 3, *,
                      bias: bool = False) -> int:
    """C·w + k²·w² + w·C weights (+ w + w + C biases). P3: 9k² + 128k (+ 2k + 64)."""
    C = v.positive_int("channels", channels)
    w = v.positive_int("width", width)
    k = v.positive_int("kernel_size", kernel_size)
    a, b, c = _bottleneck_coeffs(C, k, bias)
    return a * w * w + b * w + c


class BottleneckSolution(NamedTuple):
    """What `solve_bottleneck` returns (P3): the plain block's parameter count,
    the bottleneck's as a polynomial in its width k, the real interval of k
    that cuts the parameters by `reduction`, and the integer widths inside it."""
    channels: int
    kernel_size: int
    bias: bool
    reduction: tuple          # (lo, hi) fractions of the basic block's parameters cut
    basic_params: int         # the plain block F
    polynomial: str           # "9k² + 128k"
    interval: tuple           # (k_lo, k_hi) real widths
    widths: tuple             # the integer widths inside the interval

    def lines(self) -> list[str]:
        lo, hi = self.reduction
        bias = "with biases" if self.bias else "without biases"
        ws = self.widths
        wtxt = "none" if not ws else (f"{ws[0]}…{ws[-1]}" if len(ws) > 2 else
                                      ", ".join(map(str, ws)))
        plo, phi, keep_lo, keep_hi = _labels([100 * lo, 100 * hi, 100 * (1 - hi),
                                              100 * (1 - lo)], 0, exact=True)
        k_lo, k_hi = _labels(list(self.interval), 2)
        return [f"{bias}: basic block {self.basic_params:,} parameters; bottleneck "
                f"{self.polynomial}",
                f"  a {plo}%–{phi}% cut: {keep_lo}%·{self.basic_params:,} ≤ "
                f"{self.polynomial} ≤ {keep_hi}%·{self.basic_params:,}",
                f"  k ∈ [{k_lo}, {k_hi}]; integer widths {wtxt}"]


def _decimals(x: float, least: int, most: int) -> int:
    """The fewest decimals, from `least` to `most`, that write x exactly (up
    to float noise: 1e-9 of the last place kept)."""
    for dec in range(least, most + 1):
        if abs(round(x, dec) - x) <= 1e-9 * 10.0 ** -dec:
            return dec
    return most


def _labels(values: list, least: int, *, exact: bool = False) -> list:
    """Labels for numbers shown side by side: `least` decimals, or (exact) the
    fewest that write each value exactly (99.9, 0.1: never 100 and 0), up to 4;
    where two values that differ would still print the same, all get as many
    decimals as it takes to tell them apart."""
    decs = [_decimals(x, least, 4) if exact else least for x in values]
    texts = [f"{x:.{d}f}" for x, d in zip(values, decs)]
    common = max(decs)
    while common < 15 and any(float(texts[i]) == float(texts[j]) for i in range(len(values))
                              for j in range(i) if values[i] != values[j]):
        texts = [f"{x:.{common}f}" for x in values]     # one precision for all then
        common += 1
    return texts


def _root(a: float, b: float, c: float) -> float:
    """The positive root of a·x² + b·x + c = 0 (a > 0, c ≤ 0)."""
    return (-b + math.sqrt(b * b - 4 * a * c)) / (2 * a)


def solve_bottleneck(channels: int = 64, reduction=(0.5, 0.6), kernel_size: int = 3, *,
                     bias: bool = False) -> BottleneckSolution:
    """P3's bottleneck width: the k for which the bottleneck (1×1 C→k, 3×3 k→k,
    1×1 k→C) has (1 − hi)…(1 − lo) of the basic block's parameters.

    solve_bottleneck() gives k ∈ [50.57, 57.28], widths 51…57;
    solve_bottleneck(bias=True) gives [50.46, 57.18] (one published solution
    prints [50.43, 57.17], an arithmetic slip), the same widths.
    """
    bias = v.flag("bias", bias)
    C = v.positive_int("channels", channels)
    k = v.positive_int("kernel_size", kernel_size)
    lo, hi = v.reduction_range(reduction)
    P = basic_block_params(C, k, bias=bias)
    a, b, c = _bottleneck_coeffs(C, k, bias)
    k_lo = _root(a, b, c - (1 - hi) * P)
    k_hi = _root(a, b, c - (1 - lo) * P)
    # integer widths whose exact count lies in the range (no rounding of k)
    widths = tuple(w for w in range(max(1, math.floor(k_lo)), math.ceil(k_hi) + 1)
                   if (1 - hi) * P <= a * w * w + b * w + c <= (1 - lo) * P)
    poly = f"{a}k² + {b}k" + (f" + {c}" if c else "")
    return BottleneckSolution(C, k, bool(bias), (lo, hi), P, poly, (k_lo, k_hi), widths)
