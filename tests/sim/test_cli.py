"""The command line's small promises: a version, a licence that matches the package's, and a
README that points only at files in the repository."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version
from pathlib import Path

from click.testing import CliRunner

from sim.cli import main

REPO = Path(__file__).resolve().parents[2]


def test_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"perpsim {version('perpsim')}\n"


def test_licence_file_matches_pyproject() -> None:
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["license"]
    assert declared == "MIT"
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("MIT License\n") and "Permission is hereby granted, free of charge" in text


def test_readme_points_only_inside_the_repository() -> None:
    readme = (REPO / "README.md").read_text()
    assert "../" not in readme
    for target in re.findall(r"\]\(([^)#][^)]*)\)", readme):  # markdown links other than anchors
        assert (REPO / target).exists(), target
    for path in re.findall(r"`((?:sim|tests|docs|scripts|benchmarks|contracts)/[\w./-]+)`", readme):
        assert (REPO / path.rstrip("/")).exists() or "<" in path, path
