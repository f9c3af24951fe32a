"""The report's figures, sized for one column of a paper (3.3 x 2.5 in, 8 pt text).

Each figure is saved as PNG (200 dpi) and PDF. A method keeps one colour and marker in
every figure (its registry position in the colour-blind palette); variants of a method
(say K=5 and K=10) share its colour and differ in line style. Bands and error bars are
95% t-intervals over seeds, the same statistics as the tables.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a window

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from analysis.collect import method_order, per_run_curves, row_labels, variant_label  # noqa: E402
from analysis.stats import mean_ci_frame  # noqa: E402

SIZE = (3.3, 2.5)  # inches: one column
DPI = 200
RC = {
    "font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "xtick.labelsize": 7, "ytick.labelsize": 7,
    "legend.fontsize": 6.5, "lines.linewidth": 1.2, "lines.markersize": 3.5, "axes.linewidth": 0.6,
    "grid.linewidth": 0.5, "pdf.fonttype": 42,  # TrueType in the PDF: text stays text
}
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "h", "<"]
LINESTYLES = ["-", "--", ":", "-."]
K = "method.reset_every"


@dataclass(frozen=True)
class Style:
    color: tuple
    marker: str
    linestyle: str


def styles(runs: pd.DataFrame) -> dict[str, Style]:
    """Row label -> style: colour and marker from the method, line style from the variant."""
    methods = method_order(list(runs["method"].unique()))
    palette = sns.color_palette("colorblind", 10)
    out = {}
    for i, method in enumerate(methods):
        variants = list(pd.unique(row_labels(runs[runs["method"] == method])))
        for j, label in enumerate(variants):
            out[label] = Style(palette[i % len(palette)], MARKERS[i % len(MARKERS)], LINESTYLES[j % len(LINESTYLES)])
    return out


def _figure() -> tuple[plt.Figure, plt.Axes]:
    fig = plt.figure(figsize=SIZE, layout="constrained")
    return fig, fig.add_subplot()


def _finish(fig: plt.Figure, ax: plt.Axes, out: Path, stem: str) -> list[Path]:
    """Legend below the axes (never over the data), then PNG + PDF at the fixed size."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ncol = 2 if max(len(l) for l in labels) > 16 else 3
        fig.legend(handles, labels, loc="outside lower center", ncol=ncol, frameon=False,
                   handlelength=2.2, columnspacing=1.0, handletextpad=0.5, borderaxespad=0.2)
    paths = [out / f"{stem}.png", out / f"{stem}.pdf"]
    fig.savefig(paths[0], dpi=DPI)
    fig.savefig(paths[1])
    plt.close(fig)
    return paths


