"""`nnkit` command line: gradient checks, lessons, your own derivations, conv shapes, training, benchmarks.

    nnkit list                          the walkthroughs
    nnkit lessons [NAME ...] [--seed N] [--list] [--json]   the verified identities P1-P10
    nnkit train [--dataset auto|digits|synthetic] [--optimizer NAME] [--epochs N] ...
                                        the training example: curve, validation accuracy
    nnkit conv --input B,W,H,C --out C_OUT -k K [-s S] [-p P] [-d D] [--layout] [--json]
                                        a conv's output shape, formula, params, MACs
    nnkit bottleneck [--channels C] [--reduction LO,HI] [--bias both|yes|no]
                                        P3's ResNet bottleneck width
    nnkit gradcheck [--walkthrough NAME ...] [--dtype float64|float32|both]
                    [--max-elements K] [--strict] [--isa LEVEL|all] [--json] [--verbose]
    nnkit bench [FAMILY ...] [--runs N] [--json FILE] [--quick] [--no-torch]
                                        timings against NumPy and PyTorch, with floors
    nnkit check FILE [-w NAME] [--set KEY=VALUE ...] [--strict] [--json]
    nnkit check --template NAME         check your own derivation, formula by formula
    nnkit info [--json]                 this build: version, Python, ISA level, threads, BLAS
    nnkit --version                     the installed version

Exit status:
  0  every check passed (`nnkit list`: always)
  1  a check failed (with --strict, a vacuous check counts as failed)
  2  usage error: the subcommand's usage is printed to stderr, then one line
     "nnkit COMMAND: error: ..." (also for a value the library refuses, such
     as --lr inf, and an unwritable --json FILE, checked before any work);
     never a traceback (NNKIT_TRACEBACK=1 shows it, for debugging)
  130 interrupted (Ctrl-C)
A reader that closes the pipe early (`nnkit gradcheck --json | head`) changes
nothing: every check has run before the first line is printed, so there is
no traceback and the status is still the verdict (0 or 1); under `set -o
pipefail` a CI script sees a failed check, never a closed pipe, as 1.

Adding a subcommand: write `_add_<name>(sub)` that builds its parser and
sets `run=` to a function `(args) -> exit status`, and list it in COMMANDS.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys

from . import trace
from .gradcheck import GradcheckReport, num_threads
from ._table import format_table

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


# ------------------------------------------------------------------ list
def _add_list(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("list", help="list the registered walkthroughs",
                       description="The registered walkthroughs (name, problem, title).")
    p.set_defaults(run=_run_list)
    return p


def _run_list(args) -> int:
    rows = [(name, w.problem, w.title) for name, w in trace.registry().items()]
    _emit(format_table(("walkthrough", "problem", "title"), rows))
    return EXIT_OK


# ------------------------------------------------------------- gradcheck
# The threaded runs: each walkthrough's threaded_configs() (shapes large enough
# that the kernels start their OpenMP team, with an odd batch) run with this
# many threads (NNKIT_NUM_THREADS, which the kernels read on every call), and
# a smaller seeded sample per tensor (their tensors have ~65k elements; the
# parameter gradients, reductions over every row, still see a wrong row), in
# one dtype: float64 unless only float32 is asked for (the thread split is the
# same code for both; float32 rounding at these batch sizes is another matter,
# which the family tests' float32 comparisons cover). Under --strict a
# walkthrough's thread_checks(trace, threads) add rows comparing the threaded
# results with one thread's, for what central differences cannot reproduce at
# these sizes (its threaded_unchecked nodes are then left out of them).
THREADED_THREADS = 2
THREADED_MAX_ELEMENTS = 32


def _add_gradcheck(sub) -> argparse.ArgumentParser:
    g = sub.add_parser(
        "gradcheck", help="check every node of every walkthrough against central differences",
        description="Check every node gradient of every walkthrough configuration "
                    "against central differences (float64), the threaded configurations "
                    f"with {THREADED_THREADS} threads, once per instruction-set level the "
                    "build has and this CPU runs; the self-test of an installed build.",
        epilog="Exit status: 0 all pass, 1 any check fails (with --strict also a "
               "vacuous one, or a gradient on the wrong side of a kink), 2 usage error. "
               "A closed pipe (| head) leaves the status the verdict: no traceback, 0 or 1.")
    g.add_argument("--walkthrough", "-w", action="append", metavar="NAME",
                   help="only this walkthrough (repeatable; default: all)")
    g.add_argument("--dtype", choices=("float64", "float32", "both"), default="both",
                   help="precision of the analytic gradients (default: both; float32 "
                        "uses looser tolerances)")
    g.add_argument("--max-elements", type=int, default=trace.MAX_ELEMENTS, metavar="K",
                   help=f"check at most K sampled elements per tensor "
                        f"(default {trace.MAX_ELEMENTS}; the threaded runs at most "
                        f"{THREADED_MAX_ELEMENTS})")
    g.add_argument("--strict", action="store_true",
                   help="fail a vacuous check (gradients tiny against what a generic "
                        "upstream gradient gives: it tested nothing), and check the "
                        "documented side at kinks: ReLU's gradient exactly 0 where its "
                        "input is <= 0, max-pool ties to the first maximum; and compare "
                        "a threaded run's results with one thread's where the "
                        "walkthrough has thread_checks (whitening)")
    g.add_argument("--isa", default="all", metavar="LEVEL|all",
                   help="instruction-set level of the kernels to check (NNKIT_ISA), each "
                        "in a process of its own; default all the levels the build has "
                        "and this CPU runs")
    g.add_argument("--no-threaded", dest="threaded", action="store_false",
                   help="leave out the threaded configurations")
    g.add_argument("--json", action="store_true", help="machine-readable output")
    g.add_argument("--verbose", "-v", action="store_true", help="print every tensor's row")
    g.set_defaults(run=_run_gradcheck)
    return g


def _isa_levels() -> tuple[tuple[str, ...], str]:
    """(levels this build contains and this CPU runs, the level running now)."""
    from . import _kernels
    return tuple(_kernels.supported_levels()), str(_kernels.level())


def _run_gradcheck(args) -> int:
    reg = trace.registry()
    names = args.walkthrough or list(reg)
    unknown = [n for n in names if n not in reg]
    if unknown:
        args.parser.error(f"--walkthrough: expected one of {sorted(reg)}, "
                          f"got {unknown[0]!r}")
    if args.max_elements < 1:
        args.parser.error(f"--max-elements: expected >= 1, got {args.max_elements}")
    available, current = _isa_levels()
    if args.isa == "all":
        levels = available
    elif args.isa in available:
        levels = (args.isa,)
    else:
        args.parser.error(f"--isa: expected 'all' or one of {list(available)} (the levels "
                          f"this build has and this CPU runs), got {args.isa!r}")
    # NNKIT_ISA is read at start-up: another level needs a process of its own
    forced = os.environ.get("NNKIT_ISA")
    if forced in levels and forced != current:
        # a child whose kernels did not take the level it was started with
        # (never start another child: that would recurse)
        args.parser.error(f"--isa: NNKIT_ISA={forced} is set but the kernels run {current!r}")
    if levels == (current,) and forced == current:
        runs = _check_level(args, names, current)
        return _report_gradcheck(args, runs)
    runs = []
    for level in levels:
        got = _check_in_child(args, names, level)
        if isinstance(got, int):
            return got
        runs += got
    return _report_gradcheck(args, runs)


def _check_level(args, names, level) -> list[dict]:
    """Every run of this process's kernels: dicts with walkthrough, config,
    level, threads, the report and its to_dict() (the JSON form)."""
    reg = trace.registry()
    dtypes = ["float64", "float32"] if args.dtype == "both" else [args.dtype]
    runs = []
    for name in names:
        w = reg[name]
        # kernel_configs: settings a derivation does not cover (conv stride,
        # dilation, overlapping pools), checked here but not by `nnkit check`
        plan = [(cfg, None) for cfg in
                w.check_configs() + getattr(w, "kernel_configs", lambda: [])()]
        if args.threaded:
            plan += [(cfg, THREADED_THREADS)
                     for cfg in getattr(w, "threaded_configs", lambda: [])()]
        for dtype in dtypes:
            for cfg, threads in plan:
                if threads is not None and dtype != dtypes[0]:
                    continue          # threaded: the first dtype asked (float64 by default)
                cfg = dict(cfg)
                if any(p.name == "dtype" for p in w.params):
                    cfg["dtype"] = dtype
                elif dtype != "float64":
                    continue
                max_elements = (args.max_elements if threads is None
                                else min(args.max_elements, THREADED_MAX_ELEMENTS))
                with num_threads(threads):
                    t = trace.Trace(w, **cfg)
                    report = _check_nodes(t, w, threads, max_elements, args.strict)
                    if args.strict:
                        report.checks += getattr(w, "kink_checks", lambda t: [])(t)
                    if args.strict and threads is not None:
                        report.checks += getattr(w, "thread_checks",
                                                 lambda t, n: [])(t, threads)
                runs.append(dict(walkthrough=name, config=t.cfg, level=level,
                                 threads=threads, report=report))
    return runs


def _check_nodes(t, w, threads, max_elements, strict):
    """The finite-difference checks of a trace: every node, but in a threaded
    run not the nodes the walkthrough's threaded_unchecked names (central
    differences cannot reproduce them at that size; its thread_checks do)."""
    if threads is None or not getattr(w, "threaded_unchecked", ()):
        return t.check_all(max_elements=max_elements, strict=strict)
    return GradcheckReport([t.check(n.key, max_elements=max_elements, strict=strict)
                            for n in t.backward_steps()
                            if n.key not in w.threaded_unchecked], title=t.title)


def _check_in_child(args, names, level):
    """The runs of one level, from `python -m nnkit.cli gradcheck --json` with
    NNKIT_ISA=level; an int (exit status 2) when the child could not run."""
    import subprocess
    argv = [sys.executable, "-m", "nnkit.cli", "gradcheck", "--json", "--isa", level,
            "--dtype", args.dtype, "--max-elements", str(args.max_elements)]
    argv += [a for n in names for a in ("--walkthrough", n)]
    argv += ["--strict"] * args.strict + ["--no-threaded"] * (not args.threaded)
    env = dict(os.environ, NNKIT_ISA=level)
    proc = subprocess.run(argv, env=env, capture_output=True, text=True)
    try:
        doc = json.loads(proc.stdout)
    except ValueError:
        doc = None
    if proc.returncode not in (EXIT_OK, EXIT_FAIL) or doc is None:
        err = " ".join((proc.stderr or proc.stdout).strip().splitlines()[-1:])
        print(f"nnkit gradcheck: error: level {level!r} (NNKIT_ISA={level}) exited "
              f"{proc.returncode}: {err}", file=sys.stderr)
        return EXIT_USAGE
    return doc["runs"]


def _run_dict(run: dict) -> dict:
    """The JSON form of a run (a child's runs are in it already)."""
    if "report" not in run:
        return run
    return dict(walkthrough=run["walkthrough"], config=run["config"], level=run["level"],
                threads=run["threads"], **run["report"].to_dict())


def _report_gradcheck(args, runs) -> int:
    docs = [_run_dict(r) for r in runs]
    passed = all(d["passed"] for d in docs)
    levels = list(dict.fromkeys(d["level"] for d in docs))
    if args.json:
        _emit(json.dumps(dict(passed=passed, strict=args.strict, levels=levels,
                              runs=docs), indent=2))
    else:
        _emit(_gradcheck_table(runs, args.verbose, args.strict))
    return EXIT_OK if passed else EXIT_FAIL


def _shown_config(w: trace.Walkthrough, cfg: dict) -> str:
    """Shapes always, other parameters only where they differ from the default."""
    defaults = {p.name: p.default for p in w.params}
    return " ".join(f"{k}={v}" for k, v in cfg.items() if k != "dtype" and
                    (k in ("B", "N", "M", "T") or v != defaults.get(k)))


def _flags(tensors: list[dict]) -> str:
    kinks = sum(len(c["kinks"]) for c in tensors)
    vac = sum(c["vacuous"] for c in tensors)
    return ", ".join(s for s in (f"{kinks} kink{'s' * (kinks != 1)}" if kinks else "",
                                 f"{vac} vacuous" if vac else "") if s)


def _gradcheck_table(runs, verbose: bool, strict: bool) -> str:
    reg = trace.registry()
    rows, details = [], []
    for run in runs:
        d = _run_dict(run)
        tensors = d["tensors"]
        # worst = closest to failing: the largest share of its tolerance used
        worst = max(tensors, key=lambda c: (not c["passed"], _num(c["tol_used"])))
        flags = _flags(tensors)
        config = _shown_config(reg[d["walkthrough"]], d["config"])
        if d["threads"]:
            config += f" threads={d['threads']}"
        rows.append((d["level"], d["walkthrough"], d["config"].get("dtype", "float64"),
                     len(tensors), worst["name"], f"{_num(worst['tol_used']):.3f}",
                     f"{_num(worst['max_rel_err']):.2e}",
                     ("PASS" if d["passed"] else "FAIL") + (f" ({flags})" if flags else ""),
                     config))
        if verbose or not d["passed"] or flags:
            # a report of this process renders its own table; a child's from its dict
            table = (run["report"].table() if "report" in run
                     else _tensor_table(d))
            details += ["", f"    [{d['level']}] " + table.replace("\n", "\n    ")]
    # the config is the last column: never cut, however long
    out = [format_table(("level", "walkthrough", "dtype", "nodes", "worst node", "tol used",
                         "max rel err", "result", "config"), rows, "lllrlrrll")]
    out += details
    n_ok = sum(_run_dict(r)["passed"] for r in runs)
    levels = list(dict.fromkeys(_run_dict(r)["level"] for r in runs))
    out.append(f"{n_ok} of {len(runs)} runs passed, "
               f"{sum(len(_run_dict(r)['tensors']) for r in runs)} node gradients checked"
               f" on {len(levels)} level{'s' * (len(levels) != 1)} ({', '.join(levels)})"
               + (" (strict: vacuous checks, the wrong side of a kink and threaded "
                  "results unlike one thread's fail)"
                  if strict else ""))
    return "\n".join(out)


def _num(x) -> float:
    """A JSON float back from to_dict() (non-finite values are strings there)."""
    return float(x)


def _tensor_table(d: dict) -> str:
    """A run's tensor table from its JSON form (a child process's run)."""
    rows = [(c["name"], "×".join(map(str, c["shape"])) or "scalar",
             f"{c['checked']}/{c['total']}", f"{_num(c['max_rel_err']):.2e}",
             str(tuple(c["worst_index"])), f"{_num(c['analytic']):+.6e}",
             f"{_num(c['numeric']):+.6e}", f"{_num(c['tol_used']):.3f}", c["verdict"],
             "; ".join(f"KINK at {tuple(k['index'])}" for k in c["kinks"][:2]))
            for c in d["tensors"]]
    return format_table(("tensor", "shape", "checked", "max rel err", "worst index",
                         "analytic", "numeric", "tol used", "result", "notes"),
                        rows, "lllrlrrrll", title=d["title"])


# --------------------------------------------------------------- lessons
def _add_lessons(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "lessons", help="run the lessons (the verified identities of P1-P10) and check them",
        description="Run each lesson: both sides of an identity from seeded random data, "
                    "the measured discrepancy against its tolerance, PASS/FAIL.",
        epilog="Exit status: 0 all pass, 1 any lesson fails (or raises), 2 usage error.")
    p.add_argument("names", nargs="*", metavar="NAME", help="only these lessons (default: all)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of every lesson, >= 0 (default 0)")
    p.add_argument("--list", action="store_true", help="list the lessons without running them")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=_run_lessons)
    return p


