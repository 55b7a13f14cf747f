"""Helpers for the tests of nk.check_derivation (issue 26).

files/ holds one correct derivation file per registered walkthrough, written
by hand from the problem set's formulas (P1-P10, as each walkthrough's module
docstring states them) and the walkthroughs' node formulas (never from the
kernels). A planted file is one of them with one function replaced
(or one added), written to the test's tmp_path (the `plant` fixture of
conftest.py).
"""
from __future__ import annotations

import importlib.util
import pathlib
import re
import textwrap

FILES = pathlib.Path(__file__).parent / "files"


def file_for(walkthrough: str) -> pathlib.Path:
    """The correct derivation file of a walkthrough: files/<name with _>.py."""
    return FILES / (walkthrough.replace("-", "_") + ".py")


def replace_function(text: str, name: str, source: str) -> str:
    """`text` with the top-level function `name` replaced by `source` (a
    whole `def`, dedented here); without one, `source` is appended."""
    source = textwrap.dedent(source).strip() + "\n"
    # the function runs to the next top-level statement or comment, or the end
    pattern = re.compile(rf"^def {re.escape(name)}\(.*?(?=^[A-Za-z_#]|\Z)", re.S | re.M)
    found = pattern.findall(text)
    if not found:
        return text.rstrip() + "\n\n\n" + source
    assert len(found) == 1, f"{name} defined {len(found)} times"
    return pattern.sub(lambda m: source + "\n\n", text)


def load_module(path, name: str):
    """A derivation file imported as a module (an in-process source)."""
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def verdicts(report) -> dict:
    return {f.name: f.verdict for f in report.formulas}


def result(report, name):
    (found,) = [f for f in report.formulas if f.name == name]
    return found


def others_pass(report, *names) -> bool:
    """Every formula but `names` still PASSes."""
    return all(f.verdict == "PASS" for f in report.formulas if f.name not in names)
