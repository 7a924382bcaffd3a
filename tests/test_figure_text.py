"""Figure text is readable: no font size below 8 pt in the library's, the benchmarks' or the lessons' plots."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FONTSIZE = re.compile(r"\b(?:fontsize|title_fontsize|labelsize)\s*=\s*(\d+(?:\.\d+)?)")


def small_font_sizes(text: str) -> list[tuple[int, float]]:
    """(line, size) of every explicit font size below 8 pt in ``text``."""
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        out += [(n, float(m.group(1))) for m in FONTSIZE.finditer(line) if float(m.group(1)) < 8]
    return out


def test_no_font_below_8_pt():
    files = [*ROOT.glob("ctlib/**/*.py"), *ROOT.glob("benchmarks/*.py"), *ROOT.glob("notebooks/src/**/*.py")]
    assert len(files) > 30
    bad = [f"{p.relative_to(ROOT)}:{n}: {size:g} pt" for p in files
           for n, size in small_font_sizes(p.read_text(encoding="utf-8"))]
    assert not bad, "figure text below 8 pt: " + ", ".join(bad)


def test_the_check_finds_a_small_font():
    assert small_font_sizes("ax.legend(fontsize=7)\nax.set_title('x', fontsize=9)") == [(1, 7.0)]
    assert small_font_sizes("ax.tick_params(labelsize=6.5)") == [(1, 6.5)]