def _run_lessons(args) -> int:
    from .lessons import _report, registry
    reg = registry()
    unknown = [n for n in args.names if n not in reg]
    if unknown:
        args.parser.error(f"NAME: expected one of {sorted(reg)}, got {unknown[0]!r}")
    if args.seed < 0:       # numpy's default_rng refuses it: every lesson would FAIL
        args.parser.error(f"--seed: expected >= 0, got {args.seed}")
    names = args.names or list(reg)
    if args.list:
        _emit(format_table(("lesson", "problem", "title"),
                           [(n, reg[n].problem, reg[n].title) for n in names]))
        return EXIT_OK
    results = []
    for name in names:
        try:
            result = reg[name].run(args.seed)
        except Exception as exc:      # a broken lesson is a failed lesson, not a traceback
            result = _report.error_result(exc)
        results.append((reg[name], result))
    passed = all(r.passed for _, r in results)
    if args.json:
        _emit(json.dumps(dict(passed=passed, seed=args.seed, lessons=[
            _report.to_dict(les, r, args.seed) for les, r in results]), indent=2))
        return EXIT_OK if passed else EXIT_FAIL
    out = []
    for les, r in results:
        out += [f"== {les.name} ({les.problem}): {les.title}", _report.table(r)]
        out += [f"   {note}" for note in r.notes]
        out += [f"   curve {k}: " + " ".join(_report.cell(x) for x in vs)
                for k, vs in r.curves.items()]
        out += [f"   {_report.summary(r)}", ""]
    out.append(format_table(
        ("lesson", "problem", "discrepancy", "tolerance", "result"),
        [(les.name, les.problem, _report.cell(r.discrepancy), _report.cell(r.tolerance),
          _report.verdict(r)) for les, r in results], "llrrl"))
    out.append(f"{sum(r.passed for _, r in results)} of {len(results)} lessons passed")
    _emit("\n".join(out))
    return EXIT_OK if passed else EXIT_FAIL


