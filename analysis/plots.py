"""The report's figures, sized for one column of a paper (3.3 x 2.5 in, 8 pt text).

Each figure is saved as PNG (200 dpi) and PDF. A method keeps one colour and marker in
every figure (its registry position in a colour-blind palette); variants of a method
(say K=5 and K=10) share its colour and differ in line style. Bands and error bars are
95% t-intervals over seeds, the same statistics as the tables.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a window

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from analysis.collect import (at_overrides, label_keys, method_order, per_run_curves, row_labels,  # noqa: E402
                              variant_label)
from analysis.stats import mean_ci_frame  # noqa: E402
from methods.base import METHODS, display_name  # noqa: E402

SIZE = (3.3, 2.5)  # inches: one column
DPI = 200
RC = {
    "font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "xtick.labelsize": 7, "ytick.labelsize": 7,
    "legend.fontsize": 6.5, "lines.linewidth": 1.2, "lines.markersize": 3.5, "axes.linewidth": 0.6,
    "grid.linewidth": 0.5, "pdf.fonttype": 42,  # TrueType in the PDF: text stays text
}
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "h", "<"]
LINESTYLES = ["-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 2))]
REFERENCE = (0, (4, 2))  # a method without meta-training: its phi_0 accuracy as a level
K = "method.reset_every"
LOG_SPAN = 20  # checkpoints spanning more than this ratio of inner steps get a log x-axis
DODGE = 1.04  # x factor between lines at the same K (a ratio, since K is often on a log axis)


@dataclass(frozen=True)
class Style:
    """How one table row (method variant) is drawn, and what its legend entries say."""

    color: tuple
    marker: str
    linestyle: object
    method: str  # display name: the colour's legend entry
    variant: str  # "" or e.g. "K=5": the line style's legend entry


# One colour per registered method, the same in every figure: the Okabe-Ito palette (safe for
# the common colour-vision deficiencies), then two darker tones for the last methods. No two
# methods that the long-horizon figures draw together are of one colour family.
COLOURS = {"ours": "#0072B2", "reptile": "#E69F00", "fomaml": "#56B4E9", "fomaml_pp": "#009E73",
           "multitask": "#CC79A7", "finetune": "#000000", "scratch": "#999999", "leap": "#D55E00",
           "imaml": "#8C564B", "anil": "#B8A000"}
OTHER_COLOURS = ["#332288", "#117733", "#882255", "#44AA99", "#AA4499"]  # unregistered methods, in order


def styles(runs: pd.DataFrame) -> dict[str, Style]:
    """Row label -> style. Colour and marker follow the method (its name in COLOURS, its registry
    position for the marker), so a method looks the same in every figure of every report; line
    style follows the variant text, so "K=5" looks the same for every method that has it."""
    variants = [v for v in pd.unique(runs["variant"].fillna("").astype(str)) if v]
    dash = {"": "-", **{v: LINESTYLES[i % len(LINESTYLES)] for i, v in enumerate(variants)}}
    registered = METHODS.names()
    others = [m for m in method_order(list(runs["method"].unique())) if m not in COLOURS]
    out = {}
    for method in method_order(list(runs["method"].unique())):
        sub = runs[runs["method"] == method]
        i = registered.index(method) if method in registered else len(registered) + others.index(method)
        color = matplotlib.colors.to_rgb(COLOURS.get(method) or OTHER_COLOURS[others.index(method) % 5])
        for label, display, variant in zip(row_labels(sub), sub["display"], sub["variant"].fillna("").astype(str)):
            out[label] = Style(color, MARKERS[i % len(MARKERS)], dash[variant], display, variant)
    return out


def seeds_note(frame: pd.DataFrame, bands: str = "bands: 95% t-interval over seeds") -> str:
    """A figure's statement of its seeds and bands, e.g. "seeds 0-5 (6); bands: 95% t-interval over seeds"."""
    if "seed" not in frame or frame["seed"].dropna().empty:
        return bands
    lines = frame.dropna(subset=["seed"]).groupby("row", sort=False)["seed"] if "row" in frame else [(None, frame["seed"])]
    sets = sorted({tuple(sorted(int(s) for s in pd.unique(seeds.dropna()))) for _, seeds in lines}, key=lambda t: -len(t))

    def span(seeds: tuple[int, ...]) -> str:
        run = len(seeds) > 2 and list(seeds) == list(range(seeds[0], seeds[-1] + 1))
        return f"{seeds[0]}-{seeds[-1]}" if run else ",".join(map(str, seeds))

    text = " or ".join(f"{span(s)} ({len(s)})" for s in sets) + (", by line" if len(sets) > 1 else "")
    return f"seed{'s' if max(map(len, sets)) > 1 else ''} {text}; {bands}"


