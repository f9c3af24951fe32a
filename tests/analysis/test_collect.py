"""analysis.collect on the frozen fixture (tests/fixtures/runs, written by make_runs.py)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from analysis.collect import collect, label_keys, method_order

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
RUNS = FIXTURES / "runs"


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
    import shutil

    src = RUNS / "toy" / "ours" / "60cc4897a620"
    dst = tmp_path / "toy" / "finetune" / "x"
    shutil.copytree(src, dst)
    metrics = dst / "metrics.jsonl"
    metrics.write_text(metrics.read_text().replace('"inner_steps": 40', '"inner_steps": 10'))
    curves = collect(tmp_path).curves
    assert curves.loc[curves["phi_step"] == "5", "inner_steps"].iloc[0] == 5