# ----------------------------------------------------------------- train
def _add_train(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "train", help="train the example MLP (digits, or a synthetic set) and print its curve",
        description="Train Linear(64, H, He init) -> ReLU -> Linear(H, 10) with softmax "
                    "cross-entropy on scikit-learn's 8x8 digits (when installed: pip install "
                    "'nnkit[examples]') or a synthetic set of the same shape; 80/20 seeded "
                    "train/validation split. Prints the per-epoch table, the loss curve and "
                    "the validation accuracy (the held-out 20 %, evaluated after every "
                    "epoch: a validation set, not a test set).",
        epilog="Exit status: 0 after training, 2 usage error.")
    p.add_argument("--dataset", choices=("auto", "digits", "synthetic"), default="auto",
                   help="auto: digits when scikit-learn is installed (default)")
    p.add_argument("--optimizer", choices=("adam", "sgd", "momentum", "adagrad"),
                   default="adam", help="default adam")
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate (default: adam 1e-2, sgd 0.1, momentum 0.01, adagrad 0.1)")
    p.add_argument("--epochs", type=int, default=10, help="default 10")
    p.add_argument("--batch-size", type=int, default=32, help="default 32")
    p.add_argument("--hidden", type=int, default=64, help="hidden units (default 64)")
    p.add_argument("--seed", type=int, default=0, help="data split, init and shuffles")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (stderr)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=_run_train)
    return p


