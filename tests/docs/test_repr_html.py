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
