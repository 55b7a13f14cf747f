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
                    [--max-elements K] [--strict] [--json] [--verbose]
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
def _add_gradcheck(sub) -> argparse.ArgumentParser:
    g = sub.add_parser(
        "gradcheck", help="check every node of every walkthrough against central differences",
        description="Check every node gradient of every walkthrough configuration "
                    "against central differences (float64).",
        epilog="Exit status: 0 all pass, 1 any check fails (with --strict also a "
               "vacuous one), 2 usage error. A closed pipe (| head) leaves the status "
               "the verdict: no traceback, 0 or 1.")
    g.add_argument("--walkthrough", "-w", action="append", metavar="NAME",
                   help="only this walkthrough (repeatable; default: all)")
    g.add_argument("--dtype", choices=("float64", "float32", "both"), default="both",
                   help="precision of the analytic gradients (default: both; float32 "
                        "uses looser tolerances)")
    g.add_argument("--max-elements", type=int, default=trace.MAX_ELEMENTS, metavar="K",
                   help=f"check at most K sampled elements per tensor "
                        f"(default {trace.MAX_ELEMENTS})")
    g.add_argument("--strict", action="store_true",
                   help="fail a vacuous check (gradients tiny against what a generic "
                        "upstream gradient gives: it tested nothing)")
    g.add_argument("--json", action="store_true", help="machine-readable output")
    g.add_argument("--verbose", "-v", action="store_true", help="print every tensor's row")
    g.set_defaults(run=_run_gradcheck)
    return g


def _run_gradcheck(args) -> int:
    reg = trace.registry()
    names = args.walkthrough or list(reg)
    unknown = [n for n in names if n not in reg]
    if unknown:
        args.parser.error(f"--walkthrough: expected one of {sorted(reg)}, "
                          f"got {unknown[0]!r}")
    if args.max_elements < 1:
        args.parser.error(f"--max-elements: expected >= 1, got {args.max_elements}")
    dtypes = ["float64", "float32"] if args.dtype == "both" else [args.dtype]
    results = []
    for name in names:
        w = reg[name]
        for dtype in dtypes:
            for cfg in w.check_configs():
                cfg = dict(cfg)
                if any(p.name == "dtype" for p in w.params):
                    cfg["dtype"] = dtype
                elif dtype != "float64":
                    continue
                t = trace.Trace(w, **cfg)
                report = t.check_all(max_elements=args.max_elements, strict=args.strict)
                results.append((name, t.cfg, report))
    passed = all(r.passed for _, _, r in results)
    if args.json:
        _emit(json.dumps(dict(passed=passed, strict=args.strict, runs=[
            dict(walkthrough=n, config=c, **r.to_dict()) for n, c, r in results]), indent=2))
    else:
        _emit(_gradcheck_table(results, args.verbose, args.strict))
    return EXIT_OK if passed else EXIT_FAIL


def _shown_config(w: trace.Walkthrough, cfg: dict) -> str:
    """Shapes always, other parameters only where they differ from the default."""
    defaults = {p.name: p.default for p in w.params}
    return " ".join(f"{k}={v}" for k, v in cfg.items() if k != "dtype" and
                    (k in ("B", "N", "M", "T") or v != defaults.get(k)))


def _flags(r) -> str:
    kinks = sum(len(c.kinks) for c in r.checks)
    vac = sum(c.vacuous for c in r.checks)
    return ", ".join(s for s in (f"{kinks} kink{'s' * (kinks != 1)}" if kinks else "",
                                 f"{vac} vacuous" if vac else "") if s)


def _gradcheck_table(results, verbose: bool, strict: bool) -> str:
    reg = trace.registry()
    rows = []
    for name, cfg, r in results:
        # worst = closest to failing: the largest share of its tolerance used
        worst = max(r.checks, key=lambda c: (not c.passed, c.tol_used))
        flags = _flags(r)
        rows.append((name, cfg.get("dtype", "float64"), len(r.checks), worst.name,
                     f"{worst.tol_used:.3f}", f"{worst.max_rel_err:.2e}",
                     ("PASS" if r.passed else "FAIL") + (f" ({flags})" if flags else ""),
                     _shown_config(reg[name], cfg)))
    # the config is the last column: never cut, however long
    out = [format_table(("walkthrough", "dtype", "nodes", "worst node", "tol used",
                         "max rel err", "result", "config"), rows, "llrlrrll")]
    for name, cfg, r in results:
        if verbose or not r.passed or _flags(r):
            out.append("")
            out.append("    " + r.table().replace("\n", "\n    "))
    n_ok = sum(r.passed for _, _, r in results)
    out.append(f"{n_ok} of {len(results)} runs passed, "
               f"{sum(len(r.checks) for _, _, r in results)} node gradients checked"
               + (" (strict: vacuous checks fail)" if strict else ""))
    return "\n".join(out)


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
