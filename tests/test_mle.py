"""Tests of emix.mle against scipy.stats, closed forms and numerical differentiation."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import stats

from emix.exceptions import InputError, NonNumericError
from emix.mle import MLEResult, fit_bernoulli, fit_exponential, fit_normal, fit_poisson

# --------------------------------------------------------------------------------------
# Reference negative log-likelihoods, written with scipy.stats so that they share no code
# with emix. Each takes the parameter vector in the order of MLEResult.params.
# --------------------------------------------------------------------------------------


def _nll_normal(theta, x, w):
    return -np.dot(w, stats.norm.logpdf(x, loc=theta[0], scale=theta[1]))


def _nll_exponential(theta, x, w):
    return -np.dot(w, stats.expon.logpdf(x, scale=1.0 / theta[0]))


def _nll_poisson(theta, x, w):
    return -np.dot(w, stats.poisson.logpmf(x, theta[0]))


def _nll_bernoulli(theta, x, w):
    return -np.dot(w, stats.bernoulli.logpmf(x, theta[0]))


def _draw(family: str, rng: np.random.Generator, n: int) -> np.ndarray:
    if family == "normal":
        return rng.normal(170.0, 7.0, n)
    if family == "exponential":
        return rng.exponential(2.5, n)
    if family == "poisson":
        return rng.poisson(3.2, n).astype(float)
    return (rng.random(n) < 0.3).astype(float)


FAMILIES = {
    "normal": (fit_normal, _nll_normal),
    "exponential": (fit_exponential, _nll_exponential),
    "poisson": (fit_poisson, _nll_poisson),
    "bernoulli": (fit_bernoulli, _nll_bernoulli),
}


def _fd_hessian(f, theta: np.ndarray, rel_step: float = 1e-4) -> np.ndarray:
    """Central finite-difference Hessian of the scalar function f at theta, shape (p, p)."""
    theta = np.asarray(theta, dtype=float)
    p = theta.size
    h = rel_step * np.maximum(np.abs(theta), 1e-3)
    hess = np.empty((p, p))
    for i in range(p):
        for j in range(p):
            ei = np.zeros(p)
            ej = np.zeros(p)
            ei[i] = h[i]
            ej[j] = h[j]
            hess[i, j] = (
                f(theta + ei + ej) - f(theta + ei - ej) - f(theta - ei + ej) + f(theta - ei - ej)
            ) / (4.0 * h[i] * h[j])
    return hess


# --------------------------------------------------------------------------------------
# Estimates against independent references
# --------------------------------------------------------------------------------------


def test_normal_matches_scipy_norm_fit():
    x = np.random.default_rng(1).normal(170.0, 7.0, 250)
    res = fit_normal(x)
    loc, scale = stats.norm.fit(x)  # scipy's fit is the MLE (divides by n)
    assert res.params["mean"] == pytest.approx(loc, rel=1e-12)
    assert res.params["sd"] == pytest.approx(scale, rel=1e-12)
    assert res.loglik == pytest.approx(stats.norm.logpdf(x, loc, scale).sum(), rel=1e-12)
    assert res.n == 250.0


def test_normal_sd_is_the_biased_mle_not_the_sample_sd():
    x = [1.0, 2.0, 4.0, 7.0]
    res = fit_normal(x)
    assert res.params["sd"] == pytest.approx(np.std(x, ddof=0), rel=1e-14)
    assert res.params["sd"] < np.std(x, ddof=1)


def test_normal_closed_form_standard_errors():
    x = np.random.default_rng(2).normal(-3.0, 0.5, 80)
    res = fit_normal(x)
    sd, n = res.params["sd"], 80
    assert res.stderr["mean"] == pytest.approx(sd / math.sqrt(n), rel=1e-12)
    assert res.stderr["sd"] == pytest.approx(sd / math.sqrt(2 * n), rel=1e-12)
    np.testing.assert_allclose(res.cov, np.diag([sd**2 / n, sd**2 / (2 * n)]), rtol=1e-12)
    assert res.param_names == ("mean", "sd")


def test_normal_weighted_matches_numpy_average():
    rng = np.random.default_rng(3)
    x = rng.normal(0.0, 1.0, 60)
    w = rng.uniform(0.1, 3.0, 60)
    res = fit_normal(x, sample_weight=w)
    mean = np.average(x, weights=w)
    assert res.params["mean"] == pytest.approx(mean, rel=1e-12)
    assert res.params["sd"] == pytest.approx(
        math.sqrt(np.average((x - mean) ** 2, weights=w)), rel=1e-12
    )
    assert res.n == pytest.approx(w.sum(), rel=1e-14)


def test_normal_small_spread_at_large_level_is_accurate():
    # One-pass E[x^2] - E[x]^2 loses every digit here; the two-pass formula does not.
    x = 1e9 + np.array([0.0, 1.0, 2.0, 3.0])
    assert fit_normal(x).params["sd"] == pytest.approx(math.sqrt(1.25), rel=1e-12)


def test_exponential_matches_scipy_expon_fit():
    x = np.random.default_rng(4).exponential(2.5, 300)
    res = fit_exponential(x)
    _, scale = stats.expon.fit(x, floc=0)
    assert res.params["rate"] == pytest.approx(1.0 / scale, rel=1e-12)
    assert res.stderr["rate"] == pytest.approx(res.params["rate"] / math.sqrt(300), rel=1e-12)
    assert res.loglik == pytest.approx(stats.expon.logpdf(x, scale=scale).sum(), rel=1e-12)


def test_exponential_accepts_zeros_among_positive_values():
    res = fit_exponential([0.0, 1.0, 2.0])
    assert res.params["rate"] == pytest.approx(1.0)


def test_poisson_matches_closed_form_and_scipy_logpmf():
    x = np.random.default_rng(5).poisson(3.2, 400)
    res = fit_poisson(x)
    rate = x.mean()
    assert res.params["rate"] == pytest.approx(rate, rel=1e-12)
    assert res.stderr["rate"] == pytest.approx(math.sqrt(rate / 400), rel=1e-12)
    assert res.loglik == pytest.approx(stats.poisson.logpmf(x, rate).sum(), rel=1e-12)


def test_bernoulli_matches_closed_form_and_scipy_logpmf():
    x = (np.random.default_rng(6).random(500) < 0.3).astype(int)
    res = fit_bernoulli(x)
    p = x.mean()
    assert res.params["p"] == pytest.approx(p, rel=1e-12)
    assert res.stderr["p"] == pytest.approx(math.sqrt(p * (1 - p) / 500), rel=1e-12)
    assert res.loglik == pytest.approx(stats.bernoulli.logpmf(x, p).sum(), rel=1e-12)


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("weighted", [False, True])
def test_stderr_is_sqrt_inverse_finite_difference_hessian(family, weighted):
    fit, nll = FAMILIES[family]
    rng = np.random.default_rng(7)
    x = _draw(family, rng, 120)
    w = rng.uniform(0.2, 2.5, x.size) if weighted else np.ones(x.size)
    res = fit(x, sample_weight=w if weighted else None)
    theta = np.array(list(res.params.values()))

    hess = _fd_hessian(lambda t: nll(t, x, w), theta)
    cov = np.linalg.inv(hess)
    # The normal off-diagonal is exactly 0; finite differences leave ~1e-9 relative noise.
    np.testing.assert_allclose(res.cov, cov, rtol=1e-5, atol=1e-7 * np.abs(cov).max())
    np.testing.assert_allclose(
        list(res.stderr.values()), np.sqrt(np.diag(cov)), rtol=1e-5
    )
    # The loglik reported is the reference likelihood at the estimate...
    assert res.loglik == pytest.approx(-nll(theta, x, w), rel=1e-10)
    # ...and the estimate is a maximum: nudging any parameter lowers it.
    for i in range(theta.size):
        for sign in (-1.0, 1.0):
            nudged = theta.copy()
            nudged[i] += sign * 1e-3 * abs(theta[i])
            assert -nll(nudged, x, w) < res.loglik


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_integer_weights_equal_repeated_rows(family):
    fit, _ = FAMILIES[family]
    rng = np.random.default_rng(8)
    x = _draw(family, rng, 40)
    counts = rng.integers(1, 5, size=x.size)
    weighted = fit(x, sample_weight=counts)
    repeated = fit(np.repeat(x, counts))
    assert weighted.n == repeated.n == counts.sum()
    for name in weighted.params:
        assert weighted.params[name] == pytest.approx(repeated.params[name], rel=1e-12)
        assert weighted.stderr[name] == pytest.approx(repeated.stderr[name], rel=1e-12)
    assert weighted.loglik == pytest.approx(repeated.loglik, rel=1e-12)
    np.testing.assert_allclose(weighted.cov, repeated.cov, rtol=1e-12)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_zero_weight_equals_dropping_the_row(family):
    fit, _ = FAMILIES[family]
    x = _draw(family, np.random.default_rng(9), 30)
    w = np.ones(x.size)
    w[[3, 17]] = 0.0
    with_zeros = fit(x, sample_weight=w)
    dropped = fit(np.delete(x, [3, 17]))
    for name in with_zeros.params:
        assert with_zeros.params[name] == pytest.approx(dropped.params[name], rel=1e-12)
        assert with_zeros.stderr[name] == pytest.approx(dropped.stderr[name], rel=1e-12)
    assert with_zeros.loglik == pytest.approx(dropped.loglik, rel=1e-12)


def test_normal_wald_interval_covers_true_mean_about_95_percent():
    rng = np.random.default_rng(10)
    true_mean, n_reps = 170.0, 400
    covered = 0
    for _ in range(n_reps):
        lo, hi = fit_normal(rng.normal(true_mean, 7.0, 50)).conf_int(0.95)["mean"]
        covered += lo <= true_mean <= hi
    assert 0.91 <= covered / n_reps <= 0.99


@settings(max_examples=60, deadline=None)
@given(
    x=st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=40),
    shift=st.floats(-1e3, 1e3),
    scale=st.floats(0.01, 100.0),
    flip=st.booleans(),
)
def test_normal_is_location_scale_equivariant(x, shift, scale, flip):
    x = np.array(x)
    assume(np.ptp(x) > 1e-3)
    b = -scale if flip else scale
    base = fit_normal(x)
    moved = fit_normal(shift + b * x)
    tol = 1e-9 * (abs(shift) + scale * np.abs(x).max())
    assert moved.params["mean"] == pytest.approx(shift + b * base.params["mean"], abs=tol)
    assert moved.params["sd"] == pytest.approx(scale * base.params["sd"], rel=1e-7, abs=tol)
    assert moved.stderr["sd"] == pytest.approx(scale * base.stderr["sd"], rel=1e-7, abs=tol)


# --------------------------------------------------------------------------------------
# Accepted input types
# --------------------------------------------------------------------------------------


def test_accepts_lists_tuples_and_integer_arrays():
    expected = fit_normal(np.array([1.0, 2.0, 4.0]))
    for x in ([1, 2, 4], (1.0, 2.0, 4.0), np.array([1, 2, 4], dtype=np.int32)):
        assert fit_normal(x).params == expected.params


def test_accepts_pandas_series_including_nullable_dtypes():
    pd = pytest.importorskip("pandas")
    expected = fit_normal([1.0, 2.0, 4.0]).params
    assert fit_normal(pd.Series([1.0, 2.0, 4.0], index=[10, 20, 30])).params == expected
    assert fit_normal(pd.Series([1, 2, 4], dtype="Int64")).params == expected
    assert fit_poisson(pd.Series([0, 2, 3], dtype="Int64")).params["rate"] == pytest.approx(
        5 / 3
    )
    weights = pd.Series([1.0, 2.0, 1.0])
    assert fit_normal(pd.Series([1.0, 2.0, 4.0]), sample_weight=weights).n == 4.0


def test_accepts_a_single_column():
    column = np.array([[1.0], [2.0], [4.0]])
    assert fit_normal(column).params == fit_normal([1.0, 2.0, 4.0]).params


def test_bernoulli_accepts_booleans_and_poisson_whole_floats():
    assert fit_bernoulli([True, False, False, True]).params["p"] == 0.5
    assert fit_poisson([0.0, 2.0, 4.0]).params["rate"] == 2.0


def test_input_is_not_modified():
    x = np.array([3.0, 1.0, 2.0])
    w = np.array([1.0, 2.0, 3.0])
    fit_normal(x, sample_weight=w)
    np.testing.assert_array_equal(x, [3.0, 1.0, 2.0])
    np.testing.assert_array_equal(w, [1.0, 2.0, 3.0])


# --------------------------------------------------------------------------------------
# The result object
# --------------------------------------------------------------------------------------


def test_result_is_frozen_and_cov_read_only():
    res = fit_normal([1.0, 2.0, 4.0])
    assert isinstance(res, MLEResult)
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.loglik = 0.0
    with pytest.raises(ValueError, match="read-only"):
        res.cov[0, 0] = 1.0


def test_summary_table_lists_estimates_errors_and_interval():
    res = fit_normal([160.0, 170.0, 175.0, 181.0, 166.0])
    text = res.summary()
    assert str(res) == text
    assert "Normal maximum-likelihood fit (n = 5)" in text
    for word in ("parameter", "estimate", "std. error", "95% CI", "mean", "sd"):
        assert word in text
    assert f"{res.params['mean']:.2f}" in text
    assert "divides by n, not n - 1" in text
    assert "90% CI" in res.summary(level=0.90)


def test_conf_int_is_wald_interval():
    res = fit_poisson([1, 4, 2, 0, 3, 5])
    lo, hi = res.conf_int(0.95)["rate"]
    z = stats.norm.ppf(0.975)
    assert lo == pytest.approx(res.params["rate"] - z * res.stderr["rate"], rel=1e-12)
    assert hi == pytest.approx(res.params["rate"] + z * res.stderr["rate"], rel=1e-12)
    lo90, hi90 = res.conf_int(0.90)["rate"]
    assert lo < lo90 < hi90 < hi


@pytest.mark.parametrize("level", [0.0, 1.0, 95, -0.5, "0.95"])
def test_conf_int_rejects_bad_level(level):
    with pytest.raises(ValueError, match="level must be a number strictly between 0 and 1"):
        fit_normal([1.0, 2.0]).conf_int(level)


def test_importing_mle_does_not_import_pandas():
    code = "import sys, emix.mle; print('pandas' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"


# --------------------------------------------------------------------------------------
# Bad input: one test per error, each checking that the message names the problem
# --------------------------------------------------------------------------------------


def test_empty_input():
    with pytest.raises(InputError, match="x is empty"):
        fit_normal([])


def test_nan_positions_are_named():
    msg = r"1 missing \(NaN\) or infinite value\(s\): x\[2\] = nan"
    with pytest.raises(InputError, match=msg):
        fit_normal([1.0, 2.0, float("nan"), 4.0])


def test_inf_positions_are_named():
    with pytest.raises(InputError, match=r"x\[0\] = inf, x\[3\] = -inf"):
        fit_exponential([np.inf, 1.0, 2.0, -np.inf])


def test_many_bad_positions_are_summarised():
    x = np.full(30, np.nan)
    with pytest.raises(InputError, match=r"30 missing .* x\[9\] = nan, and 20 more"):
        fit_normal(x)


def test_none_and_pandas_na_count_as_missing():
    with pytest.raises(InputError, match=r"x\[1\] = nan"):
        fit_normal([1.0, None, 3.0])
    pd = pytest.importorskip("pandas")
    with pytest.raises(InputError, match=r"x\[2\] = nan"):
        fit_normal(pd.Series([1, 2, None, 4], dtype="Int64"))


def test_text_is_non_numeric():
    with pytest.raises(NonNumericError, match=r"x\[0\] is 'a' \(text\)"):
        fit_normal(["a", "b"])
    # NonNumericError is a TypeError too, as NumPy would raise.
    with pytest.raises(TypeError):
        fit_normal(["1.5", "2.5"])


def test_mixed_object_values_name_the_offending_position():
    with pytest.raises(NonNumericError, match=r"x\[1\] is \{\} \(dict\)"):
        fit_normal(np.array([1.0, {}, 3.0], dtype=object))


def test_string_argument_is_rejected():
    with pytest.raises(NonNumericError, match="got a string"):
        fit_normal("1 2 3")


def test_complex_values_are_rejected():
    with pytest.raises(NonNumericError, match="complex"):
        fit_normal([1 + 2j, 3.0])


def test_two_dimensional_input_is_rejected():
    with pytest.raises(InputError, match=r"one-dimensional .* shape \(3, 2\)"):
        fit_normal(np.ones((3, 2)))


def test_scalar_input_is_rejected():
    with pytest.raises(InputError, match="got a scalar"):
        fit_normal(3.0)


def test_ragged_input_is_rejected():
    with pytest.raises(InputError, match="flat sequence of numbers"):
        fit_normal([[1.0, 2.0], [3.0]])


def test_sample_weight_wrong_length():
    with pytest.raises(InputError, match="sample_weight has 2 entries but x has 3"):
        fit_normal([1.0, 2.0, 3.0], sample_weight=[1.0, 1.0])


def test_sample_weight_negative():
    with pytest.raises(InputError, match=r"non-negative; .* sample_weight\[1\] = -1.0"):
        fit_normal([1.0, 2.0, 3.0], sample_weight=[1.0, -1.0, 1.0])


def test_sample_weight_nan():
    with pytest.raises(InputError, match=r"sample_weight contains .* sample_weight\[0\] = nan"):
        fit_normal([1.0, 2.0, 3.0], sample_weight=[np.nan, 1.0, 1.0])


def test_sample_weight_all_zero():
    with pytest.raises(InputError, match="all sample weights are zero"):
        fit_poisson([1, 2, 3], sample_weight=[0, 0, 0])


def test_normal_all_values_equal():
    msg = r"all 3 .*values of x are equal to 5.0.* standard deviation is 0"
    with pytest.raises(InputError, match=msg):
        fit_normal([5.0, 5.0, 5.0])


def test_normal_single_value():
    with pytest.raises(InputError, match="at least two distinct values"):
        fit_normal([170.0])


def test_normal_equal_after_zero_weights():
    with pytest.raises(InputError, match="values of x are equal"):
        fit_normal([1.0, 2.0, 2.0], sample_weight=[0.0, 1.0, 3.0])


def test_exponential_negative_value():
    with pytest.raises(InputError, match=r"needs x >= 0; negative value\(s\) at x\[2\] = -0.5"):
        fit_exponential([1.0, 2.0, -0.5])


def test_exponential_all_zero():
    msg = "values of x are 0: the maximum-likelihood rate is infinite"
    with pytest.raises(InputError, match=msg):
        fit_exponential([0.0, 0.0])


def test_poisson_negative_count():
    msg = r"non-negative integer counts; negative value\(s\) at x\[1\] = -1.0"
    with pytest.raises(InputError, match=msg):
        fit_poisson([2, -1, 3])


def test_poisson_fractional_count():
    msg = r"whole-number counts; fractional value\(s\) at x\[0\] = 1.5"
    with pytest.raises(InputError, match=msg):
        fit_poisson([1.5, 2.0])


def test_poisson_all_zero():
    with pytest.raises(InputError, match="all .*counts in x are 0"):
        fit_poisson([0, 0, 0])


def test_bernoulli_value_other_than_zero_or_one():
    with pytest.raises(InputError, match=r"coded 0 or 1; other value\(s\) at x\[2\] = 2.0"):
        fit_bernoulli([0, 1, 2])


@pytest.mark.parametrize("value", [0, 1])
def test_bernoulli_all_outcomes_equal(value):
    with pytest.raises(InputError, match=f"all .*values of x are {value}: .*p is {value}"):
        fit_bernoulli([value] * 4)


def test_errors_are_value_errors():
    # Code written against scikit-learn catches ValueError; emix's errors must be caught.
    assert issubclass(InputError, ValueError)
    assert issubclass(NonNumericError, ValueError)