def method_style(style: dict[str, Style], method: str) -> Style | None:
    """The style of a method (display name), whichever of its rows carries it: with variants
    its rows are "CTS (ours), K=10" and so on, and no row is named after the method alone."""
    return next((s for s in style.values() if s.method == method), None)


def _figure() -> tuple[plt.Figure, plt.Axes]:
    fig = plt.figure(figsize=SIZE, layout="constrained")
    return fig, fig.add_subplot()


def _legend(fig: plt.Figure, handles: list, labels: list[str], columns: int | None = None) -> None:
    """Below the axes, never over the data; as many columns as the longest label allows."""
    if handles:
        ncol = columns or (4 if max(map(len, labels)) <= 12 else 3 if max(map(len, labels)) <= 16 else 2)
        fig.legend(handles, labels, loc="outside lower center", ncol=ncol, frameon=False, handlelength=1.8,
                   columnspacing=0.9, handletextpad=0.4, borderaxespad=0.1, labelspacing=0.3)


def _style_legend(fig: plt.Figure, drawn: list[str], style: dict[str, Style],
                  reference: frozenset[str] | set[str] = frozenset()) -> None:
    """One entry per method (colour, marker) and, if variants were drawn, one per variant
    (grey line style): 7 methods x 3 values of K need 10 entries, not 21."""
    handles, labels = [], []
    for row in drawn:
        s = style[row]
        if s.method not in labels:
            flat = row in reference  # a horizontal reference line has no markers
            handles.append(Line2D([], [], color=s.color, marker=None if flat else s.marker,
                                  ls=REFERENCE if flat else "-"))
            labels.append(s.method)
    variants = list(dict.fromkeys(style[row].variant for row in drawn if style[row].variant))
    for v in variants:
        ls = next(style[row].linestyle for row in drawn if style[row].variant == v)
        handles.append(Line2D([], [], color="0.35", ls=ls))
        labels.append(v)
    _legend(fig, handles, labels)


def _save(fig: plt.Figure, out: Path, stem: str) -> list[Path]:
    """PNG + PDF at the fixed size (no tight bbox: the pixel size is part of the contract)."""
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
    ax.fill_between(x, lo, mean + hw, color=style.color, alpha=0.1, linewidth=0)


def _clip_to_percent(ax: plt.Axes) -> None:
    """Wide intervals over few seeds may cross 0 or 100%; accuracy cannot, so neither does the axis."""
    low, high = ax.get_ylim()
    ax.set_ylim(max(low, -1), min(high, 101))


