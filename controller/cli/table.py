"""Terminal tables that line up with Chinese text (wide characters take two columns)."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence


def display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def render_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[("" if v is None else f"{v:.2f}" if isinstance(v, float) else str(v)) for v in row] for row in rows]
    widths = [display_width(h) for h in headers]
    for row in cells:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], display_width(cell))

    def line(values: Sequence[str], numeric: Sequence[bool]) -> str:
        parts = []
        for value, width, right in zip(values, widths, numeric, strict=False):
            pad = " " * (width - display_width(value))
            parts.append(pad + value if right else value + pad)
        return "  ".join(parts).rstrip()

    out = [line(list(headers), [False] * len(headers)), "  ".join("-" * w for w in widths)]
    out += [line(cell_row, [_is_number(v) for v in row]) for cell_row, row in zip(cells, rows, strict=False)]
    return "\n".join(out)
