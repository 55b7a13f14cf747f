"""The documentation generators (docs/scripts/): make_performance renders a
page from a bench JSON written here, with the rows, formatting and machine
stamp expected from the numbers in it, and refuses a malformed file with a
message naming what is wrong; make_figures draws the lessons' figures."""
from __future__ import annotations

import importlib.util
import json
import os

import pytest


@pytest.fixture
def mpl():
    """The tests that draw need matplotlib (the `docs` extra); the others not."""
    pytest.importorskip("matplotlib")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PNG = b"\x89PNG\r\n\x1a\n"


def script(name: str):
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(ROOT, "docs", "scripts", f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


COLUMNS = [("B x D", "text"), ("nnkit ms", "ms"), ("numpy ms", "ms"), ("torch ms", "ms"),
           ("np/nk", "ratio"), ("torch/nk", "ratio"), ("floor ms", "ms"),
           ("nk@floor", "share")]
# (label, nnkit s, numpy s, torch s or None, floor s): times in seconds, as --json writes
ROWS = [("64x256", 0.0005, 0.001, 0.0015, 0.00025),
        ("256x1024", 0.002, 0.003, None, 0.0005),
        ("4096x1024", 0.03, 0.06, 0.015, 0.012)]


def fixture(tmp_path, **machine_overrides):
    rows = []
    for lab, nk, np_, th, fl in ROWS:
        vals = [lab, nk, np_, th, np_ / nk, None if th is None else th / nk, fl, fl / nk]
        rows.append({c: v for (c, _), v in zip(COLUMNS, vals)})
    machine = dict(date="2026-12-07 22:00", date_utc="2026-12-07T22:00:00Z",
                   platform="Linux-x86_64", processor="x86_64",
                   cpu_model="Test CPU 9000", cpu_flags=["avx", "fma", "avx2"],
                   commit="0123456789abcdef0123456789abcdef01234567", cores=2,
                   kernel_threads=2, load_average=[0.5, 0.25, 0.125], nnkit="0.1.0",
                   numpy="2.4.6", scipy="1.17.1", torch="2.13.0+cpu", malloc="set",
                   quick=False)
    machine.update(machine_overrides)
    data = dict(machine=machine, runs=3, families={"norms": [dict(
        name="layernorm", title="Layer norm training forward+backward, float32",
        columns=[dict(name=c, kind=k) for c, k in COLUMNS], rows=rows,
        notes=["a note under the table"])]})
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(data))
    return path


def test_performance_page_from_json(tmp_path, mpl):
    mp = script("make_performance")
    out, figs = tmp_path / "performance.md", tmp_path / "figures"
    figs.mkdir()
    (figs / "perf-gone-ratio.png").write_bytes(PNG)       # from an earlier run
    (figs / "p9-vanishing-bound.png").write_bytes(PNG)    # not the page's: kept
    assert mp.main([str(fixture(tmp_path)), "--out", str(out), "--figures", str(figs)]) == 0
    page = out.read_text()
    lines = page.splitlines()
    # one table row per JSON row: ms with three decimals, ratios as N.NNx, shares as %
    expected = ["| 64x256 | 0.500 | 1.000 | 1.500 | 2.00x | 3.00x | 0.250 | 50% |",
                "| 256x1024 | 2.000 | 3.000 | n/a | 1.50x | n/a | 0.500 | 25% |",
                "| 4096x1024 | 30.000 | 60.000 | 15.000 | 2.00x | 0.50x | 12.000 | 40% |"]
    for row in expected:
        assert row in lines, row
    i = lines.index(expected[0])
    assert lines[i - 2].startswith("| B x D | nnkit ms |") and lines[i - 1].count("---:") == 7
    assert "### layernorm" in lines
    assert "*Layer norm training forward+backward, float32*" in lines
    assert "- a note under the table" in lines
    # the machine stamp
    for text in ("| CPU | Test CPU 9000 |", "| CPU flags (SIMD) | avx, fma, avx2 |",
                 "| date of the run | 2026-12-07T22:00:00Z |",
                 "| load average (1, 5, 15 min) at the end | 0.50 0.25 0.12 |",
                 "| nnkit | 0.1.0, commit 0123456789ab |",
                 "| runs | 3; each cell the median over them |"):
        assert text in lines, text
    from nnkit.bench import FAMILIES
    others = ", ".join(f for f in FAMILIES if f != "norms")
    for text in (f"| benchmarks | norms (not in this run: {others}) |",):
        assert text in lines, text
    assert "Share of the floor" in " ".join(page.split()) and "--quick" not in page
    # the figures: ratios per row, and time against size (three sizes of one dtype)
    for name in ("perf-layernorm-ratio.png", "perf-layernorm-growth.png",
                 "perf-overview.png"):
        assert (figs / name).read_bytes()[:8] == PNG
        assert f"](figures/{name})" in page
    assert not (figs / "perf-gone-ratio.png").exists()
    assert (figs / "p9-vanishing-bound.png").exists()