def training_loss(training: pd.DataFrame, style: dict[str, Style], out: Path, stem: str) -> list[Path] | None:
    """Meta-training loss (mean over source tasks) vs cumulative inner steps, log y. A null
    loss (metrics.jsonl writes a non-finite one as null) is left out, not drawn as zero."""
    training = training.dropna(subset=["loss"]) if "loss" in training else training.iloc[:0]
    if training.empty:
        return None
    df = training.assign(row=row_labels(training))
    per_run = df.groupby(["row", "seed", "inner_steps"], sort=False)["loss"].mean().reset_index()
    with sns.axes_style("whitegrid"), plt.rc_context(RC):
        fig, ax = _figure()
        lows, highs = [], []
        drawn = [r for r in style if r in set(per_run["row"])]
        for row in drawn:
            ci = mean_ci_frame(per_run[per_run["row"] == row], ["inner_steps"], "loss").sort_values("inner_steps")
            _band(ax, ci["inner_steps"], ci["mean"], ci["half_width"], style[row], row, log=True)
            lows.append(ci["mean"].min())
            highs.append((ci["mean"] + ci["half_width"]).max())
        ax.set_yscale("log")
        ax.set_ylim(0.8 * min(lows), 1.25 * max(highs))
        ax.set_xlim(left=0)
        ax.set_xlabel("Cumulative inner steps")
        ax.set_ylabel("Meta-training loss")
        ax.set_title(seeds_note(per_run[per_run["row"].isin(drawn)]), fontsize=6.5)
        _style_legend(fig, drawn, style)
        return _save(fig, out, stem)


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
        drawn, reference, spans = [r for r in style if r in set(per_run["row"])], set(), []
        for row in drawn:
            ci = mean_ci_frame(per_run[per_run["row"] == row], ["phi_step"], "accuracy")
            steps = per_run[per_run["row"] == row].groupby("phi_step")["inner_steps"].mean()
            ci = ci.assign(inner_steps=ci["phi_step"].map(steps)).sort_values("inner_steps")
            if ci["inner_steps"].max() == 0:  # no meta-training (scratch): phi_0 as a reference line
                ax.axhline(ci["mean"].iloc[0], color=style[row].color, ls=REFERENCE, lw=1.0)
                reference.add(row)
                continue
            if len(ci) < 2:  # its final phi only (a K study's variant, say): no curve to draw
                continue
            _band(ax, ci["inner_steps"], ci["mean"], ci["half_width"], style[row], row)
            spans.append(ci["inner_steps"])
        drawn = [r for r in drawn if r in reference or any(line.get_label() == r for line in ax.get_lines())]
        steps = pd.concat(spans) if spans else pd.Series([0.0])
        if steps.min() > 0 and steps.max() / steps.min() > LOG_SPAN:  # log-spaced checkpoints
            ax.set_xscale("log")
        else:
            ax.set_xlim(left=0)
        _clip_to_percent(ax)
        ax.set_xlabel("Cumulative inner steps of meta-training")
        ax.set_ylabel("Accuracy (%)" if target else "Mean target accuracy (%)")
        # the target as a title: "Accuracy on glyphs_canadian (%)" ran off the figure's height
        note = seeds_note(per_run[per_run["row"].isin(drawn)])
        ax.set_title("\n".join(filter(None, [target, note])), fontsize=6.5)
        _style_legend(fig, drawn, style, reference)
        return _save(fig, out, stem)


def accuracy_vs_k(runs: pd.DataFrame, swept: list[str], style: dict[str, Style], out: Path,
                  stem: str, study: dict[str, dict[int, list[str]]] | None = None) -> list[Path] | None:
    """Mean target accuracy vs K (method.reset_every), one line per method that varies K. With a K
    study (``study``: method -> K -> the overrides its tune selected at that K), a method of the study
    is one line through those configurations, each point labelled with its beta; its other runs
    (the main selection, which may share a K at another beta) are left out of this figure."""
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
        chosen = [at_overrides(m, o) for _, o in sorted((study or {}).get(method, {}).items())]
        if sum(not c.empty for c in chosen) >= 2:
            group = pd.concat(chosen)
            lines.append((f"{group.iloc[0]['display']}, each K at its own beta", row_labels(group).iloc[0], group, True))
            continue
        # Other hyperparameters that vary within the method keep their own lines, unless
        # they follow K (Reptile's aggregate_every defaults to K).
        others = [k for k in label_keys([K, *swept], m.to_dict("records")) if k != K]
        for _, group in m.groupby(others, dropna=False, sort=False) if others else [(None, m)]:
            if group[K].nunique() >= 2:
                first = group.iloc[0].to_dict()
                label = ", ".join(filter(None, [first["display"], variant_label(first, others)]))
                lines.append((label, row_labels(group).iloc[0], group, False))
    if not lines:
        return None
    with sns.axes_style("whitegrid"), plt.rc_context(RC):
        fig, ax = _figure()
        ks = set()
        for i, (label, row, group, betas) in enumerate(lines):
            ci = mean_ci_frame(group.astype({K: int}), [K], "accuracy").sort_values(K)
            s = style[row]
            dodge = DODGE ** (i - (len(lines) - 1) / 2)  # side by side, so error bars stay apart
            ax.errorbar(ci[K] * dodge, ci["mean"], yerr=ci["half_width"], color=s.color, marker=s.marker, label=label,
                        capsize=2, elinewidth=0.8)
            ks |= set(ci[K])
            if betas:  # a K study: each point at its own beta, named
                for k, beta in group.drop_duplicates(K)[[K, "method.meta_lr"]].itertuples(index=False):
                    y = ci.loc[ci[K] == k, "mean"].iloc[0]
                    # above the point for the first line, below it for the next: two studies' labels at one K apart
                    ax.annotate(f"β {beta:g}", (k * dodge, y), textcoords="offset points",
                                xytext=(4, 4 if i % 2 == 0 else -9), fontsize=6)
        ks = sorted(ks)
        drawn = pd.concat([group.assign(row=row) for _, row, group, _ in lines])  # the seeds of the lines drawn
        long_labels = max(len(label) for label, *_ in lines) > 28  # "CTS (ours), each K at its own beta"
        return finish_errorbars(fig, ax, ks, ks[-1] / ks[0] > 10, "K (method.reset_every)", drawn, out, stem,
                                columns=1 if long_labels else None)


