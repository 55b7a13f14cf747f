"""nnkit/families.py is the one list of the families: every kernel file,
benchmark module, walkthrough module and lesson problem is named there, and
the build, `nnkit bench` and the walkthrough registry read it."""
from __future__ import annotations

import ast
import importlib
import pathlib
import runpy

import nnkit as nk
from nnkit import bench, families
from nnkit.lessons import registry as lessons

ROOT = pathlib.Path(__file__).resolve().parents[1]
# the package imported (a source tree's, or an installed wheel's: .ci/wheel
# runs the tests from a copy of the repository without nnkit/)
PKG = pathlib.Path(nk.__file__).resolve().parent


def _top_level_names(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}


def test_plain_data_that_setup_reads_before_the_build():
    tree = ast.parse((PKG / "families.py").read_text(encoding="utf-8"))
    imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert not imports, "nnkit/families.py must import nothing (setup.py runs it unbuilt)"
    ns = runpy.run_path(str(PKG / "families.py"))
    assert ns["KERNELS"] == families.KERNELS
    assert "families.py" in (ROOT / "setup.py").read_text(encoding="utf-8")


def test_each_family_once_with_every_piece():
    names = [f["name"] for f in families.FAMILIES]
    assert len(names) == len(set(names)), names
    for f in families.FAMILIES:
        assert set(f) == {"name", "kernels", "module", "walkthroughs", "bench", "problems"}, f
        assert (PKG / f"{f['module']}.py").is_file(), f
        for key in ("kernels", "walkthroughs", "bench", "problems"):
            assert isinstance(f[key], tuple), (f["name"], key)
        assert f["problems"], f"{f['name']}: which problem does it answer?"


def test_every_kernel_file_is_named_and_built():
    pyx = {p.stem for p in (ROOT / "pyx").glob("*.pyx")}
    assert pyx == set(families.KERNELS), (
        f"pyx/ without a family: {sorted(pyx - set(families.KERNELS))}; "
        f"named without a file: {sorted(set(families.KERNELS) - pyx)}")
    for k in families.KERNELS:
        importlib.import_module(f"nnkit._kernels.{k}")


def test_every_bench_module_is_named():
    modules = {p.stem for p in (PKG / "bench").glob("*.py")
               if not p.stem.startswith("_") and "run" in _top_level_names(p)}
    assert modules == set(families.BENCH), (
        f"bench modules without a family: {sorted(modules - set(families.BENCH))}; "
        f"named without a module: {sorted(set(families.BENCH) - modules)}")
    assert bench.FAMILIES == families.BENCH


def test_every_walkthrough_module_is_named_and_registered():
    modules = {p.stem for p in (PKG / "walkthroughs").glob("*.py")
               if not p.stem.startswith("_")}
    assert modules == set(families.WALKTHROUGHS), (
        f"walkthroughs without a family: {sorted(modules - set(families.WALKTHROUGHS))}; "
        f"named without a module: {sorted(set(families.WALKTHROUGHS) - modules)}")
    registered = {type(w).__module__.rsplit(".", 1)[1] for w in nk.trace.registry().values()
                  if type(w).__module__.startswith("nnkit.walkthroughs.")}
    assert registered == set(families.WALKTHROUGHS)


def test_every_lesson_problem_is_named():
    problems = {lesson.problem for lesson in lessons().values()}
    assert problems == set(families.PROBLEMS), (
        f"lesson problems without a family: {sorted(problems - set(families.PROBLEMS))}; "
        f"named without a lesson: {sorted(set(families.PROBLEMS) - problems)}")
    assert families.PROBLEMS == tuple(f"P{i}" for i in range(1, 11))
