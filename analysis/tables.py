"""The report's tables: final accuracy per method and target, and steps to 95% of the best.

Each table is computed from the tidy frames of :mod:`analysis.collect` (``runs.csv``,
``curves.csv``) into a :class:`Table` of cell strings plus bold / underline masks, and
only then rendered: LaTeX through pandas' Styler (booktabs rules, escaping), Markdown
by hand because ``DataFrame.to_markdown`` needs ``tabulate``.

Accuracy cells are "mean ± h" in percent, h the half-width of the 95% t-interval over
seeds. Per column the best mean is bold; rows not significantly different from it
(paired t-test over seeds, p >= 0.05) are underlined. Rows are method variants, in
registry order.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.collect import per_run_curves, row_labels
from analysis.stats import (ALPHA, CONFIDENCE, aggregate, not_worse_than_best, paired_p, probability_of_improvement,
                            t_interval)

MISSING = "--"  # a method with no runs for a column: shown, never dropped
MEAN = "Mean"


@dataclass
class Table:
    cells: pd.DataFrame  # strings; index = row labels
    bold: pd.DataFrame  # bool, same shape as cells
    underline: pd.DataFrame
    caption: str  # plain text; '%' and '±' are rendered per format
    label: str


def targets_of(runs: pd.DataFrame) -> list[str]:
    """The columns of a table, in suite order."""
    return list(pd.unique(runs["target"]))


def seed_scores(runs: pd.DataFrame) -> pd.DataFrame:
    """Final accuracy in percent, index (row, seed), a column per target plus Mean.

    Mean is over all the suite's targets within each seed; a run lacking a target has
    no Mean (averaging fewer targets would not compare with the other rows)."""
    targets = targets_of(runs)
    df = runs.assign(row=row_labels(runs), accuracy=100 * runs["accuracy"])
    wide = df.pivot_table(index=["row", "seed"], columns="target", values="accuracy", aggfunc="mean")
    order = pd.MultiIndex.from_frame(df[["row", "seed"]].drop_duplicates())
    wide = wide.reindex(index=order, columns=targets)
    wide[MEAN] = wide[targets].mean(axis=1, skipna=False)
    return wide


def _cell(mean: float, half_width: float, n: int, row_n: int) -> str:
    if n == 0 or math.isnan(mean):
        return MISSING
    if n == 1:
        return f"{mean:.1f} (n=1)"
    text = f"{mean:.1f} ± {half_width:.1f}"
    return text if n == row_n else f"{text} (n={n})"


def accuracy_table(runs: pd.DataFrame, suite: str) -> Table:
    """Rows x (targets, Mean, n): mean ± 95% t half-width over seeds, best bold, ties underlined."""
    scores = seed_scores(runs)
    rows = list(pd.unique(scores.index.get_level_values("row")))
    row_n = {r: len(scores.loc[r]) for r in rows}
    columns = list(scores.columns)
    cells = pd.DataFrame(MISSING, index=rows, columns=columns)
    bold = pd.DataFrame(False, index=rows, columns=columns)
    underline = bold.copy()
    for col in columns:
        per_row = {r: scores.loc[r, col].dropna() for r in rows}
        ivs = {r: t_interval(per_row[r]) for r in rows}
        for r in rows:
            cells.loc[r, col] = _cell(ivs[r].mean, ivs[r].half_width, ivs[r].n, row_n[r])
        means = pd.Series({r: ivs[r].mean for r in rows}, dtype=float).dropna()
        if means.empty:
            continue
        best = means.idxmax()  # the first of tied bests is the reference of the tests
        for r in means.index:
            if np.isclose(means[r], means[best], rtol=0, atol=1e-9):
                bold.loc[r, col] = True
            else:
                underline.loc[r, col] = not_worse_than_best(paired_p(per_row[r], per_row[best]))
    cells["n"] = [str(row_n[r]) for r in rows]
    bold["n"] = underline["n"] = False
    level = round(100 * CONFIDENCE)
    caption = (
        f"Meta-test accuracy (%) of the final phi on the {suite} targets: mean ± half-width of the "
        f"{level}% t-interval over n seeds (column n; a cell over fewer seeds says so). "
        f"{MEAN}: mean over targets within a seed, then over seeds. Bold: best mean per column. "
        f"Underlined: not significantly different from the best (paired t-test over seeds, p < {ALPHA:g}). "
        f"{MISSING}: no runs."
    )
    return Table(cells, bold, underline, caption, f"tab:accuracy-{suite}")


def curve_means(curves: pd.DataFrame, targets: list[str]) -> pd.DataFrame:
    """Per row and phi step: inner steps and mean over seeds of the mean target accuracy (%)."""
    per_run = per_run_curves(curves, targets)
    out = per_run.groupby(["row", "phi_step"], sort=False).agg(
        inner_steps=("inner_steps", "mean"), accuracy=("accuracy", lambda a: a.mean(skipna=False)))
    return out.reset_index().sort_values(["row", "inner_steps"], kind="stable")


def steps_to_95(runs: pd.DataFrame, curves: pd.DataFrame, suite: str, fraction: float = 0.95) -> Table:
    """Per row: cumulative inner steps at the first meta-tested phi whose mean target
    accuracy (mean over seeds) reaches ``fraction`` of the best final mean accuracy."""
    scores = seed_scores(runs)
    final = scores[MEAN].groupby(level="row", sort=False).mean()
    best_row = final.idxmax() if final.notna().any() else None
    best = final.max()
    threshold = fraction * best
    means = curve_means(curves, targets_of(runs)) if not curves.empty else pd.DataFrame(
        columns=["row", "phi_step", "inner_steps", "accuracy"])
    rows = list(final.index)
    steps_col = f"Inner steps to {fraction:.0%}"
    cells = pd.DataFrame(MISSING, index=rows, columns=["Final mean (%)", steps_col])
    for r in rows:
        if not math.isnan(final[r]):
            cells.loc[r, "Final mean (%)"] = f"{final[r]:.1f}"
        curve = means[means["row"] == r].dropna(subset=["accuracy"])
        if curve.empty or math.isnan(threshold):
            continue
        reached = curve[curve["accuracy"] >= threshold]
        cells.loc[r, steps_col] = "not reached" if reached.empty else f"{int(round(reached['inner_steps'].iloc[0]))}"
    flags = pd.DataFrame(False, index=rows, columns=cells.columns)
    caption = (
        f"Cumulative inner steps (summed over tasks) until the mean target accuracy on {suite}, "
        f"averaged over seeds, first reaches {fraction:.0%} of the best final mean accuracy "
        f"({best:.1f}% by {best_row}; threshold {threshold:.1f}%). Read off the meta-tested "
        f"checkpoints only (metatest.at_steps and the final phi), so a step count is an upper bound "
        f"at that resolution. {MISSING}: no curve over all targets."
    )
    return Table(cells, flags, flags.copy(), caption, f"tab:steps-to-95-{suite}")


def scores(runs: pd.DataFrame) -> pd.DataFrame:
    """One line per (row, target, seed): the input of the rliable aggregates, in percent."""
    df = runs.assign(row=row_labels(runs), accuracy=100 * runs["accuracy"])
    return df.groupby(["row", "target", "seed"], sort=False, as_index=False)["accuracy"].mean()


REPS = 2000  # bootstrap resamples of the aggregates


def aggregates(runs: pd.DataFrame, reps: int = REPS, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(aggregate.csv, improvement.csv) frames: mean and IQM over (seed x target) with stratified
    bootstrap 95% intervals; P(row X > row Y) with its interval. Seeded: the same runs give
    the same numbers."""
    s = scores(runs)
    return aggregate(s, reps=reps, seed=seed), probability_of_improvement(s, reps=reps, seed=seed)


