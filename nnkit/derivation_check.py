"""Check a student's own derivation: their formula for each gradient of a
walkthrough, judged node by node, with what is wrong in it.

A derivation file is plain Python (NumPy only): one function per gradient,
named ``d`` + the node's key (``dgamma``, ``dv``, ``dY``), or ``d`` + the
name of a time-indexed family (``dh`` for h[1], h[2], ...; called once per
step with ``t``). Arguments are bound by name from:
  * node values by key (``Y``, ``m``, ``v``, ``Yhat``); a time-indexed family
    by its name, indexed by step (``h[t - 1]``, ``x[t]``);
  * the *true* gradient of any node as ``d`` + key (``dYhat``, ``dZ``; ``dh``
    indexed by step: a step that does not exist is 0), so each formula is
    judged on its own;
  * configuration values (``eps``, ``B``, ``N``, ``M``, ``T``; all of them as
    ``cfg``), and in a step function ``t`` and the shorthands ``h_t``,
    ``h_prev``, ``h_next``, ``dh_next``, ... (the value or true gradient at t,
    t − 1, t + 1).
Node values win over configuration values of the same name.

Each formula runs on the walkthrough's own check configurations (float64)
and is compared with the kernels' analytic gradient of that node (all
elements) and with its finite-difference total derivative (what
``nnkit gradcheck`` uses, on a sample of elements). A failing formula gets a
diagnosis found by testing hypotheses numerically, never by reading its code:
a constant factor, a transposed result, a missing sum or a wrong shape,
right at some configurations only, or (where the walkthrough declares the
gradient as a sum of named terms) a missing, extra or sign-flipped term.
Then the formulas run chained, each fed the student's own upstream results,
and the report names the first node where the chain leaves the truth.

A file is run in a child process (nnkit/_derivation_worker.py) with a time
limit per call; functions passed directly (a dict or a module, as in a
notebook) run in this process.
"""
from __future__ import annotations

import json
import math
import os
import pickle
import re
import select
import struct
import subprocess
import sys
import time
import types
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from . import trace as _trace
from ._derivation_worker import Steps, call as _call_in_process, signature, tag
from ._table import format_table, html_table
from .trace import Term
from .gradcheck import sample_indices

TIMEOUT = 5.0          # seconds per formula call in the child process
LOAD_TIMEOUT = 30.0    # importing the student's file (NumPy's import included)
# A right formula in float64 agrees with the kernels' float64 gradient to
# ~1e-13 whatever its algebraic form; 1e-7 of the gradient's size leaves room
# for a badly conditioned form and still fails any real mistake.
RTOL = 1e-7
# elements of each node compared with finite differences per configuration
NUMERIC_ELEMENTS = 32
_FAMILY = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\[(-?\d+)\]$")


class UsageError(ValueError):
    """The file or the request cannot be checked (exit 2): a syntax error, an
    unknown walkthrough, a function named for a node that does not exist."""


# ------------------------------------------------------------------ names
def split_key(key: str) -> tuple[str, int | None]:
    """"h[2]" -> ("h", 2); "Yhat" -> ("Yhat", None)."""
    m = _FAMILY.match(key)
    return (m.group(1), int(m.group(2))) if m else (key, None)


def formula_keys(tr: _trace.Trace) -> dict[str, list[str]]:
    """Formula name -> node keys it gives the gradient of, in backward order
    (the loss and constants have none)."""
    out: dict[str, list[str]] = {}
    for n in tr.backward_steps():
        if n.key == tr.loss_key:
            continue
        fam, _ = split_key(n.key)
        out.setdefault("d" + fam, []).append(n.key)
    return out


class _Names:
    """What a formula's arguments are bound to, for one trace and one set of
    gradients (the truth, or the chain's)."""

    def __init__(self, tr: _trace.Trace, grads: Mapping[str, np.ndarray]):
        self.tr, self.grads = tr, grads
        self.values = {k: _f64(v) for k, v in tr.values.items()}
        self.families: dict[str, dict[int, str]] = {}
        for k in tr.values:
            fam, t = split_key(k)
            if t is not None:
                self.families.setdefault(fam, {})[t] = k

    def available(self, t: int | None = None) -> list[str]:
        plain = [k for k in self.values if split_key(k)[1] is None]
        fams = list(self.families)
        names = plain + fams + ["d" + k for k in plain + fams
                                if k != self.tr.loss_key and k in self._checked_names()]
        names += [k for k in self.tr.cfg if k not in names] + ["cfg"]
        if t is not None:
            names = ["t"] + names + [f"{p}{f}_{s}" for f in fams for p in ("", "d")
                                     for s in ("t", "prev", "next")]
        return names

    def _checked_names(self) -> set[str]:
        return {split_key(n.key)[0] for n in self.tr.nodes if n.checked}

    def _grad_steps(self, fam: str) -> Steps:
        keys = self.families[fam]
        shape = np.shape(self.values[next(iter(keys.values()))])
        return Steps({t: _f64(self.grads[k]) for t, k in keys.items() if k in self.grads},
                     zeros_shape=shape)

    def get(self, name: str, t: int | None = None):
        """The value bound to `name`; KeyError when nothing is."""
        if name == "t" and t is not None:
            return t
        if name in self.values:
            return self.values[name]
        if name in self.families:
            return Steps({s: self.values[k] for s, k in self.families[name].items()})
        if name.startswith("d") and len(name) > 1:
            rest = name[1:]
            if rest in self.values and rest in self.grads:
                return _f64(self.grads[rest])
            if rest in self.families:
                return self._grad_steps(rest)
        if t is not None:
            for suffix, dt in (("_t", 0), ("_prev", -1), ("_next", 1)):
                if name.endswith(suffix):
                    base = name[:-len(suffix)]
                    if base in self.families:
                        return self.get(base)[t + dt]
                    if base.startswith("d") and base[1:] in self.families:
                        return self._grad_steps(base[1:])[t + dt]
        if name in self.tr.cfg:
            return self.tr.cfg[name]
        if name == "cfg":
            return dict(self.tr.cfg)
        raise KeyError(name)

    def kwargs(self, params: list[str], var_kw: bool, t: int | None, optional=()) -> dict:
        """The arguments of a formula: each parameter bound by name (one with
        a default keeps it when nothing of that name exists)."""
        names = self.available(t) if var_kw else params
        out = {}
        for p in names:
            try:
                value = self.get(p, t)
            except KeyError as e:
                if (var_kw and p not in params) or p in optional:
                    continue
                raise _Unbound(p, e) from None
            out[p] = value
        return out


