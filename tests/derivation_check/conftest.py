"""The `plant` fixture: a correct derivation file (files/) with one function
replaced, written to the test's tmp_path."""
from __future__ import annotations

import textwrap

import pytest

from derivation_helpers import file_for, replace_function


@pytest.fixture
def plant(tmp_path):
    """plant("bn-relu", "dv", "def dv(...): ...") -> the path of the correct
    bn-relu file with dv replaced (appended when the file has no dv);
    extra=... appends more source; text=... starts from that text instead."""
    count = iter(range(1000))

    def make(walkthrough: str, name: str | None = None, source: str = "", *,
             extra: str = "", text: str | None = None) -> str:
        body = file_for(walkthrough).read_text() if text is None else text
        if name is not None:
            body = replace_function(body, name, source)
        if extra:
            body = body.rstrip() + "\n\n\n" + textwrap.dedent(extra).strip() + "\n"
        path = tmp_path / f"planted_{next(count)}_{walkthrough.replace('-', '_')}.py"
        path.write_text(body)
        return str(path)

    return make