def test_performance_page_is_byte_stable(tmp_path, mpl):
    mp = script("make_performance")
    src = fixture(tmp_path)
    pages = []
    for k in range(2):
        out, figs = tmp_path / f"p{k}.md", tmp_path / f"f{k}"
        mp.main([str(src), "--out", str(out), "--figures", str(figs)])
        pages.append((out.read_text().replace(f"f{k}/", "figures/"),
                      (figs / "perf-layernorm-growth.png").read_bytes(),
                      (figs / "perf-layernorm-ratio.png").read_bytes()))
    assert pages[0] == pages[1]


def test_missing_machine_fields_say_not_recorded(tmp_path, mpl):
    mp = script("make_performance")
    src = fixture(tmp_path, cpu_model=None, cpu_flags=None, commit=None, date_utc=None,
                  load_average=None, quick=True)
    out = tmp_path / "p.md"
    mp.main([str(src), "--out", str(out), "--figures", str(tmp_path / "f"),
             "--commit", "56cefdd"])
    lines = out.read_text().splitlines()
    assert "| CPU | x86_64 |" in lines and "| CPU flags (SIMD) | not recorded |" in lines
    assert "| date of the run | 2026-12-07 22:00 (machine's local time) |" in lines
    assert "| nnkit | 0.1.0, commit 56cefdd |" in lines
    assert any(line.startswith("- *commit*: given when the page was generated")
               for line in lines)
    assert any("A --quick run" in line for line in lines)