def _copied(value):
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, Steps):
        return Steps({t: np.array(a, copy=True) for t, a in value.items()}, value._zeros)
    if isinstance(value, dict):
        return dict(value)
    return value


class _Unbound(Exception):
    def __init__(self, name, err):
        super().__init__(name)
        self.name, self.err = name, err


def _f64(a):
    a = np.asarray(a)
    return a.astype(np.float64) if a.dtype.kind == "f" and a.dtype != np.float64 else a


# ---------------------------------------------------------- running formulas
class _InProcess:
    """Formulas given as functions (a dict or a module): called here."""

    def __init__(self, functions: Mapping[str, Callable], walkthrough: str | None):
        self.functions = dict(functions)
        self.walkthrough = walkthrough
        self.signatures = {n: signature(f) for n, f in self.functions.items()}

    def call(self, name: str, kwargs: dict):
        # the caller's arrays are the checker's own: a formula writing into an
        # argument must not change what later formulas are fed and judged against
        return _call_in_process(self.functions[name],
                                {k: _copied(v) for k, v in kwargs.items()})

    def close(self) -> None:
        pass


class _Child:
    """Formulas from a file, called in a child process with a time limit."""

    WORKER = os.path.join(os.path.dirname(__file__), "_derivation_worker.py")

    def __init__(self, path: str, timeout: float):
        self.path, self.timeout = path, timeout
        self.proc: subprocess.Popen | None = None
        hello = self._start()
        if not hello.get("ok"):
            line = hello.get("line")
            raise UsageError(f"{path}" + (f", line {line}" if line else "") + ": "
                             + hello.get("error", "could not be loaded"))
        self.walkthrough = hello.get("walkthrough")
        self.signatures = {n: (p, n in hello["var_kw"], hello["optional"].get(n, []))
                           for n, p in hello["functions"].items()}

    def _start(self) -> dict:
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        self.proc = subprocess.Popen([sys.executable, self.WORKER, self.path],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, env=env)
        hello = self._recv(LOAD_TIMEOUT)
        if isinstance(hello, str):
            self.close()
            raise UsageError(f"{self.path}: could not be loaded ({hello})")
        return hello

    def _recv(self, timeout: float):
        """A message, or a string saying why none came."""
        deadline = time.monotonic() + timeout
        head = self._read(8, deadline)
        if isinstance(head, str):
            return head
        (n,) = struct.unpack("<Q", head)
        body = self._read(n, deadline)
        return body if isinstance(body, str) else pickle.loads(body)

    def _read(self, n: int, deadline: float):
        fd = self.proc.stdout.fileno()
        chunks, got = [], 0
        while got < n:
            left = deadline - time.monotonic()
            if left <= 0:
                return f"timed out after {self.timeout:g} s"
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                return f"timed out after {self.timeout:g} s"
            chunk = os.read(fd, n - got)
            if not chunk:
                code = self.proc.wait()
                how = (f"killed by signal {-code}" if code < 0 else f"exit code {code}")
                return f"the process running it ended ({how}: os._exit, a crash or sys.exit)"
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def call(self, name: str, kwargs: dict):
        data = pickle.dumps((name, {k: tag(v) for k, v in kwargs.items()}),
                            protocol=pickle.HIGHEST_PROTOCOL)
        try:
            self.proc.stdin.write(struct.pack("<Q", len(data)) + data)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self._restart()
            return ("error", "the process running it ended")
        answer = self._recv(self.timeout)
        if isinstance(answer, str):        # timed out or died: a fresh child for the rest
            self._restart()
            return ("error", answer)
        return answer

    def _restart(self) -> None:
        self.close()
        self._start()

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc is not None:
            for f in (self.proc.stdin, self.proc.stdout):
                try:
                    f.close()
                except OSError:
                    pass


