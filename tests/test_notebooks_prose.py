"""Numbers in the prose of notebooks 05-07 come from data.

The mechanism: every decimal number (``27.39``, ``-0.27``, ``2.7%``) written in a Markdown cell of
``notebooks/05_*``, ``06_*`` and ``07_*`` must be held, at the precision it is written with, by

* a stored output of the same notebook (what its cells printed or displayed, including Markdown
  that a cell builds from a JSON file with ``IPython.display.Markdown``), or
* a JSON file under ``data/`` (the results of record: checkpoints' quality, training choices, the
  table), or
* the notebook's own code (a parameter or a constant the prose names).

A number matches a held value when the value, rounded to the number's decimals, gives the number
(``27.39`` matches 27.3912 and a printed ``27.39``; a percentage also matches 100 x a value). So a
measured number typed into prose goes stale the moment the data it came from changes, and this
test then fails, naming the cell and the number. Whole numbers (counts, sizes, iterations) and
numbers inside code spans or code blocks (commands, file names) are not checked. The way to state
a measured number in a lesson is to print it, or to build the Markdown from the data in a cell.

The documents under ``docs/`` that quote measurements (``docs/finetune_findings.md``) follow the
same rule with the JSON files under ``data/`` as the only source.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROSE_NOTEBOOKS = sorted(p for p in (ROOT / "notebooks").glob("0[5-7]_*.ipynb"))
NUMBER = re.compile(r"(?<![\w.])[-+−]?(\d+\.\d+)(\s*%)?(?![\w.]*\w)")
ANY_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def _source(cell: dict) -> str:
    src = cell["source"]
    return "".join(src) if isinstance(src, list) else src


def strip_code(markdown: str) -> str:
    """Markdown without fenced code blocks and inline code spans."""
    markdown = re.sub(r"```.*?```", " ", markdown, flags=re.S)
    return re.sub(r"`[^`\n]*`", " ", markdown)


def prose_numbers(markdown: str) -> list[tuple[str, bool]]:
    """The decimal numbers of a Markdown text (as written, without sign) and whether each is a percentage."""
    return [(m.group(1), bool(m.group(2))) for m in NUMBER.finditer(strip_code(markdown))]


def _walk_json(value, out: list[float]) -> None:
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        out.append(float(value))
    elif isinstance(value, dict):
        for v in value.values():
            _walk_json(v, out)
    elif isinstance(value, list):
        for v in value:
            _walk_json(v, out)
    elif isinstance(value, str):
        out.extend(float(m) for m in ANY_NUMBER.findall(value))


def data_values() -> list[float]:
    values: list[float] = []
    for path in sorted((ROOT / "data").rglob("*.json")):
        _walk_json(json.loads(path.read_text()), values)
    return values


def notebook_values(nb: dict) -> list[float]:
    """Numbers in the notebook's stored outputs (text, Markdown, HTML; not images) and in its code."""
    texts = []
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            texts.append(_source(cell))
        for out in cell.get("outputs", []):
            if "text" in out:
                texts.append("".join(out["text"]) if isinstance(out["text"], list) else out["text"])
            for mime, value in out.get("data", {}).items():
                if mime.startswith("text/"):
                    texts.append(value if isinstance(value, str) else "".join(value))
    return [float(m) for t in texts for m in ANY_NUMBER.findall(t)]


def held(values: list[float]) -> set[str]:
    """Every way a held value can be written with 1 to 6 decimals (absolute values)."""
    out = set()
    for v in values:
        for d in range(1, 7):
            out.add(f"{abs(v):.{d}f}")
    return out


def stale_numbers(nb: dict, data: list[float]) -> list[str]:
    values = notebook_values(nb) + data
    plain = held(values)
    percent = held([100 * v for v in values]) | plain
    problems = []
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        for number, is_percent in prose_numbers(_source(cell)):
            if number not in (percent if is_percent else plain):
                problems.append(f"cell {i}: {number}{'%' if is_percent else ''}")
    return problems


@pytest.fixture(scope="module")
def data():
    return data_values()


def test_there_are_prose_notebooks():
    assert len(PROSE_NOTEBOOKS) == 3, [p.name for p in PROSE_NOTEBOOKS]


@pytest.mark.parametrize("path", PROSE_NOTEBOOKS, ids=lambda p: p.stem)
def test_every_number_in_the_prose_comes_from_data(path, data):
    problems = stale_numbers(json.loads(path.read_text()), data)
    assert not problems, (f"{path.name}: Markdown states numbers that no output of the notebook, no JSON under "
                          f"data/ and none of its code holds (print them, or build the Markdown from the data): "
                          + "; ".join(problems))


@pytest.mark.parametrize("path", sorted((ROOT / "docs").glob("*.md")), ids=lambda p: p.name)
def test_every_number_in_the_docs_comes_from_data(path, data):
    plain = held(data)
    stale = [n for n, _ in prose_numbers(path.read_text()) if n not in plain]
    assert not stale, f"docs/{path.name} quotes numbers that no JSON under data/ holds: {stale}"


def test_a_stale_number_is_caught_and_a_printed_one_is_not():
    nb = {"cells": [
        {"cell_type": "code", "source": "print(q)", "outputs": [
            {"output_type": "stream", "text": ["Euler 27.391 dB, 0.027 of the noise\n"]}]},
        {"cell_type": "markdown", "source": "Euler reaches 27.39 dB (27.4), leaving 2.7 % of the noise. `--lr 0.5`"},
        {"cell_type": "markdown", "source": "The previous model: Euler -3.05 dB."},
    ]}
    assert stale_numbers(nb, []) == ["cell 2: 3.05"]
    assert prose_numbers("x = 1.5, `y 2.5`, ```\nz 3.5\n```, 10 photos, v1.2.3") == [("1.5", False)]
