"""Statistics over seeds: t-intervals and paired tests. Pure functions of numbers.

Seeds are few (often 3), so intervals use Student's t rather than a normal or bootstrap
approximation, and comparisons between methods pair runs by seed (the seed fixes phi_0
and the data order for every method alike).
"""
from __future__ import annotations

import math
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


def _isnan(v: object) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))