def _as_array(result) -> tuple[np.ndarray | None, str | None]:
    """A formula's result as float64, or why it is not a gradient."""
    if result is None:
        return None, "returned None (a missing return?)"
    if isinstance(result, str):
        return None, (result if result.startswith("<unpicklable")
                      else f"returned a string {result[:40]!r}")
    try:
        a = np.asarray(result)
    except Exception:                       # noqa: BLE001  (ragged lists and the like)
        return None, f"returned a {type(result).__name__} that is not an array"
    if a.dtype.kind == "c":
        return None, "returned complex values"
    if a.dtype.kind not in "biuf":
        return None, f"returned a {type(result).__name__} of dtype {a.dtype}, not numbers"
    return a.astype(np.float64), None


# ---------------------------------------------------------------- results
@dataclass
class _Case:
    """One formula on one node of one configuration."""
    config: int
    key: str
    ok: bool
    rel_err: float | None = None
    worst: tuple = ()
    yours: float = math.nan
    true: float = math.nan
    numeric_rel_err: float | None = None
    problem: str | None = None          # an error, a bad return, a wrong shape
    student: np.ndarray | None = None
    truth: np.ndarray | None = None


@dataclass
class FormulaResult:
    """The verdict on one formula (PASS, FAIL or TODO) with its diagnosis."""
    name: str
    verdict: str
    max_rel_err: float | None = None
    diagnosis: str | None = None
    nodes: list[str] = field(default_factory=list)
    shape: str = ""
    worst: dict | None = None
    numeric_max_rel_err: float | None = None
    cases: int = 0
    chain: str | None = None             # PASS / FAIL fed its own upstream results

    def to_dict(self) -> dict:
        return dict(name=self.name, verdict=self.verdict,
                    max_rel_err=_num(self.max_rel_err), diagnosis=self.diagnosis,
                    nodes=self.nodes, shape=self.shape, worst=self.worst,
                    numeric_max_rel_err=_num(self.numeric_max_rel_err), cases=self.cases,
                    chain=self.chain)


def _num(x):
    if x is None:
        return None
    return float(x) if math.isfinite(x) else str(x)


@dataclass
class DerivationReport:
    """Every formula's verdict, the chained run, and how to print them."""
    walkthrough: str
    source: str
    formulas: list[FormulaResult]
    chain: dict
    configs: list[dict]
    strict: bool = False
    # per configuration, node key -> the student's gradient (what the app shows
    # beside the analytic and numeric ones); a key is absent where the formula
    # is TODO, raised or returned something that is not an array
    student: list[dict] = field(default_factory=list, repr=False)

    def verdict_of(self, key: str) -> FormulaResult | None:
        """The result of the formula that gives node `key`'s gradient."""
        return next((f for f in self.formulas if key in f.nodes), None)

    @property
    def derived(self) -> list[FormulaResult]:
        return [f for f in self.formulas if f.verdict != "TODO"]

    @property
    def passed(self) -> bool:
        """Every derived formula passes (TODO allowed unless strict)."""
        if self.strict and any(f.verdict == "TODO" for f in self.formulas):
            return False
        return all(f.verdict == "PASS" for f in self.derived)

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    def to_dict(self) -> dict:
        return dict(walkthrough=self.walkthrough, source=self.source,
                    formulas=[f.to_dict() for f in self.formulas],
                    passed=sum(f.verdict == "PASS" for f in self.formulas),
                    failed=sum(f.verdict == "FAIL" for f in self.formulas),
                    todo=sum(f.verdict == "TODO" for f in self.formulas),
                    total=len(self.formulas), ok=self.passed, strict=self.strict,
                    chain=self.chain, configs=self.configs)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def _cells(self) -> tuple:
        """(headers, rows) of the formulas' table: text and HTML alike."""
        rows = []
        for f in self.formulas:
            err = "" if f.max_rel_err is None else f"{f.max_rel_err:.2e}"
            where = ""
            if f.worst and f.verdict == "FAIL":
                where = f"{f.worst['node']} {tuple(f.worst['index'])}"
            rows.append([f.name, f.verdict, err, where, f.diagnosis or ""])
        return ["formula", "verdict", "max rel err", "worst", "diagnosis"], rows

    def _head(self) -> str:
        return (f"{self.walkthrough}: {self.source} — {len(self.configs)} configurations, "
                f"float64, against the kernels' gradients and finite differences")

    def _counts(self) -> str:
        d = self.to_dict()
        return (f"{d['passed']} passed, {d['failed']} failed, {d['todo']} TODO of "
                f"{d['total']}" + (" (strict: TODO fails)" if self.strict else ""))

    def table(self) -> str:
        lines = [self._head(), format_table(*self._cells()), "", self._chain_line(),
                 self._counts()]
        return "\n".join(line for line in lines if line is not None)

    def _chain_line(self) -> str:
        c = self.chain
        if not c.get("run"):
            return "chain: nothing derived to chain"
        if c.get("first_wrong") is None:
            return (f"chain: your formulas fed their own results agree with the truth "
                    f"({', '.join(c['run'])})")
        s = (f"chain: leaves the truth at {c['first_wrong']} (node {c['first_wrong_node']})")
        if c.get("spoiled"):
            s += "; it spoils " + ", ".join(c["spoiled"]) + " downstream (right on their own)"
        return s

    def __str__(self) -> str:
        return self.table()

    def _repr_html_(self) -> str:
        """The table in Jupyter, the chain and the counts under it."""
        return html_table(*self._cells(), title=self._head(),
                          notes=[self._chain_line(), self._counts()])


