"""Every document the code cites ships with the repository.

A citation is a path in code, a docstring, a comment, a notebook source or a Markdown document:

* a path under one of the repository's folders (``docs/maths.md``, ``benchmarks/results/x.json``,
  ``notebooks/src/...``, ``tests/...py``, ``data/...``): it must exist (a glob must match something);
* any ``*.md`` name (``README.md``, ``docs/design.md``, a bare ``NAME.md``, an absolute path): it must
  be a file of the repository, relative to its root or to the citing file's folder (Markdown links),
  unless it is a file the kit *writes* (:data:`GENERATED`); a document outside the repository, which
  users do not have, fails;
* ``(REFERENCE: ...)`` or ``(see DESIGN section 2)``: the authors' facts files by bare name, not shipped;
* a section after a cited Markdown file (``docs/maths.md §4``, ``README.md section 2``): the
  document must have a heading numbered so (``## 4. ...``; the convention of ``docs/design.md §7``).

Templates (``notebooks/src/NN_name.py``, ``results/<profile>/``, ``docs/{name}``, ``01..06``) are
patterns, not citations, and are skipped. Not scanned: ``tests/fixtures/`` (its README names the
official ResShift code's files, another repository) and this file (its self-test writes broken
citations on purpose).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: the repository's top-level folders a path citation starts with
TOP = ("benchmarks", "ctlib", "data", "docs", "experiments", "notebooks", "scripts", "tests")
#: what is scanned for citations
SCAN_GLOBS = (
    "*.md",
    "ctlib/**/*.py", "ctlib/**/*.md",
    "tests/**/*.py", "tests/**/*.md",
    "benchmarks/**/*.py", "benchmarks/**/*.md",
    "scripts/**/*.py", "scripts/**/*.md",
    "experiments/**/*.py", "experiments/**/*.md",
    "notebooks/src/**/*.py", "notebooks/**/*.md",
    "data/**/*.md",
    "docs/**/*.md",
)
EXCLUDED = ("tests/fixtures/", "tests/test_docs.py")
#: Markdown files the kit writes (not documents): ``ctlib.evaluate.write_table``'s table
GENERATED = frozenset({"table.md"})

PATH = re.compile(r"(?<![\w/.\-])(?:\./)?((?:" + "|".join(TOP) + r")/[\w./\-*<>{}]*)")
MD = re.compile(r"(?<![\w.\-/*])(/?(?:[\w.\-]+/)*[\w\-]+\.md)(?!\w)")
SECTION = r"(?:§|section\s+)\s*(\d+(?:\.\d+)*)"
SECTIONS = re.compile(r"`?\s*" + SECTION + r"((?:\s*(?:,|and|or|to|-|–)\s*" + SECTION + r")*)")
TEMPLATE = re.compile(r"[<>{}]|\.\.|NN_|\bNAME\b")
#: the facts files of the kit's authors, cited by bare name in prose: "(REFERENCE: ...)", "(see DESIGN section 2)"
BARE_NAME = re.compile(r"\((?:see |cf\. )?((?:REFERENCE|DESIGN))(?=:\s|\s+(?:section|§))")


def scanned_files(root: Path = ROOT) -> list[Path]:
    """The files whose text is scanned for citations (sorted, without :data:`EXCLUDED`)."""
    files = set()
    for pattern in SCAN_GLOBS:
        files.update(p for p in root.glob(pattern) if p.is_file())
    rel = {p: p.relative_to(root).as_posix() for p in files}
    return sorted(p for p in files if not any(rel[p].startswith(e) for e in EXCLUDED))


def _headings(doc: Path) -> set[str]:
    """The section numbers of a Markdown document: ``## 4. Title`` -> ``"4"``, ``### 4.2 Title`` -> ``"4.2"``."""
    found = re.findall(r"^#+\s+§?\s*(\d+(?:\.\d+)*)\.?\s", doc.read_text(encoding="utf-8"), flags=re.M)
    return set(found)


def _resolve_md(token: str, source: Path, root: Path) -> Path | None:
    if token.startswith("/"):
        return None  # outside the repository: users do not have it
    for base in (root, source.parent):
        candidate = (base / token).resolve()
        if candidate.is_file() and candidate.is_relative_to(root.resolve()):
            return candidate
    return None