def finish_errorbars(fig: plt.Figure, ax: plt.Axes, ticks: list, log: bool, xlabel: str, frame: pd.DataFrame,
                     out: Path, stem: str, columns: int | None = None) -> list[Path]:
    """Mean target accuracy against a few x values (K, images per class): the values as ticks,
    the seeds and bars stated, the legend below; saved."""
    if log:
        ax.set_xscale("log")
    ax.set_xticks(ticks, [str(v) for v in ticks])
    ax.minorticks_off()
    _clip_to_percent(ax)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Mean target accuracy (%)")
    ax.set_title(seeds_note(frame, "bars: 95% t-interval over seeds"), fontsize=6.5)
    _legend(fig, *ax.get_legend_handles_labels(), columns=columns)
    return _save(fig, out, stem)


def sensitivity(trials: pd.DataFrame, style: dict[str, Style], out: Path, stem: str,
                choices: frozenset[str] = frozenset()) -> list[Path] | None:
    """Validation accuracy of every tuning trial against each tuned key (one panel per key,
    log x), a method per colour; the selected trial ringed. Flat clouds are robust methods,
    steep ones fragile. Methods with nothing to tune have no points. Keys in ``choices`` (drawn
    from a list) get their values as ticks. Wider than one column."""
    keys = [c for c in trials.columns if c.startswith("method.")]
    df = trials.dropna(subset=["validation"])
    keys = [k for k in keys if df[k].notna().sum() >= 2]
    if not keys:
        return None
    grey = Style((0.5, 0.5, 0.5), "o", "-", "", "")
    with sns.axes_style("whitegrid"), plt.rc_context(RC):
        fig = plt.figure(figsize=(2.2 * len(keys), SIZE[1] + 0.3), layout="constrained")
        axes = fig.subplots(1, len(keys), sharey=True, squeeze=False)[0]
        drawn: dict[str, Line2D] = {}
        for ax, key in zip(axes, keys):
            for method in method_order(list(df["method"].unique())):
                m = df[(df["method"] == method) & df[key].notna()]
                if m.empty:
                    continue
                s = method_style(style, display_name(method)) or grey
                x, y = m[key].astype(float), 100 * m["validation"]
                ax.scatter(x, y, color=s.color, marker=s.marker, s=14, linewidths=0)
                chosen = m[m["selected"].astype(bool)]
                ax.scatter(chosen[key].astype(float), 100 * chosen["validation"], facecolors="none",
                           edgecolors="black", s=40, linewidths=0.8)
                drawn.setdefault(display_name(method), Line2D([], [], color=s.color, marker=s.marker, ls=""))
            ax.set_xscale("log")
            values = sorted(df[key].dropna().astype(float).unique())
            if key in choices:  # e.g. K in {25, 50, 100, 200}: its values as ticks
                ax.set_xticks(values, [f"{v:g}" for v in values])
                ax.minorticks_off()
            else:  # decades only: labelled minor ticks of a short range overlap
                ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel(key)
        axes[0].set_ylabel("Validation accuracy (%)")
        fig.suptitle("every tuning trial: mean validation accuracy over its tuning seeds", fontsize=6.5)
        drawn["selected"] = Line2D([], [], marker="o", markerfacecolor="none", markeredgecolor="black", ls="")
        fig.legend(list(drawn.values()), list(drawn), loc="outside lower center", ncol=min(len(drawn), 5),
                   frameon=False, handletextpad=0.3, columnspacing=0.8)
        return _save(fig, out, stem)