# ------------------------------------------------------------------ checking
def check_derivation(source, walkthrough: str | None = None, *, timeout: float = TIMEOUT,
                     strict: bool = False, configs: list[dict] | None = None,
                     **config) -> DerivationReport:
    """Check a derivation: `source` a file path, a module or a dict of functions.

    walkthrough: its name (default: the file's WALKTHROUGH). config: values set
    on every check configuration (B=7, eps=0.1). configs: the configurations
    to use instead of the walkthrough's own. A file's formulas run in a child
    process with `timeout` seconds per call. Raises UsageError for what cannot
    be checked (unknown walkthrough, a syntax error, a function named for a
    node that does not exist)."""
    runner, label = _runner(source, timeout)
    try:
        name = walkthrough or runner.walkthrough
        if not name:
            raise UsageError("walkthrough: name it (WALKTHROUGH = \"bn-relu\" in the file, "
                             "or -w NAME); expected one of "
                             + ", ".join(sorted(_trace.registry())))
        try:
            w = _trace.get(name)
        except ValueError as e:
            raise UsageError(str(e)) from None
        traces = _traces(w, configs, config)
        keys = formula_keys(traces[0])
        unknown = sorted(n for n in runner.signatures if n not in keys and n.startswith("d"))
        if unknown:
            raise UsageError(f"{', '.join(unknown)}: not a gradient of walkthrough {w.name!r}"
                             f" (expected d + a node's key: {', '.join(keys)}; helpers "
                             "start with an underscore)")
        results, cases = {}, {}
        for fname in keys:
            if fname not in runner.signatures:
                results[fname] = FormulaResult(fname, "TODO", diagnosis="not defined")
                continue
            cs, todo = _run_formula(runner, fname, traces)
            if todo:
                results[fname] = FormulaResult(fname, "TODO",
                                               diagnosis="raises NotImplementedError")
                continue
            cases[fname] = cs
            results[fname] = _judge(fname, cs, traces, getattr(w, "terms", {}))
        for fname, r in results.items():
            r.shape = _symbolic_shape(w, traces[0], keys[fname][0])
            r.nodes = keys[fname]
        chain = _chain(runner, traces, keys, results)
    finally:
        runner.close()
    student = [{} for _ in traces]
    for cs in cases.values():
        for c in cs:
            if c.student is not None:
                student[c.config][c.key] = c.student
    return DerivationReport(w.name, label, list(results.values()), chain,
                            [dict(t.cfg) for t in traces], strict, student)


def _runner(source, timeout):
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise UsageError(f"FILE: expected a derivation file, got {path!r} (no such file)")
        return _Child(path, timeout), path
    if isinstance(source, types.ModuleType):
        fns = {n: f for n, f in vars(source).items()
               if callable(f) and not n.startswith("_") and isinstance(f, types.FunctionType)
               and f.__module__ == source.__name__}
        return _InProcess(fns, getattr(source, "WALKTHROUGH", None)), source.__name__
    if isinstance(source, Mapping):
        fns = {n: f for n, f in source.items() if callable(f) and not n.startswith("_")}
        wt = source.get("WALKTHROUGH")
        return _InProcess(fns, wt if isinstance(wt, str) else None), "functions"
    raise TypeError(f"source: expected a file path, a module or a dict of functions, got "
                    f"{type(source).__name__}")


def _traces(w, configs, overrides) -> list[_trace.Trace]:
    base = configs if configs is not None else w.check_configs()
    out, seen = [], set()
    for cfg in base:
        cfg = {**cfg, **overrides, "dtype": "float64"}
        if "fused" in {p.name for p in w.params}:
            cfg.pop("fused", None)          # the same gradients either way
        try:
            tr = _trace.Trace(w, **cfg)
        except ValueError as e:
            raise UsageError(str(e)) from None
        ident = tuple(sorted(tr.cfg.items()))
        if ident not in seen:
            seen.add(ident)
            out.append(tr)
    return out


def _run_formula(runner, fname, traces):
    """Every case of one formula against the truth; todo when it still raises
    NotImplementedError. A timeout or a dead process ends the formula's run."""
    params, var_kw, optional = runner.signatures[fname]
    cases, todo, skipped = [], True, []
    for ci, tr in enumerate(traces):
        names = _Names(tr, tr.grads)
        for key in formula_keys(tr)[fname]:
            t = split_key(key)[1]
            try:
                kwargs = names.kwargs(params, var_kw, t, optional)
            except _Unbound as u:
                todo = False
                cases.append(_Case(ci, key, False, problem=(
                    f"argument {u.name!r} is not a node, a gradient or a configuration "
                    f"value here (available: {', '.join(names.available(t))})")))
                return cases, False
            answer = runner.call(fname, kwargs)
            if answer[0] == "todo":
                skipped.append((ci, key))
                continue
            todo = False
            if answer[0] == "error":
                cases.append(_Case(ci, key, False, problem=answer[1]))
                if "timed out" in answer[1] or "process" in answer[1]:
                    return cases, False
                continue
            cases.append(_compare(tr, key, answer[1]))
            cases[-1].config = ci
    if cases and skipped:       # NotImplementedError on some cases only: not a pass
        cases += [_Case(ci, key, False, problem="raises NotImplementedError here (a stub "
                        "on some configurations or steps)") for ci, key in skipped]
    return cases, todo and not cases


