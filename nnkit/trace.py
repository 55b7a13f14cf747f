"""Walkthroughs: small named computation graphs, evaluated and checked node by node.

A walkthrough (one per derivation: P2 batch norm, whitening, RNN through
time, ...) declares
  * its configuration parameters (`Param`: B, N, M, eps, seed, dtype, ...),
  * its graph for a configuration: `Node`s in topological order, each with a
    formula, its parents and a function of the parents' values (leaves have
    none); nodes may be matrices (a covariance Σ), or indexed by time and
    chain (an unrolled RNN: key "h[2]", time=2, chain="forward"),
  * how to draw its leaves (seeded), and
  * its analytic gradients: ∂L/∂node for every node, from the kernels.

`Trace` evaluates one configuration. The numeric gradient of a node perturbs
that node's value and re-evaluates only its descendants, so intermediates such
as m and v are checked as total derivatives (P2.3). The TUI, the CLI and the
tests all go through `Trace`; walkthrough modules in nnkit/walkthroughs/
register themselves (nnkit imports them) and `registry()` lists them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ._table import format_table, html_table
from .gradcheck import (DEFAULT_STEP, GradcheckReport, TensorCheck, check_tensor,
                        sample_indices, tolerances)

LOSS_ROLE = "loss"
# Elements checked per tensor by finite differences (a seeded sample beyond
# this): the default of Trace.check, `nnkit gradcheck` and the TUI.
MAX_ELEMENTS = 256
LEAF_ROLES = ("input", "param", "constant")


@dataclass(frozen=True)
class Node:
    key: str                      # identifier used in code: "Yhat", "h[2]"
    formula: str                  # Unicode math shown to the user: "Ŷ = (Y − m)/√(v + ε)"
    parents: tuple[str, ...] = ()
    fn: Callable[..., Any] | None = None   # fn(*parent_values) -> array; None for leaves
    role: str = "intermediate"    # input | param | constant | intermediate | loss
    label: str = ""               # display name ("Ŷ"); defaults to key
    time: int | None = None       # step of an unrolled recurrence
    chain: str | None = None      # e.g. "forward" / "backward" chain of a BiRNN
    note: str = ""                # one line of explanation

    @property
    def name(self) -> str:
        return self.label or self.key

    @property
    def is_leaf(self) -> bool:
        return self.fn is None

    @property
    def checked(self) -> bool:
        """Constants (a fixed upstream gradient G) are not differentiated."""
        return self.role != "constant"


@dataclass(frozen=True)
class Term:
    """One named term of a gradient the derivation writes as a sum (P2.3's
    ∂L/∂Y = ∂L/∂Ŷ/√(v+ε) + ∂L/∂v·2(Y−m)/B + ∂L/∂m/B), declared by a
    walkthrough in `terms` next to its nodes, so `nnkit check` can say
    "missing the term ...". `fn` takes its arguments by name as a student's
    formula does (nnkit.derivation_check): node values, true gradients
    d<key>, configuration values, and t, h_prev, dh_next, ... for a step."""
    label: str
    fn: Callable


@dataclass(frozen=True)
class Param:
    """A configuration knob of a walkthrough (CLI flag, TUI form field)."""
    name: str
    default: Any
    help: str = ""
    choices: tuple | None = None
    minimum: float | None = None
    maximum: float | None = None

    def parse(self, raw) -> Any:
        """Convert and validate a value; raises ValueError naming the parameter."""
        kind = type(self.default)
        try:
            if kind is bool:
                if isinstance(raw, str):
                    if raw.lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                        raise ValueError
                    value = raw.lower() in ("1", "true", "yes", "on")
                else:
                    value = bool(raw)
            elif kind is int:
                if isinstance(raw, float) and not raw.is_integer():
                    raise ValueError
                value = int(raw)
            elif kind is float:
                value = float(raw)
                if not np.isfinite(value):
                    raise ValueError
            else:
                value = str(raw)
        except (TypeError, ValueError):
            raise ValueError(f"{self.name}: expected {kind.__name__}, got {raw!r}") from None
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"{self.name}: expected one of {list(self.choices)}, got {value!r}")
        if self.minimum is not None and value < self.minimum:
            raise ValueError(f"{self.name}: expected >= {self.minimum}, got {value}")
        if self.maximum is not None and value > self.maximum:
            raise ValueError(f"{self.name}: expected <= {self.maximum}, got {value}")
        return value


class Walkthrough:
    """Base class: subclasses fill in the class attributes and three methods."""
    name: str = ""           # registry key, CLI/TUI name: "bn-relu"
    title: str = ""
    problem: str = ""        # "P2"
    description: str = ""
    params: tuple[Param, ...] = ()
    # formula name ("dY", "dh") -> the named terms its gradient is the sum of
    terms: dict[str, tuple[Term, ...]] = {}

    def graph(self, cfg: Mapping) -> list[Node]:
        raise NotImplementedError

    def leaves(self, cfg: Mapping, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Values of every leaf node, in cfg["dtype"]."""
        raise NotImplementedError

    def analytic(self, values: Mapping[str, np.ndarray], cfg: Mapping) -> dict[str, np.ndarray]:
        """∂L/∂node for every checked node, computed by the kernels."""
        raise NotImplementedError

    def forward(self, leaves: Mapping[str, np.ndarray], cfg: Mapping) -> dict[str, np.ndarray]:
        """The library's own forward values (the kernels' outputs) by node key,
        from the leaves: what a user's code computes, shown in place of the
        node functions' NumPy values (which can differ at the edges: NumPy's
        mean of a constant column of 7 is not always exact, the kernels' is).
        The node functions stay the formulas, and finite differences
        re-evaluate them. Default: none (every node from its function)."""
        return {}

    def insights(self, trace: "Trace", key: str) -> list[str]:
        """Optional teaching lines for a node (measured vs predicted values)."""
        return []

    def views(self, trace: "Trace", key: str) -> dict[str, np.ndarray]:
        """Optional extra arrays to show beside a node (not graph nodes, not
        checked): e.g. Cov(Ŷ) next to Ŷ, the eigenvalues of Σ next to Σ."""
        return {}

    def check_configs(self) -> list[dict]:
        """Configurations `nnkit gradcheck` runs (several shapes, edge cases)."""
        return [{}]

    def config(self, **overrides) -> dict:
        known = {p.name: p for p in self.params}
        for k in overrides:
            if k not in known:
                raise ValueError(f"{k}: not a parameter of walkthrough {self.name!r} "
                                 f"(expected one of {sorted(known)})")
        cfg = {p.name: p.default for p in self.params}
        for k, raw in overrides.items():
            cfg[k] = known[k].parse(raw)
        self.validate(cfg)
        return cfg

    def validate(self, cfg: dict) -> None:
        """Cross-parameter checks; raise ValueError naming the parameter."""


