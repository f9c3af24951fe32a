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


def test_a_method_keeps_its_colour_whichever_methods_a_report_holds(collection):
    """Colours followed a method's position among the methods present: Reptile, multi-task and
    scratch could all come out orange-brown in one figure, and a method changed colour between reports."""
    import pandas as pd

    runs = collection.runs
    alone = plots.styles(runs[runs["method"].isin(["reptile", "scratch"])])
    full = plots.styles(runs)
    assert alone["Reptile"].color == full["Reptile"].color and alone["Scratch"].color == full["Scratch"].color
    assert len(set(plots.COLOURS.values())) == len(plots.COLOURS)
    frame = pd.DataFrame({"method": list(plots.COLOURS), "display": list(plots.COLOURS), "variant": None})
    assert len({s.color for s in plots.styles(frame).values()}) == len(plots.COLOURS)


def test_every_figure_states_its_seeds_and_bands():
    import pandas as pd

    assert plots.seeds_note(pd.DataFrame({"seed": [0, 1, 2, 3, 4, 5, 0]})) == (
        "seeds 0-5 (6); bands: 95% t-interval over seeds")
    assert plots.seeds_note(pd.DataFrame({"seed": [0, 2]}), "bars: x") == "seeds 0,2 (2); bars: x"
    assert plots.seeds_note(pd.DataFrame({"seed": [3]})) == "seed 3 (1); bands: 95% t-interval over seeds"
    # Lines over different seeds (a K study's 3 beside the main 6) say so, not the union alone.
    lines = pd.DataFrame({"row": ["a"] * 6 + ["b"] * 3 + ["c"] * 3, "seed": [*range(6), 0, 1, 2, 0, 1, 2]})
    assert plots.seeds_note(lines) == "seeds 0-5 (6) or 0-2 (3), by line; bands: 95% t-interval over seeds"
    assert plots.seeds_note(lines[lines["row"] != "a"]) == "seeds 0-2 (3); bands: 95% t-interval over seeds"


def test_the_long_horizon_figures_render(collection, style, tmp_path):
    from analysis import horizon_plots
    from analysis.tables import targets_of

    runs, curves = collection.runs, collection.curves
    targets = targets_of(runs)
    lead, ref = "CTS (ours), K=10", "Reptile"
    paths = horizon_plots.speedup_vs_threshold(curves, targets, lead, ref, style, tmp_path, "speedup")
    assert paths is not None and all(p.exists() for p in paths)
    assert horizon_plots.speedup_vs_threshold(curves, targets, lead, "nobody", style, tmp_path, "x") is None
    paths = horizon_plots.paired_differences(runs, lead, ["Reptile", "FOMAML", "Scratch"], style, tmp_path, "pd")
    assert paths is not None and paths[1].read_bytes().startswith(b"%PDF")
    assert horizon_plots.limited_data(collection.limited, runs, style, tmp_path, "ld") is None  # no limited rows


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


def test_accuracy_vs_k_draws_a_k_study_at_per_k_betas_as_one_line(tmp_path):
    """Each K at its own tuned meta_lr is one line per method, with a tick at each K run only."""
    import pandas as pd

    rows = [{"method": "ours", "display": "CTS (ours)", "variant": f"K={k}", "seed": s, "target": t,
             "accuracy": 0.5 + 0.01 * s, "config_hash": f"{k}-{s}", plots.K: k, "method.meta_lr": beta}
            for k, beta in ((10, 0.3), (100, 0.05), (1000, 0.01)) for s in (0, 1, 2) for t in ("e", "f")]
    runs = pd.DataFrame(rows)
    style = plots.styles(runs)
    seen = {}

    def capture(fig, *a, **k):
        ax = fig.axes[0]
        seen["lines"] = [c for c in ax.containers]
        seen["ticks"] = [t.get_text() for t in ax.get_xticklabels()]
        return [tmp_path / "x.png", tmp_path / "x.pdf"]

    import analysis.plots as module
    original = module._save
    module._save = capture
    try:
        assert plots.accuracy_vs_k(runs, ["method.meta_lr", plots.K], style, tmp_path, "k") is not None
    finally:
        module._save = original
    assert len(seen["lines"]) == 1  # one errorbar line, not three single points
    assert seen["ticks"] == ["10", "100", "1000"]