def _compare(tr: _trace.Trace, key: str, result) -> _Case:
    truth = np.asarray(tr.grad(key), np.float64)
    S, problem = _as_array(result)
    if problem:
        return _Case(0, key, False, problem=problem)
    if S.shape != truth.shape:
        return _Case(0, key, False, problem="shape", student=S, truth=truth)
    diff = np.abs(S - truth)
    if not np.all(np.isfinite(S)):
        bad = np.argwhere(~np.isfinite(S))[0]
        if not np.all(np.isfinite(truth)):
            same = np.array_equal(np.isfinite(S), np.isfinite(truth))
            if same:
                diff = np.where(np.isfinite(truth), diff, 0.0)
            else:
                return _Case(0, key, False, problem=f"non-finite value at {tuple(bad)}",
                             student=S, truth=truth)
        else:
            return _Case(0, key, False, problem=f"non-finite value ({S[tuple(bad)]}) at "
                         f"{tuple(int(i) for i in bad)}", student=S, truth=truth)
    scale = _scale(tr)
    peak = float(np.max(np.abs(truth[np.isfinite(truth)]), initial=0.0))
    worst = np.unravel_index(int(np.argmax(diff)), diff.shape) if diff.size else ()
    err = float(diff[worst]) if diff.size else 0.0
    # relative to the gradient's size, or (a gradient 0 by cancellation) to
    # 1e-3 of the trace's gradients
    rel = err / max(peak, 1e-3 * scale, 1e-300)
    ok = rel <= RTOL
    case = _Case(0, key, ok, rel, tuple(int(i) for i in worst),
                 float(S[worst]) if S.size else math.nan,
                 float(truth[worst]) if truth.size else math.nan,
                 student=S, truth=truth)
    case.numeric_rel_err = _numeric_error(tr, key, S)
    return case


def _scale(tr: _trace.Trace) -> float:
    """The size of the trace's gradients: below 1e-3 of it a true gradient is
    zero by cancellation (∂L/∂b under batch norm), and so must the student's be."""
    if not hasattr(tr, "_grad_scale"):
        peaks = [float(np.max(np.abs(g))) for g in map(np.asarray, tr.grads.values())
                 if g.size and np.all(np.isfinite(g))]
        tr._grad_scale = max(peaks, default=1.0)
    return tr._grad_scale


def _numeric_error(tr, key, S) -> float | None:
    """max |S − numeric| / max |numeric| over a sample of elements, the
    numeric gradient being the node's central difference (its total derivative)."""
    if not tr.node(key).checked:
        return None
    cache = tr.__dict__.setdefault("_numeric", {})
    if key not in cache:
        with np.errstate(all="ignore"):
            rep = tr.check(key, max_elements=NUMERIC_ELEMENTS)
        num = np.array(rep.numeric, np.float64)
        for k in rep.kinks:                   # one-sided slopes differ: no single number
            num[tuple(k.index)] = np.nan
        cache[key] = num
    num = cache[key]
    m = ~np.isnan(num)
    if not m.any():
        return None
    peak = float(np.max(np.abs(num[m])))
    return float(np.max(np.abs(S[m] - num[m]))) / max(peak, 1e-300) if peak else None


# ------------------------------------------------------------------ verdicts
_FACTORS = [
    ("×2", lambda c: 2.0), ("×−1 (the sign)", lambda c: -1.0), ("×½", lambda c: 0.5),
    ("×−2", lambda c: -2.0), ("×−½", lambda c: -0.5),
    ("×B", lambda c: c.get("B")), ("×1/B", lambda c: _inv(c.get("B"))),
    ("×B/(B−1) (the unbiased-variance slip: divide by B, not B − 1)",
     lambda c: c["B"] / (c["B"] - 1) if c.get("B", 1) > 1 else None),
    ("×(B−1)/B", lambda c: (c["B"] - 1) / c["B"] if c.get("B", 1) > 1 else None),
    ("×T", lambda c: c.get("T")), ("×1/T", lambda c: _inv(c.get("T"))),
]


def _inv(x):
    return None if not x else 1.0 / x


def _judge(fname, cases, traces, terms) -> FormulaResult:
    res = FormulaResult(fname, "PASS", cases=len(cases))
    finite = [c.rel_err for c in cases if c.rel_err is not None]
    res.max_rel_err = max(finite) if finite else None
    nums = [c.numeric_rel_err for c in cases if c.numeric_rel_err is not None]
    res.numeric_max_rel_err = max(nums) if nums else None
    failing = [c for c in cases if not c.ok]
    if not failing:
        return res
    res.verdict = "FAIL"
    worst = max(failing, key=lambda c: -1 if c.rel_err is None else c.rel_err)
    if worst.rel_err is not None:
        res.worst = dict(config=worst.config, node=worst.key, index=list(worst.worst),
                         yours=_num(worst.yours), true=_num(worst.true))
    res.diagnosis = _diagnose(fname, cases, failing, traces, terms)
    return res


