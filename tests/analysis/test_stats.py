"""analysis.stats against hand-computed numbers."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from analysis.stats import mean_ci_frame, not_worse_than_best, paired_p, t_interval


def test_t_interval_hand_computed():
    # 80, 82, 84: mean 82, sd 2, t(0.975, 2) = 4.3027, hw = 4.3027 * 2 / sqrt(3) = 4.968
    iv = t_interval([80, 82, 84])
    assert iv.mean == pytest.approx(82.0)
    assert iv.half_width == pytest.approx(4.3027 * 2 / math.sqrt(3), rel=1e-4)
    assert iv.n == 3


def test_t_interval_small_n():
    assert t_interval([0.5]).n == 1 and math.isnan(t_interval([0.5]).half_width)
    assert t_interval([0.5, float("nan")]).n == 1  # NaN is no value
    assert t_interval([]).n == 0 and math.isnan(t_interval([]).mean)
    assert t_interval([50, 50, 50]).half_width == 0.0


def test_paired_p_hand_computed():
    # differences 2, 1, 3: mean 2, sd 1, t = 2 / (1 / sqrt 3) = 3.464, df 2 -> p = 0.0742
    a = pd.Series([80, 82, 84], index=[0, 1, 2])
    b = pd.Series([78, 81, 81], index=[0, 1, 2])
    assert paired_p(a, b) == pytest.approx(0.0742, abs=1e-4)
    assert not_worse_than_best(paired_p(a, b))


def test_paired_p_pairs_by_seed():
    a = pd.Series([80, 82, 84], index=[0, 1, 2])
    b = pd.Series([99, 78, 81], index=[5, 0, 1])  # only seeds 0 and 1 pair up
    # differences 2, 1: mean 1.5, sd 0.7071, t = 3, df 1 -> p = 0.2048
    assert paired_p(a, b) == pytest.approx(0.2048, abs=1e-4)


def test_paired_p_degenerate():
    a = pd.Series([75.0, 78.0, 78.0])
    assert paired_p(a, a - 3.5) == 0.0  # constant gap: as different as can be
    assert paired_p(a, a.copy()) == 1.0  # identical
    assert math.isnan(paired_p(a.iloc[:1], a.iloc[:1]))  # one pair: no test
    assert not not_worse_than_best(math.nan)  # no test, no underline


def test_mean_ci_frame():
    df = pd.DataFrame({"g": ["a", "a", "a", "b"], "v": [80, 82, 84, 5]})
    out = mean_ci_frame(df, ["g"], "v").set_index("g")
    assert out.loc["a", "mean"] == pytest.approx(82) and out.loc["a", "n"] == 3
    assert out.loc["b", "half_width"] == 0.0  # n = 1 draws no band
