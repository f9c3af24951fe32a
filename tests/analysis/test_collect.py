"""analysis.collect on the frozen fixture (tests/fixtures/runs, written by make_runs.py)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from analysis.collect import collect, label_keys, method_order

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
RUNS = FIXTURES / "runs"
DIVERGED = "toy/ours/7b786325a4cc"  # make_runs.py: ours at meta_lr 1.0, seed 0


def copy_runs(tmp_path: Path) -> Path:
    """A copy of the fixture to damage."""
    shutil.copytree(RUNS, tmp_path / "runs")
    return tmp_path / "runs"


@pytest.fixture(scope="module")
def collection():
    return collect(RUNS)


def test_runs_csv_matches_golden(collection, tmp_path):
    # The golden file was generated once and checked by eye against RUNS in make_runs.py.
    collection.runs.to_csv(tmp_path / "runs.csv", index=False)
    assert (tmp_path / "runs.csv").read_text() == (FIXTURES / "runs_golden.csv").read_text()


def test_hand_checked_rows(collection):
    runs = collection.runs
    ours_k10 = runs[(runs["method"] == "ours") & (runs["variant"] == "K=10") & (runs["target"] == "toy_e")]
    assert list(ours_k10["accuracy"]) == [0.80, 0.82, 0.84]
    assert list(ours_k10["seed"]) == [0, 1, 2]
    assert set(ours_k10["display"]) == {"CTS (ours)"}
    assert set(ours_k10["method.reset_every"]) == {10}
    # fomaml ran on toy_e only: no toy_f rows are invented
    assert set(runs.loc[runs["method"] == "fomaml", "target"]) == {"toy_e"}
    assert runs.loc[runs["method"] == "scratch", "inner_steps"].eq(0).all()


def test_swept_columns(collection):
    # meta_lr and reset_every are always shown; aggregate_every differs (fomaml: 10, others: 1);
    # seed, results_dir, suite.targets and metatest.at_steps never count as swept.
    assert collection.swept == ["method.aggregate_every", "method.meta_lr", "method.reset_every"]


def test_row_order_is_registry_order_then_unknown(collection):
    order = list(pd.unique(collection.runs["method"]))
    assert order == ["ours", "reptile", "fomaml", "scratch", "newmethod"]
    assert method_order(["zeta", "scratch", "alpha", "ours"]) == ["ours", "scratch", "alpha", "zeta"]


def test_variants_only_where_a_method_varies(collection):
    variants = collection.runs.groupby("method", sort=False)["variant"].unique().map(list).to_dict()
    assert variants["ours"] == ["K=5", "K=10"]  # numeric order, not text order
    assert variants["reptile"] == [""]


def test_label_keys_drop_keys_that_follow_k():
    # Reptile's aggregate_every defaults to K: naming both says nothing more.
    records = [{"method.reset_every": k, "method.aggregate_every": k, "method.meta_lr": lr}
               for k in (5, 10) for lr in (0.1, 0.2)]
    keys = ["method.aggregate_every", "method.meta_lr", "method.reset_every"]
    assert label_keys(keys, records) == ["method.reset_every", "method.meta_lr"]


def test_incomplete_runs_are_skipped_and_listed(collection):
    assert collection.incomplete == ["toy/reptile/5b9140287c5c"]
    assert not collection.runs["run_dir"].str.contains("5b9140287c5c").any()
    assert collection.runs["seed"].max() == 2  # the incomplete run is seed 3


def test_curve_inner_steps(collection):
    curves = collection.curves
    ours = curves[(curves["config_hash"] == "60cc4897a620") & (curves["target"] == "toy_e")]
    # 4 learners: phi_step s stands for 4 s inner steps; final = summary inner_steps
    assert list(zip(ours["phi_step"], ours["inner_steps"])) == [("5", 20), ("10", 40), ("15", 60), ("final", 80)]
    assert list(ours["accuracy"]) == pytest.approx([0.48, 0.72, 0.776, 0.80])
    # newmethod has no metrics.jsonl: only its final phi, at summary inner_steps
    new = curves[curves["method"] == "newmethod"]
    assert set(new["phi_step"]) == {"final"} and set(new["inner_steps"]) == {80}
    scratch = curves[curves["method"] == "scratch"]
    assert set(scratch["inner_steps"]) == {0}


def test_training_rows(collection):
    training = collection.training
    assert set(training["method"]) == {"ours", "reptile", "fomaml"}  # scratch/newmethod log nothing
    one = training[training["config_hash"] == "60cc4897a620"]
    assert len(one) == 8 and list(one["inner_steps"].unique()) == [40, 80]


def test_learner_count_comes_from_metrics(tmp_path):
    # Fine-tuning trains one learner for train.steps x sources steps: phi_step 5 is 5 inner
    # steps, not 5 x inner_steps / train.steps = 20.
    src = RUNS / "toy" / "ours" / "60cc4897a620"
    dst = tmp_path / "toy" / "finetune" / "x"
    shutil.copytree(src, dst)
    metrics = dst / "metrics.jsonl"
    metrics.write_text(metrics.read_text().replace('"inner_steps": 40', '"inner_steps": 10'))
    curves = collect(tmp_path).curves
    assert curves.loc[curves["phi_step"] == "5", "inner_steps"].iloc[0] == 5


def test_diverged_runs_are_listed_apart(collection):
    assert collection.diverged == [f"{DIVERGED}: ours seed 0 diverged at meta-train step 13 on toy_b (loss)"]
    for frame in (collection.runs, collection.curves, collection.training):
        assert not frame["run_dir"].eq(DIVERGED).any()
    assert DIVERGED not in collection.incomplete and not collection.unreadable


def test_runs_that_disagree_with_their_summary_are_skipped(tmp_path):
    root = copy_runs(tmp_path)
    cut = root / "toy/ours/60cc4897a620/metrics.jsonl"  # steps 10 and 20, four sources each
    cut.write_text("".join(cut.read_text().splitlines(keepends=True)[:4]))  # cut at a line boundary
    partial = root / "toy/ours/fd8ab0334b66/metrics.jsonl"
    partial.write_text("".join(partial.read_text().splitlines(keepends=True)[:6]))  # half of step 20
    metatest = root / "toy/reptile/8e8442147d5d/metatest.jsonl"
    metatest.write_text("".join(line for line in metatest.read_text().splitlines(keepends=True)
                                if not ('"final"' in line and "toy_f" in line)))
    c = collect(root)
    assert c.unreadable == [
        "toy/ours/60cc4897a620/metrics.jsonl: ends at inner step 40, summary.json says 80 (truncated?)",
        "toy/ours/fd8ab0334b66/metrics.jsonl: 2 rows at step 20, 4 at step 10 (truncated?)",
        "toy/reptile/8e8442147d5d/metatest.jsonl: no final row for toy_f, which summary.json reports",
    ]
    bad = {p.split("/metri")[0].split("/metat")[0] for p in c.unreadable}
    assert not c.runs["run_dir"].isin(bad).any()
    # scratch (inner_steps 0) and newmethod (no metrics.jsonl) pass the check
    assert c.runs["run_dir"].nunique() == collect(RUNS).runs["run_dir"].nunique() - 3


def test_unreadable_names_the_file_and_line(tmp_path):
    root = copy_runs(tmp_path)
    metrics = root / "toy/ours/60cc4897a620/metrics.jsonl"
    lines = metrics.read_text().splitlines(keepends=True)
    lines[2] = lines[2].replace(", ", " ", 1)
    metrics.write_text("".join(lines))
    (root / "toy/reptile/8e8442147d5d/summary.json").write_text('{"method": "reptile",')
    c = collect(root)
    assert len(c.unreadable) == 2
    assert c.unreadable[0].startswith("toy/ours/60cc4897a620/metrics.jsonl:3: Expecting ',' delimiter")
    assert c.unreadable[1].startswith("toy/reptile/8e8442147d5d/summary.json: Expecting property name")
