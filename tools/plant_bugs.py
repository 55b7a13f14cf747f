"""Plant kernel bugs one at a time and record who catches each one.

A developer tool (CI never runs it): does `nnkit gradcheck --strict` catch
what the family tests catch? Each entry of BUGS is (id, file, exact old text,
new text, category); the old text must occur exactly once in the file. For
each bug, in a scratch copy of the repository:

  1. patch the file (pyx/<module>.pyx or pyx/include/<header>.h),
  2. rebuild only the kernel modules that read it (`setup.py build_ext
     --inplace`; the other modules' .so are touched so setup.py sees them
     fresh), at the ISA levels the scratch copy was built with (its
     nnkit/_kernels/<level>/ folders, passed as NNKIT_BUILD_LEVELS), in the
     scratch copy's own venv,
  3. run `nnkit gradcheck --strict` with the scratch copy's own Python code
     ("before": the code the scratch copy was made from) and, with
     --after SRC, with the nnkit/ Python package of SRC over the same
     patched kernels ("after"),
  4. run the family's tests (`pytest -x -q tests/<family>`, NNKIT_NUM_THREADS=2),
  5. revert the patch and put the correct .so files back (no rebuild).

Set-up, once (a compile of every module; never in /work/main, whose kernels
other people's tests are running against):

    git worktree add /work/wt-mut -b mut main
    python3 -m venv /work/venv-mut
    /work/venv-mut/bin/pip install numpy scipy cython setuptools pytest \\
        pytest-asyncio hypothesis textual==8.2.8 pytest-textual-snapshot==1.1.0
    cd /work/wt-mut && NNKIT_BUILD_LEVELS=best \\
        /work/venv-mut/bin/pip install --no-build-isolation --no-deps -e .

(one ISA level, the best this CPU runs: each bug is then compiled once;
gradcheck and the tests run that level)

Run:

    /work/venv-mut/bin/python tools/plant_bugs.py --repo /work/wt-mut \\
        --python /work/venv-mut/bin/python --after /work/main \\
        [--only ID ...] [--results FILE.jsonl] [--skip-tests]

Compiling is the cost (minutes a module on a loaded 2-core machine): to
compile at -O1 instead of setup.py's -O3, point CC at a wrapper that rewrites
the flag, e.g. a script holding  exec gcc "${@/-O3/-O1}"  (the bugs here
change results by far more than the rounding differences -O1 makes).

Each bug appends one JSON line to --results (id, category, file, built,
gradcheck_before, gradcheck_after, tests: True = caught, i.e. a non-zero
exit; None = not run) and the table is printed at the end. A bug whose
module does not compile is reported as such and not counted.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

# (id, file, old text, new text, category)
BUGS = [
    # --- max-pool ties (documented: the first maximum in row-major order)
    ("pool-tie-generic", "pyx/pool.pyx",
     "if best_i < 0 or v > best or v != v:", "if best_i < 0 or v >= best or v != v:",
     "tie to the last max"),
    ("pool-tie-2x2", "pyx/pool.pyx",
     "if b > m or b != b:", "if b >= m or b != b:", "tie to the last max"),
    # --- ReLU side at Z == 0 (documented: gradient 0 there)
    ("bn-mask1-at-zero", "pyx/include/nnkit_bn_sweeps.h",
     "static inline T NNKIT_PASTE(nnkit_bn_mask1, S)(T dh, T z) { return z <= 0 ? 0 : dh; }",
     "static inline T NNKIT_PASTE(nnkit_bn_mask1, S)(T dh, T z) { return z < 0 ? 0 : dh; }",
     "gradient at Z == 0"),
    ("bn-mask-vec-at-zero", "pyx/include/nnkit_bn_sweeps.h",
     "return (VEC)((IVEC)dh & ~(IVEC)(z <= zero));",
     "return (VEC)((IVEC)dh & ~(IVEC)(z < zero));", "gradient at Z == 0"),
    # --- threaded chunks: wrong only when the team has more than one thread
    ("bn-stats-chunk", "pyx/batchnorm.pyx",
     "_stats_rows(&Y[0, 0], row_start(t, nt, B), row_start(t + 1, nt, B), M,",
     "_stats_rows(&Y[0, 0], row_start(t, nt, B) + (t > 0), row_start(t + 1, nt, B), M,",
     "off-by-one in a threaded chunk"),
    ("bn-merge-count", "pyx/batchnorm.pyx",
     "        n = <double>row_start(1, nt, B)\n",
     "        n = <double>row_start(1, nt, B) + (nt > 1)\n",
     "off-by-one in a threaded chunk"),
    ("bn-dy-chunk", "pyx/batchnorm.pyx",
     "_dy_rows(&dout[0, 0], &Y[0, 0], row_start(t, nt, B), row_start(t + 1, nt, B), M,",
     "_dy_rows(&dout[0, 0], &Y[0, 0], row_start(t, nt, B) + (t > 0), row_start(t + 1, nt, B), M,",
     "off-by-one in a threaded chunk"),
    ("norms-forward-chunk", "pyx/norms.pyx",
     "_forward_rows(&X[0, 0], row_start(t, nt, R), row_start(t + 1, nt, R), D,",
     "_forward_rows(&X[0, 0], row_start(t, nt, R) + (t > 0), row_start(t + 1, nt, R), D,",
     "off-by-one in a threaded chunk"),
    ("norms-ln-backward-chunk", "pyx/norms.pyx",
     "_ln_backward_rows(&dY[0, 0], &X[0, 0], row_start(t, nt, R),",
     "_ln_backward_rows(&dY[0, 0], &X[0, 0], row_start(t, nt, R) + (t > 0),",
     "off-by-one in a threaded chunk"),
    ("whitening-sums-chunk", "pyx/whitening.pyx",
     "column_sums_rows(A, row_start(t, nt, B), row_start(t + 1, nt, B), M,",
     "column_sums_rows(A, row_start(t, nt, B) + (t > 0), row_start(t + 1, nt, B), M,",
     "off-by-one in a threaded chunk"),
    ("whitening-write-chunk", "pyx/whitening.pyx",
     "_pointwise_write(&dout[0, 0], &yhat[0, 0], row_start(t, nt, B),",
     "_pointwise_write(&dout[0, 0], &yhat[0, 0], row_start(t, nt, B) + (t > 0),",
     "off-by-one in a threaded chunk"),
    ("conv-forward-team", "pyx/conv.pyx",
     "    else:\n        for n in prange(B, nogil=True, schedule=\"static\", num_threads=nthreads):\n"
     "            t = threadid()\n            _forward_one(",
     "    else:\n        for n in prange(B - 1, nogil=True, schedule=\"static\", num_threads=nthreads):\n"
     "            t = threadid()\n            _forward_one(",
     "off-by-one in a threaded chunk"),
    ("conv-backward-team", "pyx/conv.pyx",
     "    else:\n        for n in prange(B, nogil=True, schedule=\"static\", num_threads=nthreads):\n"
     "            t = threadid()\n            if tiled:",
     "    else:\n        for n in prange(B - 1, nogil=True, schedule=\"static\", num_threads=nthreads):\n"
     "            t = threadid()\n            if tiled:",
     "off-by-one in a threaded chunk"),
    ("rnn-row-team-last-row", "pyx/rnn.pyx",
     "i1[0] = B if tid == nteam - 1 else rows * (groups * (tid + 1) // nteam)",
     "i1[0] = B - 1 if tid == nteam - 1 else rows * (groups * (tid + 1) // nteam)",
     "off-by-one in a threaded chunk"),
    # --- stride / dilation / padding handling
    ("conv-im2col-dilation", "pyx/conv.pyx",
     "                    dst = col + ((c * kh + i) * kw + j) * L + oh * Wo\n"
     "                    ih = oh * sh - ph + i * dh\n",
     "                    dst = col + ((c * kh + i) * kw + j) * L + oh * Wo\n"
     "                    ih = oh * sh - ph + i\n",
     "wrong stride/dilation/padding"),
    ("conv-im2col-stride", "pyx/conv.pyx",
     "                    dst = col + ((c * kh + i) * kw + j) * L + oh * Wo\n"
     "                    ih = oh * sh - ph + i * dh\n",
     "                    dst = col + ((c * kh + i) * kw + j) * L + oh * Wo\n"
     "                    ih = oh - ph + i * dh\n",
     "wrong stride/dilation/padding"),
    ("pool-backward-padding", "pyx/pool.pyx",
     "                    ih = oh * sh - ph + i\n                    if ih < 0 or ih >= H:\n"
     "                        continue\n",
     "                    ih = oh * sh - ph + i + (ph > 0)\n                    if ih < 0 or ih >= H:\n"
     "                        continue\n",
     "wrong stride/dilation/padding"),
    # --- wrong sign, dropped term, wrong index
    ("lp-backward-sign", "pyx/pool.pyx",
     "                                scale = xv\n", "                                scale = -xv\n",
     "wrong sign"),
    ("affine-db-rows", "pyx/dense.pyx",
     "column_sums(&dY[0, 0], B, M, acc, &db[0])", "column_sums(&dY[0, 0], B - 1, M, acc, &db[0])",
     "wrong index"),
    ("bn-dmean-term", "pyx/batchnorm.pyx",
     "dmean[j] = <floating>(-gi * sum_dz[j] + dv * (-2.0 / B) * sum_yc[j])",
     "dmean[j] = <floating>(-gi * sum_dz[j])", "dropped term"),
    ("bn-dvar-sign", "pyx/batchnorm.pyx",
     "dv = -0.5 * gamma[j] * sum_dz_yhat[j] * inv_std[j] * inv_std[j]",
     "dv = 0.5 * gamma[j] * sum_dz_yhat[j] * inv_std[j] * inv_std[j]", "wrong sign"),
    # --- float32 accuracy: exact in float64, small at a small batch
    ("bn-f32-no-shift", "pyx/batchnorm.pyx",
     "            s1 = <double>cm1[j] / nb          # exact chunk mean = c + s1\n",
     "            s1 = 0.0 * cm1[j]\n", "float32 accuracy"),
    ("bn-f32-one-chunk", "pyx/batchnorm.pyx",
     "    cdef Py_ssize_t R = max(1, min(CHUNK_ROWS, CHUNK_BYTES // (M * sizeof(floating))))\n"
     "    cdef Py_ssize_t c, e, i, j\n    cdef double n = 0.0, nb, delta, w, s1\n",
     "    cdef Py_ssize_t R = max(1, r1 - r0)\n"
     "    cdef Py_ssize_t c, e, i, j\n    cdef double n = 0.0, nb, delta, w, s1\n",
     "float32 accuracy at large batch"),
]

# the tests of the family whose kernel a file holds
FAMILY_TESTS = {
    "dense": ["tests/dense", "tests/softmax"], "batchnorm": ["tests/batchnorm"],
    "whitening": ["tests/whitening"], "rnn": ["tests/rnn"], "gated": ["tests/rnn"],
    "conv": ["tests/conv"], "pool": ["tests/conv"], "norms": ["tests/norms"],
    "optim": ["tests/training"],
}


def modules_reading(repo: str, path: str) -> list[str]:
    """Kernel modules (pyx/<m>.pyx) that a patched file is compiled into: the
    file itself, or every .pyx/.pxd that names a header (directly, or via a
    header that includes it)."""
    name = os.path.basename(path)
    if path.endswith(".pyx"):
        return [name[:-4]]
    headers, frontier = {name}, [name]
    while frontier:                                  # headers including headers
        h = frontier.pop()
        for other in glob.glob(os.path.join(repo, "pyx", "include", "*.h")):
            o = os.path.basename(other)
            if o not in headers and f'"{h}"' in open(other).read():
                headers.add(o)
                frontier.append(o)
    pxds = [os.path.basename(p)[:-4] for p in glob.glob(os.path.join(repo, "pyx", "*.pxd"))
            if any(f'"{h}"' in open(p).read() for h in headers)]
    out = []
    for p in sorted(glob.glob(os.path.join(repo, "pyx", "*.pyx"))):
        text = open(p).read()
        if any(f'"{h}"' in text for h in headers) or any(
                re.search(rf"\b(c?import)\s+{x}\b|from\s+{x}\s+cimport", text) for x in pxds):
            out.append(os.path.basename(p)[:-4])
    return out


def levels(repo: str) -> list[str]:
    """The ISA levels the scratch copy was built with: its nnkit/_kernels/<level>/
    folders (NNKIT_BUILD_LEVELS=best builds one)."""
    found = sorted({os.path.basename(os.path.dirname(p)) for p in
                    glob.glob(os.path.join(repo, "nnkit", "_kernels", "*", "*.so"))})
    if not found:
        raise SystemExit(f"{repo}/nnkit/_kernels: no level folder with compiled kernels "
                         f"(build the scratch copy first)")
    return found


def so_paths(repo: str, module: str) -> list[str]:
    """The module's compiled file in every level folder of the scratch copy."""
    out = []
    for level in levels(repo):
        found = glob.glob(os.path.join(repo, "nnkit", "_kernels", level, module + ".*.so"))
        if len(found) != 1:
            raise SystemExit(f"{module}: expected one built module in "
                             f"{repo}/nnkit/_kernels/{level}, found {found} (build the "
                             f"scratch copy first)")
        out += found
    return out


