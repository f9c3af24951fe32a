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


# The README's two results tables and the committed reports they quote.
RESULTS = {"**At 400 inner steps per task": "glyphs", "**At 2,000 inner steps per task": "glyphs-long"}
ROW = re.compile(r"^\| (?P<method>[^|]+?) \| \**(?P<mean>[\d.]+ ± [\d.]+)\** \|\s*(?P<diff>[^|]*?)\s*\|\s*(?P<verdict>[^|]*?)\s*\|$",
                 re.M)


def readme_table(text: str, opening: str) -> list[dict]:
    """The rows of the first table after the paragraph that opens with ``opening``."""
    start = text.index(opening)
    block = text[start:text.index("\n\n", text.index("\n|", start) + 1)]
    return [m.groupdict() for m in ROW.finditer(block)]


def report_means(summary: str) -> dict[str, str]:
    """Row label -> the Mean cell of a report's final-accuracy table."""
    section = summary[summary.index("### Final meta-test accuracy"):summary.index("### Aggregates")]
    lines = [line for line in section.splitlines() if line.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return {cells[0]: re.sub(r"</?\w>|\*", "", cells[header.index("Mean")])
            for cells in ([c.strip() for c in line.strip("|").split("|")] for line in lines[1:])}  # (the |---| rule has no space)


@pytest.mark.parametrize("opening", list(RESULTS), ids=list(RESULTS.values()))
def test_the_readme_results_quote_their_reference_report(opening):
    """Each row's mean, its difference from CTS and its verdict are the committed report's own
    (summary.md's accuracy table, verdicts.csv), so the README ranks nothing the report does not."""
    import pandas as pd

    folder = ROOT / "results" / "reference" / RESULTS[opening]
    rows = readme_table((ROOT / "README.md").read_text(), opening)
    means = report_means((folder / "summary.md").read_text())
    verdicts = pd.read_csv(folder / "verdicts.csv", dtype=str)
    verdicts = verdicts[verdicts["images_per_class"] == "all"]
    # A report with a K study labels rows by their variant ("CTS (ours), K=100, meta_lr=0.077");
    # the README names the method. CTS's selection is the CTS row paired with every other method.
    display = lambda label: label.split(", ")[0]  # noqa: E731
    lead = verdicts.loc[verdicts["x"].map(display) == "CTS (ours)", "x"].value_counts().index[0]
    verdicts = verdicts[verdicts["x"] == lead].assign(name=lambda v: v["y"].map(display)).set_index("name")
    assert len(rows) >= 8 and {r["method"] for r in rows} == set(verdicts.index) | {"CTS (ours)"}
    for row in rows:
        label = lead if row["method"] == "CTS (ours)" else verdicts.loc[row["method"], "y"]
        assert row["mean"] == means[label], row
        if row["method"] == "CTS (ours)":
            continue
        v = verdicts.loc[row["method"]]
        assert row["diff"] == f"{-float(v['difference']):+.1f} ± {float(v['difference_hw']):.1f}", row
        said = row["verdict"].strip("*").replace("CTS ahead", f"{lead} ahead")
        assert said == v["decision"].replace(v["y"], display(v["y"])), row