def _close(a, b, scale) -> bool:
    return bool(np.max(np.abs(a - b), initial=0.0) <= 1e-6 * max(scale, 1e-300))


def _diagnose(fname, cases, failing, traces, terms) -> str:
    first = failing[0]
    if first.problem and first.problem != "shape":
        return first.problem
    shaped = [c for c in failing if c.problem == "shape"]
    if shaped:
        return _shape_diagnosis(shaped[0], traces)
    notes = []
    for test in (_factor, _transposed,
                 lambda f, tr: _term(f, tr, terms.get(fname, ()))):
        found = test(failing, traces)
        if found:
            notes.append(found)
            break
    partial = _where(cases, failing, traces)
    if partial:
        notes.append(partial)
    if not notes:
        c = max(failing, key=lambda c: c.rel_err or 0)
        notes.append(f"wrong values: {c.key}{list(c.worst)} is {c.yours:+.6g}, the true "
                     f"gradient {c.true:+.6g} (relative error {c.rel_err:.2g})")
    return "; ".join(notes)


def _factor(failing, traces) -> str | None:
    """S = k·T in every failing case, k one of _FACTORS in all of them (the
    intersection: at B = 2, ×2 and ×B/(B−1) coincide)."""
    if all(not np.any(c.student) for c in failing):
        return "all zeros (a term or a path to this node left out?)"
    common, ratios = None, []
    for c in failing:
        S, T = c.student, c.truth
        tt = float(np.vdot(T, T))
        if tt == 0:
            return None
        k = float(np.vdot(S, T)) / tt
        if not _close(S, k * T, float(np.max(np.abs(S)))):
            return None
        ratios.append(k)
        labels = _matching(k, traces[c.config].cfg, _FACTOR_TEXTS)
        common = labels if common is None else [x for x in common if x in labels]
    if common:
        return common[0].format(term="")
    return "proportional to the true gradient but scaled by " + ", ".join(
        f"×{r:.4g}" for r in sorted(set(round(r, 6) for r in ratios))[:4])


_FACTOR_TEXTS = [(None, "off by a factor {label}")]
_TERM_TEXTS = [(0.0, "missing the term {term}"),
               (2.0, "extra term {term} (counted twice)"),
               (-1.0, "the term {term} has the wrong sign"),
               (None, "the term {term} is off by a factor {label}")]


def _matching(k: float, cfg, texts) -> list[str]:
    """Every reading of a fitted factor k, most specific first (texts with a
    value first, then each of _FACTORS)."""
    out = []
    for value, text in texts:
        if value is not None:
            if abs(k - value) <= 1e-6:
                out.append(text)
            continue
        for label, f in _FACTORS:
            v = f(cfg)
            if v is not None and abs(k - v) <= 1e-6 * abs(v):
                out.append(text.replace("{label}", label))
    return out


def _transposed(failing, traces) -> str | None:
    for c in failing:
        S, T = c.student, c.truth
        if S.ndim != 2 or S.shape[0] != S.shape[1] or not _close(S.T, T, np.max(np.abs(T))):
            return None
    return "transposed: the right matrix, rows and columns swapped"


def _term(failing, traces, terms) -> str | None:
    """One declared term, and only it, off: S = T + (k − 1)·τ with k = 0
    (missing), 2 (counted twice), −1 (its sign) or a factor of _FACTORS, the
    same reading in every failing case."""
    for term in terms:
        common = None
        for c in failing:
            tr = traces[c.config]
            tau = _term_value(term, tr, c.key, c.truth.shape)
            if tau is None:
                common = []
                break
            scale = max(float(np.max(np.abs(c.truth))), float(np.max(np.abs(tau))))
            tt = float(np.vdot(tau, tau))
            if float(np.max(np.abs(tau))) <= 1e-9 * scale or tt == 0:
                continue               # this term is 0 here: it cannot explain a failure
            k = float(np.vdot(c.student - c.truth, tau)) / tt + 1.0
            if not _close(c.student, c.truth + (k - 1.0) * tau, scale):
                common = []
                break
            found = _matching(k, tr.cfg, _TERM_TEXTS)
            common = found if common is None else [x for x in common if x in found]
        if common:
            return common[0].format(term=term.label)
    return None


def _term_value(term: Term, tr, key, shape):
    t = split_key(key)[1]
    names = _Names(tr, tr.grads)
    try:
        params, var_kw, optional = signature(term.fn)
        with np.errstate(all="ignore"):
            val = np.asarray(term.fn(**names.kwargs(params, var_kw, t, optional)), np.float64)
        return np.broadcast_to(val, shape)
    except _Unbound:            # a step the term does not reach (G_0, h_{T+1}): 0
        return np.zeros(shape)
    except ValueError:
        return None