@pytest.mark.parametrize("text, message", [
    ("{not json", "not JSON"),
    ("[1, 2]", "top level: expected an object"),
    ('{"machine": {}}', "families: expected a 'families' key"),
])
def test_malformed_json_is_a_clear_error(tmp_path, capsys, text, message):
    mp = script("make_performance")
    bad = tmp_path / "bad.json"
    bad.write_text(text)
    with pytest.raises(SystemExit) as exc:
        mp.main([str(bad), "--out", str(tmp_path / "p.md")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert str(bad) in err and message in err
    assert not (tmp_path / "p.md").exists()


def test_a_row_without_a_column_is_named(tmp_path):
    mp = script("make_performance")
    data = json.loads(fixture(tmp_path).read_text())
    del data["families"]["norms"][0]["rows"][1]["torch ms"]
    with pytest.raises(ValueError, match=r"families\.norms\[0\]\.rows\[1\]: expected an "
                                         r"object with the keys"):
        mp.validate(data)
    data = json.loads(fixture(tmp_path).read_text())
    data["families"]["norms"][0]["rows"][2]["nnkit ms"] = "fast"
    with pytest.raises(ValueError, match=r"rows\[2\]\['nnkit ms'\]: expected a number"):
        mp.validate(data)


# ------------------------------------------------------------ make_figures
def test_lesson_figures_are_pngs_and_byte_stable(tmp_path, mpl):
    mf = script("make_figures")
    for k in range(2):
        assert mf.main(["p9", "axes", "eigengap", "--out", str(tmp_path / f"f{k}")]) == 0
    for name in ("p9-vanishing-bound.png", "p8-norm-axes.png", "p2-whitening-eigengap.png"):
        first = (tmp_path / "f0" / name).read_bytes()
        assert first[:8] == PNG and first == (tmp_path / "f1" / name).read_bytes()


def test_norm_axes_groups_match_the_lessons_mean_shapes():
    # which elements share a mean, from the lesson's "averages over" text:
    # written out here for X (batch 2, channels 4, features 3)
    mf = script("make_figures")
    N, C, F = 2, 4, 3
    bn = mf._groups("batch, features", N, C, F)
    assert len(set(bn.ravel())) == C and (bn[0] == bn[1]).all()
    ln = mf._groups("channels, features", N, C, F)
    assert len(set(ln.ravel())) == N and len(set(ln[0].ravel())) == 1
    inn = mf._groups("features", N, C, F)
    assert len(set(inn.ravel())) == N * C and (inn[:, :, 0] == inn[:, :, 2]).all()
    gn = mf._groups("its 2 channels, features", N, C, F)
    assert len(set(gn.ravel())) == N * C // 2
    assert gn[0, 0, 0] == gn[0, 1, 2] != gn[0, 2, 0]


def test_digits_figure_uses_a_matching_torch_recording_only(tmp_path, monkeypatch):
    from types import SimpleNamespace
    mf = script("make_figures")
    monkeypatch.setitem(__import__("sys").modules, "torch", None)   # import torch fails
    run = dict(data=SimpleNamespace(name="digits"))
    record = tmp_path / "digits-torch.json"
    assert mf._torch_curves(run, str(record)) == (None, "")           # nothing recorded
    rec = dict(torch="2.13.0+cpu", config=mf.DIGITS, data="digits", train_loss=[1.0],
               val_acc=[0.5])
    record.write_text(json.dumps(rec))
    got, label = mf._torch_curves(run, str(record))
    assert got["train_loss"] == [1.0] and "recorded" in label and "2.13.0+cpu" in label
    # a recording of another data set (or configuration) is not drawn
    assert mf._torch_curves(dict(data=SimpleNamespace(name="synthetic")), str(record)) \
        == (None, "")
    record.write_text(json.dumps(dict(rec, config=dict(mf.DIGITS, epochs=3))))
    assert mf._torch_curves(run, str(record)) == (None, "")


def test_isa_ab_merges_medians_per_row_and_the_page_shows_them(tmp_path, mpl):
    """isa_ab.py merge: per row, the median over rounds of nnkit's time in
    each build and their ratio; make_performance renders them with the count
    of rows within 5 %. The numbers are chosen so the medians are known."""
    ab = script("isa_ab")
    mp = script("make_performance")
    base = json.loads(fixture(tmp_path).read_text())
    raw = tmp_path / "raw"
    raw.mkdir()
    # nnkit ms of row 0 and row 2 in rounds 1..3 (row 1 keeps the fixture's time)
    times = {"dispatched": [(1.0, 9.0), (5.0, 10.0), (2.0, 11.0)],
             "native": [(2.0, 10.0), (2.0, 10.0), (9.0, 10.0)]}
    for build, level in (("dispatched", "avx512"), ("native", "native")):
        for r, (t0, t2) in enumerate(times[build], start=1):
            data = json.loads(json.dumps(base))
            data["machine"]["isa_level"] = level
            rows = data["families"]["norms"][0]["rows"]
            rows[0]["nnkit ms"], rows[2]["nnkit ms"] = t0, t2
            (raw / f"{build}-norms-r{r}.json").write_text(json.dumps(data))
    (raw / "notes.json").write_text("{}")                   # not a run: ignored
    out = tmp_path / "isa_ab.json"
    assert ab.main(["merge", str(raw), "--out", str(out)]) == 0
    merged = json.loads(out.read_text())
    assert merged["levels"] == {"dispatched": "avx512", "native": "native"}
    assert merged["rounds"] == 3
    got = [(r["row"], r["dispatched_ms"], r["native_ms"]) for r in merged["rows"]]
    assert got == [("64x256", 2.0, 2.0), ("256x1024", 0.002, 0.002), ("4096x1024", 10.0, 10.0)]
    page = tmp_path / "p.md"
    mp.main([str(fixture(tmp_path)), "--out", str(page), "--figures", str(tmp_path / "f"),
             "--isa-ab", str(out)])
    lines = page.read_text().splitlines()
    assert "## Run-time dispatch against -march=native" in lines
    assert "- rows within 5% of the native build: **3 of 3**" in lines
    assert "| norms | layernorm | 64x256 | 2000.000 | 2000.000 | 1.000 | 0.22–2.50 | yes |" \
        in lines
    # a row 10 % slower dispatched is counted and marked
    (raw / "dispatched-norms-r2.json").write_text(
        (raw / "dispatched-norms-r2.json").read_text().replace("10.0", "11.0"))
    ab.main(["merge", str(raw), "--out", str(out)])
    mp.main([str(fixture(tmp_path)), "--out", str(page), "--figures", str(tmp_path / "f"),
             "--isa-ab", str(out)])
    lines = page.read_text().splitlines()
    assert "- rows within 5% of the native build: **2 of 3**" in lines
    assert "| norms | layernorm | 4096x1024 | 11000.000 | 10000.000 | 1.100 | 0.90–1.10 | NO |" \
        in lines
    assert "- rows slower by more than 5% in every round: **0**; `rounds' range` is " \
        "the lowest and highest ratio of one round's pair, run back to back: the spread " \
        "of the machine's noise" in lines


def test_isa_ab_refuses_a_native_run_that_was_not_native(tmp_path, capsys):
    ab = script("isa_ab")
    base = json.loads(fixture(tmp_path).read_text())
    raw = tmp_path / "raw"
    raw.mkdir()
    for build in ("dispatched", "native"):
        base["machine"]["isa_level"] = "avx512"
        (raw / f"{build}-norms-r1.json").write_text(json.dumps(base))
    with pytest.raises(SystemExit) as exc:
        ab.main(["merge", str(raw), "--out", str(tmp_path / "o.json")])
    assert exc.value.code == 2
    assert "ISA level 'avx512', expected 'native'" in capsys.readouterr().err
    (raw / "native-norms-r1.json").unlink()
    with pytest.raises(SystemExit):
        ab.main(["merge", str(raw), "--out", str(tmp_path / "o.json")])
    assert "no runs of norms with the native build" in capsys.readouterr().err
