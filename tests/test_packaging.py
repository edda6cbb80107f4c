"""What ships: the sdist and wheel hold the license, templates, starter config and screenshot; the metadata
carries the license, classifiers and project URLs; the systemd units' Documentation= points at those URLs."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
HOME = "https://github.com/paper-digest/paper-digest"


def _build(targets: list[str], source: Path, out: Path) -> list[Path]:
    """Build with hatchling's own command (no network, no isolated environment)."""
    if importlib.util.find_spec("hatchling") is None:
        pytest.skip("hatchling is not installed (pip install -e '.[test]' installs it)")
    args = [sys.executable, "-m", "hatchling", "build", "-d", str(out)]
    for target in targets:
        args += ["-t", target]
    result = subprocess.run(args, cwd=source, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return sorted(out.iterdir())


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sdist and the wheel built from the checkout."""
    built = _build(["sdist", "wheel"], ROOT, tmp_path_factory.mktemp("dist"))
    sdist = next(p for p in built if p.name.endswith(".tar.gz"))
    return {"sdist": sdist, "wheel": next(p for p in built if p.suffix == ".whl")}


def test_license_file_is_mit() -> None:
    """LICENSE is the MIT text with the authors' copyright line, as the metadata says."""
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License") and "Copyright (c) 2026 The paper-digest authors" in text
    assert PYPROJECT["project"]["license"] == "MIT" and PYPROJECT["project"]["license-files"] == ["LICENSE"]


def test_metadata_has_classifiers_and_project_urls() -> None:
    """Classifiers agree with requires-python and the license; the project URLs point at the project home."""
    project = PYPROJECT["project"]
    classifiers = project["classifiers"]
    assert "Programming Language :: Python :: 3.11" in classifiers and project["requires-python"] == ">=3.11"
    assert not any(c.startswith("License ::") for c in classifiers)  # PEP 639: the license expression says it
    assert {"Homepage", "Documentation", "Issues"} <= set(project["urls"])
    assert all(url.startswith(HOME) for url in project["urls"].values())


def test_sdist_holds_what_a_rebuild_and_the_readme_need(dists: dict[str, Path]) -> None:
    """The sdist carries LICENSE, the templates, the starter config, the screenshot, the cron files and tests."""
    with tarfile.open(dists["sdist"]) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    expected = {"LICENSE", "README.md", "config.example.toml", "docs/screenshot.png", "pyproject.toml"}
    expected |= {f"templates/{p.name}" for p in (ROOT / "templates").iterdir() if p.is_file()}
    expected |= {f"cron/{p.name}" for p in (ROOT / "cron").iterdir()}
    assert expected <= names, sorted(expected - names)
    assert "tests/conftest.py" in names and "digest/app/cli/__init__.py" in names


def test_wheel_holds_the_package_data_and_license(dists: dict[str, Path]) -> None:
    """The wheel carries the templates and the starter config inside the package, and the license file."""
    with zipfile.ZipFile(dists["wheel"]) as wheel:
        names = set(wheel.namelist())
        metadata = wheel.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode("utf-8")
    assert "digest/config.example.toml" in names and "digest/templates/digest.html.j2" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "License-Expression: MIT" in metadata and f"Project-URL: Issues, {HOME}/issues" in metadata
    assert "Classifier: Intended Audience :: Science/Research" in metadata


def test_the_sdist_builds_a_wheel_by_itself(dists: dict[str, Path], tmp_path: Path) -> None:
    """Unpacked, the sdist builds a wheel with the same package data (nothing it needs was left out)."""
    with tarfile.open(dists["sdist"]) as sdist:
        sdist.extractall(tmp_path, filter="data")
    [source] = [p for p in tmp_path.iterdir() if p.is_dir()]
    [wheel] = _build(["wheel"], source, tmp_path / "out")
    with zipfile.ZipFile(wheel) as rebuilt, zipfile.ZipFile(dists["wheel"]) as original:
        assert set(rebuilt.namelist()) == set(original.namelist())


def test_systemd_units_point_at_documentation_that_exists() -> None:
    """Each unit has Documentation= in a scheme systemd accepts, naming the project's documented README URL
    (there is no man page to point at)."""
    units = sorted((ROOT / "cron").glob("*.service")) + sorted((ROOT / "cron").glob("*.timer"))
    assert units
    for unit in units:
        docs = re.findall(r"^Documentation=(.+)$", unit.read_text(encoding="utf-8"), re.MULTILINE)
        assert docs, f"{unit.name} has no Documentation="
        for uri in " ".join(docs).split():
            assert re.match(r"(https?|file|info|man):", uri), uri
            assert not uri.startswith("man:"), f"{unit.name}: no man page ships"
            assert uri == PYPROJECT["project"]["urls"]["Documentation"], uri