def _where(cases, failing, traces) -> str | None:
    """Right at some configurations or steps only."""
    bad_cfg = {c.config for c in failing}
    good_cfg = {c.config for c in cases} - bad_cfg
    steps_bad = {split_key(c.key)[1] for c in failing}
    steps_all = {split_key(c.key)[1] for c in cases if c.config in bad_cfg}
    if good_cfg:
        keys = _separating(traces, good_cfg, bad_cfg)
        return (f"right at {_describe(traces, good_cfg, keys)}, wrong at "
                f"{_describe(traces, bad_cfg, keys)}")
    if None not in steps_bad and steps_bad != steps_all:
        return "wrong at t = " + ", ".join(str(t) for t in sorted(steps_bad)) + " only"
    return None


def _separating(traces, good, bad) -> list[str]:
    """The parameters that tell the right configurations from the wrong ones:
    one whose values never meet on both sides if there is one (B, T first),
    else those that vary."""
    def values(idx, k):
        return {repr(traces[i].cfg[k]) for i in idx}
    names = [k for k in traces[0].cfg if k not in ("seed", "dtype")]
    names.sort(key=lambda k: k not in ("B", "T", "N", "M"))
    for k in names:
        if not values(good, k) & values(bad, k):
            return [k]
    varying = [k for k in names if len(values(good | bad, k)) > 1]
    return varying[:3]


def _describe(traces, idx, keys) -> str:
    """The configurations idx, by the parameters `keys`."""
    if not keys:
        return f"{len(idx)} configuration(s)"
    vals = sorted({", ".join(f"{k}={traces[i].cfg[k]}" for k in keys) for i in idx})
    return "; ".join(vals[:4]) + (" …" if len(vals) > 4 else "")


def _shape_diagnosis(c: _Case, traces) -> str:
    S, T = c.student, c.truth
    tr = traces[c.config]
    want = _symbolic_shape(tr.walkthrough, tr, c.key)
    msg = f"wrong shape: expected {want} = {T.shape}, got {S.shape}"
    if S.T.shape == T.shape and _close(S.T, T, np.max(np.abs(T))):
        return msg + ": transposed"
    for ax in range(S.ndim):
        red = S.sum(axis=ax)
        if red.shape == T.shape and _close(red, T, np.max(np.abs(T))):
            return msg + f": a missing sum over axis {ax}"
    if S.size == T.size:
        return msg + " (the right number of entries: a reshape or a transpose?)"
    if S.ndim == T.ndim:
        return msg + " (a reduction over the wrong axis?)"
    return msg


def _symbolic_shape(w, tr, key) -> str:
    """A node's shape in the walkthrough's parameter names, "(B, M)": an axis is
    the integer parameter equal to its size in every check configuration
    (its size where none is)."""
    shape = np.shape(tr.values[key])
    if not shape:
        return "scalar"
    fam, _ = split_key(key)
    probes = _probes(w)
    ints = [p.name for p in w.params if type(p.default) is int and p.name != "seed"]
    ints.sort(key=lambda k: k not in ("B", "M", "N", "T", "C", "K", "H"))
    names = []
    for i, n in enumerate(shape):
        found = None
        for p in ints:
            sizes = [(pr.cfg[p], _axis(pr, fam, i)) for pr in probes]
            sizes = [(c, a) for c, a in sizes if a is not None]
            if sizes and all(c == a for c, a in sizes) and len({c for c, _ in sizes}) > 1:
                found = p
                break
        names.append(found or str(n))
    return "(" + ", ".join(names) + (",)" if len(names) == 1 else ")")


def _axis(tr, fam, i):
    key = next((k for k in tr.values if split_key(k)[0] == fam), None)
    shape = np.shape(tr.values[key]) if key is not None else ()
    return shape[i] if i < len(shape) else None


_PROBES: dict[str, list] = {}


def _probes(w) -> list:
    """The walkthrough's check configurations as traces (float64), once."""
    if w.name not in _PROBES:
        out = []
        for cfg in w.check_configs():
            try:
                out.append(_trace.Trace(w, **{**cfg, "dtype": "float64"}))
            except ValueError:
                continue
        _PROBES[w.name] = out
    return _PROBES[w.name]


# -------------------------------------------------------------------- chain
def _chain(runner, traces, keys, results) -> dict:
    """The student's formulas as one backward pass: each fed the student's own
    results upstream (the truth where a formula is TODO or fails to run)."""
    derived = [f for f, r in results.items() if r.verdict != "TODO"]
    # a formula whose own run timed out or ended the process is not called again
    ended = {f for f, r in results.items()
             if r.diagnosis and ("timed out" in r.diagnosis or "process" in r.diagnosis)}
    out = dict(run=derived, first_wrong=None, first_wrong_node=None, spoiled=[], config=None)
    if not derived:
        return out
    chain_ok = {f: True for f in derived}
    for ci, tr in enumerate(traces):
        grads = {k: np.asarray(g, np.float64) for k, g in tr.grads.items()}
        first = None
        for n in tr.backward_steps():
            fname = "d" + split_key(n.key)[0]
            if fname not in chain_ok or n.key == tr.loss_key:
                continue
            if fname in ended:
                chain_ok[fname] = False
                first = first or (fname, n.key)
                continue
            params, var_kw, optional = runner.signatures[fname]
            try:
                kwargs = _Names(tr, grads).kwargs(params, var_kw, split_key(n.key)[1], optional)
            except _Unbound:
                continue
            answer = runner.call(fname, kwargs)
            if answer[0] == "todo":
                continue
            S, problem = _as_array(answer[1]) if answer[0] == "ok" else (None, answer[1])
            truth = np.asarray(tr.grad(n.key), np.float64)
            if problem or S.shape != truth.shape:
                ok = False
            else:
                grads[n.key] = S
                ok = _chain_agrees(S, truth, _scale(tr))
            if not ok:
                chain_ok[fname] = False
                if first is None:
                    first = (fname, n.key)
        if first is not None and out["first_wrong"] is None:
            out.update(first_wrong=first[0], first_wrong_node=first[1], config=dict(tr.cfg))
    for f in derived:
        results[f].chain = "PASS" if chain_ok[f] else "FAIL"
    out["spoiled"] = [f for f in derived
                      if results[f].verdict == "PASS" and not chain_ok[f]]
    return out