def test_accuracy_vs_k_with_a_study_draws_each_k_at_its_study_beta_not_the_main_selection(tmp_path):
    """CTS's main selection (K 100, beta 0.077) and the K study's K = 100 (its own beta, 0.05) are two
    configurations at one K: given the study's selections, the line joins the study's configurations
    (one per K), each point labelled with its beta, and the main selection is not on it."""
    import pandas as pd

    configs = [(10, 0.3), (100, 0.05), (1000, 0.01), (100, 0.077)]  # the last: the main selection
    rows = [{"method": "ours", "display": "CTS (ours)", "variant": f"K={k}, meta_lr={b}", "seed": s, "target": t,
             "accuracy": 0.5 + 0.01 * s + (0.2 if b == 0.077 else 0), "config_hash": f"{k}-{b}-{s}", plots.K: k,
             "method.meta_lr": b} for k, b in configs for s in (range(6) if b == 0.077 else (0, 1, 2))
            for t in ("e", "f")]  # the main selection on 6 seeds, the study on 3
    runs = pd.DataFrame(rows)
    style = plots.styles(runs)
    study = {"ours": {k: [f"method.meta_lr={b}", f"method.reset_every={k}"] for k, b in configs[:3]}}
    seen = {}

    def capture(fig, *a, **k):
        ax = fig.axes[0]
        seen["lines"] = [c for c in ax.containers]
        seen["y"] = sorted(float(y) for c in ax.containers for y in c.lines[0].get_ydata())
        seen["notes"] = sorted(t.get_text() for t in ax.texts)
        seen["title"] = ax.get_title()
        return [tmp_path / "x.png", tmp_path / "x.pdf"]

    import analysis.plots as module
    original = module._save
    module._save = capture
    try:
        assert plots.accuracy_vs_k(runs, ["method.meta_lr", plots.K], style, tmp_path, "k", study=study) is not None
    finally:
        module._save = original
    assert len(seen["lines"]) == 1
    assert seen["title"].startswith("seeds 0-2 (3);")  # the seeds of the line drawn, not the main selection's 6
    assert max(seen["y"]) < 60  # the main selection's 70% is not on the study's line
    assert seen["notes"] == ["β 0.01", "β 0.05", "β 0.3"]


def test_the_k_study_is_read_from_the_selections_with_k_held():
    from analysis.protocol import k_study

    protocol = {"glyphs": {
        "ours": {"method": "ours", "fixed": {}, "overrides": ["method.meta_lr=0.077", "method.reset_every=100"]},
        "ours@reset_every=10": {"method": "ours", "fixed": {"method.reset_every": 10},
                                "overrides": ["method.meta_lr=0.3"]},
        "reptile@reset_every=1000": {"method": "reptile", "fixed": {"method.reset_every": 1000},
                                     "overrides": ["method.meta_lr=0.5"]}}}
    assert k_study(protocol, "glyphs") == {"ours": {10: ["method.meta_lr=0.3", "method.reset_every=10"]},
                                           "reptile": {1000: ["method.meta_lr=0.5", "method.reset_every=1000"]}}
    assert k_study(protocol, "other") == {}


def test_limited_data_states_the_seeds_of_the_lines_it_draws(tmp_path):
    """A K study's rows (3 seeds) are in limited.csv beside the selections (6); the figure draws
    the selections only, and its title says 6 seeds, not "6 or 3"."""
    import pandas as pd

    import analysis.plots as module
    from analysis import horizon_plots

    rows = [{"method": "ours", "display": "CTS (ours)", "variant": v, "suite": "s", "seed": seed, "target": "t",
             "train_size": n, "accuracy": 0.5} for v, seeds in (("K=100", range(6)), ("K=10", range(3)))
            for seed in seeds for n in (1, 3)]
    limited = pd.DataFrame(rows)
    style = {k: v for k, v in plots.styles(limited).items() if k == "CTS (ours), K=100"}
    seen = {}
    original = module._save
    module._save = lambda fig, *a, **k: seen.setdefault("title", fig.axes[0].get_title()) and []
    try:
        horizon_plots.limited_data(limited, limited, style, tmp_path, "ld")
    finally:
        module._save = original
    assert seen["title"].startswith("seeds 0-5 (6);"), seen