def _run_train(args) -> int:
    import numpy as np

    from . import optim, train
    from .layers import SoftmaxCrossEntropy
    for flag, value in (("--epochs", args.epochs), ("--batch-size", args.batch_size),
                        ("--hidden", args.hidden)):
        if value < 1:
            args.parser.error(f"{flag}: expected >= 1, got {value}")
    if args.seed < 0:
        args.parser.error(f"--seed: expected >= 0, got {args.seed}")
    lr = {"adam": 1e-2, "sgd": 0.1, "momentum": 0.01, "adagrad": 0.1}[args.optimizer] \
        if args.lr is None else args.lr
    if not (math.isfinite(lr) and lr > 0):
        args.parser.error(f"--lr: expected a finite number > 0, got {lr}")
    try:
        data = train.example_data(args.dataset, args.seed)
    except ImportError as exc:
        args.parser.error(f"--dataset: {exc}")
    model = train.example_model(data.X_train.shape[1], data.classes, args.hidden, args.seed)
    opt = {"adam": optim.Adam, "sgd": optim.SGD, "adagrad": optim.AdaGrad,
           "momentum": lambda m, lr: optim.Momentum(m, lr=lr, momentum=0.9)}[args.optimizer](
        model, lr=lr)
    loss = SoftmaxCrossEntropy()
    hist = train.fit(model, loss, opt, data.X_train, data.y_train, args.epochs,
                     args.batch_size, X_val=data.X_test, y_val=data.y_test,
                     rng=np.random.default_rng(args.seed),
                     progress=not args.no_progress and not args.json)
    # the held-out 20 % is scored after every epoch (the table's val columns) and
    # watched while choosing --epochs and --lr: a validation set, named so
    val_loss, val_acc = train.evaluate(model, loss, data.X_test, data.y_test)
    summary = dict(dataset=data.name, train=len(data.y_train), validation=len(data.y_test),
                   optimizer=args.optimizer, lr=lr, epochs=args.epochs,
                   batch_size=args.batch_size, hidden=args.hidden, seed=args.seed,
                   val_loss=val_loss, val_acc=val_acc, seconds=hist.seconds)
    if args.json:
        _emit(json.dumps(dict(summary, history=hist.as_dict()), indent=2))
        return EXIT_OK
    _emit("\n".join([
        f"dataset {data.name}: {len(data.y_train)} train / {len(data.y_test)} validation, "
        f"{data.X_train.shape[1]} features, {data.classes} classes; MLP 64-{args.hidden}-"
        f"{data.classes}, {args.optimizer} lr={lr:g}, batch {args.batch_size}",
        hist.table(),
        f"train loss per batch  {train.sparkline(hist.batch_loss)}",
        f"val accuracy / epoch  {train.sparkline(hist.val_acc)}",
        f"validation accuracy {val_acc:.2%} (loss {val_loss:.4f}) after {args.epochs} epochs, "
        f"{hist.seconds:.2f} s"]))
    return EXIT_OK


