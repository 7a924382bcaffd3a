"""pyproject.toml is the single source of dependencies; environment.yml must mirror it."""

from __future__ import annotations

import re
import tomllib

import yaml

from .conftest import ROOT

CONDA_NAMES = {"pytorch": "torch"}  # conda-forge name -> PyPI name


def _split(req: str) -> tuple[str, str]:
    m = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)\s*(.*?)\s*", req)
    assert m, req
    return m.group(1).lower().replace("_", "-"), m.group(2).replace(" ", "")


def _pyproject() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    reqs = project["dependencies"] + [r for name in sorted(extras) for r in extras[name]]
    return dict(_split(r) for r in reqs)


def _environment(text: str | None = None) -> dict[str, str]:
    env = yaml.safe_load(text if text is not None else (ROOT / "environment.yml").read_text())
    out: dict[str, str] = {}
    for dep in env["dependencies"]:
        items = dep["pip"] if isinstance(dep, dict) else [dep]
        for item in items:
            if item.startswith("-e") or item.split("=")[0] in ("python", "pip"):
                continue
            name, spec = _split(item)
            out[CONDA_NAMES.get(name, name)] = spec
    return out


def test_environment_yml_mirrors_pyproject():
    py, env = _pyproject(), _environment()
    assert set(py) == set(env), f"only in pyproject: {set(py) - set(env)}; only in environment.yml: {set(env) - set(py)}"
    for name, spec in py.items():
        assert env[name] == spec, f"{name}: pyproject says {spec!r}, environment.yml says {env[name]!r}"


def test_environment_yml_installs_the_kit_and_python_311():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-e ." in pip


def test_parser_sees_a_disagreement():
    """The check can fail: a changed bound or a missing package shows up in the parsed sets."""
    assert _split("scikit_image >= 0.21") == ("scikit-image", ">=0.21")
    text = (ROOT / "environment.yml").read_text()
    changed = _environment(text.replace("numpy>=1.24", "numpy>=1.20").replace("  - tqdm>=4.65\n", ""))
    assert changed["numpy"] != _pyproject()["numpy"]
    assert "tqdm" not in changed and "tqdm" in _pyproject()


def test_ci_installs_what_the_readme_says():
    """.ci/run installs the extras of README's install line, and every extra pyproject defines."""
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    m = re.search(r'pip install -e "\.\[([a-z,]+)\]"', readme)
    assert m, "README's install line not found"
    assert f'pip install --quiet -e ".[{m.group(1)}]"' in ci
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(m.group(1).split(",")) == set(extras)
    assert "nbgrader" in " ".join(extras["course"]) and "jupytext" in " ".join(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])
