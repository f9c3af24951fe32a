"""Figures render from the fixture at the promised size, and only when the data supports them."""
from __future__ import annotations

from pathlib import Path

import matplotlib.image
import pytest

from analysis import plots
from analysis.collect import collect

RUNS = Path(__file__).resolve().parents[1] / "fixtures" / "runs"
WIDTH, HEIGHT = round(3.3 * 200), round(2.5 * 200)


@pytest.fixture(scope="module")
def collection():
    return collect(RUNS)


@pytest.fixture(scope="module")
def style(collection):
    return plots.styles(collection.runs)


def check(paths: list[Path] | None) -> None:
    assert paths is not None
    png, pdf = paths
    image = matplotlib.image.imread(png)
    assert image.shape[:2] == (HEIGHT, WIDTH)
    assert image[..., :3].std() > 0.05  # something was drawn, not a blank canvas
    assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 1000


def test_training_loss(collection, style, tmp_path):
    check(plots.training_loss(collection.training, style, tmp_path, "training_loss"))


def test_training_loss_leaves_null_losses_out(collection, style, tmp_path):
    # metrics.jsonl writes a non-finite loss as null: a method with only nulls is not drawn
    training = collection.training.copy()
    training.loc[training["method"] == "reptile", "loss"] = None
    check(plots.training_loss(training, style, tmp_path, "training_loss"))
    assert plots.training_loss(training.assign(loss=None), style, tmp_path, "none") is None


def test_metaconvergence_mean_and_per_target(collection, style, tmp_path):
    check(plots.metaconvergence(collection.curves, ["toy_e", "toy_f"], style, tmp_path, "metaconvergence"))
    check(plots.metaconvergence(collection.curves, ["toy_e", "toy_f"], style, tmp_path, "mc_toy_f", target="toy_f"))


def test_metaconvergence_needs_two_phi_steps(collection, style, tmp_path):
    finals = collection.curves[collection.curves["phi_step"] == "final"]
    assert plots.metaconvergence(finals, ["toy_e", "toy_f"], style, tmp_path, "x") is None
    assert not list(tmp_path.iterdir())


def test_accuracy_vs_k(collection, style, tmp_path):
    check(plots.accuracy_vs_k(collection.runs, collection.swept, style, tmp_path, "accuracy_vs_K"))


def test_accuracy_vs_k_only_when_k_varies(collection, style, tmp_path):
    runs = collection.runs[collection.runs["variant"] != "K=5"]
    assert plots.accuracy_vs_k(runs, collection.swept, style, tmp_path, "x") is None


def test_one_colour_per_method(style):
    ours = [s for label, s in style.items() if label.startswith("CTS (ours)")]
    assert len(ours) == 2 and ours[0].color == ours[1].color and ours[0].linestyle != ours[1].linestyle
    assert len({s.color for s in style.values()}) == 5  # ours, reptile, fomaml, scratch, newmethod


def test_sensitivity_colours_a_method_whose_rows_are_all_variants(style, tmp_path):
    """The fixture's CTS rows are "CTS (ours), K=5" and "K=10": none is named "CTS (ours)", and
    the sensitivity figure drew CTS in the fallback grey before it looked the method up."""
    import numpy as np
    import pandas as pd

    cts = plots.method_style(style, "CTS (ours)")
    assert cts is not None and "CTS (ours)" not in style
    trials = pd.DataFrame({"method": ["ours"] * 3, "trial": [0, 1, 2], "validation": [0.5, 0.6, 0.7],
                           "selected": [False, False, True], "method.meta_lr": [0.01, 0.1, 1.0]})
    paths = plots.sensitivity(trials, style, tmp_path, "sensitivity")
    image = matplotlib.image.imread(paths[0])[..., :3]
    assert (np.abs(image - np.asarray(cts.color)).max(axis=-1) < 0.02).sum() > 20  # CTS's colour is drawn