_REGISTRY: dict[str, Walkthrough] = {}


def register(cls):
    """Class decorator: make a walkthrough visible to the CLI, the TUI and the tests."""
    inst = cls()
    if not inst.name:
        raise ValueError(f"{cls.__name__}: a walkthrough needs a name")
    _REGISTRY[inst.name] = inst
    return cls


def registry() -> dict[str, Walkthrough]:
    """Every registered walkthrough by name (nnkit.walkthroughs registers
    nnkit's own when nnkit is imported; a user's @register adds to them)."""
    return dict(_REGISTRY)


def get(name: str) -> Walkthrough:
    reg = registry()
    if name not in reg:
        raise ValueError(f"walkthrough: expected one of {sorted(reg)}, got {name!r}")
    return reg[name]


def time_group(node: Node) -> int | str:
    """The run a node belongs to in an unrolled recurrence: its time step, else
    "weights" (a leaf without a time) or "loss" (what the steps feed)."""
    if node.time is not None:
        return node.time
    return "weights" if node.is_leaf else "loss"


def grouped_by_time(nodes: list[Node]) -> list[Node]:
    """An unrolled recurrence's nodes in an order that reads by time step: the
    weights (leaves without a time) first, then t = 0, 1, 2, ... (each step's
    input, pre-activation, state and constant together), the loss last.

    A topological sort (every node after its parents, so evaluation stays
    valid): among the nodes ready it takes one of the same time as the node
    just taken, else the earliest time, ties in the graph's order. A BiRNN's
    backward chain becomes ready only after the forward sweep; it then runs
    t = T .. 1, each state with the output it completes. Graphs without
    times are returned as they are. O(n²) in the nodes: walkthroughs are small."""
    if all(n.time is None for n in nodes):
        return nodes

    def rank(i: int) -> float:
        g = time_group(nodes[i])
        return {"weights": -1, "loss": float("inf")}.get(g, g)

    index = {n.key: i for i, n in enumerate(nodes)}
    waiting = [len(set(n.parents)) for n in nodes]
    children: list[list[int]] = [[] for _ in nodes]
    for i, n in enumerate(nodes):
        for p in set(n.parents):
            children[index[p]].append(i)
    ready = [i for i, w in enumerate(waiting) if w == 0]
    order: list[Node] = []
    current = None
    while ready:
        same = [i for i in ready if rank(i) == current]
        i = min(same) if same else min(ready, key=lambda j: (rank(j), j))
        ready.remove(i)
        order.append(nodes[i])
        current = rank(i)
        for c in children[i]:
            waiting[c] -= 1
            if waiting[c] == 0:
                ready.append(c)
    return order