def aggregate_table(agg: pd.DataFrame, suite: str, reps: int = REPS) -> Table:
    fmt = lambda m, lo, hi: f"{m:.1f} [{lo:.1f}, {hi:.1f}]"  # noqa: E731
    cells = pd.DataFrame({
        "Mean [95% CI]": [fmt(*r) for r in agg[["mean", "mean_lo", "mean_hi"]].itertuples(index=False)],
        "IQM [95% CI]": [fmt(*r) for r in agg[["iqm", "iqm_lo", "iqm_hi"]].itertuples(index=False)],
    }, index=list(agg["method"]))
    bold = pd.DataFrame(False, index=cells.index, columns=cells.columns)
    bold.iloc[:, 0] = (agg["mean"] == agg["mean"].max()).to_numpy()
    bold.iloc[:, 1] = (agg["iqm"] == agg["iqm"].max()).to_numpy()
    caption = (f"Aggregate meta-test accuracy (%) on the {suite} targets over all (seed x target) scores: mean and "
               f"interquartile mean (IQM, the mean of the middle 50%), each with a stratified-bootstrap 95% interval "
               f"({reps} resamples of seeds within each target; percentile method). Bold: best.")
    return Table(cells, bold, pd.DataFrame(False, index=cells.index, columns=cells.columns), caption,
                 f"tab:aggregate_{suite}")


