"""Issue 26: a correct derivation file for every registered walkthrough passes
nk.check_derivation: every formula the template lists is derived and PASSes
on all of the walkthrough's check configurations, and the chained run (each
formula fed the file's own upstream results) never leaves the truth."""
from __future__ import annotations

import ast
import time

import pytest

import nnkit as nk
from nnkit import trace
from nnkit.derivation_check import template, valid_names

from derivation_helpers import FILES, file_for

WALKTHROUGHS = sorted(trace.registry())
# generous: each file takes about a second (0.3-1.1 s here); this only
# catches a run that went pathological, never a slow machine
SECONDS = 15.0


def _defined(path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef)
            and not n.name.startswith("_")}


def test_a_file_for_every_walkthrough():
    """No walkthrough without its derivation file, no file without its walkthrough."""
    want = {file_for(w).name for w in WALKTHROUGHS}
    have = {p.name for p in FILES.glob("*.py")}
    assert want == have


@pytest.mark.parametrize("walkthrough", WALKTHROUGHS)
def test_the_file_names_its_walkthrough_and_derives_every_gradient(walkthrough):
    path = file_for(walkthrough)
    tree = ast.parse(path.read_text())
    names = {t.id: node.value.value for node in tree.body if isinstance(node, ast.Assign)
             for t in node.targets if isinstance(t, ast.Name)
             and isinstance(node.value, ast.Constant)}
    assert names.get("WALKTHROUGH") == walkthrough
    # every stub of the template is derived (none skipped)
    stubs = {n.name for n in ast.parse(template(walkthrough)).body
             if isinstance(n, ast.FunctionDef)}
    assert stubs == set(valid_names(walkthrough))
    assert _defined(path) == stubs


_REPORTS: dict = {}


def checked(walkthrough):
    """(report, seconds) of the correct file, checked once per session."""
    if walkthrough not in _REPORTS:
        start = time.perf_counter()
        report = nk.check_derivation(str(file_for(walkthrough)), strict=True)
        _REPORTS[walkthrough] = report, time.perf_counter() - start
    return _REPORTS[walkthrough]


@pytest.mark.parametrize("walkthrough", WALKTHROUGHS)
def test_the_correct_file_passes(walkthrough):
    report, elapsed = checked(walkthrough)
    print(f"{walkthrough}: {elapsed:.2f} s, {len(report.configs)} configurations")
    assert report.walkthrough == walkthrough
    bad = {f.name: (f.verdict, f.diagnosis) for f in report.formulas if f.verdict != "PASS"}
    assert not bad, report.table()
    assert [f.name for f in report.formulas] == valid_names(walkthrough)
    assert report.passed and report.exit_code == 0
    assert all(f.chain == "PASS" for f in report.formulas)
    assert report.chain["first_wrong"] is None
    assert report.chain["first_wrong_node"] is None
    assert report.chain["spoiled"] == []
    assert set(report.chain["run"]) == set(valid_names(walkthrough))
    # the errors are rounding, not a near miss inside RTOL
    assert max(f.max_rel_err for f in report.formulas) < 1e-10
    # every case was compared with finite differences as well (where numeric
    # differences are meaningful the file agrees with them too)
    assert all(f.cases >= len(report.configs) for f in report.formulas)
    assert "0 failed, 0 TODO" in report.table()
    assert elapsed < SECONDS


def test_norms_file_is_checked_on_every_norm():
    """The norms file branches on `norm`: the check configurations cover all four."""
    report, _ = checked("norms")
    assert {c["norm"] for c in report.configs} == {"batch", "layer", "instance", "group"}
    assert report.passed


def test_whitening_file_is_checked_on_every_method():
    """whitening-zca's configurations run ZCA, PCA and Cholesky (groups and
    repeated eigenvalues included); whitening-newton's run Newton–Schulz."""
    zca, _ = checked("whitening-zca")
    assert {c["method"] for c in zca.configs} == {"zca", "pca", "cholesky"}
    assert any(c["group_size"] for c in zca.configs)
    assert any(c["spectrum"] == "repeated" for c in zca.configs)
    newton, _ = checked("whitening-newton")
    assert {c["method"] for c in newton.configs} == {"newton"}
    assert {c["iterations"] for c in newton.configs} >= {5, 10, 30}
    assert zca.passed and newton.passed


@pytest.mark.parametrize("config", [dict(B=5, eps=0.1), dict(B=3, N=2, M=2, eps=1e-3)])
def test_bn_relu_file_passes_with_config_overrides(config):
    """**config sets values on every check configuration: the formulas read
    B and eps from the configuration, never a constant."""
    report = nk.check_derivation(str(file_for("bn-relu")), **config)
    assert report.passed, report.table()
    assert all(c[k] == v for c in report.configs for k, v in config.items())
