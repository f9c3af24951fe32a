"""The long-horizon figures: speed-up against threshold, limited data, per-seed paired differences.

- **Speed-up against threshold** (``speedup_vs_threshold``): for each accuracy from 30% up to
  the lower of two rows' final mean accuracies, the cumulative inner steps each row's mean
  curve needs to reach it (``horizon.reach``), and their ratio (reference / row): "faster
  early, not late" in one picture. Bands: percentile-bootstrap 95% over seeds, each row's
  seeds redrawn independently.
- **Limited data** (``limited_data``): mean target accuracy of the final phi against the
  training images per target class, one line per row; bars: 95% t-interval over seeds.
- **Paired differences** (``paired_differences``): per seed, the lead row's mean target
  accuracy minus each other row's, at the final phi; a dot per seed and the mean with its 95%
  t-interval. The seeds pair the runs (the same phi_0 and data order for every method).
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from analysis.collect import row_labels
from analysis.horizon import reach, seed_curves
from analysis.plots import RC, SIZE, Style, _legend, _save, finish_errorbars, seeds_note
from analysis.stats import t_interval
from analysis.tables import MEAN, seed_scores

LOWEST = 30.0  # % : thresholds start here (below it every row is at chance or close)


def speedup_vs_threshold(curves: pd.DataFrame, targets: list[str], row: str, reference: str,
                         style: dict[str, Style], out: Path, stem: str, reps: int = 1000,
                         seed: int = 0) -> list[Path] | None:
    """Two panels: inner steps to reach each threshold (log y) for ``row`` and ``reference``, and
    the speed-up reference / row; None without both curves or a threshold range."""
    by_row = seed_curves(curves, targets) if not curves.empty else {}
    if row not in by_row or reference not in by_row:
        return None
    top = min(by_row[row].to_numpy().mean(0)[-1], by_row[reference].to_numpy().mean(0)[-1])
    if top <= LOWEST:
        return None
    thresholds = np.linspace(LOWEST, top, 40)
    rng = np.random.default_rng(seed)
    steps, boots = {}, {}
    for name in (row, reference):
        wide = by_row[name]
        x, acc = wide.columns.to_numpy(float), wide.to_numpy()
        steps[name] = np.array([reach(x, acc.mean(0), t) for t in thresholds])
        means = acc[rng.integers(0, len(acc), size=(reps, len(acc)))].mean(1)
        boots[name] = np.array([[reach(x, m, t) for t in thresholds] for m in means])
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = steps[reference] / steps[row]
        ratio_boot = boots[reference] / boots[row]
    with sns.axes_style("whitegrid"), plt.rc_context(RC):
        fig = plt.figure(figsize=(2 * SIZE[0], SIZE[1]), layout="constrained")
        left, right = fig.subplots(1, 2)
        for name in (row, reference):
            s = style[name]
            lo, hi = np.nanpercentile(np.where(np.isfinite(boots[name]), boots[name], np.nan), [2.5, 97.5], axis=0)
            left.plot(thresholds, steps[name], color=s.color, marker=s.marker, markevery=5, label=name)
            left.fill_between(thresholds, lo, hi, color=s.color, alpha=0.15, linewidth=0)
        left.set_yscale("log")
        left.set_xlabel("Mean target accuracy reached (%)")
        left.set_ylabel("Cumulative inner steps needed")
        lo, hi = np.nanpercentile(np.where(np.isfinite(ratio_boot), ratio_boot, np.nan), [2.5, 97.5], axis=0)
        s = style[row]
        right.plot(thresholds, ratio, color=s.color, marker=s.marker, markevery=5)
        right.fill_between(thresholds, lo, hi, color=s.color, alpha=0.15, linewidth=0)
        right.axhline(1.0, color="0.3", lw=0.8, ls="--")
        right.set_xlabel("Mean target accuracy reached (%)")
        right.set_ylabel("Speed-up")
        n = {name: len(by_row[name]) for name in (row, reference)}
        fig.suptitle(f"Speed-up: {style[reference].method}'s steps / {style[row].method}'s. {n[row]} and "
                     f"{n[reference]} seeds; bands: percentile bootstrap 95% over seeds ({reps} resamples)",
                     fontsize=6.5)
        _legend(fig, *left.get_legend_handles_labels())
        return _save(fig, out, stem)


def limited_data(limited: pd.DataFrame, runs: pd.DataFrame, style: dict[str, Style], out: Path,
                 stem: str) -> list[Path] | None:
    """Mean target accuracy of the final phi against training images per target class."""
    if limited.empty:
        return None
    targets = list(pd.unique(runs["target"]))
    df = limited.assign(row=row_labels(limited), accuracy=100 * limited["accuracy"])
    wide = df.pivot_table(index=["row", "seed", "train_size"], columns="target", values="accuracy", aggfunc="mean")
    mean = wide.reindex(columns=targets).mean(axis=1, skipna=False).rename("accuracy").reset_index()
    with sns.axes_style("whitegrid"), plt.rc_context(RC):
        fig = plt.figure(figsize=SIZE, layout="constrained")
        ax = fig.add_subplot()
        sizes = sorted(int(s) for s in pd.unique(mean["train_size"]))
        drawn = [r for r in style if r in set(mean["row"])]
        for row in drawn:
            ivs = [t_interval(mean[(mean["row"] == row) & (mean["train_size"] == n)]["accuracy"]) for n in sizes]
            s = style[row]
            ax.errorbar(sizes, [iv.mean for iv in ivs], yerr=[iv.half_width for iv in ivs], color=s.color,
                        marker=s.marker, ls=s.linestyle, capsize=2, elinewidth=0.8, label=row)
        return finish_errorbars(fig, ax, sizes, True, "Training images per target class",
                                mean[mean["row"].isin(drawn)], out, stem)  # the seeds of the lines drawn


def paired_differences(runs: pd.DataFrame, lead: str, others: list[str], style: dict[str, Style], out: Path,
                       stem: str) -> list[Path] | None:
    """Per seed, ``lead`` minus each of ``others`` (mean target accuracy of the final phi, points)."""
    scores = seed_scores(runs)[MEAN]
    rows = [r for r in others if r in scores.index.get_level_values(0) and r != lead]
    if lead not in scores.index.get_level_values(0) or not rows:
        return None
    with sns.axes_style("whitegrid"), plt.rc_context(RC):
        fig = plt.figure(figsize=(SIZE[0], 0.6 + 0.28 * len(rows)), layout="constrained")
        ax = fig.add_subplot()
        seeds: set[int] = set()
        for y, row in enumerate(rows):
            a, b = scores.loc[lead].dropna(), scores.loc[row].dropna()
            common = a.index.intersection(b.index)
            diff = (a[common] - b[common]).to_numpy(float)
            seeds |= set(int(s) for s in common)
            iv = t_interval(diff)
            s = style[row]
            ax.scatter(diff, np.full(len(diff), y) + np.linspace(-0.12, 0.12, len(diff)), color=s.color,
                       marker=s.marker, s=10, linewidths=0, zorder=3)
            ax.errorbar([iv.mean], [y], xerr=[iv.half_width], color="black", marker="|", ms=8, capsize=2,
                        elinewidth=0.9, zorder=4)
        ax.axvline(0.0, color="0.3", lw=0.8, ls="--")
        ax.set_yticks(range(len(rows)), rows)
        ax.invert_yaxis()
        ax.set_xlabel(f"{style[lead].method} minus row (points, final phi)")
        ax.set_title(seeds_note(pd.DataFrame({"seed": sorted(seeds)}),
                            "dots: seeds; bars: mean ± 95% t-interval"), fontsize=6.5)
        return _save(fig, out, stem)
