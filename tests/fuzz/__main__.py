"""The long fuzz run: NNKIT_FUZZ_CASES=100000 python -m tests.fuzz [--cases N] [--seed S]

Cases run round-robin over the spec table (tests/fuzz/specs.py) in child
processes of --chunk cases each, so a crash (a segfault in a kernel) is
recorded as a finding for the case that was running and the run goes on.
Prints a table: cases per function and per outcome, then per corruption
kind, then every finding (spec, seed, corruption, message); a finding
reproduces with `python -m tests.fuzz --one SPEC SEED`.
Exit status 1 if there was any finding.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import time

OUTCOMES = ("ok", "TypeError", "ValueError", "MemoryError", "known", "finding")


def child(start: int, stop: int, base_seed: int, only: str | None) -> None:
    """Run cases [start, stop); one JSON line per case, flushed (a crash leaves
    the 'start' line of the case that crashed as the last line)."""
    os.environ.setdefault("NNKIT_NUM_THREADS", "2")
    # a hostile size that nnkit accepts must end in MemoryError, not in the
    # kernel's OOM killer taking the (shared) machine down: cap the address space
    import resource
    cap = int(float(os.environ.get("NNKIT_FUZZ_MEM_GB", "4")) * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    import warnings
    warnings.simplefilter("ignore")
    import nnkit as nk
    from tests.fuzz.engine import run_case
    from tests.fuzz.specs import SPECS
    names = [only] if only else list(SPECS)
    out = sys.stdout
    for i in range(start, stop):
        name = names[i % len(names)]
        seed = base_seed + i
        out.write(json.dumps({"start": i, "spec": name, "seed": seed}) + "\n")
        out.flush()
        nk.seed(0)
        c = run_case(SPECS[name], seed)
        out.write(json.dumps({"i": i, "spec": name, "seed": seed, "kind": c.kind,
                              "detail": c.detail, "target": c.target, "outcome": c.outcome,
                              "checked": c.checked, "message": c.message}) + "\n")
        out.flush()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=int, default=int(os.environ.get("NNKIT_FUZZ_CASES", 5000)))
    ap.add_argument("--seed", type=int, default=int(os.environ.get("NNKIT_FUZZ_SEED", 0)))
    ap.add_argument("--chunk", type=int, default=2500)
    ap.add_argument("--spec", default=None, help="fuzz one spec only")
    ap.add_argument("--one", nargs=2, metavar=("SPEC", "SEED"), help="run one case, verbose")
    ap.add_argument("--child", nargs=2, type=int, help=argparse.SUPPRESS)
    ap.add_argument("--json", default=None, help="also write every non-ok case here")
    a = ap.parse_args(argv)
    if a.child:
        child(a.child[0], a.child[1], a.seed, a.spec)
        return 0
    if a.one:
        from tests.fuzz.engine import make_case, run_case
        from tests.fuzz.specs import SPECS
        s = SPECS[a.one[0]]
        case, args, *_ = make_case(s, int(a.one[1]))
        print(case.label())
        for k, v in args.items():
            print(f"  {k} = {type(v).__name__} "
                  f"{getattr(v, 'dtype', '')} {getattr(v, 'shape', '')} "
                  f"{getattr(v, 'strides', '') if hasattr(v, 'strides') else repr(v)[:60]}")
        c = run_case(s, int(a.one[1]))
        print(c.outcome, c.message)
        return int(c.outcome == "finding")

    from tests.fuzz.specs import SPECS
    names = [a.spec] if a.spec else list(SPECS)
    t0 = time.time()
    per_fn = {n: collections.Counter() for n in names}
    per_kind = collections.defaultdict(collections.Counter)
    checked = collections.Counter()
    findings = []
    i = 0
    while i < a.cases:
        stop = min(a.cases, i + a.chunk)
        cmd = [sys.executable, "-m", "tests.fuzz", "--child", str(i), str(stop),
               "--seed", str(a.seed)] + (["--spec", a.spec] if a.spec else [])
        p = subprocess.run(cmd, capture_output=True, text=True)
        last_start, done = None, i
        for line in p.stdout.splitlines():
            r = json.loads(line)
            if "start" in r:
                last_start = r
                continue
            last_start = None
            done = r["i"] + 1
            per_fn[r["spec"]][r["outcome"]] += 1
            per_kind[r["kind"]][r["outcome"]] += 1
            checked[r["spec"]] += r["checked"]
            if r["outcome"] == "finding":
                findings.append(r)
        if p.returncode != 0 or done < stop:
            crash = last_start or {"spec": "?", "seed": None, "start": done}
            msg = f"child exited {p.returncode}: {p.stderr.strip()[-400:]}"
            r = {"spec": crash["spec"], "seed": crash["seed"], "kind": "crash", "detail": "",
                 "target": "", "outcome": "finding", "message": msg}
            findings.append(r)
            per_fn.setdefault(crash["spec"], collections.Counter())["finding"] += 1
            per_kind["crash"]["finding"] += 1
            done = crash.get("start", done) + 1
        i = done
        print(f"  {i}/{a.cases} cases, {len(findings)} findings, {time.time() - t0:.0f} s",
              file=sys.stderr, flush=True)
    total = collections.Counter()
    w = max(len(n) for n in per_fn) + 2
    print(f"\nnnkit fuzz: {a.cases} cases, seed {a.seed}, {time.time() - t0:.0f} s\n")
    head = f"{'function':<{w}}" + "".join(f"{o:>11}" for o in OUTCOMES) + f"{'total':>8}{'checked':>9}"
    print(head)
    print("-" * len(head))
    for n, c in per_fn.items():
        total.update(c)
        print(f"{n:<{w}}" + "".join(f"{c[o]:>11}" for o in OUTCOMES)
              + f"{sum(c.values()):>8}{checked[n]:>9}")
    print("-" * len(head))
    print(f"{'total':<{w}}" + "".join(f"{total[o]:>11}" for o in OUTCOMES)
          + f"{sum(total.values()):>8}{sum(checked.values()):>9}")
    print(f"\n{'corruption':<{w}}" + "".join(f"{o:>11}" for o in OUTCOMES))
    for k in sorted(per_kind):
        print(f"{k:<{w}}" + "".join(f"{per_kind[k][o]:>11}" for o in OUTCOMES))
    print("\n'checked': returned and compared with the clean call and/or the NumPy reference")
    if findings:
        print(f"\n{len(findings)} findings:")
        for r in findings[:200]:
            print(f"  {r['spec']} seed={r['seed']} {r['kind']}:{r['detail']} on "
                  f"{r['target']!r}: {r['message']}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(findings, f, indent=1)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
