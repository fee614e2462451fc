"""Plain-text layout shared by the teaching reports (``explain`` and ``demo``)."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

__all__ = ["WIDTH", "paragraph", "table"]

# Reports are read in terminals and pasted into notes; 88 columns fits both.
WIDTH = 88


def paragraph(text: str, indent: str = "") -> str:
    """``text`` with its white space normalised, wrapped to :data:`WIDTH` columns.

    Parameters
    ----------
    text : str
        May contain line breaks and runs of spaces (e.g. from a triple-quoted string).
    indent : str, default=""
        Put before every line, counted in the width.

    Returns
    -------
    str
        Lines joined by newlines. Words are never split at hyphens, so that names such
        as ``k-means`` stay on one line.
    """
    return textwrap.fill(
        " ".join(text.split()),
        width=WIDTH,
        initial_indent=indent,
        subsequent_indent=indent,
        break_on_hyphens=False,
    )


def table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    n_labels: int = 1,
    indent: str = "    ",
    groups: Sequence[str] | None = None,
    sep: str = "  ",
) -> list[str]:
    """Aligned columns: labels left, numbers right (so that digits line up).

    Parameters
    ----------
    header : sequence of str
        One title per column.
    rows : sequence of sequences of str
        The cells, already formatted; every row as long as ``header``.
    n_labels : int, default=1
        How many leading columns are labels (left-aligned); the rest are right-aligned.
    indent : str, default="    "
        Put before every line.
    groups : sequence of str, optional
        One entry per column: a label centred above that column and the empty-labelled
        columns after it (``["", "weight", "", "mean", ""]`` heads before/after pairs).
    sep : str, default="  "
        Put between columns.

    Returns
    -------
    list of str
        The group line (when ``groups`` is given), the header, a rule of dashes as wide
        as the table, then one line per row; trailing spaces removed.
    """
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells):
        parts = [c.ljust(w) for c, w in zip(cells[:n_labels], widths[:n_labels])]
        parts += [c.rjust(w) for c, w in zip(cells[n_labels:], widths[n_labels:])]
        return (indent + sep.join(parts)).rstrip()

    out = []
    if groups is not None:
        cells, i = [], 0
        while i < len(widths):
            j = i + 1
            while j < len(widths) and groups[j] == "":
                j += 1
            span = sum(widths[i:j]) + len(sep) * (j - i - 1)
            cells.append(groups[i].center(span) if groups[i] else " " * span)
            i = j
        out.append((indent + sep.join(cells)).rstrip())
    rule = indent + "-" * (sum(widths) + len(sep) * (len(widths) - 1))
    return [*out, line(header), rule, *(line(r) for r in rows)]
