"""Run-time ISA dispatch (issue 28): the CPU check, the level a process loads,
NNKIT_ISA's errors, and results that agree across every level this machine runs.

A process loads one level, when nnkit._kernels is first imported; another
level is reached only through NNKIT_ISA in a new process, so the checks of a
level run in a subprocess.
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from nnkit import _isa, _kernels

PROBE = os.path.join(os.path.dirname(__file__), "isa_probe.py")

# /proc/cpuinfo "flags" lines of real CPUs (Linux 6.x), cut to the flags that
# matter plus some that do not; what each can run is the x86-64 psABI's rule.
NEHALEM = ("fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 "
           "clflush mmx fxsr sse sse2 ht syscall nx rdtscp lm constant_tsc pni dtes64 "
           "monitor ssse3 cx16 xtpr pdcm sse4_1 sse4_2 popcnt lahf_lm")
SANDY_BRIDGE = NEHALEM + " aes xsave avx tsc_deadline_timer"       # AVX, no AVX2
HASWELL = SANDY_BRIDGE + " fma movbe f16c rdrand abm bmi1 avx2 smep bmi2 erms invpcid"
SKYLAKE_X = HASWELL + " avx512f avx512dq rdseed adx avx512cd avx512bw avx512vl"
KNIGHTS_LANDING = HASWELL + " avx512f avx512cd avx512pf avx512er"  # no BW/DQ/VL: not v4
AARCH64 = "processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes pmull sha1\n"


def _cpuinfo(flags: str) -> str:
    return f"processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: {flags}\nbugs\t\t: spectre_v1\n"


@pytest.mark.parametrize("flags, runs", [
    (NEHALEM, ("baseline",)),
    (SANDY_BRIDGE, ("baseline",)),
    (HASWELL, ("baseline", "avx2")),
    (SKYLAKE_X, ("baseline", "avx2", "avx512")),
    (KNIGHTS_LANDING, ("baseline", "avx2")),
    (NEHALEM.replace(" popcnt", ""), ()),
])
def test_cpu_levels_of_known_cpus(flags, runs):
    got = _isa.cpu_flags(_cpuinfo(flags))
    assert tuple(lv for lv in _isa.X86_LEVELS if _isa.cpu_runs(lv, got)) == runs


def test_a_cpuinfo_without_x86_flags_runs_no_x86_level():
    flags = _isa.cpu_flags(AARCH64)
    assert flags == frozenset()
    assert not any(_isa.cpu_runs(lv, flags) for lv in _isa.X86_LEVELS)
    assert _isa.cpu_runs("generic", flags)


@pytest.mark.skipif(shutil.which("gcc") is None or not os.path.exists("/proc/cpuinfo")
                    or os.uname().machine != "x86_64", reason="needs gcc on x86-64 Linux")
def test_this_cpu_agrees_with_gcc(tmp_path):
    """GCC's own CPU check (__builtin_cpu_supports of the x86-64-vN names)
    against ours on the machine running the tests."""
    src = tmp_path / "levels.c"
    src.write_text('#include <stdio.h>\nint main(void) { __builtin_cpu_init(); '
                   'printf("%d %d %d", __builtin_cpu_supports("x86-64-v2") > 0, '
                   '__builtin_cpu_supports("x86-64-v3") > 0, '
                   '__builtin_cpu_supports("x86-64-v4") > 0); return 0; }\n')
    exe = tmp_path / "levels"
    built = subprocess.run(["gcc", str(src), "-o", str(exe)], capture_output=True, text=True)
    if built.returncode:
        pytest.skip(f"gcc cannot build the check (gcc >= 12 names the levels): {built.stderr}")
    gcc = [bool(int(x)) for x in subprocess.run([str(exe)], capture_output=True,
                                                text=True, check=True).stdout.split()]
    flags = _isa.cpu_flags()
    assert [_isa.cpu_runs(lv, flags) for lv in _isa.X86_LEVELS] == gcc


# ------------------------------------------------------------ this process
def test_supported_levels_are_built_and_runnable_worst_first():
    levels = _kernels.supported_levels()
    assert levels, "no level this CPU runs is built"
    assert list(levels) == [lv for lv in _isa.LEVELS if lv in levels]
    flags = _isa.cpu_flags()
    here = os.path.dirname(_kernels.__file__)
    for lv in levels:
        assert _isa.cpu_runs(lv, flags)
        assert any(f.startswith("dense.") for f in os.listdir(os.path.join(here, lv)))
    assert _kernels.level() in levels


def test_the_kernels_come_from_the_levels_folder():
    from nnkit._kernels import dense, rnn
    for module in (dense, rnn):
        assert module.__name__ == f"nnkit._kernels.{module.__name__.rsplit('.', 1)[1]}"
        assert os.path.basename(os.path.dirname(module.__file__)) == _kernels.level()


# ------------------------------------------------------------ NNKIT_ISA
def _run(code: str, isa: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "NNKIT_ISA"}
    if isa is not None:
        env["NNKIT_ISA"] = isa
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=600)


LEVEL_OF = ("import json, nnkit, nnkit._kernels as k; from nnkit._kernels import dense; "
            "print(json.dumps([k.level(), k.supported_levels(), dense.__file__]))")


def test_without_nnkit_isa_the_best_level_is_chosen():
    p = _run(LEVEL_OF, None)
    assert p.returncode == 0, p.stderr
    level, supported, _ = json.loads(p.stdout)
    assert level == supported[-1]


@pytest.mark.parametrize("isa", _kernels.supported_levels())
def test_nnkit_isa_picks_the_level(isa):
    p = _run(LEVEL_OF, isa)
    assert p.returncode == 0, p.stderr
    level, _, path = json.loads(p.stdout)
    assert level == isa
    assert os.path.basename(os.path.dirname(path)) == isa


@pytest.mark.parametrize("isa", ["avx1024", "AVX2", "native-ish"])
def test_an_unknown_nnkit_isa_is_refused_at_import(isa):
    p = _run("import nnkit", isa)
    assert p.returncode != 0
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: NNKIT_ISA=")
    assert repr(isa) in last and "baseline, avx2, avx512" in last
    for lv in _kernels.supported_levels():       # the levels available are named
        assert lv in last.split("available here are")[1]


@pytest.mark.parametrize("built, runnable, asked, why", [
    (("baseline", "avx2", "avx512"), ("baseline", "avx2"), "avx512",
     "this CPU lacks its instructions"),
    (("avx512",), ("avx512",), "baseline", "this build does not contain it"),
    (("generic",), ("generic",), "avx2", "this build does not contain it"),
    (("baseline", "avx2"), ("baseline", "avx2"), "sse2", "expected one of"),
])
def test_a_level_the_cpu_or_build_lacks_is_refused(monkeypatch, built, runnable, asked, why):
    # the choice itself, with the build and CPU of another machine: this one
    # may have every level, so the refusals are reached through _choose
    monkeypatch.setenv("NNKIT_ISA", asked)
    with pytest.raises(ImportError) as info:
        _kernels._choose(built, runnable)
    msg = str(info.value)
    assert msg.startswith(f"NNKIT_ISA={asked!r}") and why in msg
    assert f"available here are {', '.join(runnable)} " in msg


def test_no_runnable_level_is_an_import_error_not_a_crash(monkeypatch):
    monkeypatch.delenv("NNKIT_ISA", raising=False)
    with pytest.raises(ImportError, match="no level this CPU can run"):
        _kernels._choose(("avx512",), ())
    assert _kernels._choose(("baseline", "avx2"), ("baseline", "avx2")) == "avx2"


# ------------------------------------------------------------ agreement
def _close(name, a, b):
    """float64 1e-12 and float32 1e-5, relative to the tensor's largest entry
    (a sum reordered by the vector width rounds differently, to that size).
    The precision is the run's (the name's prefix): a float32 run's gradient
    norms are float64 numbers summed from float32 values."""
    rtol = 1e-12 if name.startswith("float64.") else 1e-5
    scale = max(float(np.max(np.abs(b), initial=0.0)), np.finfo(np.float32).tiny)
    err = float(np.max(np.abs(a.astype(np.float64) - b), initial=0.0)) / scale
    assert err <= rtol, f"{name}: max |difference| / max |value| = {err:.3g} > {rtol:g}"


@pytest.mark.skipif(len(_kernels.supported_levels()) < 2, reason="one level on this machine")
def test_every_level_computes_the_same_results(tmp_path):
    results = {}
    for lv in _kernels.supported_levels():
        out = tmp_path / f"{lv}.npz"
        p = subprocess.run([sys.executable, PROBE, str(out)], capture_output=True, text=True,
                           env={**os.environ, "NNKIT_ISA": lv, "NNKIT_NUM_THREADS": "2"},
                           timeout=900)
        assert p.returncode == 0, p.stderr
        with np.load(out) as f:
            results[lv] = {k: f[k] for k in f.files}
        assert str(results[lv].pop("level")) == lv
    first, *others = _kernels.supported_levels()
    names = sorted(results[first])
    assert len(names) > 60 and any(n.startswith("float32.") for n in names)
    for lv in others:
        assert sorted(results[lv]) == names
        for name in names:
            assert results[lv][name].dtype == results[first][name].dtype, name
            _close(f"{name} ({lv} vs {first})", results[lv][name], results[first][name])


# ------------------------------------------------------------ nnkit info
def test_nnkit_info_reports_the_level_threads_and_blas():
    """`nnkit info --json` in a process with NNKIT_ISA and NNKIT_NUM_THREADS set:
    it reports what was asked, the interpreter running it and SciPy's OpenBLAS."""
    import importlib.metadata
    import platform

    isa = _kernels.supported_levels()[0]
    p = subprocess.run([sys.executable, "-m", "nnkit.cli", "info", "--json"],
                       capture_output=True, text=True, timeout=600,
                       env={**os.environ, "NNKIT_ISA": isa, "NNKIT_NUM_THREADS": "3"})
    assert p.returncode == 0, p.stderr
    info = json.loads(p.stdout)
    assert info["nnkit"] == importlib.metadata.version("nnkit")
    assert info["python"].endswith(platform.python_version())
    assert info["isa"]["level"] == isa and info["isa"]["NNKIT_ISA"] == isa
    assert info["isa"]["supported"] == list(_kernels.supported_levels())
    assert info["openmp"]["threads"] == 3
    assert info["blas"]["name"] and "openblas" in info["blas"]["name"].lower()
    assert info["blas"]["library"] is None or os.path.exists(info["blas"]["library"])
    text = subprocess.run([sys.executable, "-m", "nnkit.cli", "info"], capture_output=True,
                          text=True, timeout=600, env={**os.environ, "NNKIT_ISA": isa})
    assert text.returncode == 0, text.stderr
    assert f"ISA level       {isa} (NNKIT_ISA={isa})" in text.stdout
