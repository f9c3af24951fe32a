"""The README and docs/ as a newcomer follows them: every relative link resolves (a file, and
a heading's anchor where one is named), and every ``python -m`` in a command block names a
module that exists."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from helpers import ROOT

PAGES = [ROOT / "README.md", ROOT / "DEVELOPERS.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
BLOCK = re.compile(r"^```[a-z]*\n(.*?)^```", re.S | re.M)
MODULE = re.compile(r"python3? -m ([A-Za-z_][\w.]*)")


def anchors(page: Path) -> set[str]:
    """GitHub's anchors: a heading lower-cased, punctuation dropped, spaces as hyphens."""
    text = BLOCK.sub("", page.read_text())
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^#+ (.+)$", text, re.M)}


def links(page: Path) -> list[str]:
    return [t for t in LINK.findall(BLOCK.sub("", page.read_text())) if not re.match(r"[a-z]+:", t)]


def test_the_docs_exist_and_the_readme_is_a_front_door():
    assert len(PAGES) > 3
    assert len((ROOT / "README.md").read_text().splitlines()) <= 170


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page):
    for target in links(page):
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        assert file.exists(), f"{page.name}: link to {target}: no file {file}"
        if anchor and file.suffix == ".md":
            assert anchor in anchors(file), f"{page.name}: link to {target}: no heading #{anchor} in {file.name}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_python_m_command_names_a_module_that_exists(page):
    for block in BLOCK.findall(page.read_text()):
        for module in MODULE.findall(block):
            assert importlib.util.find_spec(module) is not None, f"{page.name}: python -m {module}: no such module"


def test_the_checks_catch_a_broken_link_and_a_missing_module(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Top\n[a](missing.md) [b](#nowhere) [c](#top) [d](https://x.org)\n"
                    "```bash\npython -m benchmark.nosuch\n```\n")
    assert links(page) == ["missing.md", "#nowhere", "#top"]
    assert anchors(page) == {"top"}
    assert MODULE.findall(BLOCK.findall(page.read_text())[0]) == ["benchmark.nosuch"]
    assert importlib.util.find_spec("benchmark.nosuch") is None
