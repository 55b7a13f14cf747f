"""Generate docs/performance.md (and its figures) from `nnkit bench --json` output.

    nnkit bench --runs 3 --json docs/data/bench.json
    python docs/scripts/make_performance.py docs/data/bench.json

The page is generated, never written by hand: per benchmark family its tables
(every column `nnkit bench` prints, formatted the same way), a figure of the
ratio against PyTorch and NumPy per row, and, where a table has several sizes
of one dtype, a figure of how the time grows with size; all stamped with the
machine, CPU flags, date, load average and nnkit commit the JSON records.
The prose says only what holds on every machine (what a ratio and the share
of the floor mean); every number comes from the JSON.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DOCS = os.path.dirname(HERE)

KNOWN_KINDS = ("text", "ms", "us", "ratio", "share", "num")


# ----------------------------------------------------------------- reading
def load(path: str) -> dict:
    """The bench JSON at `path`, its shape checked: a ValueError naming the
    file and the first thing that is not what `nnkit bench --json` writes."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON ({exc.msg} at line {exc.lineno}, "
                         f"column {exc.colno})") from None
    validate(data, path)
    return data


def validate(data, where: str = "bench JSON") -> None:
    def bad(at, expected, got):
        raise ValueError(f"{where}: {at}: expected {expected}, got {got!r}"[:400])

    if not isinstance(data, dict):
        bad("top level", "an object with 'machine' and 'families'", type(data).__name__)
    for key in ("machine", "families"):
        if key not in data:
            bad(key, f"a '{key}' key (the output of `nnkit bench --json`)",
                sorted(data))
    if not isinstance(data["machine"], dict):
        bad("machine", "an object", data["machine"])
    fams = data["families"]
    if not isinstance(fams, dict) or not fams:
        bad("families", "a non-empty object {family: [table, ...]}", fams)
    for fam, tables in fams.items():
        if not isinstance(tables, list):
            bad(f"families.{fam}", "a list of tables", tables)
        for i, t in enumerate(tables):
            at = f"families.{fam}[{i}]"
            if not isinstance(t, dict):
                bad(at, "a table object", t)
            for key in ("name", "title", "columns", "rows"):
                if key not in t:
                    bad(at, f"a '{key}' key", sorted(t))
            cols = t["columns"]
            if not isinstance(cols, list) or not all(
                    isinstance(c, dict) and isinstance(c.get("name"), str)
                    and c.get("kind") in KNOWN_KINDS for c in cols):
                bad(f"{at}.columns", f"[{{name, kind}}] with kind one of {KNOWN_KINDS}", cols)
            names = [c["name"] for c in cols]
            for j, row in enumerate(t["rows"]):
                if not isinstance(row, dict) or list(row) != names:
                    bad(f"{at}.rows[{j}]", f"an object with the keys {names}",
                        list(row) if isinstance(row, dict) else row)
                for c in cols:
                    v = row[c["name"]]
                    ok = (isinstance(v, str) if c["kind"] == "text" else
                          v is None or isinstance(v, (int, float)) and not isinstance(v, bool))
                    if not ok:
                        bad(f"{at}.rows[{j}][{c['name']!r}]",
                            "text" if c["kind"] == "text" else "a number or null", v)


# -------------------------------------------------------------- formatting
def cell(value, kind: str) -> str:
    """A value as `nnkit bench` prints it (nnkit.bench._timing.KINDS)."""
    from nnkit.bench._timing import KINDS
    return "n/a" if value is None else KINDS[kind](value)


def md_table(headers: list[str], rows: list[list[str]], align: str) -> list[str]:
    esc = lambda s: str(s).replace("|", "\\|")
    rule = ["---:" if a == "r" else "---" for a in align]
    return (["| " + " | ".join(map(esc, headers)) + " |", "| " + " | ".join(rule) + " |"]
            + ["| " + " | ".join(map(esc, r)) + " |" for r in rows])