def improvement_table(imp: pd.DataFrame, suite: str, intervals: bool = True) -> Table:
    """Rows X, columns Y: P(X > Y), with its interval unless ``intervals`` is False (the LaTeX
    twin: ten methods with intervals are far wider than a page); bold where the interval
    lies above 1/2."""
    rows = list(dict.fromkeys(imp["method_x"]))
    cells = pd.DataFrame(MISSING, index=rows, columns=rows)
    bold = pd.DataFrame(False, index=rows, columns=rows)
    for r in imp.itertuples(index=False):
        cells.loc[r.method_x, r.method_y] = f"{r.p:.2f}" + (f" [{r.p_lo:.2f}, {r.p_hi:.2f}]" if intervals else "")
        bold.loc[r.method_x, r.method_y] = bool(r.p_lo > 0.5)
    caption = (f"Probability of improvement on the {suite} targets: P(row > column), the chance that a run of the "
               "row's method beats one of the column's on a target, averaged over targets (ties count half)"
               + (", with a stratified-bootstrap 95% interval" if intervals else
                  "; the stratified-bootstrap 95% intervals are in improvement.csv")
               + ". Bold: the interval lies above 0.5.")
    return Table(cells, bold, pd.DataFrame(False, index=rows, columns=rows), caption, f"tab:improvement_{suite}")


EPISODE_SETTINGS = ["ways", "queries", "episodes", "body", "episode_steps", "episode_lr"]


def pooled(group: pd.DataFrame) -> tuple[float, float, int]:
    """(mean, 95% half-width 1.96 sd / sqrt(N), N) over every episode of the group's runs,
    pooled from each run's episode mean and sd (ddof 1): the per-run rows suffice."""
    n, m, sd = group["episodes"].to_numpy(float), group["accuracy"].to_numpy(float), group["sd"].to_numpy(float)
    total = n.sum()
    mean = float((n * m).sum() / total)
    ss = ((n - 1) * sd**2 + n * (m - mean) ** 2).sum()
    return mean, 1.96 * math.sqrt(ss / max(total - 1, 1)) / math.sqrt(total), int(total)


def episode_cell(group: pd.DataFrame) -> tuple[float, float]:
    """(mean, 95% half-width) of one row's episodes on one target and shot count: with two
    seeds or more, the t-interval over the seeds' episode means (as the many-shot tables:
    episode noise alone would hide the seed-to-seed spread); with one seed, its episodes'
    1.96 sd / sqrt(N)."""
    if group["seed"].nunique() < 2:
        mean, half, _ = pooled(group)
        return mean, half
    interval = t_interval(pooled(runs)[0] for _, runs in group.groupby("seed"))
    return interval.mean, interval.half_width


