"""Long-horizon tables, for any results folder: how fast each method reaches the reference's
final accuracy, accuracy along the horizon, accuracy against K, and accuracy with few target images.

- **Steps to reach** (``steps_to_reach.csv``): per row, the cumulative inner steps at which
  its mean target accuracy (mean over targets within a seed, then over seeds) first reaches
  the reference's final mean accuracy (Reptile's), interpolated linearly between meta-tested
  checkpoints; the speed-up is the reference's steps divided by the row's. Intervals are
  percentile-bootstrap 95% intervals over seeds: each resample redraws the reference's
  seeds (which moves the threshold) and the row's seeds, independently. A curve that never
  gets there is "not reached" (``inf`` steps, speed-up 0); an upper bound at ``inf`` means
  more than 2.5% of the resamples never got there.
- **Accuracy along the horizon**: at 2.5%, 10% and 100% of each row's inner steps, as the
  paper reports CTS and Reptile at 5K, 20K and 200K steps.
- **Accuracy against K**: the rows of methods run at two or more ``method.reset_every``
  values, one column per method.
- **Limited data** (``limited.csv``, from ``metatest.train_sizes``): the final phi
  meta-tested with n training images per target class, beside the full set.

Cells are mean ± the 95% t half-width over seeds, as in :mod:`analysis.tables`.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analysis.collect import at_overrides, per_run_curves, row_labels
from analysis.stats import t_interval
from analysis.tables import MEAN, MISSING, REPS, Table, _cell, seed_scores

REFERENCE = "reptile"
FRACTIONS = (0.025, 0.1, 1.0)
K = "method.reset_every"
NOT_REACHED = "not reached"


def reach(steps: np.ndarray, accuracy: np.ndarray, threshold: float) -> float:
    """The inner steps at which a curve first reaches ``threshold``: linear between the two
    checkpoints around the crossing, the first checkpoint if it is already there, inf if never."""
    hit = np.flatnonzero(np.asarray(accuracy) >= threshold)
    if len(hit) == 0:
        return math.inf
    j = int(hit[0])
    if j == 0:
        return float(steps[0])
    s0, s1, a0, a1 = float(steps[j - 1]), float(steps[j]), float(accuracy[j - 1]), float(accuracy[j])
    return s0 + (threshold - a0) / (a1 - a0) * (s1 - s0)


def seed_curves(curves: pd.DataFrame, targets: list[str]) -> dict[str, pd.DataFrame]:
    """Per row: seeds x inner steps, the mean target accuracy (%) of each seed's run; only the
    checkpoints every seed has, in step order. A row meta-tested at its final phi only (a K
    study's variant, say) has no curve and is left out."""
    per_run = per_run_curves(curves, targets)
    order = {row: i for i, row in enumerate(pd.unique(row_labels(curves)))}  # registry order, as collect sorts
    out = {}
    for row, group in sorted(per_run.groupby("row", sort=False), key=lambda item: order[item[0]]):
        wide = group.pivot_table(index="seed", columns="inner_steps", values="accuracy", aggfunc="mean")
        wide = wide.dropna(axis=1, how="any").sort_index(axis=1)
        # A curve needs two checkpoints, unless nothing was meta-trained (scratch: phi_0 throughout).
        if wide.shape[1] >= 2 or (wide.shape[1] == 1 and wide.columns[0] == 0):
            out[row] = wide
    return out


def _quantiles(values: np.ndarray) -> tuple[float, float]:
    """The 2.5% and 97.5% percentiles, inf included: a bound in the inf part of the sample is inf."""
    finite = values[np.isfinite(values)]
    if len(finite) == 0:
        return math.inf, math.inf
    big = finite.max()
    lo, hi = np.percentile(np.where(np.isfinite(values), values, big + 1.0), [2.5, 97.5])
    return tuple(math.inf if q > big else float(q) for q in (lo, hi))


def selected_rows(runs: pd.DataFrame, overrides: dict[str, list[str]]) -> set[str]:
    """The row labels at each method's selected configuration: ``overrides`` maps a method to
    its protocol overrides (``key=value``), compared on the keys that are columns of ``runs``.
    A method with one row, no overrides on those columns, or no matching row keeps all its rows."""
    labels = row_labels(runs)
    out: set[str] = set()
    for method, group in runs.assign(row=labels).groupby("method", sort=False):
        rows = list(pd.unique(group["row"]))
        chosen = overrides.get(method, [])
        keyed = any(o.split("=", 1)[0] in runs.columns for o in chosen)
        match = list(pd.unique(at_overrides(group, chosen)["row"])) if keyed else []
        out.update(match if len(rows) > 1 and match else rows)
    return out


def reference_row(rows: dict[str, pd.DataFrame] | list[str], runs: pd.DataFrame,
                  selected: dict[str, str] | None = None) -> str | None:
    """The reference's row among those with curves: Reptile's only one, or the one at its
    selected configuration (the protocol's overrides, on the keys that are columns of
    ``runs``), or else the one with the most checkpoints (the first of those)."""
    labels = row_labels(runs)
    candidates = [r for r in pd.unique(labels[runs["method"] == REFERENCE]) if r in rows]
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    chosen = selected_rows(runs[runs["method"] == REFERENCE],
                           {REFERENCE: [f"{k}={v}" for k, v in (selected or {}).items()]})
    match = [r for r in candidates if r in chosen]
    if len(match) == 1:
        return match[0]
    points = {r: rows[r].shape[1] if isinstance(rows, dict) else 0 for r in candidates}
    return max(candidates, key=lambda r: points[r])  # max keeps the first of equals


def steps_to_reach(curves: pd.DataFrame, targets: list[str], reference: str, reps: int = REPS,
                   seed: int = 0) -> tuple[pd.DataFrame, float]:
    """(steps_to_reach.csv's frame, the threshold in %): one line per row with a curve."""
    by_row = seed_curves(curves, targets)
    ref = by_row[reference]
    ref_steps, ref_acc = ref.columns.to_numpy(float), ref.to_numpy()
    threshold = float(ref_acc.mean(0)[-1])  # the curve's own last point: the same sum, the same bits
    ref_point = reach(ref_steps, ref_acc.mean(0), threshold)
    rng = np.random.default_rng(seed)
    ref_draws = rng.integers(0, len(ref), size=(reps, len(ref)))
    ref_means = ref_acc[ref_draws].mean(1)  # reps x steps
    thresholds = ref_means[:, -1]
    ref_boot = np.array([reach(ref_steps, m, t) for m, t in zip(ref_means, thresholds)])
    lines = []
    for row, wide in by_row.items():
        steps, acc = wide.columns.to_numpy(float), wide.to_numpy()
        point = reach(steps, acc.mean(0), threshold)
        if row == reference:
            boot = ref_boot
        else:
            draws = rng.integers(0, len(wide), size=(reps, len(wide)))
            boot = np.array([reach(steps, m, t) for m, t in zip(acc[draws].mean(1), thresholds)])
        with np.errstate(divide="ignore", invalid="ignore"):
            speedups = np.where(np.isinf(boot), 0.0, ref_boot / boot)
        lo, hi = _quantiles(boot)
        s_lo, s_hi = _quantiles(speedups)
        lines.append({"method": row, "steps": point, "lo": lo, "hi": hi,
                      "speedup": 0.0 if math.isinf(point) else ref_point / point if point else math.inf,
                      "speedup_lo": s_lo, "speedup_hi": s_hi, "seeds": len(wide)})
    return pd.DataFrame(lines), threshold


def steps_to_reach_table(frame: pd.DataFrame, threshold: float, reference: str, suite: str, reps: int = REPS) -> Table:
    def steps(v: float) -> str:
        return NOT_REACHED if math.isinf(v) else f"{v:,.0f}"

    def ratio(v: float) -> str:
        return "inf" if math.isinf(v) else "0" if v == 0 else f"{v:.2f}"

    def interval(point: str, lo: str, hi: str) -> str:
        return point if point == lo == hi and point in (NOT_REACHED, "0") else f"{point} [{lo}, {hi}]"

    cells = pd.DataFrame({
        "Inner steps [95% CI]": [interval(steps(r.steps), steps(r.lo), steps(r.hi)) for r in frame.itertuples()],
        "Speed-up [95% CI]": [interval(ratio(r.speedup), ratio(r.speedup_lo), ratio(r.speedup_hi))
                              for r in frame.itertuples()],
        "n": [str(n) for n in frame["seeds"]],
    }, index=list(frame["method"]))
    false = pd.DataFrame(False, index=cells.index, columns=cells.columns)
    caption = (f"Steps to reach {reference}'s final accuracy on {suite}: the cumulative inner steps (summed over "
               f"tasks) at which each row's mean target accuracy, averaged over its n seeds, first reaches "
               f"{threshold:.1f}% ({reference}'s final mean), interpolated linearly between meta-tested checkpoints "
               f"(a curve already there at its first checkpoint is given that checkpoint's steps: an upper bound). "
               f"Speed-up: {reference}'s steps / the row's (0: not reached). Brackets: percentile-bootstrap 95% intervals, {reps} "
               f"resamples of each row's seeds and of {reference}'s (which moves the threshold); '{NOT_REACHED}' as "
               f"a bound: more than 2.5% of the resamples never reached it.")
    return Table(cells, false, false.copy(), caption, f"tab:steps-to-reach-{suite}")


def horizon_table(curves: pd.DataFrame, targets: list[str], suite: str,
                  fractions: tuple[float, ...] = FRACTIONS) -> Table:
    """Rows x fractions of each row's horizon: accuracy interpolated from its meta-tested checkpoints."""
    by_row = seed_curves(curves, targets)
    columns = [f"{f:.1%}".replace(".0%", "%") for f in fractions]
    cells = pd.DataFrame(MISSING, index=list(by_row), columns=columns)
    horizons = {}
    for row, wide in by_row.items():
        steps = wide.columns.to_numpy(float)
        horizons[row] = steps[-1]
        for f, col in zip(fractions, columns):
            at = f * steps[-1]
            if at < steps[0] - 1e-9 and len(steps) > 1:
                continue  # before the first checkpoint: no extrapolation
            values = [float(np.interp(at, steps, a)) for a in wide.to_numpy()]
            iv = t_interval(values)
            cells.loc[row, col] = _cell(iv.mean, iv.half_width, iv.n, len(wide))
    cells["Horizon (inner steps)"] = [f"{horizons[r]:,.0f}" for r in cells.index]
    cells["n"] = [str(len(by_row[r])) for r in cells.index]
    false = pd.DataFrame(False, index=cells.index, columns=cells.columns)
    caption = (f"Mean target accuracy (%) on {suite} at fractions of each row's meta-training horizon (cumulative "
               f"inner steps), read from the meta-tested checkpoints, linearly interpolated between them: mean ± "
               f"95% t half-width over n seeds. A method without meta-training (scratch) is the same at every "
               f"fraction. {MISSING}: before the first checkpoint.")
    return Table(cells, false, false.copy(), caption, f"tab:horizon-{suite}")


def k_table(runs: pd.DataFrame, suite: str, study: dict[str, dict[int, list[str]]] | None = None) -> Table | None:
    """K values x methods run at two or more of them: final mean target accuracy. A method of a
    K study (``study``: method -> K -> the overrides tuned at that K) is one column through the
    study's points, each cell with its beta; its main selection is not a K point."""
    if K not in runs.columns:
        return None
    scores = seed_scores(runs)[MEAN]
    first = runs.assign(row=row_labels(runs)).drop_duplicates("row").set_index("row")
    columns: dict[str, dict[int, str]] = {}  # "Reptile" (or "Reptile, meta_lr=0.1" if more varies) -> K -> cell
    for method, group in first.groupby("method", sort=False):
        points = [at_overrides(group, o) for _, o in sorted((study or {}).get(method, {}).items())]
        if sum(not p.empty for p in points) >= 2:
            column = f"{group['display'].iloc[0]}, each K at its own beta"
            for row, point in pd.concat(points).iterrows():
                iv = t_interval(scores.loc[row].dropna())
                cell = _cell(iv.mean, iv.half_width, iv.n, iv.n)
                columns.setdefault(column, {})[int(point[K])] = f"{cell} (β {point['method.meta_lr']:g})"
            continue
        ks = group[K].dropna()
        if ks.nunique() < 2:
            continue
        for row, k in ks.items():
            rest = [part for part in str(group.loc[row, "variant"]).split(", ") if not part.startswith("K=")]
            column = ", ".join([group.loc[row, "display"], *filter(None, rest)])
            iv = t_interval(scores.loc[row].dropna())
            columns.setdefault(column, {})[int(k)] = _cell(iv.mean, iv.half_width, iv.n, iv.n)
    if not columns:
        return None
    ks = sorted({k for cells in columns.values() for k in cells})
    cells = pd.DataFrame({m: [c.get(k, MISSING) for k in ks] for m, c in columns.items()},
                         index=[f"K={k}" for k in ks])
    false = pd.DataFrame(False, index=cells.index, columns=cells.columns)
    caption = (f"Final mean target accuracy (%) on {suite} against K (method.reset_every), every other key at the "
               f"method's own setting: mean ± 95% t half-width over seeds. {MISSING}: not run."
               + (" A method of the K study is one column through the configurations tuned with each K held "
                  "(β: the meta step size its tune selected at that K); its main selection is not among them."
                  if study else ""))
    return Table(cells, false, false.copy(), caption, f"tab:k-{suite}")


def limited_table(limited: pd.DataFrame, runs: pd.DataFrame, suite: str) -> Table | None:
    """Rows x training images per target class (and the full set): final phi, mean over targets."""
    if limited.empty:
        return None
    targets = list(pd.unique(runs["target"]))
    full = seed_scores(runs)[MEAN]
    df = limited.assign(row=row_labels(limited), accuracy=100 * limited["accuracy"])
    wide = df.pivot_table(index=["row", "seed", "train_size"], columns="target", values="accuracy", aggfunc="mean")
    mean = wide.reindex(columns=targets).mean(axis=1, skipna=False).rename("accuracy").reset_index()
    sizes = sorted(int(s) for s in pd.unique(mean["train_size"]))
    rows = list(pd.unique(df["row"]))
    columns = [f"{s} per class" for s in sizes] + ["All"]
    cells = pd.DataFrame(MISSING, index=rows, columns=columns)
    means = pd.DataFrame(math.nan, index=rows, columns=columns)  # for the bold marks, unrounded
    for row in rows:
        values = [mean[(mean["row"] == row) & (mean["train_size"] == size)]["accuracy"] for size in sizes]
        for col, v in zip(columns, [*values, full.loc[row].dropna() if row in full.index else []]):
            iv = t_interval(v)
            cells.loc[row, col], means.loc[row, col] = _cell(iv.mean, iv.half_width, iv.n, iv.n), iv.mean
    bold = pd.DataFrame(False, index=rows, columns=columns)
    for col in columns:
        if means[col].notna().any():
            bold.loc[means[col].idxmax(), col] = True
    caption = (f"Limited data on {suite}: meta-test accuracy (%) of the final phi, mean over targets, when each "
               f"target's training set is cut to n images per class (a stratified draw fixed by seed, target and n, "
               f"the same for every method; metatest.train_sizes) and with all of it: mean ± 95% t half-width over "
               f"seeds. Bold: best mean per column.")
    return Table(cells, bold, pd.DataFrame(False, index=rows, columns=columns), caption, f"tab:limited-{suite}")
