"""Statistics over seeds: t-intervals and paired tests. Pure functions of numbers.

Seeds are few (often 3), so intervals use Student's t rather than a normal or bootstrap
approximation, and comparisons between methods pair runs by seed (the seed fixes phi_0
and the data order for every method alike).

Aggregates across targets follow rliable (Agarwal et al. 2021, "Deep RL at the edge of the
statistical precipice"): the interquartile mean and the probability of improvement, with
stratified percentile-bootstrap intervals. Stratified means seeds are resampled within each
target, never across targets, so every resample keeps the observed mix of targets and the
interval reflects seed noise, not which targets happened to be drawn.
"""
from __future__ import annotations

import itertools
import math
import zlib
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import pandas as pd
from scipy import stats

CONFIDENCE = 0.95
ALPHA = 0.05  # paired t-test level for "significantly different from the best"


@dataclass(frozen=True)
class Interval:
    mean: float
    half_width: float  # NaN when n < 2: no interval from one value
    n: int


def t_interval(values: Iterable[float], confidence: float = CONFIDENCE) -> Interval:
    """Mean and half-width of the t-interval: t(1 - a/2, n - 1) * sd(ddof=1) / sqrt(n).

    NaN values are ignored. n = 0 gives a NaN mean."""
    x = np.asarray([v for v in values if not _isnan(v)], dtype=float)
    n = len(x)
    if n == 0:
        return Interval(math.nan, math.nan, 0)
    if n == 1:
        return Interval(float(x[0]), math.nan, 1)
    t = stats.t.ppf(0.5 + confidence / 2, n - 1)
    return Interval(float(x.mean()), float(t * x.std(ddof=1) / math.sqrt(n)), n)


def paired_p(a: pd.Series, b: pd.Series) -> float:
    """Two-sided paired t-test p-value of ``a`` vs ``b`` over their common index (seeds).

    NaN when fewer than two pairs. Constant differences have zero variance, where the
    t statistic is 0/0 or x/0: identical values are not different (p = 1), a constant
    non-zero gap is as different as it gets (p = 0)."""
    pairs = pd.concat([a.rename("a"), b.rename("b")], axis=1, join="inner").dropna()
    if len(pairs) < 2:
        return math.nan
    diff = pairs["a"] - pairs["b"]
    if np.allclose(diff, diff.iloc[0], rtol=0, atol=1e-12):
        return 1.0 if abs(diff.iloc[0]) <= 1e-12 else 0.0
    return float(stats.ttest_rel(pairs["a"], pairs["b"]).pvalue)


def not_worse_than_best(p: float, alpha: float = ALPHA) -> bool:
    """Underline rule: a test was possible and it did not reject equality with the best."""
    return not _isnan(p) and p >= alpha


def mean_ci_frame(df: pd.DataFrame, by: list[str], value: str) -> pd.DataFrame:
    """Per group of ``by``: mean, t-interval half-width (0 when n < 2, for plotting) and n."""
    rows = []
    for key, group in df.groupby(by, sort=False, dropna=False):
        iv = t_interval(group[value])
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(by, key)), "mean": iv.mean,
                     "half_width": 0.0 if _isnan(iv.half_width) else iv.half_width, "n": iv.n})
    return pd.DataFrame(rows, columns=[*by, "mean", "half_width", "n"])


def iqm(x: Iterable[float]) -> float:
    """Interquartile mean: the mean of the middle 50% of the scores, int(n / 4) cut off each
    end (``scipy.stats.trim_mean(x, 0.25)``). Robust to a few outlier runs like the median,
    yet averages half the data, so its intervals are tighter than the median's."""
    return float(stats.trim_mean(np.asarray(list(x), dtype=float), 0.25))


AGGREGATE_COLUMNS = ["method", "mean", "mean_lo", "mean_hi", "iqm", "iqm_lo", "iqm_hi"]
IMPROVEMENT_COLUMNS = ["method_x", "method_y", "p", "p_lo", "p_hi"]


def aggregate(scores: pd.DataFrame, reps: int = 2000, seed: int = 0,
              confidence: float = CONFIDENCE) -> pd.DataFrame:
    """Per row of ``scores``: mean and IQM of all its (target x seed) scores, each with a
    stratified percentile-bootstrap interval.

    ``scores`` is long: columns row, target, seed, accuracy; NaN accuracies are dropped. Each
    of ``reps`` resamples draws, within each target, as many of the row's scores as it has
    there, with replacement, then pools them. Rows come out in first-appearance order, a row
    without scores as NaN. Each row draws from its own generator, seeded by (seed, crc32 of
    its label), so its interval stays put when other rows are added, dropped or reordered."""
    low, high = _percentiles(confidence)
    out = []
    for row, by_target in _by_row(scores).items():
        if not by_target:
            out.append({"method": row})
            continue
        strata = list(by_target.values())
        pooled = np.concatenate(strata)
        rng = _rng(seed, row)
        boot = np.concatenate([_draw(x, reps, rng) for x in strata], axis=1)  # [reps, n]
        mean_lo, mean_hi = np.percentile(boot.mean(axis=1), [low, high])
        iqm_lo, iqm_hi = np.percentile(stats.trim_mean(boot, 0.25, axis=1), [low, high])
        out.append({"method": row, "mean": float(pooled.mean()), "mean_lo": mean_lo,
                    "mean_hi": mean_hi, "iqm": iqm(pooled), "iqm_lo": iqm_lo, "iqm_hi": iqm_hi})
    return pd.DataFrame(out, columns=AGGREGATE_COLUMNS)