# ------------------------------------------------------ conv, bottleneck
def _ints(text: str, what: str, parser, n: int | None = None) -> tuple[int, ...]:
    try:
        vals = tuple(int(x) for x in text.split(","))
    except ValueError:
        parser.error(f"{what}: expected comma-separated integers, got {text!r}")
    if n is not None and len(vals) not in ((1, n) if n == 2 else (n,)):
        parser.error(f"{what}: expected {n} comma-separated integers, got {text!r}")
    return vals


def _add_conv(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "conv", help="output shape (with its formula), parameters and MACs of a conv or pool",
        description="P3: the output shape of a 2-D convolution (or pooling with --pool), "
                    "each spatial axis's formula filled in, the weights, biases and "
                    "multiply-accumulates. The shapes are in P3's layout (B, W, H, C) unless "
                    "--layout NCHW (PyTorch's, the Python API's default); the output names "
                    "its layout. Pairs are k1,k2 in the layout's axis order (BWHC: W then H, "
                    "as P3; NCHW: H then W, as PyTorch).",
        epilog="Example: nnkit conv --input 8,32,32,3 --out 16 -k 3 -s 2 -p 1. "
               "Options that do not apply (--out, -d, --no-bias with --pool) are refused. "
               "Exit status: 0, or 2 for impossible geometry (the formula says why) or "
               "conflicting options.")
    p.add_argument("--input", metavar="B,W,H,C",
                   help="input shape in --layout (BWHC: B,W,H,C; NCHW: B,C,H,W)")
    p.add_argument("--out", type=int, metavar="C_OUT", help="output channels (conv only)")
    p.add_argument("-k", "--kernel", default="3", help="k or k1,k2 (default 3)")
    p.add_argument("-s", "--stride", default=None, help="s or s1,s2 (default 1; pool: k)")
    p.add_argument("-p", "--padding", default="0",
                   help="p or p1,p2; conv also valid or same (any case; same: stride 1, an "
                        "even kernel pads one more at the end, as PyTorch)")
    p.add_argument("-d", "--dilation", default=None, help="d or d1,d2 (default 1; conv only)")
    p.add_argument("--layout", choices=("BWHC", "NCHW"), default="BWHC",
                   help="BWHC (P3's, this command's default) or NCHW (PyTorch's)")
    p.add_argument("--pool", choices=("max", "avg", "lp"), help="a pooling layer instead")
    p.add_argument("--no-bias", action="store_true", help="count no biases (conv only)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    # "--input -8,32,32,3": a value that starts like a negative number is a
    # value, not an option (argparse takes only "-8" and "-1.5" so), so that
    # _run_conv names --input and says what is wrong with it
    if hasattr(p, "_negative_number_matcher"):
        import re
        p._negative_number_matcher = re.compile(r"^-\d[\d,]*$|^-\d*\.\d+$")
    p.set_defaults(run=_run_conv)
    return p


def _run_conv(args) -> int:
    from . import conv_shapes as cs
    P = args.parser
    axes = "B,W,H,C" if args.layout == "BWHC" else "B,C,H,W"
    if args.input is None:
        P.error(f"--input: expected the input shape, e.g. --input 8,32,32,3 ({axes} in "
                f"{args.layout})")
    shape = _ints(args.input, "--input", P, 4)
    if min(shape) < 1:
        P.error(f"--input: expected 4 sizes >= 1 ({axes} in {args.layout}), got "
                f"{args.input}")
    if args.pool:      # options that only a conv has: refused, never silently dropped
        for given, opt, why in (
                (args.out is not None, f"--out {args.out}", "keeps the input's channels"),
                (args.dilation is not None, f"--dilation {args.dilation}", "has no dilation"),
                (args.no_bias, "--no-bias", "has no biases")):
            if given:
                P.error(f"{opt}: does not apply to --pool {args.pool} (pooling {why}); "
                        f"leave it out")
    pair = lambda text, what: (lambda t: t[0] if len(t) == 1 else t)(_ints(text, what, P, 2))
    k = pair(args.kernel, "--kernel")
    s = None if args.stride is None else pair(args.stride, "--stride")
    mode = args.padding.strip().lower()
    if mode in ("valid", "same") and args.pool:
        P.error(f"--padding {args.padding}: pooling takes p or p1,p2 (valid and same are "
                f"conv paddings)")
    pad = mode if mode in ("valid", "same") else pair(args.padding, "--padding")
    try:
        if args.pool:
            out = cs.pool2d_output_shape(shape, k, s, pad, args.layout, args.pool)
            count = cs.pool2d_count(shape, k, s, pad, args.layout, args.pool)
        else:
            if args.out is None:
                P.error("--out: expected the number of output channels (or --pool)")
            d = pair("1" if args.dilation is None else args.dilation, "--dilation")
            s = 1 if s is None else s
            out = cs.conv2d_output_shape(shape, args.out, k, s, pad, d, args.layout)
            count = cs.conv2d_count(shape, args.out, k, s, pad, d, args.layout,
                                    bias=not args.no_bias)
    except (TypeError, ValueError) as exc:
        P.error(str(exc))
    if args.json:
        _emit(json.dumps(dict(input=list(shape), layout=args.layout, output=list(out),
                              formula=list(out.lines), weights=count.weights,
                              biases=count.biases, params=count.params, macs=count.macs),
                         indent=2))
        return EXIT_OK
    what = f"{args.pool} pool" if args.pool else "conv"
    a1, a2 = out.axes
    lines = [f"{what}: input {shape} ({args.layout}) -> output {tuple(out)}"]
    lines += ["  " + f for f in out.lines]
    if not args.pool:
        C_in = shape[3] if args.layout == "BWHC" else shape[1]
        lines.append(f"weights k1·k2·C_in·C_out = {a1.k}·{a2.k}·{C_in}·{args.out} = "
                     f"{count.weights:,}; biases {count.biases:,}; parameters {count.params:,}")
        lines.append(f"MACs B·{a1.name}'·{a2.name}'·C_out·k1·k2·C_in = {shape[0]}·{a1.out}·"
                     f"{a2.out}·{args.out}·{a1.k}·{a2.k}·{C_in} = {count.macs:,}")
    else:
        lines.append(f"no parameters; window reads {count.macs:,}")
    _emit("\n".join(lines))
    return EXIT_OK


def _add_bottleneck(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "bottleneck", help="ResNet bottleneck width for a parameter cut (P3)",
        description="P3: the basic block (two k×k convs C→C) against the bottleneck "
                    "(1×1 C→w, k×k w→w, 1×1 w→C): the real interval of widths w that cut "
                    "the parameters by the --reduction range, and the integer widths in it. "
                    "With no arguments: P3's example (C = 64, a 50–60 % cut), with and "
                    "without biases.")
    p.add_argument("--channels", type=int, default=64, help="C (default 64)")
    p.add_argument("--kernel", type=int, default=3, help="k of the middle conv (default 3)")
    p.add_argument("--reduction", default="0.5,0.6", metavar="LO,HI",
                   help="the cut as fractions (default 0.5,0.6)")
    p.add_argument("--bias", choices=("both", "yes", "no"), default="both",
                   help="count biases: both (default), yes, no")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=_run_bottleneck)
    return p