def label(table: dict, row: dict) -> str:
    """A row's name: its text columns that are not verdicts, joined."""
    texts = [c["name"] for c in table["columns"] if c["kind"] == "text"
             and c["name"] not in ("target", "met")]
    return ", ".join(str(row[n]) for n in texts)


def size_of(text: str) -> int | None:
    """The product of the integers in a shape label ('8x16' -> 128,
    '(16, 4)' -> 64): the order of the work a row does."""
    nums = [int(n) for n in re.findall(r"\d+", text)]
    return math.prod(nums) if nums else None


def families_line(measured: list[str]) -> str:
    """Which of nnkit's benchmark families the run measured, and which not."""
    try:
        from nnkit.bench import FAMILIES
    except ImportError:          # the page can be made without nnkit's kernels
        FAMILIES = measured
    missing = [f for f in FAMILIES if f not in measured]
    return ", ".join(measured) + (f" (not in this run: {', '.join(missing)})"
                                  if missing else "")


# ------------------------------------------------------------------ machine
def load_text(load) -> str:
    """The (1, 5, 15 min) load averages as the page prints them."""
    return "not recorded" if load is None else " ".join(f"{x:.2f}" for x in load)


def machine_lines(m: dict, runs, extra: dict) -> list[str]:
    """The machine as a two-column table; `extra` fills what the run did not
    record (its "_why" says where each came from)."""
    m = {**extra, **{k: v for k, v in m.items() if v is not None}}

    def get(key):
        return "not recorded" if m.get(key) is None else m[key]

    flags, load, commit = m.get("cpu_flags"), m.get("load_average"), m.get("commit")
    rows = [
        ("CPU", m.get("cpu_model") or get("processor")),
        ("cores / kernel threads", f"{get('cores')} / {get('kernel_threads')}"),
        ("kernels' ISA level (nnkit info)", get("isa_level")),
        ("CPU flags (SIMD)", "not recorded" if flags is None else
         (", ".join(flags) or "none of SSE4.2, AVX, AVX2, FMA, AVX-512")),
        ("platform", get("platform")),
        ("date of the run", m.get("date_utc") or f"{get('date')} (machine's local time)"),
        ("load average (1, 5, 15 min) at the end", load_text(load)),
        ("nnkit", f"{get('nnkit')}, commit {commit[:12] if commit else 'not recorded'}"),
        ("NumPy / SciPy / PyTorch",
         f"{get('numpy')} / {get('scipy')} / {m.get('torch') or 'not installed'}"),
        ("runs", "one" if runs in (None, 1) else f"{runs}; each cell the median over them"),
    ] + ([("benchmarks", extra["_families"])] if extra.get("_families") else [])
    lines = md_table(["", "this run"], [[a, str(b)] for a, b in rows], "ll")
    notes = [f"- *{k}*: {why}" for k, why in extra.get("_why", {}).items()]
    return lines + ([""] + notes if notes else [])


# ------------------------------------------------------------------ figures
def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save(fig, path: str) -> None:
    # no Software/date metadata: regenerating from the same JSON gives the same bytes
    fig.savefig(path, dpi=110, metadata={"Software": None})
    _pyplot().close(fig)


