"""The example notebooks (docs/notebooks/): committed without outputs, and,
where a Jupyter kernel can be started (nbclient and ipykernel: the `docs`
extra), run top to bottom with their reports rendered as HTML tables.

CI runs them with nbmake as well: `pytest --nbmake docs/notebooks`; this file
adds what nbmake does not look at (stripped outputs, the HTML tables)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "docs" / "notebooks").glob("*.ipynb"))


def test_there_are_two_or_three_notebooks():
    assert 2 <= len(NOTEBOOKS) <= 3, [p.name for p in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    assert nb["nbformat"] == 4
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code, "a notebook without code"
    for c in code:
        assert c["outputs"] == [] and c["execution_count"] is None, c["id"]
    ids = [c["id"] for c in nb["cells"]]
    assert len(set(ids)) == len(ids)


# the reports each notebook must show as HTML tables (`_repr_html_`): the
# notebook's cells that end in a report, by the class that renders it
HTML_REPORTS = {"p2-3-derivation.ipynb": {"Trace", "DerivationReport", "GradcheckReport"},
                "conv-digits.ipynb": {"GradcheckReport"},
                "bptt-vanishing.ipynb": {"Result", "GradcheckReport", "Trace"}}


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_runs_and_renders_reports_as_html_tables(path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("matplotlib")
    nb = nbformat.read(str(path), as_version=4)
    env_path = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env_path) if p)
    try:
        nbclient.NotebookClient(nb, timeout=300, kernel_name="python3").execute()
    finally:
        os.environ["PYTHONPATH"] = env_path
    shown = set()
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            html = out.get("data", {}).get("text/html")
            if html is None:
                continue
            assert html.startswith("<table>") and "</table>" in html
            shown.add(out["data"]["text/plain"].split("(", 1)[0].split(" ", 1)[0]
                      .lstrip("<").rsplit(".", 1)[-1])
    assert HTML_REPORTS[path.name] <= shown, shown