def _run_bottleneck(args) -> int:
    from . import conv_shapes as cs
    try:
        red = tuple(float(x) for x in args.reduction.split(","))
    except ValueError:
        args.parser.error(f"--reduction: expected LO,HI fractions, got {args.reduction!r}")
    biases = {"both": (False, True), "yes": (True,), "no": (False,)}[args.bias]
    try:
        sols = [cs.solve_bottleneck(args.channels, red, args.kernel, bias=b) for b in biases]
    except (TypeError, ValueError) as exc:
        args.parser.error(str(exc))
    if args.json:
        _emit(json.dumps([dict(bias=s.bias, channels=s.channels, kernel=s.kernel_size,
                               reduction=list(s.reduction), basic_params=s.basic_params,
                               polynomial=s.polynomial, interval=list(s.interval),
                               widths=list(s.widths)) for s in sols], indent=2))
        return EXIT_OK
    _emit("\n".join(line for s in sols for line in s.lines()))
    return EXIT_OK


# ----------------------------------------------------------------- bench
def _add_bench(sub) -> argparse.ArgumentParser:
    from .bench import ALIASES, FAMILIES
    p = sub.add_parser(
        "bench", help="time nnkit against NumPy and PyTorch, beside each kernel's floor",
        description="The side-by-side benchmarks (nnkit.bench): nnkit, NumPy and PyTorch "
                    "(when importable) in one run, ratios other/nnkit, and each row's floor "
                    "(bytes / measured bandwidth, or flops / measured GEMM rate) with the "
                    "share of it reached. The machine's load moves every cell: use --runs.",
        epilog="Exit status: 0 after the tables, 2 usage error.")
    p.add_argument("families", nargs="*", metavar="FAMILY",
                   help=f"one or more of {', '.join(FAMILIES)} (default: all), or a "
                        f"short name: a unique prefix (bn) or one of "
                        f"{', '.join(sorted(ALIASES))}")
    p.add_argument("--runs", type=int, default=1, metavar="N",
                   help="run each family N times; every cell is the median (default 1)")
    p.add_argument("--json", metavar="FILE",
                   help="also write the results to FILE (checked before the run)")
    p.add_argument("--quick", action="store_true",
                   help="tiny shapes, two calls each: checks the tables, not the speed")
    p.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    p.set_defaults(run=_run_bench)
    return p