def ratio_figure(table: dict, path: str) -> bool:
    """Horizontal bars: other/nnkit per row for each ratio column (log scale,
    1 = as fast as nnkit). False when the table has no ratio column with data."""
    cols = [c["name"] for c in table["columns"] if c["kind"] == "ratio"]
    rows = table["rows"]
    cols = [c for c in cols if any(r[c] is not None for r in rows)]
    if not cols or not rows:
        return False
    plt = _pyplot()
    from matplotlib.ticker import FuncFormatter
    n = len(rows)
    fig, ax = plt.subplots(figsize=(7, 0.45 * n * len(cols) + 1.4))
    height = 0.8 / len(cols)
    for k, c in enumerate(cols):
        ys = [i + k * height for i in range(n)]
        vals = [r[c] if r[c] is not None else float("nan") for r in rows]
        # bars grow from 1 (as fast as nnkit): right is nnkit faster, left slower
        ax.barh(ys, [v - 1 for v in vals], left=1.0, height=height, label=c)
    ax.set_yticks([i + 0.4 - height / 2 for i in range(n)])
    ax.set_yticklabels([label(table, r) for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}×"))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda x, _: ""))
    lo = min(v for c in cols for r in rows if (v := r[c]) is not None)
    hi = max(v for c in cols for r in rows if (v := r[c]) is not None)
    ax.set_xlim(min(lo, 1.0) / 1.5, max(hi, 1.0) * 1.5)
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xlabel("other / nnkit time (> 1: nnkit is faster)")
    ax.set_title(table["name"], fontsize=10)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    save(fig, path)
    return True


def growth_figure(table: dict, path: str) -> bool:
    """Time against size (log-log) per implementation and dtype, where the
    table has at least three sizes of one dtype. False otherwise."""
    names = [c["name"] for c in table["columns"]]
    texts = [c["name"] for c in table["columns"] if c["kind"] == "text"]
    shape_col = next((t for t in texts if t not in ("dtype", "target", "met")), None)
    times = [c["name"] for c in table["columns"] if c["kind"] == "ms"
             and c["name"] in ("nnkit ms", "numpy ms", "torch ms")]
    if shape_col is None or "nnkit ms" not in times:
        return False
    groups: dict = {}
    for r in table["rows"]:
        s = size_of(r[shape_col])
        if s is not None:
            groups.setdefault(r.get("dtype", "") if "dtype" in names else "", []).append((s, r))
    groups = {k: sorted(v, key=lambda p: p[0]) for k, v in groups.items()
              if len({s for s, _ in v}) >= 3}
    if not groups:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    # colour and line: the implementation; filled or hollow markers: the dtype
    styles = {"nnkit ms": ("o-", "tab:blue"), "numpy ms": ("s--", "tab:orange"),
              "torch ms": ("^:", "tab:green")}
    for k, (dtype, pts) in enumerate(groups.items()):
        for c in times:
            xs = [s for s, r in pts if r[c] is not None]
            ys = [r[c] * 1e3 for s, r in pts if r[c] is not None]
            if xs:
                fmt, colour = styles[c]
                ax.plot(xs, ys, fmt, color=colour, markerfacecolor=colour if k == 0 else "white",
                        label=f"{c.split()[0]} {dtype}".strip())
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"size: the product of {shape_col}")
    ax.set_ylabel("time per call, ms")
    ax.set_title(f"{table['name']}: how the time grows with size", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    save(fig, path)
    return True


def overview_figure(data: dict, path: str) -> bool:
    """Every row of every table with a torch/nk column in one figure: PyTorch's
    time over nnkit's (log scale, 1 = as fast). False when no row has one."""
    bars = []                                   # (table name, row label, ratio)
    for tables in data["families"].values():
        for t in tables:
            if any(c["name"] == "torch/nk" for c in t["columns"]):
                bars += [(t["name"], label(t, r), r["torch/nk"]) for r in t["rows"]
                         if r["torch/nk"] is not None]
    if not bars:
        return False
    plt = _pyplot()
    from matplotlib.ticker import FuncFormatter
    names = list(dict.fromkeys(b[0] for b in bars))
    colours = {n: plt.get_cmap("tab10")(i % 10) for i, n in enumerate(names)}
    fig, ax = plt.subplots(figsize=(7.5, 0.28 * len(bars) + 1.2))
    ys = range(len(bars))
    ax.barh(ys, [b[2] - 1 for b in bars], left=1.0, color=[colours[b[0]] for b in bars])
    ax.set_yticks(list(ys))
    ax.set_yticklabels([f"{b[0]}: {b[1]}" for b in bars], fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}×"))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda x, _: ""))
    vals = [b[2] for b in bars]
    ax.set_xlim(min(min(vals), 1.0) / 1.5, max(max(vals), 1.0) * 1.5)
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xlabel("PyTorch time / nnkit time (> 1: nnkit is faster)")
    ax.set_title("Every benchmark row against PyTorch CPU", fontsize=10)
    fig.tight_layout()
    save(fig, path)
    return True


# --------------------------------------------------------------------- page
INTRO = """\
Every number on this page comes from one run of `nnkit bench --json` on the
machine described below; the page is generated from that file by
`docs/scripts/make_performance.py` and is rewritten, not edited, when the
benchmarks run again. Other machines give other numbers: run
`nnkit bench` on yours.

## How to read the tables

- **Times** (`ms`, `us`) are the median wall time of one call (forward and
  backward together where the title says so), measured in the same process
  for every implementation.
- **Ratios** (`np/nk`, `torch/nk`, `other/nk`) are the other implementation's
  time divided by nnkit's: above 1 nnkit is faster, below 1 it is slower.
  `n/a` means the other side was not measured (PyTorch not installed).
- **The floor** (`floor ms`) is the time the hardware allows for the row's
  work: the bytes it must move divided by the memory bandwidth, or the
  floating-point operations it must do divided by the GEMM rate, both rates
  measured in the same run (each table's title says which). **Share of the
  floor** (`nk@floor`, `torch@floor`) is floor / time: 100 % means the
  implementation runs at the floor, 10 % means it takes ten times as long.
  The share is comparable across rows and sizes where the ratio is not.
"""


def isa_ab_lines(ab: dict, source: str) -> list[str]:
    """The dispatched build against a -march=native build of one commit
    (docs/scripts/isa_ab.py): a row per benchmark row, and how many are
    within the tolerance."""
    m, tol = ab["machine"], ab["tolerance"]
    rows = ab["rows"]
    within = sum(r["ratio"] <= 1 + tol for r in rows)
    out = ["## Run-time dispatch against -march=native", "",
           f"*Generated from {source} (docs/scripts/isa_ab.py).* The kernels a wheel "
           "ships are compiled for fixed instruction-set levels and chosen at import; "
           "this table times that build (level "
           f"`{ab['levels']['dispatched']}` on this CPU) against a `-march=native` build "
           "of the same commit, `nnkit bench --no-torch` for each family, the two builds "
           f"back to back, {ab['rounds']} rounds, which build goes first alternating. "
           "Each time is nnkit's median over the rounds; "
           "`disp/native` above 1 means the dispatched build is slower.", "",
           f"- rows within {tol:.0%} of the native build: **{within} of {len(rows)}**",
           f"- rows slower by more than {tol:.0%} in every round: "
           f"**{sum(min(r['round_ratios']) > 1 + tol for r in rows)}**; "
           "`rounds' range` is the lowest and highest ratio of one round's pair, "
           "run back to back: the spread of the machine's noise",
           f"- commit {str(m.get('commit'))[:12]}, {m.get('date_utc')}, "
           f"{m.get('cpu_model')}, {m.get('kernel_threads')} kernel threads, load "
           f"average at the end {load_text(m.get('load_average'))}", ""]
    table = [[r["family"], r["table"], r["row"], cell(r["dispatched_ms"], "ms"),
              cell(r["native_ms"], "ms"), f"{r['ratio']:.3f}",
              f"{min(r['round_ratios']):.2f}–{max(r['round_ratios']):.2f}",
              "yes" if r["ratio"] <= 1 + tol else "NO"] for r in rows]
    return out + md_table(["family", "table", "row", "dispatched ms", "native ms",
                           "disp/native", "rounds' range", f"within {tol:.0%}"], table,
                          "lllrrrrl") + [""]


def render(data: dict, figures_dir: str, *, source: str, extra: dict | None = None,
           figures_rel: str = "figures", isa_ab: tuple[dict, str] | None = None) -> str:
    """The page's Markdown; figures written into `figures_dir`, linked as
    `figures_rel/<name>.png` from the page."""
    extra = extra or {}
    m = data["machine"]
    out = ["# Performance", "",
           f"<!-- generated by docs/scripts/make_performance.py from {source}; "
           "do not edit -->", ""]
    if m.get("quick"):
        out += ["!!! warning \"A --quick run\"",
                "    These tables come from `nnkit bench --quick`: tiny shapes and two "
                "calls each, a check of the tables, not a measurement.", ""]
    out += [INTRO, "## The machine", ""]
    extra = {**extra, "_families": families_line(list(data["families"]))}
    out += machine_lines(m, data.get("runs"), extra) + [""]
    os.makedirs(figures_dir, exist_ok=True)
    for old in os.listdir(figures_dir):      # a previous run's figures: none may linger
        if old.startswith("perf-") and old.endswith(".png"):
            os.remove(os.path.join(figures_dir, old))
    if overview_figure(data, os.path.join(figures_dir, "perf-overview.png")):
        out += ["## Against PyTorch, every row", "",
                f"![PyTorch time / nnkit time for every row]({figures_rel}/perf-overview.png)",
                ""]
    for fam, tables in data["families"].items():
        out += [f"## {fam}", ""]
        for t in tables:
            # the short name as the heading (the contents stay readable), the title under it
            out += [f"### {t['name']}", "", f"*{t['title']}*", ""]
            headers = [c["name"] for c in t["columns"]]
            align = "".join("l" if c["kind"] == "text" else "r" for c in t["columns"])
            rows = [[cell(r[c["name"]], c["kind"]) for c in t["columns"]] for r in t["rows"]]
            out += md_table(headers, rows, align) + [""]
            out += [f"- {n}" for n in t.get("notes", [])] + ([""] if t.get("notes") else [])
            for kind, draw, alt in (("ratio", ratio_figure, "other / nnkit time per row"),
                                    ("growth", growth_figure, "time against size")):
                name = f"perf-{t['name']}-{kind}.png"
                if draw(t, os.path.join(figures_dir, name)):
                    out += [f"![{t['name']}: {alt}]({figures_rel}/{name})", ""]
    if isa_ab is not None:
        out += isa_ab_lines(*isa_ab)
    return "\n".join(out).rstrip() + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("json", help="the output of `nnkit bench --json FILE`")
    p.add_argument("--out", default=os.path.join(DOCS, "performance.md"),
                   help="the page to write (default docs/performance.md)")
    p.add_argument("--figures", default=os.path.join(DOCS, "figures"),
                   help="where the PNGs go (default docs/figures; linked as figures/...)")
    p.add_argument("--commit", help="the nnkit commit benchmarked, for a JSON written "
                                    "before `nnkit bench` recorded it")
    p.add_argument("--cpu-from-this-machine", action="store_true",
                   help="for a JSON without cpu_model/cpu_flags, read them here (say so "
                        "only when this is the machine that ran the benchmarks)")
    p.add_argument("--isa-ab", default=os.path.join(DOCS, "data", "isa_ab.json"),
                   help="the dispatched-vs-native table (docs/scripts/isa_ab.py merge); "
                        "default docs/data/isa_ab.json, left out when it does not exist")
    args = p.parse_args(argv)
    try:
        data = load(args.json)
        isa_ab = None
        if os.path.exists(args.isa_ab):
            with open(args.isa_ab, encoding="utf-8") as f:
                isa_ab = (json.load(f), os.path.basename(args.isa_ab))
    except (OSError, ValueError) as exc:
        p.error(str(exc))
    extra, why = {}, {}
    if args.commit:
        extra["commit"] = args.commit
        if not data["machine"].get("commit"):
            why["commit"] = "given when the page was generated (the run did not record it)"
    if args.cpu_from_this_machine and not data["machine"].get("cpu_model"):
        from nnkit.bench import _machine
        extra.update(cpu_model=_machine.cpu_model(), cpu_flags=_machine.cpu_flags())
        why["CPU, CPU flags"] = ("read from the machine that generated the page, the one "
                                 "that ran the benchmarks (the run did not record them)")
    extra["_why"] = why
    rel = os.path.relpath(args.figures, os.path.dirname(os.path.abspath(args.out)))
    page = render(data, args.figures, source=os.path.basename(args.json), extra=extra,
                  figures_rel=rel.replace(os.sep, "/"), isa_ab=isa_ab)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(page)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