def _chain_agrees(S, truth, scale) -> bool:
    """S equals the truth to RTOL, non-finite exactly where the truth is."""
    fin = np.isfinite(truth)
    if not np.array_equal(np.isfinite(S), fin):
        return False
    with np.errstate(all="ignore"):
        diff = float(np.max(np.abs(S[fin] - truth[fin]), initial=0.0))
    peak = float(np.max(np.abs(truth[fin]), initial=0.0))
    return diff <= RTOL * max(peak, 1e-3 * scale)


# ----------------------------------------------------------------- template
def template(walkthrough: str) -> str:
    """A derivation file with one stub per gradient of the walkthrough."""
    w = _trace.get(walkthrough)
    tr = _trace.Trace(w)
    keys = formula_keys(tr)
    names = _Names(tr, tr.grads)
    fams = sorted(names.families)
    cfg_names = [k for k in tr.cfg if k not in ("seed", "dtype")]
    plain = [k for k in tr.values if split_key(k)[1] is None]
    lines = [
        f'"""My derivation for the {w.name} walkthrough ({w.problem}): {w.title}.',
        "",
        f"Check it:   nnkit check THIS_FILE      (nnkit check --template {w.name} wrote it)",
        "",
        "One function per gradient: d + the node's key. Replace a stub's body with",
        "your formula (NumPy); a stub that still raises NotImplementedError is TODO.",
        "Arguments are bound by name, so add or drop any of:",
        "  node values     " + ", ".join(plain + fams),
        "  true gradients  " + ", ".join(keys),
        "                  (each formula is judged on its own, fed the true gradients)",
        "  configuration   " + ", ".join(cfg_names) + ", cfg (a dict of all of them)",
    ]
    if fams:
        lines += [
            "Time-indexed nodes (" + ", ".join(f"{f}[t]" for f in fams) + ") are families:",
            "  h is indexed by step (h[t], h[t - 1]); dh by step too, and a step that",
            "  does not exist is 0 (dh[t + 1] at t = T). A function d<family>(t, ...) is",
            "  called once per step t; in it, h_t, h_prev, h_next, dh_next, ... are the",
            "  values and true gradients at t, t − 1, t + 1.",
        ]
    lines += ["Helpers: name them with a leading underscore.", '"""', "import numpy as np",
              "", f'WALKTHROUGH = "{w.name}"', ""]
    for fname, ks in keys.items():
        # a family's stub reads like its busiest step (h_1 feeds a_2 and L)
        key = max(ks, key=lambda k: sum(k in n.parents for n in tr.nodes))
        node = tr.by_key[key]
        fam, t = split_key(key)
        args = _natural_args(tr, key, t is not None)
        shape = _symbolic_shape(w, tr, key)
        steps = ""
        if t is not None:
            ts = sorted(split_key(k)[1] for k in ks)
            steps = f" for t = {ts[0]}..{ts[-1]}" if ts == list(range(ts[0], ts[-1] + 1)) \
                else f" for t in {ts}"
        formula = node.formula.split(":")[0] if node.is_leaf else node.formula
        lines += [
            "",
            f"def {fname}({', '.join(args)}):",
            f'    """∂L/∂{fam}{"_t" if t is not None else ""}{steps}, shape {shape}: '
            f"the node {formula}",
            '    """',
            "    raise NotImplementedError",
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"


def _natural_args(tr, key, indexed: bool) -> list[str]:
    """A stub's arguments: the gradients of the node's children, the values
    of their other parents and of the node itself, and ε and B where a
    child's formula has them."""
    args: list[str] = ["t"] if indexed else []

    def add(name):
        if name not in args:
            args.append(name)

    children = [n for n in tr.nodes if key in n.parents]
    for n in children:
        if n.key != tr.loss_key:
            add("d" + split_key(n.key)[0])
    for n in children:
        for p in n.parents:
            if p != key:
                add(split_key(p)[0])
    add(split_key(key)[0])
    text = " ".join(n.formula for n in children)
    if "eps" in tr.cfg and "ε" in text:
        add("eps")
    if "B" in tr.cfg and "1/B" in text:
        add("B")
    return args


def valid_names(walkthrough: str) -> list[str]:
    """The formula names a derivation file for `walkthrough` may define."""
    return list(formula_keys(_trace.Trace(walkthrough)))