def _run_bench(args) -> int:
    from . import bench
    families = []
    for name in args.families:
        try:
            fam = bench.resolve_family(name)
        except ValueError as exc:
            args.parser.error(f"FAMILY: {exc}")
        if fam not in families:       # bn and bn_affine: one run
            families.append(fam)
    if args.runs < 1:
        args.parser.error(f"--runs: expected >= 1, got {args.runs}")
    if args.json is not None:         # before the run, not after minutes of it
        problem = _unwritable(args.json)
        if problem:
            args.parser.error(f"--json: {problem}")
    res = bench.run(families, quick=args.quick, torch=not args.no_torch, runs=args.runs,
                    progress=lambda msg: print(msg, file=sys.stderr, flush=True))
    text = [bench.header(res["machine"]) + (f"; median of {args.runs} runs"
                                            if args.runs > 1 else "")]
    text += ["\n" + t.text() for ts in res["families"].values() for t in ts]
    _emit("\n".join(text))
    if args.json is not None:
        try:
            with open(args.json, "w") as f:
                json.dump(dict(bench.to_dict(res), runs=args.runs), f, indent=2)
        except OSError as exc:        # the disk filled, the directory went away
            args.parser.error(f"--json: cannot write {args.json!r}: {exc.strerror or exc}")
    return EXIT_OK


def _unwritable(path: str) -> str | None:
    """Why `path` cannot be written as a file, or None when it can."""
    if path == "":
        return "expected a file name, got ''"
    if os.path.isdir(path):
        return f"{path!r} is a directory, expected a file name"
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        return f"cannot write {path!r}: no directory {folder!r}"
    if os.path.exists(path):
        if not os.access(path, os.W_OK):
            return f"cannot write {path!r}: permission denied"
    elif not os.access(folder, os.W_OK | os.X_OK):
        return f"cannot write {path!r}: directory {folder!r} is not writable"
    return None


