"""The reports render in Jupyter as HTML tables (`_repr_html_`) holding the
same numbers as their plain-text tables: each HTML page is parsed with
html.parser and its cells compared with the numbers read out of the text
report, token by token."""
from __future__ import annotations

import re
from html.parser import HTMLParser

import numpy as np
import pytest

import nnkit as nk
from nnkit.lessons import registry as lessons

NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?%?x?")


class Tables(HTMLParser):
    def __init__(self, page: str):
        super().__init__()
        self.tables: list[list[list[str]]] = []     # table -> row -> cell text
        self.header_cells: list[list[str]] = []     # per table, its <th> cells
        self.captions: list[str] = []
        self.outside: list[str] = []                # text outside every table
        self._depth = 0
        self._cell: list[str] | None = None
        self._in_caption = False
        self.feed(page)
        self.close()

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self._depth += 1
            self.tables.append([])
            self.header_cells.append([])
        elif tag == "tr" and self._depth:
            self.tables[-1].append([])
        elif tag in ("td", "th") and self._depth:
            self._cell = []
            self._tag = tag
        elif tag == "caption":
            self._in_caption = True
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "table":
            self._depth -= 1
        elif tag in ("td", "th") and self._cell is not None:
            text = "".join(self._cell).strip()
            if tag == "th":
                self.header_cells[-1].append(text)
            else:
                self.tables[-1][-1].append(text)
            self._cell = None
        elif tag == "caption":
            self.captions.append("".join(self._cell).strip())
            self._in_caption, self._cell = False, None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        elif not self._depth and data.strip():
            self.outside.append(data.strip())

    def body_rows(self, i: int = 0) -> list[list[str]]:
        """Table i's rows of <td> cells (the header row left out)."""
        return [r for r in self.tables[i] if r]


def body_lines(text: str) -> list[str]:
    """A text table's rows: the lines after its dashed rule."""
    lines = text.splitlines()
    rule = next(i for i, line in enumerate(lines) if line.startswith("---"))
    return lines[rule + 1:]


def numbers(text: str) -> list[str]:
    return NUMBER.findall(text)


def _quadratic_report():
    # y = x²: a pair whose gradient is known; a wrong one (factor 3) for a FAIL row
    rng = np.random.default_rng(3)
    X = rng.standard_normal((3, 2))
    W = rng.standard_normal((2, 2))

    def forward(X, W):
        return X @ W, (X, W)

    def backward(dY, cache):
        X, W = cache
        return dict(dX=dY @ W.T, dW=3 * (X.T @ dY))

    return nk.gradcheck(forward, backward, {"X": X, "W": W})


def test_gradcheck_report_html_is_the_text_table():
    rep = _quadratic_report()
    assert [c.verdict for c in rep.checks] == ["PASS", "FAIL"]    # the pair as built
    page = Tables(rep._repr_html_())
    assert len(page.tables) == 1
    assert page.header_cells[0][:4] == ["tensor", "shape", "checked", "max rel err"]
    rows = page.body_rows()
    text_rows = body_lines(str(rep))
    assert len(rows) == len(text_rows) == 2
    for cells, line, check in zip(rows, text_rows, rep.checks):
        assert cells[0] == check.name and cells[8] == check.verdict
        assert numbers(" ".join(cells)) == numbers(line)
        # and the numbers are the check's, not only the same string twice
        assert float(cells[3]) == pytest.approx(check.max_rel_err, rel=1e-2)
        assert float(cells[5]) == pytest.approx(check.analytic_at_worst, rel=1e-6)


def test_html_escapes_and_colours():
    rep = _quadratic_report()
    rep.title = "<b>x</b> & y"
    page = rep._repr_html_()
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt; &amp; y" in page
    assert Tables(page).captions == ["<b>x</b> & y"]
    assert re.search(r'<td style="[^"]*color:#c62828[^"]*">FAIL</td>', page)


def test_lesson_result_html_is_the_text_table():
    from nnkit.lessons import _report
    result = lessons()["p7-relu-depth"].run(0)
    page = Tables(result._repr_html_())
    rows = page.body_rows()
    text_rows = body_lines(_report.table(result))
    assert page.header_cells[0] == list(result.rows[0])
    assert len(rows) == len(text_rows) == len(result.rows) == 3
    for cells, line, row in zip(rows, text_rows, result.rows):
        assert cells[0] == row["init"]
        assert numbers(" ".join(cells[1:])) == numbers(line.replace(row["init"], ""))
        assert float(cells[1]) == pytest.approx(row["Var(a_1)"], rel=1e-3)
    # the summary and the notes under the table, as `nnkit lessons` prints them
    assert any(f"tolerance {_report.cell(result.tolerance)}" in t for t in page.outside)
    assert ("PASS" if result.passed else "FAIL") in " ".join(page.outside)


def test_derivation_report_html_is_the_text_table():
    # P2.3's dv right, dY with the unbiased-variance slip (README's example)
    def dv(dYhat, Y, m, v, eps):
        return (dYhat * (Y - m)).sum(axis=0) * -0.5 * (v + eps) ** -1.5

    def dY(dYhat, dv, dm, Y, m, v, eps, B):
        return dYhat / (v + eps) ** 0.5 + dv * 2 * (Y - m) / (B - 1) + dm / B

    rep = nk.check_derivation({"dv": dv, "dY": dY}, "bn-relu")
    verdicts = {f.name: f.verdict for f in rep.formulas}
    assert verdicts["dv"] == "PASS" and verdicts["dY"] == "FAIL"
    page = Tables(rep._repr_html_())
    assert page.header_cells[0] == ["formula", "verdict", "max rel err", "worst", "diagnosis"]
    text = rep.table().splitlines()
    by_name = {line.split()[0]: line for line in body_lines("\n".join(text[:-3]))}
    rows = page.body_rows()
    assert [r[0] for r in rows] == [f.name for f in rep.formulas]
    for cells in rows:
        line = by_name[cells[0]]
        assert cells[1] == line.split()[1]
        assert numbers(" ".join(cells[2:])) == numbers(" ".join(line.split()[2:]))
    dY_cells = rows[[r[0] for r in rows].index("dY")]
    assert float(dY_cells[2]) > 1.0          # the slip is large, not rounding
    assert text[-1] in page.outside and text[-2] in page.outside   # counts, chain


def test_trace_html_is_the_text_table():
    from nnkit.trace import Trace
    tr = Trace("bn-relu")
    tr.check("Y")
    page = Tables(tr._repr_html_())
    assert page.captions == [tr.title]
    rows = page.body_rows()
    assert [r[0] for r in rows] == [n.name for n in tr.nodes]
    text = dict(zip([n.name for n in tr.nodes], body_lines(tr.table())))
    for cells in rows:
        assert numbers(" ".join(cells[1:7])) == numbers(text[cells[0]].split("  ", 1)[1]
                                                         .rsplit(cells[7], 1)[0])
    y = rows[[n.key for n in tr.nodes].index("Y")]
    # against NumPy: the mean of Y = X Wᵀ + b and ‖∂L/∂Y‖
    Y = tr.values["X"] @ tr.values["W"].T + tr.values["b"]
    assert float(y[2]) == pytest.approx(Y.mean(), rel=1e-3)
    assert float(y[4]) == pytest.approx(np.sqrt((tr.grad("Y") ** 2).sum()), rel=1e-3)
    assert y[5] == "PASS" and float(y[6]) < 1e-5
    assert rows[0][5] == "" and rows[0][6] == ""           # X not checked yet