def episodes_tables(episodes: pd.DataFrame, suite: str) -> list[Table]:
    """One table per episodic protocol (ways, queries, episodes, body, fitting): rows x
    (target, shots), mean query accuracy (%) ± the half-width of :func:`episode_cell`'s 95%
    interval (over seeds; over episodes for a row of one seed). Bold: best mean per column."""
    tables = []
    settings = episodes[EPISODE_SETTINGS].drop_duplicates().to_dict("records")
    for k, setting in enumerate(settings):
        mask = (episodes[EPISODE_SETTINGS] == pd.Series(setting)).all(axis=1)
        df = episodes[mask].assign(row=row_labels(episodes[mask]))
        rows = list(pd.unique(df["row"]))
        keys = [(t, int(shots)) for shots in sorted(pd.unique(df["shots"])) for t in pd.unique(df["target"])]
        columns = [f"{t}, {shots}-shot" for t, shots in keys]
        cells = pd.DataFrame(MISSING, index=rows, columns=columns)
        means = pd.DataFrame(math.nan, index=rows, columns=columns)
        for (row, target, shots), group in df.groupby(["row", "target", "shots"], sort=False):
            mean, half = episode_cell(group)
            col = f"{target}, {int(shots)}-shot"
            cells.loc[row, col], means.loc[row, col] = f"{100 * mean:.1f} ± {100 * half:.1f}", mean
        cells["n"] = [str(df[df["row"] == r]["seed"].nunique()) for r in rows]
        bold = pd.DataFrame(False, index=rows, columns=cells.columns)
        for col in columns:
            if means[col].notna().any():
                bold.loc[means[col].idxmax(), col] = True
        caption = (f"Few-shot episodes on the {suite} targets: {setting['ways']}-way episodes drawn from each target's "
                   f"test split ({setting['queries']} queries per class; {setting['episodes']} episodes per seed, "
                   f"the same for every method), a fresh head fitted on the support set for "
                   f"{setting['episode_steps']} Adam steps at {setting['episode_lr']:g}, the body "
                   f"{'frozen' if setting['body'] == 'frozen' else 'fine-tuned'}. Mean query accuracy (%) of the "
                   f"final phi ± the half-width of the 95% t-interval over the row's n seeds (each seed's mean over "
                   f"its episodes); a row of one seed: ± 1.96 sd / sqrt(N) over its N episodes, episode noise only. "
                   f"Bold: best mean per column. {MISSING}: no runs.")
        label = f"tab:episodes-{suite}" + (f"-{k}" if k else "")
        tables.append(Table(cells, bold, pd.DataFrame(False, index=rows, columns=cells.columns), caption, label))
    return tables


def latex_escape(text: str) -> str:
    """For captions, which Styler does not escape."""
    for char in "&%$#_{}":
        text = text.replace(char, "\\" + char)
    return text.replace("±", r"$\pm$").replace("<", "$<$").replace(">", "$>$")


def to_latex(table: Table) -> str:
    """A booktabs table via Styler: escaped names, \\textbf / \\underline marks."""
    def marks(_: pd.DataFrame) -> pd.DataFrame:
        css = pd.DataFrame("", index=table.cells.index, columns=table.cells.columns)
        css[table.bold] = "textbf: --rwrap;"
        css[table.underline] = "underline: --rwrap;"
        return css

    styler = (table.cells.style.apply(marks, axis=None)
              # escaping runs first, then the formatter: ± as math needs no text-companion fonts
              .format(lambda text: text.replace("±", r"$\pm$"), escape="latex")
              .format_index(escape="latex", axis=0)
              .format_index(escape="latex", axis=1))
    return styler.to_latex(
        hrules=True, caption=latex_escape(table.caption), label=table.label, position_float="centering",
        column_format="l" + "r" * table.cells.shape[1],
    )


def to_markdown(table: Table, corner: str = "Method") -> str:
    """A GitHub Markdown table with **bold** and <u>underlined</u> cells."""
    cells = table.cells.where(~table.bold, "**" + table.cells + "**")
    cells = cells.where(~table.underline, "<u>" + cells + "</u>")
    header = [corner, *map(str, cells.columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["--:"] * cells.shape[1]) + "|"]
    for label, row in cells.iterrows():
        lines.append("| " + " | ".join([str(label), *map(str, row)]) + " |")
    return "\n".join(lines)
