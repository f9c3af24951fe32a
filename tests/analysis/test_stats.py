"""analysis.stats against hand-computed numbers."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.stats import (
    aggregate,
    iqm,
    mean_ci_frame,
    not_worse_than_best,
    paired_p,
    probability_of_improvement,
    t_interval,
)


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


def _long(table: dict[tuple[str, str], list[float]]) -> pd.DataFrame:
    """(row, target) -> scores by seed 0, 1, ... as the long frame aggregate() reads."""
    return pd.DataFrame([(row, target, seed, acc) for (row, target), accs in table.items()
                         for seed, acc in enumerate(accs)],
                        columns=["row", "target", "seed", "accuracy"])


def test_iqm_hand_computed():
    # 8 scores: cut 2 off each end, mean of 3, 4, 5, 6 = 4.5
    assert iqm([8, 1, 7, 2, 6, 3, 5, 4]) == 4.5
    assert iqm([0, 0, 0, 1000]) == 0.0  # the outlier is trimmed
    x = [3.0, 9.5, 1.25, 7.0, 7.5, 100.0, 2.0, 4.0, 6.0, 0.5, 8.0]
    assert iqm(x) == pytest.approx(stats.trim_mean(x, 0.25))


# Skewed on purpose: the percentile interval is asymmetric, unlike a t or normal interval.
SKEWED = [61.2, 63.5, 64.1, 64.8, 65.0, 65.9, 66.3, 67.0, 67.4, 68.2,
          68.9, 69.5, 70.3, 71.8, 73.6, 75.9, 78.4, 82.1, 87.5, 95.0]


def test_aggregate_one_target_matches_scipy_bootstrap():
    reps = 100_000
    out = aggregate(_long({("a", "t"): SKEWED}), reps=reps).iloc[0]
    assert out["mean"] == np.mean(SKEWED)
    assert out["iqm"] == stats.trim_mean(SKEWED, 0.25)
    ref = stats.bootstrap((np.array(SKEWED),), np.mean, method="percentile",
                          n_resamples=reps, rng=np.random.default_rng(1))
    # Monte-Carlo error of a 2.5% percentile from B resamples, bootstrap sd s:
    # sqrt(q (1 - q) / B) / phi(1.96) * s = 0.0085 s for B = 1e5, so two independent
    # estimates differ with sd 0.012 s; 0.05 s is 4 of those. A t-interval (off by 0.35 s)
    # or a 90% interval (off by 0.16 s) lands outside.
    tol = 0.05 * ref.standard_error
    assert out["mean_lo"] == pytest.approx(ref.confidence_interval.low, abs=tol)
    assert out["mean_hi"] == pytest.approx(ref.confidence_interval.high, abs=tol)


def test_aggregate_iqm_interval_brackets_point():
    out = aggregate(_long({("a", "t"): SKEWED})).iloc[0]
    assert out["iqm_lo"] < out["iqm"] < out["iqm_hi"]
    assert out["iqm_hi"] < max(SKEWED)  # the trimmed tail never enters


def test_aggregate_is_stratified_by_target():
    # Two targets 100 apart, same seed noise in [-1, 1]. Resampling within each target keeps
    # five scores from each, so every resampled mean is 50 + (mean noise* + mean noise*) / 2,
    # inside [49, 51]. Resampling the ten pooled scores would mix the targets unevenly and
    # spread the mean over tens of points.
    noise = [-1.0, -0.5, 0.0, 0.25, 1.0]
    out = aggregate(_long({("a", "easy"): [100 + e for e in noise],
                           ("a", "hard"): noise})).iloc[0]
    assert 49 <= out["mean_lo"] < out["mean"] < out["mean_hi"] <= 51


def test_aggregate_rows_and_their_streams():
    table = {("b", "t1"): [1.0, 5.0, 2.0], ("b", "t2"): [4.0, 3.0, 9.0],
             ("a", "t1"): [7.13, 8.41, 6.02, 7.77], ("a", "t2"): [1.19, 2.63, 9.35, 3.08]}
    both = aggregate(_long(table))
    assert list(both.columns) == ["method", "mean", "mean_lo", "mean_hi",
                                  "iqm", "iqm_lo", "iqm_hi"]
    assert list(both["method"]) == ["b", "a"]  # first appearance, not sorted
    assert both["mean"].tolist() == pytest.approx([4.0, 45.58 / 8])
    # a's stream is keyed by its label, not its position: dropping b leaves a's interval,
    # and so does shuffling the lines of the frame (which may reorder the rows).
    alone = aggregate(_long({k: v for k, v in table.items() if k[0] == "a"}))
    pd.testing.assert_series_equal(alone.iloc[0], both.iloc[1], check_names=False)
    shuffled = aggregate(_long(table).sample(frac=1, random_state=3)).set_index("method")
    pd.testing.assert_frame_equal(shuffled.loc[["b", "a"]], both.set_index("method"))


def test_aggregate_drops_nan_and_rejects_duplicates():
    df = _long({("a", "t"): [1.0, float("nan"), 3.0], ("b", "t"): [float("nan")]})
    out = aggregate(df).set_index("method")
    assert out.loc["a", "mean"] == 2.0
    assert math.isnan(out.loc["b", "mean"])  # no scores: a NaN line, not a missing one
    with pytest.raises(ValueError, match="duplicate"):
        aggregate(pd.concat([df, df.iloc[:1]]))


def _p(out: pd.DataFrame, x: str, y: str) -> pd.Series:
    return out.set_index(["method_x", "method_y"]).loc[(x, y)]


def test_probability_of_improvement_hand_computed():
    # 1 beats 0 (1); 2 beats 0, ties 2 (1.5); 3 beats 0 and 2 (2): 4.5 of 9 pairs
    out = probability_of_improvement(_long({("x", "t"): [1, 2, 3], ("y", "t"): [0, 2, 4]}))
    assert list(out.columns) == ["method_x", "method_y", "p", "p_lo", "p_hi"]
    assert _p(out, "x", "y")["p"] == pytest.approx(4.5 / 9)  # a tie counts half, not 0 or 1


def test_probability_of_improvement_dominance():
    out = probability_of_improvement(_long({("x", "t"): [5, 6, 7], ("y", "t"): [1, 2, 4]}))
    assert _p(out, "x", "y")[["p", "p_lo", "p_hi"]].tolist() == [1.0, 1.0, 1.0]
    assert _p(out, "y", "x")[["p", "p_lo", "p_hi"]].tolist() == [0.0, 0.0, 0.0]


def test_probability_of_improvement_resamples_both_sides():
    # X = [0, 1] vs Y = [0.5]: a resample of X wins 0, 1 or 2 of 2 with chance 1/4, 1/2,
    # 1/4, so P in {0, 0.5, 1} and the 95% interval is [0, 1]. Holding X fixed would
    # give [0.5, 0.5]. An unordered pair is drawn once, labels sorted, so "w" vs "x" is the
    # case where the second side is the spread one.
    out = probability_of_improvement(_long({("x", "t"): [0.0, 1.0], ("y", "t"): [0.5],
                                            ("w", "t"): [0.5]}))
    assert _p(out, "x", "y")[["p", "p_lo", "p_hi"]].tolist() == [0.5, 0.0, 1.0]
    assert _p(out, "w", "x")[["p", "p_lo", "p_hi"]].tolist() == [0.5, 0.0, 1.0]
    # a 40% interval (percentiles 30 and 70) sits inside the middle half, all at 0.5
    narrow = probability_of_improvement(_long({("x", "t"): [0.0, 1.0], ("y", "t"): [0.5]}),
                                        confidence=0.4)
    assert _p(narrow, "x", "y")[["p_lo", "p_hi"]].tolist() == [0.5, 0.5]


def test_probability_of_improvement_complementary():
    rng = np.random.default_rng(0)
    table = {(row, t): rng.integers(0, 5, size=4).astype(float).tolist()  # many ties
             for row in ["a", "b", "c"] for t in ["t1", "t2"]}
    out = probability_of_improvement(_long(table))
    assert len(out) == 6  # ordered pairs of 3 rows
    for x, y in [("a", "b"), ("a", "c"), ("b", "c")]:
        xy, yx = _p(out, x, y), _p(out, y, x)
        assert xy["p"] + yx["p"] == pytest.approx(1.0)
        assert xy["p_lo"] + yx["p_hi"] == pytest.approx(1.0)
        assert xy["p_lo"] <= xy["p"] <= xy["p_hi"]


def test_probability_of_improvement_averages_common_targets():
    # t1: x beats y everywhere (1); t2: the hand example (0.5); t3: y only, so ignored.
    out = probability_of_improvement(_long({
        ("x", "t1"): [5, 6, 7], ("y", "t1"): [1, 2, 4],
        ("x", "t2"): [1, 2, 3], ("y", "t2"): [0, 2, 4],
        ("y", "t3"): [100, 100, 100]}))
    assert _p(out, "x", "y")["p"] == pytest.approx(0.75)
    disjoint = probability_of_improvement(_long({("x", "t1"): [1.0], ("y", "t2"): [2.0]}))
    assert disjoint["p"].isna().all()


def test_bootstrap_is_deterministic_given_seed():
    rng = np.random.default_rng(7)
    df = _long({(row, t): rng.normal(70, 5, size=5).tolist()
                for row in ["a", "b"] for t in ["t1", "t2"]})
    for f in (aggregate, probability_of_improvement):
        pd.testing.assert_frame_equal(f(df, seed=1), f(df, seed=1))
        other = f(df, seed=2)
        bounds = [c for c in other.columns if c.endswith(("_lo", "_hi"))]
        assert (f(df, seed=1)[bounds] != other[bounds]).any().any()
        assert f(df, seed=1).drop(columns=bounds).equals(other.drop(columns=bounds))