def run(cmd, cwd, env, log, timeout=3600) -> int:
    t0 = time.time()
    with open(log, "a") as f:
        f.write(f"\n$ {' '.join(cmd)}\n")
        f.flush()
        proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT,
                              timeout=timeout)
        f.write(f"[exit {proc.returncode} after {time.time() - t0:.0f} s]\n")
    return proc.returncode


def after_tree(src: str, repo: str) -> str:
    """A directory whose nnkit/ is SRC's Python package over the scratch
    copy's compiled kernels (a symlink to its nnkit/_kernels)."""
    root = tempfile.mkdtemp(prefix="plant-after-")
    shutil.copytree(os.path.join(src, "nnkit"), os.path.join(root, "nnkit"),
                    ignore=shutil.ignore_patterns("_kernels", "__pycache__"))
    os.symlink(os.path.join(repo, "nnkit", "_kernels"), os.path.join(root, "nnkit", "_kernels"))
    return root


def plant(bug, repo, python, after_root, skip_tests, skip_before, log) -> dict:
    bid, rel, old, new, category = bug
    path = os.path.join(repo, rel)
    text = open(path).read()
    if text.count(old) != 1:
        return dict(id=bid, category=category, file=rel, built=False,
                    error=f"old text found {text.count(old)} times")
    modules = modules_reading(repo, rel)
    saved = {so: open(so, "rb").read() for m in modules for so in so_paths(repo, m)}
    # the generated C of the patched modules (setup.py compiles a fresh
    # module from it): put back with the .so files
    gen = {c: open(c).read() for m in modules
           for c in glob.glob(os.path.join(repo, "build", "cython-*", "pyx", m + ".c"))}
    others = [so for p in glob.glob(os.path.join(repo, "pyx", "*.pyx"))
              if os.path.basename(p)[:-4] not in modules
              for so in so_paths(repo, os.path.basename(p)[:-4])]
    env = dict(os.environ, NNKIT_NUM_THREADS="2")
    env.pop("NNKIT_ISA", None)
    # rebuild the levels the scratch copy has, no others (setup.py's default
    # is every level, and a build in place removes the levels it did not build)
    build_env = dict(env, NNKIT_BUILD_LEVELS=",".join(levels(repo)))
    result = dict(id=bid, category=category, file=rel, modules=modules)
    try:
        open(path, "w").write(text.replace(old, new))
        now = time.time()
        for so in others:                  # fresh: setup.py rebuilds only `modules`
            os.utime(so, (now, now))
        for so in saved:                   # stale, whatever the clock says
            os.utime(so, (1, 1))
        result["built"] = run([python, "setup.py", "build_ext", "--inplace"], repo,
                              build_env, log) == 0
        if not result["built"]:
            return result
        gc = [python, "-m", "nnkit.cli", "gradcheck", "--strict"]
        env_before = dict(env)
        env_before.pop("PYTHONPATH", None)
        if not skip_before:
            result["gradcheck_before"] = run(gc, repo, env_before, log) != 0
        if after_root:
            result["gradcheck_after"] = run(
                gc, after_root, dict(env, PYTHONPATH=after_root), log) != 0
        if not skip_tests:
            fam = sorted({t for m in modules for t in FAMILY_TESTS.get(m, [])})
            result["tests"] = run([python, "-m", "pytest", "-p", "no:cacheprovider", "-x",
                                   "-q", *fam], repo, env_before, log) not in (0, 5)
        return result
    finally:
        open(path, "w").write(text)
        for so, blob in saved.items():     # the correct kernels back, no rebuild
            with open(so, "wb") as f:
                f.write(blob)
        for c, code in gen.items():
            open(c, "w").write(code)
        now = time.time()                  # newer than the reverted source
        for so in list(saved) + others:
            os.utime(so, (now, now))


