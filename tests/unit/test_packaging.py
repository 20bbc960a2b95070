"""Provides checks of what the distribution ships: every package, and every data file found."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pixmart_data import data_file
from setuptools import find_packages

ROOT = Path(__file__).resolve().parents[2]


def _listed_packages() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    return {str(name) for name in config["tool"]["setuptools"]["packages"]}


def test_every_package_of_the_source_tree_is_listed() -> None:
    """A subpackage missing from pyproject's explicit list would be missing from the wheel."""
    found = set(find_packages(str(ROOT), include=["protocol*", "backend*", "tui*"]))
    found |= {"tui.styles", "pixmart_data", "pixmart_data.demo"}
    assert _listed_packages() == found


def test_data_files_are_found_through_the_package() -> None:
    assert data_file("imagenet_labels.txt").is_file()
    assert data_file("imagenet_hypernyms.txt").is_file()
    assert data_file("starter_tags.txt").is_file()
    assert data_file("demo", "catalogue.json").is_file()
    assert len(list(data_file("demo").glob("*.jpg"))) >= 30