# ------------------------------------------------------------------ main
# ------------------------------------------------------------------ check
def _add_check(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "check", help="check your own derivation: your formula for each gradient",
        description="Judge a derivation file (one function per gradient, d + the node's "
                    "key: dgamma, dv, dY, dh(t, ...)) formula by formula against the "
                    "kernels' gradients and finite differences on the walkthrough's check "
                    "configurations (float64); say what is wrong in each failing formula; "
                    "then run your formulas chained and name the first node where the "
                    "chain leaves the truth. The file runs in a child process with a time "
                    "limit per call. Start from: nnkit check --template WALKTHROUGH > my.py",
        epilog="Exit status: 0 every derived formula passes (TODO allowed; --strict: TODO "
               "fails), 1 a formula fails, 2 usage (no such file, a syntax error, an "
               "unknown walkthrough, a function named for a node that does not exist).")
    p.add_argument("file", nargs="?", metavar="FILE", help="your derivation file")
    p.add_argument("--walkthrough", "-w", metavar="NAME",
                   help="the walkthrough (default: the file's WALKTHROUGH = \"...\")")
    p.add_argument("--template", metavar="NAME",
                   help="print a derivation file of stubs for walkthrough NAME and exit")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="set a configuration value on every check configuration "
                        "(repeatable: --set B=7 --set eps=0.1)")
    p.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS",
                   help="time limit per formula call (default 5)")
    p.add_argument("--strict", action="store_true", help="a TODO formula fails")
    p.add_argument("--json", action="store_true",
                   help="machine-readable output for autograders")
    p.set_defaults(run=_run_check)
    return p


def _run_check(args) -> int:
    from . import derivation_check as dc
    if args.template:
        if args.file:
            args.parser.error("--template: prints a template; got a FILE too")
        try:
            _emit(dc.template(args.template))
        except ValueError as e:
            args.parser.error(f"--template: {e}")
        return EXIT_OK
    if not args.file:
        args.parser.error("FILE: expected a derivation file (or --template NAME)")
    if not args.timeout > 0 or not math.isfinite(args.timeout):
        args.parser.error(f"--timeout: expected a finite number > 0, got {args.timeout}")
    overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            args.parser.error(f"--set: expected KEY=VALUE, got {item!r}")
        overrides[key.strip()] = value.strip()
    try:
        report = dc.check_derivation(args.file, args.walkthrough, timeout=args.timeout,
                                     strict=args.strict, **overrides)
    except dc.UsageError as e:
        args.parser.error(str(e))
    _emit(report.to_json() if args.json else report.table())
    return report.exit_code


# ------------------------------------------------------------------ info
def _add_info(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "info", help="this build: version, Python, ISA level, OpenMP threads, BLAS",
        description="The installed build: nnkit's version, Python, the kernels' "
                    "instruction-set level (chosen, and every level this CPU and build "
                    "support; NNKIT_ISA forces one), OpenMP threads and SciPy's BLAS.")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=_run_info)
    return p


def _run_info(args) -> int:
    from ._info import build_info, format_info
    info = build_info()
    _emit(json.dumps(info, indent=2) if args.json else format_info(info))
    return EXIT_OK


COMMANDS = (_add_list, _add_gradcheck, _add_lessons, _add_train, _add_conv,
            _add_bottleneck, _add_bench, _add_check, _add_info)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nnkit", description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__[__doc__.index("Exit status:"):__doc__.index("Adding a subcommand")])
    from . import __version__
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        sp = add(sub)
        sp.set_defaults(parser=sp)
    return p


def _emit(text: str) -> None:
    """Print the output; a reader that closed the pipe (| head) is not an error.

    Every check has run before this is called, so the caller's exit status
    (the verdict) stands; stdout is pointed at /dev/null so the interpreter's
    final flush does not raise BrokenPipeError again.
    """
    try:
        print(text)
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def main(argv: list[str] | None = None) -> int:
    """Run the `nnkit` command line and return its exit status.

    Parameters
    ----------
    argv : list of str, optional
        The arguments after `nnkit` (``["gradcheck", "--json"]``); None reads
        ``sys.argv[1:]``.

    Returns
    -------
    int
        0 every check passed (or the command ran), 1 a check failed, 130
        interrupted (Ctrl-C).

    Raises
    ------
    SystemExit
        With status 2 for a usage error or a value the library refuses
        (``--lr inf``), after argparse prints the subcommand's usage and one
        line ``nnkit COMMAND: error: ...`` on stderr; never a traceback
        unless ``NNKIT_TRACEBACK=1``.
    """
    parser = _parser()
    # parse_known_args: argparse reports an unknown option of a subcommand with
    # the top-level usage; the subcommand's own parser reports it here instead
    args, extra = parser.parse_known_args(argv)
    if extra:
        args.parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print(f"nnkit {args.command}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, MemoryError) as exc:
        # a value the library refuses (nk.optim.Adam(lr=inf), Linear(64, 2**40)):
        # in a script or CI, exit 2 and one line naming it, never a traceback
        if os.environ.get("NNKIT_TRACEBACK"):
            raise
        what = "out of memory: " if isinstance(exc, MemoryError) else ""
        args.parser.error(what + (" ".join(str(exc).split()) or type(exc).__name__))


if __name__ == "__main__":
    sys.exit(main())