def _band(ax: plt.Axes, x, mean, hw, style: Style, label: str, log: bool = False) -> None:
    x, mean, hw = (np.asarray(v, dtype=float) for v in (x, mean, hw))
    lo = mean - hw
    if log:  # a band reaching below zero is cut at the axis, not dropped
        lo = np.clip(lo, 1e-12, None)
    ax.plot(x, mean, color=style.color, ls=style.linestyle, marker=style.marker, label=label,
            markevery=max(1, len(x) // 8))
    ax.fill_between(x, lo, mean + hw, color=style.color, alpha=0.18, linewidth=0)


def training_loss(training: pd.DataFrame, style: dict[str, Style], out: Path, stem: str) -> list[Path] | None:
    """Meta-training loss (mean over source tasks) vs cumulative inner steps, log y."""
    if training.empty:
        return None
    df = training.assign(row=row_labels(training))
    per_run = df.groupby(["row", "seed", "inner_steps"], sort=False)["loss"].mean().reset_index()
    with sns.axes_style("whitegrid"), plt.rc_context(RC):
        fig, ax = _figure()
        lows, highs = [], []
        for row in [r for r in style if r in set(per_run["row"])]:
            ci = mean_ci_frame(per_run[per_run["row"] == row], ["inner_steps"], "loss").sort_values("inner_steps")
            _band(ax, ci["inner_steps"], ci["mean"], ci["half_width"], style[row], row, log=True)
            lows.append(ci["mean"].min())
            highs.append((ci["mean"] + ci["half_width"]).max())
        ax.set_yscale("log")
        ax.set_ylim(0.8 * min(lows), 1.25 * max(highs))
        ax.set_xlabel("Cumulative inner steps")
        ax.set_ylabel("Meta-training loss")
        return _finish(fig, ax, out, stem)


def metaconvergence(curves: pd.DataFrame, targets: list[str], style: dict[str, Style], out: Path, stem: str,
                    target: str | None = None) -> list[Path] | None:
    """Target accuracy of phi vs the inner steps that produced it: mean over ``targets``, or
    one ``target``. Drawn only when some method was meta-tested at two or more phi steps."""
    if curves.empty:
        return None
    per_run = per_run_curves(curves, [target] if target else targets).dropna(subset=["accuracy"])
    if per_run.groupby("row")["phi_step"].nunique().max() < 2:
        return None
    with sns.axes_style("whitegrid"), plt.rc_context(RC):
        fig, ax = _figure()
        for row in [r for r in style if r in set(per_run["row"])]:
            ci = mean_ci_frame(per_run[per_run["row"] == row], ["phi_step"], "accuracy")
            steps = per_run[per_run["row"] == row].groupby("phi_step")["inner_steps"].mean()
            ci = ci.assign(inner_steps=ci["phi_step"].map(steps)).sort_values("inner_steps")
            if ci["inner_steps"].max() == 0:  # no meta-training (scratch): phi_0 as a reference line
                ax.axhline(ci["mean"].iloc[0], color=style[row].color, ls=(0, (4, 2)), lw=1.0, label=row)
                continue
            _band(ax, ci["inner_steps"], ci["mean"], ci["half_width"], style[row], row)
        ax.set_xlabel("Cumulative inner steps of meta-training")
        ax.set_ylabel(f"Accuracy on {target} (%)" if target else "Mean target accuracy (%)")
        return _finish(fig, ax, out, stem)


def accuracy_vs_k(runs: pd.DataFrame, swept: list[str], style: dict[str, Style], out: Path,
                  stem: str) -> list[Path] | None:
    """Mean target accuracy vs K (method.reset_every), one line per method that varies K."""
    if K not in runs.columns:
        return None
    targets = list(pd.unique(runs["target"]))
    per_run = runs.pivot_table(index=["config_hash"], columns="target", values="accuracy", aggfunc="mean")
    mean_acc = 100 * per_run.reindex(columns=targets).mean(axis=1, skipna=False)
    df = runs.drop_duplicates("config_hash").assign(accuracy=lambda d: d["config_hash"].map(mean_acc))
    df = df.dropna(subset=[K, "accuracy"])
    lines = []
    for method in method_order(list(df["method"].unique())):
        m = df[df["method"] == method]
        # Other hyperparameters that vary within the method keep their own lines.
        others = [k for k in swept if k != K and m[k].astype(str).nunique() > 1]
        for _, group in m.groupby(others, dropna=False, sort=False) if others else [(None, m)]:
            if group[K].nunique() >= 2:
                first = group.iloc[0].to_dict()
                label = ", ".join(filter(None, [first["display"], variant_label(first, others)]))
                lines.append((label, row_labels(group).iloc[0], group))
    if not lines:
        return None
    with sns.axes_style("whitegrid"), plt.rc_context(RC):
        fig, ax = _figure()
        ks = set()
        for label, row, group in lines:
            ci = mean_ci_frame(group.astype({K: int}), [K], "accuracy").sort_values(K)
            s = style[row]
            ax.errorbar(ci[K], ci["mean"], yerr=ci["half_width"], color=s.color, marker=s.marker, label=label,
                        capsize=2, elinewidth=0.8)
            ks |= set(ci[K])
        ks = sorted(ks)
        if ks[-1] / ks[0] > 10:
            ax.set_xscale("log")
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.minorticks_off()
        ax.set_xlabel("K (method.reset_every)")
        ax.set_ylabel("Mean target accuracy (%)")
        return _finish(fig, ax, out, stem)