def citation_problems(files: Iterable[Path], root: Path = ROOT) -> list[str]:
    """``path:line: what`` for every citation in ``files`` of a file, or a section, that does not exist."""
    problems: list[tuple[str, int, str]] = []
    for source in files:
        text = source.read_text(encoding="utf-8")
        name = source.relative_to(root).as_posix()

        def report(pos: int, what: str) -> None:
            problems.append((name, text.count("\n", 0, pos) + 1, what))  # noqa: B023 - used inside the loop

        for m in PATH.finditer(text):
            token = m.group(1).rstrip(".")
            if TEMPLATE.search(token) or token.endswith(".md"):
                continue  # a pattern, or a Markdown file (checked below with its sections)
            if "*" in token:
                if not any(root.glob(token)):
                    report(m.start(1), f"{token} matches no file")
            elif not (root / token).exists():
                report(m.start(1), f"{token} does not exist")
        for m in BARE_NAME.finditer(text):
            report(m.start(1), f"{m.group(1)} names a document that is not in the repository")
        for m in MD.finditer(text):
            token = m.group(1)
            if TEMPLATE.search(token.replace("../", "")) or ("/" not in token and token in GENERATED):
                continue
            doc = _resolve_md(token, source, root)
            if doc is None:
                report(m.start(1), f"{token} is not a file of the repository")
                continue
            s = SECTIONS.match(text, m.end(1))
            if s is None:
                continue
            cited = [s.group(1), *re.findall(SECTION, s.group(2))]
            have = _headings(doc)
            for section in cited:
                if section not in have:
                    report(m.start(1), f"{token} has no section {section} "
                                       f"(its numbered headings: {', '.join(sorted(have)) or 'none'})")
    return [f"{name}:{line}: {what}" for name, line, what in sorted(problems, key=lambda p: p[:2])]


def test_the_documents_the_code_cites_exist():
    files = scanned_files()
    assert len(files) > 50, f"the scan found only {len(files)} files; is the glob list right?"
    problems = citation_problems(files)
    assert not problems, ("citations of files or sections that are not in the repository (cite docs/maths.md "
                          "or docs/design.md, with a section that exists):\n" + "\n".join(problems))


def test_the_kits_own_documents_ship():
    for doc in ("docs/maths.md", "docs/design.md", "README.md"):
        assert (ROOT / doc).is_file(), doc
    assert {str(n) for n in range(1, 14)} <= _headings(ROOT / "docs/maths.md")
    assert {str(n) for n in range(1, 8)} <= _headings(ROOT / "docs/design.md")


# --------------------------------------------------------------------------------------------
# the checker catches what it should, and nothing else
# --------------------------------------------------------------------------------------------
@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "maths.md").write_text("# Maths\n\n## 1. One\n\ntext\n\n## 2. Two\n\n### 2.1 Sub\n")
    (tmp_path / "README.md").write_text("# Kit\n")
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "benchmarks" / "results" / "speed.json").write_text("{}")
    (tmp_path / "ctlib").mkdir()
    return tmp_path


def _check(repo: Path, text: str) -> list[str]:
    src = repo / "ctlib" / "mod.py"
    src.write_text(text)
    return citation_problems([src], repo)


def test_valid_citations_pass(repo):
    text = ('"""See docs/maths.md §1 and `docs/maths.md` §2, §2.1; README.md; the timings in\n'
            "benchmarks/results/speed.json, benchmarks/results/*.json; docs/maths.md section 2.\n"
            "Templates: notebooks/src/NN_name.py, docs/{name}, tests/<name>.py; written: table.md.\n"
            'A URL: https://github.com/x/y/blob/main/docs/OTHER.md"""\n')
    assert _check(repo, text) == []


def test_a_missing_file_is_caught(repo):
    ref = "REFERENCE" + ".md"
    problems = _check(repo, f"# the process (see {ref} section 1)\n# numbers: benchmarks/results/nope.json\n"
                            f"# design: /work/shared/{'DESIGN'}.md; docs/{'gone'}.md; data/*.npz\n"
                            f"# the network ({'REFERENCE'}: 119 M parameters)\n")
    assert len(problems) == 6, problems
    assert problems[-1] == "ctlib/mod.py:4: REFERENCE names a document that is not in the repository"
    assert problems[0].startswith("ctlib/mod.py:1: " + ref), problems
    assert any("benchmarks/results/nope.json does not exist" in p for p in problems)
    assert any("/work/shared/DESIGN.md is not a file" in p for p in problems)
    assert any(p.startswith("ctlib/mod.py:3: docs/gone.md") for p in problems)
    assert any("data/*.npz matches no file" in p for p in problems)


def test_a_missing_section_is_caught(repo):
    problems = _check(repo, "x = 1  # docs/maths.md §3\n\n# `docs/maths.md` §1 and §7; docs/maths.md §2.2\n")
    assert problems == [
        "ctlib/mod.py:1: docs/maths.md has no section 3 (its numbered headings: 1, 2, 2.1)",
        "ctlib/mod.py:3: docs/maths.md has no section 7 (its numbered headings: 1, 2, 2.1)",
        "ctlib/mod.py:3: docs/maths.md has no section 2.2 (its numbered headings: 1, 2, 2.1)",
    ]