def probability_of_improvement(scores: pd.DataFrame, reps: int = 2000, seed: int = 0,
                               confidence: float = CONFIDENCE) -> pd.DataFrame:
    """P(X > Y) for every ordered pair of distinct rows, with a percentile-bootstrap interval.

    On one target P(X > Y) is the Mann-Whitney statistic P(x > y) + P(x = y) / 2 over all
    pairs of X's and Y's scores; across targets it is the plain average over the targets
    both rows have (NaN when none). Each resample redraws X's and Y's scores independently
    within each target. Pairs come out in first-appearance order of the rows. An unordered
    pair is resampled once, from a generator seeded by (seed, crc32 of both labels in sorted
    order), and P(Y > X) is 1 - P(X > Y) resample by resample, so the two intervals mirror."""
    by_row = _by_row(scores)
    low, high = _percentiles(confidence)
    drawn: dict[tuple[str, str], tuple[float, np.ndarray]] = {}
    out = []
    for x, y in itertools.permutations(by_row, 2):
        a, b = sorted((x, y))
        if (a, b) not in drawn:
            drawn[a, b] = _improvement(by_row[a], by_row[b], reps, _rng(seed, a, b))
        p, boot = drawn[a, b]
        if x != a:
            p, boot = 1 - p, 1 - boot
        p_lo, p_hi = np.percentile(boot, [low, high]) if boot.size else (math.nan, math.nan)
        out.append({"method_x": x, "method_y": y, "p": p, "p_lo": p_lo, "p_hi": p_hi})
    return pd.DataFrame(out, columns=IMPROVEMENT_COLUMNS)


def _improvement(x: dict[str, np.ndarray], y: dict[str, np.ndarray], reps: int,
                 rng: np.random.Generator) -> tuple[float, np.ndarray]:
    """P(X > Y) averaged over common targets, and its ``reps`` resampled values."""
    common = sorted(x.keys() & y.keys())
    if not common:
        return math.nan, np.empty(0)
    point = np.mean([_win_rate(x[t], y[t]) for t in common])
    boot = np.mean([_win_rate(_draw(x[t], reps, rng), _draw(y[t], reps, rng))
                    for t in common], axis=0)
    return float(point), boot


def _win_rate(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P(x > y) + P(x = y) / 2 over all pairs of scores on the last axes of x and y."""
    xs, ys = x[..., :, None], y[..., None, :]
    return ((xs > ys) + 0.5 * (xs == ys)).mean(axis=(-2, -1))


def _by_row(scores: pd.DataFrame) -> dict[str, dict[str, np.ndarray]]:
    """row -> target -> accuracies ordered by seed. Rows in first-appearance order, targets
    sorted, so results depend on the scores and not on the order of the frame's lines."""
    key = ["row", "target", "seed"]
    dup = scores.duplicated(key)
    if dup.any():
        raise ValueError(f"duplicate (row, target, seed): {scores.loc[dup, key].values.tolist()}")
    kept = scores.dropna(subset=["accuracy"]).sort_values(["target", "seed"])
    by_row: dict[str, dict[str, np.ndarray]] = {row: {} for row in scores["row"].unique()}
    for (row, target), group in kept.groupby(["row", "target"], sort=False):
        by_row[row][target] = group["accuracy"].to_numpy(dtype=float)
    return by_row


def _draw(x: np.ndarray, reps: int, rng: np.random.Generator) -> np.ndarray:
    """``reps`` resamples of x with replacement, each as long as x: shape [reps, len(x)]."""
    return x[rng.integers(0, len(x), size=(reps, len(x)))]


def _rng(seed: int, *labels: str) -> np.random.Generator:
    # crc32, not hash(): str hashes change between interpreter runs.
    return np.random.default_rng([seed, *(zlib.crc32(str(label).encode()) for label in labels)])


def _percentiles(confidence: float) -> tuple[float, float]:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    return 50 * (1 - confidence), 50 * (1 + confidence)


def _isnan(v: object) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))
