"""One plain-text table printer for the CLI, the gradcheck report, the lessons
and the benchmarks (they used to carry four copies of the same width loop)."""
from __future__ import annotations

from typing import Sequence


def format_table(headers: Sequence[str], rows: Sequence[Sequence], align: str | None = None,
                 *, title: str = "", sep: str = "  ") -> str:
    """Columns padded to their widest cell, a dashed rule under the header.

    align: one character per column, "l" (left) or "r" (right); default all
    left. Cells are str()-ed; none is ever cut, so a long cell widens its
    column (put free-text columns last to keep the others narrow). Trailing
    spaces are stripped from every line.
    """
    headers = [str(h) for h in headers]
    ncol = len(headers)
    align = align or "l" * ncol
    if len(align) != ncol or set(align) - {"l", "r"}:
        raise ValueError(f"align: expected {ncol} characters from 'l'/'r' (one per "
                         f"column), got {align!r}")
    cells = [[str(c) for c in r] for r in rows]
    for i, r in enumerate(cells):
        if len(r) != ncol:
            raise ValueError(f"rows[{i}]: expected {ncol} cells (one per header), "
                             f"got {len(r)}")
    widths = [max([len(h)] + [len(r[j]) for r in cells]) for j, h in enumerate(headers)]

    def line(r):
        return sep.join(c.rjust(w) if a == "r" else c.ljust(w)
                        for c, w, a in zip(r, widths, align)).rstrip()

    out = [title] if title else []
    out.append(line(headers))
    out.append(sep.join("-" * w for w in widths))
    out.extend(line(r) for r in cells)
    return "\n".join(out)


# Verdict cells coloured in HTML (Jupyter): the words the reports print.
VERDICT_COLOURS = {"PASS": "#2e7d32", "FAIL": "#c62828", "TODO": "#757575",
                   "VACUOUS": "#ef6c00", "KINK": "#1565c0"}


def html_table(headers: Sequence[str], rows: Sequence[Sequence], align: str | None = None,
               *, title: str = "", notes: Sequence[str] = ()) -> str:
    """The same table as format_table, as HTML (the reports' `_repr_html_`):
    every cell str()-ed and escaped, right-aligned columns styled so, a verdict
    cell (PASS, FAIL, ...) coloured, the title as a caption, notes as
    paragraphs after the table."""
    import html
    headers = [str(h) for h in headers]
    align = align or "l" * len(headers)
    format_table(headers, rows, align)          # the same checks on align and rows

    def td(tag, c, a):
        text = str(c)
        style = ["text-align:right"] if a == "r" else []
        if tag == "td" and text in VERDICT_COLOURS:
            style.append(f"color:{VERDICT_COLOURS[text]};font-weight:bold")
        attr = f' style="{";".join(style)}"' if style else ""
        return f"<{tag}{attr}>{html.escape(text)}</{tag}>"

    head = "<tr>" + "".join(td("th", h, a) for h, a in zip(headers, align)) + "</tr>"
    body = "".join("<tr>" + "".join(td("td", c, a) for c, a in zip(r, align)) + "</tr>"
                   for r in rows)
    caption = f"<caption>{html.escape(title)}</caption>" if title else ""
    after = "".join(f"<p>{html.escape(n)}</p>" for n in notes if n)
    return f"<table>{caption}<thead>{head}</thead><tbody>{body}</tbody></table>{after}"