class Trace:
    """One evaluated configuration of a walkthrough."""

    def __init__(self, walkthrough: Walkthrough | str, **config):
        self.walkthrough = get(walkthrough) if isinstance(walkthrough, str) else walkthrough
        self.cfg = self.walkthrough.config(**config)
        self.nodes: list[Node] = self.walkthrough.graph(self.cfg)
        self.by_key = {n.key: n for n in self.nodes}
        self._check_graph()
        self.nodes = grouped_by_time(self.nodes)
        self.loss_key = self.nodes[-1].key
        self._children = {n.key: [] for n in self.nodes}
        for n in self.nodes:
            for p in n.parents:
                self._children[p].append(n.key)
        self.values: dict[str, np.ndarray] = {}
        self._grads: dict[str, np.ndarray] | None = None
        self.reports: dict[str, TensorCheck] = {}
        self.resample(self.cfg.get("seed", 0))

    # -- structure
    def _check_graph(self) -> None:
        seen = set()
        for n in self.nodes:
            for p in n.parents:
                if p not in seen:
                    raise ValueError(f"graph: node {n.key!r} reads {p!r} before it is defined")
            if (n.fn is None) != (n.role in LEAF_ROLES):
                raise ValueError(f"graph: node {n.key!r} role {n.role!r} does not match "
                                 f"{'no ' if n.fn is None else ''}function")
            seen.add(n.key)
        if self.nodes[-1].role != LOSS_ROLE:
            raise ValueError("graph: the last node must be the scalar loss")

    def node(self, key: str) -> Node:
        return self.by_key[key]

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.cfg.get("dtype", "float64"))

    def forward_steps(self) -> list[Node]:
        """Nodes in evaluation order (leaves first as they appear)."""
        return list(self.nodes)

    def backward_steps(self) -> list[Node]:
        """Checked nodes from the loss back to the leaves."""
        return [n for n in reversed(self.nodes) if n.checked]

    def descendants(self, key: str) -> list[str]:
        """Keys downstream of `key`, in topological order (key excluded)."""
        marked = {key}
        out = []
        for n in self.nodes:
            if n.key != key and any(p in marked for p in n.parents):
                marked.add(n.key)
                out.append(n.key)
        return out

    # -- evaluation
    def resample(self, seed: int | None = None) -> None:
        """Draw new leaves (seeded) and recompute every node."""
        if seed is not None:
            self.cfg["seed"] = seed
        rng = np.random.default_rng(self.cfg.get("seed", 0))
        leaves = self.walkthrough.leaves(self.cfg, rng)
        missing = [n.key for n in self.nodes if n.is_leaf and n.key not in leaves]
        if missing:
            raise ValueError(f"leaves: walkthrough {self.walkthrough.name!r} gave no value for {missing}")
        self.values = {k: np.asarray(v) for k, v in leaves.items()}
        with np.errstate(all="ignore"):    # eps = 0 is allowed to produce inf/nan
            library = self.walkthrough.forward(self.values, self.cfg)
        for n in self.nodes:
            if not n.is_leaf:
                self.values[n.key] = (np.asarray(library[n.key]) if n.key in library
                                      else self._eval(n, self.values))
        self._grads = None
        self.reports = {}

    @staticmethod
    def _eval(node: Node, values: Mapping[str, Any]):
        with np.errstate(all="ignore"):    # eps = 0 is allowed to produce inf/nan
            return node.fn(*(values[p] for p in node.parents))

    def value(self, key: str):
        return self.values[key]

    @property
    def loss(self) -> float:
        return float(self.values[self.loss_key])

    @property
    def grads(self) -> dict[str, np.ndarray]:
        """∂L/∂node for every checked node (analytic, from the kernels)."""
        if self._grads is None:
            with np.errstate(all="ignore"):
                self._grads = self.walkthrough.analytic(self.values, self.cfg)
            absent = [n.key for n in self.nodes if n.checked and n.key not in self._grads]
            if absent:
                raise ValueError(f"analytic: walkthrough {self.walkthrough.name!r} "
                                 f"gave no gradient for {absent}")
        return self._grads

    def grad(self, key: str) -> np.ndarray:
        return self.grads[key]

    def loss_with(self, key: str, value: np.ndarray, base: Mapping | None = None) -> float:
        """L with node `key` replaced by `value`; only its descendants are recomputed."""
        vals = dict(base if base is not None else self.values)
        vals[key] = value
        for d in self.descendants(key):
            vals[d] = self._eval(self.by_key[d], vals)
        return float(vals[self.loss_key])

    # -- checking
    @property
    def title(self) -> str:
        """'bn-relu B=4 N=3 ...': the walkthrough and its configuration, one line."""
        return f"{self.walkthrough.name} " + " ".join(f"{k}={v}" for k, v in self.cfg.items())

    def checked_count(self, key: str, max_elements: int | None = MAX_ELEMENTS) -> int:
        """How many elements of node `key` a check perturbs (a sample of large tensors)."""
        size = int(np.size(self.values[key]))
        return size if max_elements is None else min(size, max_elements)

    def check(self, key: str, *, h: float = DEFAULT_STEP,
              max_elements: int | None = MAX_ELEMENTS,
              cancelled: Callable[[], bool] | None = None,
              strict: bool = False) -> TensorCheck:
        """Analytic ∂L/∂key against central differences (float64), perturbing only `key`.

        Tensors larger than max_elements are checked on a seeded sample. The
        same check_tensor as nk.gradcheck: kinks are classified, and the
        vacuity scale uses the loss node's inputs as "out" and their analytic
        gradients as G (for the graphs here those inputs feed only the loss,
        or their total gradient is the same size as the partial one; the scale
        is an order of magnitude, not a bound). strict: a vacuous check fails.
        """
        node = self.by_key[key]
        if not node.checked:
            raise ValueError(f"key: node {key!r} is a constant and has no gradient to check")
        base = {k: _to64(v) for k, v in self.values.items()}
        x = np.array(base[key], dtype=np.float64, copy=True)
        desc = self.descendants(key)
        vals = dict(base)
        vals[key] = x
        outs = self._loss_inputs()
        out_keys = [k for k in outs if k == key or k in desc]

        def loss():
            for d in desc:
                vals[d] = self._eval(self.by_key[d], vals)
            if not out_keys:
                return float(vals[self.loss_key])
            return float(vals[self.loss_key]), np.concatenate(
                [np.ravel(np.asarray(vals[k], np.float64)) for k in outs])

        upstream_rms = None
        if out_keys and key != self.loss_key:
            g = np.concatenate([np.ravel(np.asarray(self.grad(k), np.float64)) for k in outs])
            upstream_rms = float(np.sqrt(np.mean(g * g))) if g.size else None
        idx = sample_indices(x.shape, max_elements, self.cfg.get("seed", 0))
        report = check_tensor(node.name, np.asarray(self.grad(key)), loss, x, h=h,
                              indices=idx, cancelled=cancelled, upstream_rms=upstream_rms,
                              strict=strict, **tolerances(self.dtype))
        self.reports[key] = report
        return report

    def _loss_inputs(self) -> list[str]:
        """The loss node's checked parents: the "output" whose sensitivity
        sets a check's vacuity scale."""
        return [p for p in self.by_key[self.loss_key].parents if self.by_key[p].checked]

    def check_all(self, *, h: float = DEFAULT_STEP, max_elements: int | None = MAX_ELEMENTS,
                  progress: Callable[[int, int, str], None] | None = None,
                  cancelled: Callable[[], bool] | None = None,
                  strict: bool = False) -> GradcheckReport:
        steps = self.backward_steps()
        checks = []
        for i, n in enumerate(steps):
            if progress is not None:
                progress(i, len(steps), n.key)
            checks.append(self.check(n.key, h=h, max_elements=max_elements,
                                     cancelled=cancelled, strict=strict))
        if progress is not None:
            progress(len(steps), len(steps), "")
        return GradcheckReport(checks, title=self.title)

    def _cells(self) -> tuple:
        """(headers, rows, align): one row per node, its value's mean and std,
        ‖∂L/∂node‖ (Frobenius; blank for constants) and its check where one
        has run (check/check_all); the formula last (free text)."""
        rows = []
        for n in self.nodes:
            st = stats(self.values[n.key])
            shape = np.shape(self.values[n.key])
            g = (f"{np.linalg.norm(np.asarray(self.grad(n.key), np.float64)):.4g}"
                 if n.checked else "")
            rep = self.reports.get(n.key)
            rows.append((n.name, "×".join(map(str, shape)) or "scalar", f"{st['mean']:.4g}",
                         f"{st['std']:.4g}", g, "" if rep is None else rep.verdict,
                         "" if rep is None else f"{rep.max_rel_err:.2e}", n.formula))
        return (("node", "shape", "mean", "std", "‖∂L/∂node‖", "check", "max rel err",
                 "formula"), rows, "llrrrlrl")

    def table(self) -> str:
        """Every node as a text table under the trace's title."""
        return format_table(*self._cells(), title=self.title)

    def _repr_html_(self) -> str:
        """The table in Jupyter."""
        return html_table(*self._cells(), title=self.title)

    def insights(self, key: str) -> list[str]:
        return self.walkthrough.insights(self, key)

    def views(self, key: str) -> dict[str, np.ndarray]:
        return self.walkthrough.views(self, key)

    def arrays(self) -> dict[str, np.ndarray]:
        """Every value and gradient, for export: 'X', 'grad_X', ..."""
        out = {k: np.asarray(v) for k, v in self.values.items()}
        out.update({f"grad_{k}": np.asarray(g) for k, g in self.grads.items()})
        return out


def _to64(v):
    a = np.asarray(v)
    return a.astype(np.float64) if np.issubdtype(a.dtype, np.floating) else a


def stats(a: np.ndarray) -> dict[str, float]:
    """Shape-independent summary shown beside a tensor (NaN-aware)."""
    a = np.asarray(a, dtype=np.float64)
    finite = a[np.isfinite(a)]
    if finite.size == 0:
        return dict(min=np.nan, max=np.nan, mean=np.nan, std=np.nan,
                    nonfinite=int(a.size))
    return dict(min=float(finite.min()), max=float(finite.max()),
                mean=float(finite.mean()), std=float(finite.std()),
                nonfinite=int(a.size - finite.size))