def table(results: list[dict]) -> str:
    def mark(x):
        return "-" if x is None else ("caught" if x else "MISSED")
    lines = [f"{'bug':26} {'category':32} {'tests':7} {'gc before':9} {'gc after':9}"]
    for r in results:
        if not r.get("built"):
            lines.append(f"{r['id']:26} {r['category']:32} not built: "
                         f"{r.get('error', 'compile error')}")
            continue
        lines.append(f"{r['id']:26} {r['category']:32} {mark(r.get('tests')):7} "
                     f"{mark(r.get('gradcheck_before')):9} {mark(r.get('gradcheck_after')):9}")
    built = [r for r in results if r.get("built")]
    for key in ("tests", "gradcheck_before", "gradcheck_after"):
        # a key missing from a run merges from another run's line of the same bug
        known = [r for r in built if r.get(key) is not None]
        lines.append(f"{key}: {sum(bool(r[key]) for r in known)} of {len(known)} caught")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repo", required=True, help="the scratch copy (built, editable)")
    p.add_argument("--python", required=True, help="the scratch copy's venv python")
    p.add_argument("--after", help="a source tree whose nnkit/ Python code runs the "
                                   "'after' gradcheck over the patched kernels")
    p.add_argument("--only", nargs="*", help="bug ids to plant, in this order (default: all)")
    p.add_argument("--results", default="plant_bugs.jsonl", help="JSON lines, appended")
    p.add_argument("--log", default="plant_bugs.log", help="every command's output")
    p.add_argument("--skip-tests", action="store_true", help="no family tests")
    p.add_argument("--skip-before", action="store_true",
                   help="no gradcheck with the scratch copy's own Python code")
    p.add_argument("--list", action="store_true", help="list the bugs and exit")
    args = p.parse_args(argv)
    if args.list:
        for bid, rel, _, _, cat in BUGS:
            print(f"{bid:26} {cat:32} {rel}")
        return 0
    repo = os.path.abspath(args.repo)
    if os.path.abspath(repo) == os.path.abspath(os.path.dirname(os.path.dirname(__file__))):
        raise SystemExit("--repo: expected a scratch copy, not the tree this tool lives in")
    known = {b[0] for b in BUGS}
    bad = [b for b in (args.only or []) if b not in known]
    if bad:
        raise SystemExit(f"--only: unknown bug {bad[0]!r} (see --list)")
    after_root = after_tree(args.after, repo) if args.after else None
    results = []
    try:
        by_id = {b[0]: b for b in BUGS}
        for bug in ([by_id[b] for b in args.only] if args.only else BUGS):
            r = plant(bug, repo, args.python, after_root, args.skip_tests, args.skip_before,
                      args.log)
            results.append(r)
            with open(args.results, "a") as f:
                f.write(json.dumps(r) + "\n")
            print(json.dumps(r), flush=True)
    finally:
        if after_root:
            shutil.rmtree(after_root, ignore_errors=True)
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
