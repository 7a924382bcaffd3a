"""scripts/ and experiments/ take the kit's one LR -> SR path, and experiments/README.md is their true index.

* No file under ``scripts/`` or ``experiments/`` defines its own repository root (``Path(__file__)``
  ... ``parent``: ``ctlib.files.REPO_ROOT`` is the one), maps the model's range back to images by hand
  (``(x.clamp(-1, 1) + 1) / 2``: ``ctlib.pipeline.to_image``), or builds a model itself
  (``denoiser_from_checkpoint`` / ``build_official_denoiser``: ``ctlib.pipeline.load_model``).
* ``ctlib/``, ``benchmarks/`` and ``notebooks/src/`` hold no copy of the range map either (the one is
  in ``ctlib/pipeline.py``).
* Every experiment ``experiments/README.md`` names (a ``## name.py`` section) exists, and every
  ``experiments/*.py`` (but the shared ``_*.py``) has its section; each one's ``--help`` runs; the
  entries its *Result* names are keys of ``data/checkpoints/training_choices.json``; and each number
  its *Showed* quotes is a value stored there.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import ROOT

EXPERIMENTS = ROOT / "experiments"
README = EXPERIMENTS / "README.md"
STORE = ROOT / "data" / "checkpoints" / "training_choices.json"

#: (what is wrong, pattern, what to use instead)
RULES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("defines its own repository root",
     re.compile(r"Path\(\s*__file__\s*\)[^\n]*\.parents?\b|os\.path\.dirname\(\s*__file__"),
     "ctlib.files.REPO_ROOT"),
    ("maps the model's range to images by hand", re.compile(r"clamp\(\s*-1,\s*1\s*\)\s*\+\s*1\s*\)\s*/\s*2"),
     "ctlib.pipeline.to_image / super_resolve"),
    ("builds a model itself", re.compile(r"\b(?:denoiser_from_checkpoint|build_official_denoiser)\b"),
     "ctlib.pipeline.load_model"),
)
RANGE_MAP = RULES[1]


def offences(text: str, rules=RULES) -> list[str]:
    """``line N: what is wrong (use ...)`` for every line of ``text`` that breaks one of ``rules``."""
    found = []
    for n, line in enumerate(text.splitlines(), 1):
        for what, pattern, instead in rules:
            if pattern.search(line):
                found.append(f"line {n}: {what} (use {instead}): {line.strip()}")
    return found


def _files(*folders: str, exclude: tuple[str, ...] = ()) -> list[Path]:
    out = []
    for folder in folders:
        out += [p for p in sorted((ROOT / folder).rglob("*.py"))
                if p.relative_to(ROOT).as_posix() not in exclude and "__pycache__" not in p.parts]
    return out


def test_the_rules_catch_what_they_name():
    bad = ('ROOT = Path(__file__).resolve().parent.parent\n'
           'REPO = Path(__file__).resolve().parents[1]\n'
           'sr = (cond.decode(x).clamp(-1, 1) + 1) / 2\n'
           'den = denoiser_from_checkpoint(path)\n'
           'from ctlib.nn import build_official_denoiser\n')
    assert [o.split(":")[0] for o in offences(bad)] == [f"line {n}" for n in range(1, 6)]
    good = ("from ctlib.files import REPO_ROOT\nsr = pipeline.to_image(cond.decode(x))\n"
            "model = pipeline.load_model(path)\nPath(sklearn.__file__).parent\n")
    assert offences(good) == []


@pytest.mark.parametrize("path", _files("scripts", "experiments"), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_scripts_and_experiments_take_the_pipeline(path):
    found = offences(path.read_text(encoding="utf-8"))
    assert not found, f"{path.relative_to(ROOT)}:\n" + "\n".join(found)


def test_no_copy_of_the_range_map_outside_the_pipeline():
    found = [f"{p.relative_to(ROOT)} {o}"
             for p in _files("ctlib", "benchmarks", "notebooks/src", exclude=("ctlib/pipeline.py",))
             for o in offences(p.read_text(encoding="utf-8"), rules=(RANGE_MAP,))]
    assert not found, "\n".join(found)


def _sections() -> dict[str, str]:
    """README section name (``name.py``) -> its text."""
    parts = re.split(r"^## (\S+)\s*$", README.read_text(encoding="utf-8"), flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def test_readme_names_every_experiment_and_only_those():
    named = set(_sections())
    present = {p.name for p in EXPERIMENTS.glob("*.py") if not p.name.startswith("_")}
    assert named - present == set(), f"experiments/README.md names missing scripts: {sorted(named - present)}"
    assert present - named == set(), f"experiments without a section in experiments/README.md: {sorted(present - named)}"


def _load(path: Path):
    sys.path.insert(0, str(path.parent))  # the experiments import their shared _choices.py
    try:
        spec = importlib.util.spec_from_file_location(f"_exp_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    return module


@pytest.mark.parametrize("path", sorted(EXPERIMENTS.glob("[!_]*.py")) + [ROOT / "scripts" / "ship_checkpoint.py"],
                         ids=lambda p: p.relative_to(ROOT).as_posix())
def test_help_runs(path, capsys):
    with pytest.raises(SystemExit) as done:
        _load(path).main(["--help"])
    assert done.value.code == 0
    assert "usage:" in capsys.readouterr().out


def _leaves(doc: Any) -> list[float]:
    if isinstance(doc, dict):
        return [v for x in doc.values() for v in _leaves(x)]
    if isinstance(doc, list):
        return [v for x in doc for v in _leaves(x)]
    if isinstance(doc, (int, float)) and not isinstance(doc, bool):
        return [float(doc)]
    return []


@pytest.mark.parametrize("name", sorted(_sections()))
def test_readme_results_are_stored_entries_and_its_numbers_stored_values(name):
    text = _sections()[name]
    store = json.loads(STORE.read_text())
    result = re.search(r"\*Result\*:(.*?)(?=\n\n)", text, flags=re.S).group(1)
    entries = [t for t in re.findall(r"`([^`]+)`", result) if "/" not in t and not re.search(r"\.(py|pt|json|md)$", t)]
    assert entries and all(e in store for e in entries), (name, [e for e in entries if e not in store])
    values = _leaves({k: store[k] for k in store})
    showed = re.search(r"\*Showed\*:(.*?)(?=\n\n|\Z)", text, flags=re.S).group(1)
    for number in re.findall(r"(?<![\w.])\d+\.\d+(?!\.?\d)", showed):
        places = len(number.split(".")[1])
        assert any(math.isclose(round(v, places), float(number), abs_tol=10 ** -(places + 3)) for v in values), \
            f"{name}: {number} is not a value of {STORE.relative_to(ROOT)}"
