"""Verdicts: which of two rows is ahead, decided by a rule, never by prose.

For each pair (X, Y) the claims need (CTS against every other method at its selection,
FOMAML++ against Reptile, every pair of K values of a method run at several, and with a K
study CTS against Reptile at each K), over the seeds both rows have:

- the paired difference of the per-seed mean over targets, X - Y, in points, with its 95%
  t-interval over seeds, and the two-sided paired t-test's p (``stats.paired_p``);
- P(X > Y), the probability that a run of X beats a run of Y on a target, with its stratified
  bootstrap interval (``stats.probability_of_improvement``, as ``improvement.csv``);
- the decision: "X ahead" when p < 0.05, the difference is positive and P(X > Y)'s interval
  lies above 0.5; "Y ahead" in the mirror case; otherwise "not separated".

Where runs were also meta-tested with few target images (``limited.csv``), the same pairs but
the K study's are judged again at each size; ``images_per_class`` says which ("all": the full set).

A README ranks two methods only where this table does.
"""
from __future__ import annotations

import math

import pandas as pd

from analysis.collect import at_overrides, row_labels
from analysis.stats import ALPHA, paired_p, probability_of_improvement, t_interval
from analysis.tables import MEAN, MISSING, REPS, Table, scores, seed_scores

ALL = "all"  # images_per_class of the full training set
COLUMNS = ["x", "y", "images_per_class", "n", "difference", "difference_hw", "p", "p_improvement", "p_improvement_lo",
           "p_improvement_hi", "decision"]
LEAD, FOLLOW = "ours", ("fomaml_pp", "reptile")  # CTS against everyone; FOMAML++ against Reptile
K = "method.reset_every"


def pairs(runs: pd.DataFrame, chosen: set[str],
          study: dict[str, dict[int, list[str]]] | None = None, k_pairs: bool = True) -> list[tuple[str, str]]:
    """The pairs the claims need, as row labels: CTS (its rows in ``chosen``, the selections)
    against every other chosen row; FOMAML++ against Reptile; every two rows of one method
    that differ in K (``method.reset_every``), smaller K first. A method of a K study
    (``study``: method -> K -> the overrides tuned at that K) pairs its study's points only,
    each K at its own beta, and not its main selection; and CTS meets Reptile at each K both
    were studied at. ``k_pairs=False``: no K pairs."""
    labels = runs.assign(row=row_labels(runs))
    method_of = dict(zip(labels["row"], labels["method"]))
    rows = [r for r in pd.unique(labels["row"]) if r in chosen]
    out: list[tuple[str, str]] = []
    for x in [r for r in rows if method_of[r] == LEAD]:
        out += [(x, y) for y in rows if y != x and method_of[y] != LEAD]
    for x in [r for r in rows if method_of[r] == FOLLOW[0]]:
        out += [(x, y) for y in rows if method_of[y] == FOLLOW[1]]
    if k_pairs and K in labels.columns:
        for method, group in labels.groupby("method", sort=False):
            points = [at_overrides(group, o) for _, o in sorted((study or {}).get(method, {}).items())]
            if sum(not p.empty for p in points) >= 2:
                group = pd.concat(points)
            ks = group.drop_duplicates("row").sort_values(K, key=pd.to_numeric, kind="stable")
            ordered = list(zip(ks["row"], pd.to_numeric(ks[K])))
            out += [(a, b) for i, (a, ka) in enumerate(ordered) for b, kb in ordered[i + 1:]
                    if ka != kb and (a, b) not in out and (b, a) not in out]
        # CTS and Reptile at each K of the study, each at the beta tuned for that K.
        points = {m: {k: pd.unique(at_overrides(labels[labels["method"] == m], o)["row"])
                      for k, o in (study or {}).get(m, {}).items()} for m in (LEAD, FOLLOW[1])}
        for k in sorted(set(points[LEAD]) & set(points[FOLLOW[1]])):
            for a in points[LEAD][k][:1]:
                out += [(a, b) for b in points[FOLLOW[1]][k][:1] if (a, b) not in out]
    return out


