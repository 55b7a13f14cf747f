"""`nnkit` command line: finite-difference checks of every registered walkthrough.

    nnkit list                          the walkthroughs
    nnkit gradcheck [--walkthrough NAME ...] [--dtype float64|float32|both] [--json]

Exit status: 0 all checks pass, 1 any check fails, 2 usage error.
"""
from __future__ import annotations

import argparse
import json
import sys

from . import trace


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nnkit", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the registered walkthroughs")
    g = sub.add_parser("gradcheck", help="check every node of every walkthrough "
                       "against central differences")
    g.add_argument("--walkthrough", "-w", action="append", metavar="NAME",
                   help="only this walkthrough (repeatable; default: all)")
    g.add_argument("--dtype", choices=("float64", "float32", "both"), default="both",
                   help="precision of the analytic gradients (default: both; float32 "
                        "uses looser tolerances)")
    g.add_argument("--max-elements", type=int, default=trace.MAX_ELEMENTS, metavar="K",
                   help=f"check at most K sampled elements per tensor "
                        f"(default {trace.MAX_ELEMENTS})")
    g.add_argument("--json", action="store_true", help="machine-readable output")
    g.add_argument("--verbose", "-v", action="store_true", help="print every tensor's row")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    reg = trace.registry()
    if args.command == "list":
        for name, w in reg.items():
            print(f"{name:<16} {w.problem:<5} {w.title}")
        return 0
    names = args.walkthrough or list(reg)
    unknown = [n for n in names if n not in reg]
    if unknown:
        print(f"nnkit gradcheck: --walkthrough: expected one of {sorted(reg)}, "
              f"got {unknown[0]!r}", file=sys.stderr)
        return 2
    if args.max_elements < 1:
        print(f"nnkit gradcheck: --max-elements: expected >= 1, got {args.max_elements}",
              file=sys.stderr)
        return 2
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
                report = t.check_all(max_elements=args.max_elements)
                results.append((name, t.cfg, report))
    passed = all(r.passed for _, _, r in results)
    if args.json:
        print(json.dumps(dict(passed=passed, runs=[
            dict(walkthrough=n, config=c, **r.to_dict()) for n, c, r in results]), indent=2))
    else:
        _print_table(results, args.verbose)
    return 0 if passed else 1


def _print_table(results, verbose: bool) -> None:
    print(f"{'walkthrough':<16} {'dtype':<8} {'config':<44} {'nodes':>5} "
          f"{'worst node':<10} {'tol used':>8} {'max rel err':>11}  result")
    reg = trace.registry()
    for name, cfg, r in results:
        defaults = {p.name: p.default for p in reg[name].params}
        # shapes always, other parameters only where they differ from the default
        shown = " ".join(f"{k}={v}" for k, v in cfg.items() if k != "dtype" and
                         (k in ("B", "N", "M", "T") or v != defaults.get(k)))
        # worst = closest to failing: the largest share of its tolerance used
        worst = max(r.checks, key=lambda c: (not c.passed, c.tol_used))
        print(f"{name:<16} {cfg.get('dtype', 'float64'):<8} {shown[:44]:<44} "
              f"{len(r.checks):>5} {worst.name:<10} {worst.tol_used:>8.3f} "
              f"{worst.max_rel_err:>11.2e}  "
              f"{'PASS' if r.passed else 'FAIL'}")
        if verbose or not r.passed:
            print("    " + r.table().replace("\n", "\n    "))
    n_ok = sum(r.passed for _, _, r in results)
    print(f"{n_ok} of {len(results)} runs passed, "
          f"{sum(len(r.checks) for _, _, r in results)} node gradients checked")


if __name__ == "__main__":
    sys.exit(main())
