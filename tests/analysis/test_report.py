"""The command end to end: ``python -m analysis.report <fixture> --out <tmp>``, run once per module."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from analysis.report import from_report, main, replace_dir

ROOT = Path(__file__).resolve().parents[2]
RUNS = ROOT / "tests" / "fixtures" / "runs"
FILES = ["runs.csv", "curves.csv", "training.csv", "skipped.json", "accuracy.tex", "steps_to_95.tex", "summary.md",
         "aggregate.csv", "aggregate.tex", "improvement.csv", "improvement.tex",
         "verdicts.csv", "verdicts.md", "verdicts.tex",
         "steps_to_reach.csv", "steps_to_reach.tex", "horizon.tex", "accuracy_vs_K.tex",
         *[f"{stem}.{ext}" for stem in ("training_loss", "metaconvergence", "metaconvergence_toy_e",
                                         "metaconvergence_toy_f", "accuracy_vs_K", "paired_differences",
                                         "speedup_vs_threshold") for ext in ("png", "pdf")]]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    parent = tmp_path_factory.mktemp("out")
    out = parent / "report"
    out.mkdir()
    (out / "summary.md").write_text("an older report")
    (out / "stale.txt").write_text("from an older report")
    proc = subprocess.run([sys.executable, "-m", "analysis.report", str(RUNS), "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    return proc, out


def test_cli_exits_0_and_lists_skipped_runs(report):
    proc, out = report
    assert proc.returncode == 0, proc.stderr
    assert "skipped incomplete run (no done): toy/reptile/5b9140287c5c" in proc.stderr  # a WARNING on the log


def test_writes_exactly_the_report_files(report):
    _, out = report
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)  # the old report's stale.txt is gone
    assert [p.name for p in out.parent.iterdir()] == ["report"]  # no temporary folders left behind


def test_report_contents(report):
    _, out = report
    summary = (out / "summary.md").read_text()
    assert "| CTS (ours), K=10 | **82.0 ± 5.0** | <u>72.0 ± 5.0</u> | **77.0 ± 4.3** | 3 |" in summary
    assert "- `toy/reptile/5b9140287c5c`" in summary  # the skipped run is listed
    assert "![Meta-training loss](training_loss.png)" in summary
    for link in [line.split("](")[1].split(")")[0] for line in summary.splitlines() if "](" in line]:
        assert (out / link).exists(), link
    # the report's runs.csv is the golden one: the tables trace to it
    assert (out / "runs.csv").read_text() == (ROOT / "tests" / "fixtures" / "runs_golden.csv").read_text()
    assert r"\textbf{82.0 $\pm$ 5.0}" in (out / "accuracy.tex").read_text()
    # ours K=5, K=10, reptile: 3 seeds x 2 targets x 4 phi; fomaml 2 x 1 x 4; scratch 3 x 2; newmethod 2
    assert len(pd.read_csv(out / "curves.csv")) == 3 * 2 * 4 * 3 + 2 * 4 + 3 * 2 + 2


def test_replace_dir_swaps_whole_folders(tmp_path):
    old, new = tmp_path / "report", tmp_path / "new"
    old.mkdir()
    (old / "stale.txt").write_text("x")
    new.mkdir()
    (new / "fresh.txt").write_text("y")
    replace_dir(new, old)
    assert [p.name for p in tmp_path.iterdir()] == ["report"]
    assert [p.name for p in old.iterdir()] == ["fresh.txt"]


def test_refuses_to_replace_other_folders(tmp_path):
    (tmp_path / "precious.txt").write_text("not a report")
    assert main([str(RUNS), "--out", str(tmp_path)]) == 2
    assert (tmp_path / "precious.txt").exists()


def test_no_complete_runs(tmp_path, capsys):
    assert main([str(tmp_path)]) == 1
    assert "no complete run folders" in capsys.readouterr().err


def test_diverged_runs_are_listed_apart(report):
    proc, out = report
    line = "toy/ours/7b786325a4cc: ours seed 0 diverged at meta-train step 13 on toy_b (loss)"
    assert f"skipped diverged run: {line}" in proc.stderr
    assert "7b786325a4cc" not in proc.stderr.replace(line, "")  # not also called incomplete
    summary = (out / "summary.md").read_text()
    assert f"## Diverged runs (excluded)\n\n- `{line}`\n" in summary
    assert summary.count("7b786325a4cc") == 1


def test_summary_without_accuracies_is_unreadable_not_a_crash(tmp_path, capsys):
    root = tmp_path / "runs"
    shutil.copytree(RUNS, root)
    summary = root / "toy/ours/60cc4897a620/summary.json"  # has done: a diverged-style summary must not crash
    s = json.loads(summary.read_text())
    del s["target_accuracy"], s["mean_accuracy"]
    summary.write_text(json.dumps(s))
    assert main([str(root), "--out", str(tmp_path / "report")]) == 0
    assert ("skipped unreadable run: toy/ours/60cc4897a620/summary.json: no target_accuracy"
            in capsys.readouterr().err)


@pytest.fixture(scope="module")
def regenerated(report, tmp_path_factory):
    """The report above, regenerated from its own CSVs (no run folders)."""
    _, first = report
    again = tmp_path_factory.mktemp("again") / "report"
    assert main([str(first), "--out", str(again)]) == 0
    return first, again


def test_regenerated_csvs_are_byte_identical(regenerated):
    first, again = regenerated
    for name in ("runs.csv", "curves.csv", "training.csv"):
        assert (again / name).read_bytes() == (first / name).read_bytes(), name  # K=5 stays 5, rows in order


def test_regenerated_tables_and_summary_are_identical(regenerated):
    first, again = regenerated
    for name in [p.name for p in first.glob("*.tex")] + ["summary.md"]:
        # only the source folder's name differs: the run folders, then the first report
        text = (again / name).read_text().replace(f"From `{first}`:", f"From `{RUNS}`:")
        assert text == (first / name).read_text(), name
    assert "skipped 1 diverged, 1 incomplete, 0 unreadable" in (again / "summary.md").read_text()


def test_regenerated_columns_keep_their_types(regenerated):
    first, _ = regenerated
    runs = from_report(first).runs
    assert runs["method.reset_every"].dtype == "Int64"  # 5, 10 and gaps: not 5.0
    assert runs["method.reset_every"].dropna().unique().tolist() == [5, 10]
    assert runs["method.meta_lr"].dtype == "Float64"
    assert runs["config_hash"].map(type).eq(str).all()  # a hash of digits would stay text


def test_report_without_skipped_lists_says_so(report, tmp_path):
    _, first = report
    old = tmp_path / "old"
    shutil.copytree(first, old)
    (old / "skipped.json").unlink(missing_ok=True)  # a report written before the lists were kept
    assert main([str(old), "--out", str(tmp_path / "again")]) == 0
    summary = (tmp_path / "again" / "summary.md").read_text()
    assert "skipped runs not known" in summary
    assert "None." not in summary.split("## Diverged runs")[1]
