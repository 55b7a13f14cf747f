"""The docs pages: every ```python block runs as written (each page's blocks
assert their own claims against NumPy references and closed forms), and the
reference pages, the CLI page and the app page cover what the package has."""
import re
import subprocess
import sys

import pytest

import nnkit as nk
from markdown_blocks import DOCS, ROOT, pages, python_blocks, run_blocks

RUNNABLE = [p for p in pages() if python_blocks(p)]


def test_the_pages_have_code_to_run():
    """The tutorials and guides run code (an empty list would pass the test below)."""
    names = {p.relative_to(DOCS).as_posix() for p in RUNNABLE}
    assert {f"tutorials/{n}" for n in ("p1-affine.md", "p2-batchnorm.md", "p9-rnn.md",
                                        "p10-pooling.md")} <= names
    assert {"guide/training.md", "guide/check-your-layer.md", "getting-started.md"} <= names


@pytest.mark.parametrize("page", RUNNABLE, ids=lambda p: p.relative_to(DOCS).as_posix())
def test_page_python_blocks_run(page, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)        # a block that writes a file writes it here
    run_blocks(page)


def _public_names() -> set[str]:
    """Every public name of the package that is not a module."""
    return {n for n in dir(nk) if not n.startswith("_")
            and type(getattr(nk, n)).__name__ != "module"}


def test_the_reference_names_every_public_name():
    """Each public name has a `::: nnkit.NAME` block (mkdocstrings renders it
    from the docstring); a name added to nnkit without one fails here."""
    text = "\n".join(p.read_text(encoding="utf-8") for p in (DOCS / "reference").glob("*.md"))
    documented = set(re.findall(r"^::: nnkit\.(\w+)\s*$", text, re.M))
    assert len(_public_names()) > 100
    assert _public_names() - documented == set(), \
        "add a '::: nnkit.NAME' line to the family's page in docs/reference/"
    # and the objects of the modules a user reaches through nk.optim, nk.init, nk.train
    dotted = set(re.findall(r"^::: nnkit\.(\w+\.\w+)\s*$", text, re.M))
    for module in ("optim", "init", "train", "trace", "conv"):
        assert any(d.startswith(module + ".") for d in dotted), module
    for name in dotted:
        mod, attr = name.split(".")
        assert hasattr(getattr(nk, mod), attr), name


def test_the_nav_lists_every_page():
    """mkdocs --strict warns about pages left out of the nav; this says which."""
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    listed = set(re.findall(r"([\w/.-]+\.md)\s*$", nav, re.M))
    assert {p.relative_to(DOCS).as_posix() for p in pages()} <= listed


def test_the_cli_page_covers_every_subcommand():
    p = subprocess.run([sys.executable, "-m", "nnkit.cli", "--help"],
                       capture_output=True, text=True, timeout=120)
    subs = set(re.findall(r"^    ([a-z]+)\b", p.stdout, re.M))
    assert {"gradcheck", "check", "lessons", "bench"} <= subs
    text = (DOCS / "guide" / "cli.md").read_text(encoding="utf-8")
    headed = {sub for line in text.splitlines() if line.startswith("## ")
              for sub in re.findall(r"`nnkit (\w+)`", line)}
    assert subs - headed == set(), "add a '## `nnkit NAME`' section to docs/guide/cli.md"


def test_the_app_page_covers_every_key():
    """Every key the app binds (the walkthrough screen's and the app's) is in
    the page's key table."""
    pytest.importorskip("textual")
    from nnkit.tui.app import NnkitApp
    from nnkit.tui.bindings import MAIN_BINDINGS
    names = {"left": "←", "right": "→", "question_mark": "?", "plus": "+",
             "minus": "−", "equals_sign": "=", "space": "space", "escape": "esc",
             "pagedown": "pgdn", "pageup": "pgup", "shift+right": "shift+→",
             "shift+left": "shift+←"}
    table = "\n".join(l.split("|")[1] for l in
                      (DOCS / "guide" / "app.md").read_text(encoding="utf-8").splitlines()
                      if l.startswith("| ") and l.count("|") >= 3)
    for b in MAIN_BINDINGS + NnkitApp.BINDINGS:
        for key in b.key.split(","):
            shown = names.get(key, key)
            assert re.search(rf"(^|[\s,]){re.escape(shown)}([\s,]|$)", table, re.M), \
                f"the key {shown!r} is missing from the key table of docs/guide/app.md"