def verdicts(runs: pd.DataFrame, improvement: pd.DataFrame, wanted: list[tuple[str, str]]) -> pd.DataFrame:
    """One line per pair: the paired difference, p, P(X > Y) with its interval, the decision."""
    scores = seed_scores(runs)[MEAN]
    out = []
    for x, y in wanted:
        a, b = scores.loc[x].dropna(), scores.loc[y].dropna()
        common = a.index.intersection(b.index)
        diff = t_interval((a[common] - b[common]).tolist())
        p = paired_p(a, b)
        row = improvement[(improvement["method_x"] == x) & (improvement["method_y"] == y)]
        pi, lo, hi = (row[["p", "p_lo", "p_hi"]].iloc[0].tolist() if not row.empty else [math.nan] * 3)
        out.append({"x": x, "y": y, "images_per_class": ALL, "n": len(common), "difference": diff.mean, "difference_hw": diff.half_width,
                    "p": p, "p_improvement": pi, "p_improvement_lo": lo, "p_improvement_hi": hi,
                    "decision": decide(x, y, diff.mean, p, lo, hi)})
    return pd.DataFrame(out, columns=COLUMNS)


def limited_verdicts(limited: pd.DataFrame, wanted: list[tuple[str, str]], reps: int = REPS) -> pd.DataFrame:
    """The same pairs judged again with n training images per target class (``limited.csv``'s
    rows, ``metatest.train_sizes``), one line per pair and n; pairs a size lacks are left out."""
    out = []
    for n, frame in limited.groupby("train_size", sort=True) if not limited.empty else []:
        present = set(row_labels(frame))
        here = [(x, y) for x, y in wanted if x in present and y in present]
        imp = probability_of_improvement(scores(frame), reps=reps)
        out.append(verdicts(frame, imp, here).assign(images_per_class=int(n)))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=COLUMNS)


def decide(x: str, y: str, difference: float, p: float, lo: float, hi: float) -> str:
    """"X ahead", "Y ahead" or "not separated" (NaNs: not separated)."""
    if not p < ALPHA:
        return "not separated"
    if difference > 0 and lo > 0.5:
        return f"{x} ahead"
    if difference < 0 and hi < 0.5:
        return f"{y} ahead"
    return "not separated"


def table(frame: pd.DataFrame, suite: str, limited: bool = False) -> Table:
    def num(v: float, fmt: str) -> str:
        return MISSING if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)

    cells = pd.DataFrame({
        "Seeds": frame["n"].astype(str).tolist(),
        "X - Y (points)": [f"{num(d, '+.1f')} ± {num(h, '.1f')}" for d, h in zip(frame["difference"],
                                                                                 frame["difference_hw"])],
        "p": [num(p, ".3f") for p in frame["p"]],
        "P(X > Y)": [f"{num(m, '.2f')} [{num(lo, '.2f')}, {num(hi, '.2f')}]" for m, lo, hi in
                     zip(frame["p_improvement"], frame["p_improvement_lo"], frame["p_improvement_hi"])],
        "Verdict": frame["decision"].tolist(),
    }, index=[f"{x} vs {y}" + ("" if str(n) == ALL else f", {n} per class")
              for x, y, n in zip(frame["x"], frame["y"], frame["images_per_class"])], dtype=object)  # (no pairs: still text)
    false = pd.DataFrame(False, index=cells.index, columns=cells.columns)
    bold = false.copy()
    bold["Verdict"] = (frame["decision"] != "not separated").to_numpy()
    caption = (f"Verdicts on the {suite} targets, pair by pair (X vs Y): the paired difference of the per-seed "
               f"mean accuracy over targets, X - Y, ± the half-width of its 95% t-interval over the seeds both "
               f"have; the two-sided paired t-test's p; P(X > Y), the chance that a run of X beats a run of Y on "
               f"a target, with its stratified-bootstrap 95% interval. 'Ahead' needs p < {ALPHA:g} and a "
               f"P(X > Y) interval that excludes 0.5; anything else is 'not separated' and ranks nothing.")
    if limited:
        caption = (f"Verdicts on the {suite} targets with few training images: the same pairs (the K study's "
                   f"excepted), each target's training set cut to n images per class (metatest.train_sizes; "
                   f"the draw is the same for every method), by the same rule.")
    return Table(cells, bold, false, caption, f"tab:verdicts{'_limited' if limited else ''}_{suite}")
