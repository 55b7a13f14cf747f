"""Time the dispatched build against a -march=native build of one commit, row by row.

The question (#28): does run-time dispatch cost speed? Two in-place builds of
the same commit, with the same Python, NumPy, SciPy and compiler:

    git worktree add /tmp/nk-disp HEAD
    (cd /tmp/nk-disp && python setup.py build_ext --inplace -j 2)
    git worktree add /tmp/nk-native HEAD
    (cd /tmp/nk-native && NNKIT_BUILD_LEVELS=native python setup.py build_ext --inplace -j 2)

    python docs/scripts/isa_ab.py run --dispatched /tmp/nk-disp --native /tmp/nk-native \\
        --raw /tmp/isa-ab --runs 3
    python docs/scripts/isa_ab.py merge /tmp/isa-ab --out docs/data/isa_ab.json
    python docs/scripts/make_performance.py docs/data/bench.json   # renders its table

`run` calls `nnkit bench --no-torch --json` once per family and build, the
two builds back to back, family by family, for `--runs` rounds; which build
goes first alternates between rounds, so a drift in the machine's load falls
on both. Each call writes <raw>/<build>-<family>-r<round>.json. `merge`
takes, for every row of every table, the median over the rounds of nnkit's
own time in each build (the median of `nnkit bench --runs N`) and their
ratio, dispatched / native: above 1 the dispatched build is slower; and
each round's ratio of the pair run back to back, whose spread shows how far
the machine's noise moves one measurement.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import re
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_performance import label, validate  # noqa: E402

BUILDS = ("dispatched", "native")
TOLERANCE = 0.05      # the bar: within 5 % of the native build


def nnkit_time(table: dict, row: dict) -> float | None:
    """nnkit's own time in a row of an `nnkit bench` table, or None for a row
    that is not nnkit's (the optimizer table lists NumPy and torch as rows)."""
    names = [c["name"] for c in table["columns"]]
    if "nnkit ms" in names:
        return row["nnkit ms"]
    if "implementation" in names:               # optim: one row per implementation
        return row["median ms"] if row["implementation"].startswith("nnkit") else None
    if "sum ms" in names:                       # whitening's stages: all of them nnkit's
        return row["sum ms"]
    raise ValueError(f"table {table['name']!r}: no column of nnkit's time among {names}")


def run(args) -> int:
    trees = {"dispatched": args.dispatched, "native": args.native}
    for build, tree in trees.items():
        if not glob.glob(os.path.join(tree, "nnkit", "_kernels", "*", "dense*.so")):
            sys.exit(f"--{build}: expected a tree built in place (nnkit/_kernels/<level>/"
                     f"dense*.so), got {tree!r}")
    os.makedirs(args.raw, exist_ok=True)
    if args.families:
        families = args.families
    else:
        sys.path.insert(0, args.dispatched)
        from nnkit.bench import FAMILIES
        families = list(FAMILIES)
    for r in range(args.start, args.start + args.runs):
        for fam in families:
            order = BUILDS if r % 2 else BUILDS[::-1]
            for build in order:
                out = os.path.join(args.raw, f"{build}-{fam}-r{r}.json")
                env = {**os.environ, "PYTHONPATH": trees[build]}
                print(f"round {r}, {fam}, {build}", file=sys.stderr, flush=True)
                subprocess.run([sys.executable, "-m", "nnkit.cli", "bench", "--no-torch",
                                "--json", out, fam], env=env, cwd=args.raw, check=True,
                               stdout=subprocess.DEVNULL)
    return 0


def merge(raw: str) -> dict:
    """The rows of every raw file in `raw`, medians over rounds per build."""
    found: dict[tuple[str, str], dict[int, dict]] = {}
    for path in sorted(glob.glob(os.path.join(raw, "*.json"))):
        m = re.fullmatch(r"(dispatched|native)-(\w+)-r(\d+)\.json", os.path.basename(path))
        if not m:
            continue
        build = m[1]
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        validate(data, path)
        found.setdefault((build, m[2]), {})[int(m[3])] = data
    families = sorted({fam for _, fam in found})
    missing = [(b, f) for f in families for b in BUILDS if (b, f) not in found]
    if missing:
        raise ValueError(f"{raw}: no runs of {missing[0][1]} with the {missing[0][0]} build")
    rows, machines = [], {}
    for fam in families:
        runs = {b: found[(b, fam)] for b in BUILDS}
        rounds = sorted(set(runs["dispatched"]) & set(runs["native"]))
        for b in BUILDS:
            machines.setdefault(b, runs[b][rounds[-1]]["machine"])
        first = runs["dispatched"][rounds[0]]["families"][fam]
        for ti, table in enumerate(first):
            for ri, row in enumerate(table["rows"]):
                if nnkit_time(table, row) is None:
                    continue
                times = {b: [nnkit_time(runs[b][r]["families"][fam][ti],
                                        runs[b][r]["families"][fam][ti]["rows"][ri])
                             for r in rounds] for b in BUILDS}
                med = {b: statistics.median(times[b]) for b in BUILDS}
                rows.append({"family": fam, "table": table["name"],
                             "row": label(table, row),
                             "dispatched_ms": med["dispatched"], "native_ms": med["native"],
                             "ratio": med["dispatched"] / med["native"],
                             "dispatched_runs": times["dispatched"],
                             "native_runs": times["native"],
                             # each round's pair: how far the noise moves the ratio
                             "round_ratios": [a / b for a, b in zip(times["dispatched"],
                                                                    times["native"])]})
    levels = {b: machines[b].get("isa_level") for b in BUILDS}
    if levels["native"] != "native":
        raise ValueError(f"{raw}: the native build's runs report ISA level "
                         f"{levels['native']!r}, expected 'native'")
    return {"machine": machines["dispatched"], "levels": levels, "rounds": len(rounds),
            "tolerance": TOLERANCE, "rows": rows}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="time both builds, family by family")
    r.add_argument("--dispatched", required=True, help="tree built in place, every level")
    r.add_argument("--native", required=True,
                   help="tree built in place with NNKIT_BUILD_LEVELS=native")
    r.add_argument("--raw", required=True, help="folder for the raw JSON files")
    r.add_argument("--runs", type=int, default=3, help="rounds (default 3)")
    r.add_argument("--start", type=int, default=1,
                   help="number of the first round (more rounds into the same --raw)")
    r.add_argument("families", nargs="*", help="families (default: all)")
    m = sub.add_parser("merge", help="the medians and ratios as one JSON file")
    m.add_argument("raw", help="the folder `run` wrote")
    m.add_argument("--out", required=True, help="the JSON to write (docs/data/isa_ab.json)")
    args = p.parse_args(argv)
    if args.cmd == "run":
        if args.runs < 1:
            p.error(f"--runs: expected >= 1, got {args.runs}")
        return run(args)
    try:
        data = merge(args.raw)
    except (OSError, ValueError) as exc:
        p.error(str(exc))
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    slow = [x for x in data["rows"] if x["ratio"] > 1 + TOLERANCE]
    print(f"wrote {args.out}: {len(data['rows'])} rows, {len(slow)} more than "
          f"{TOLERANCE:.0%} slower dispatched than native", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
