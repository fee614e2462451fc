"""The binomial family: additive statistics, a stable E-step, an exact M-step."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats as sps

from emix.families import binomial as B


def _params(weights, probs):
    return B.BinomialMixtureParams(np.asarray(weights, float), np.asarray(probs, float))


@st.composite
def _problem(draw):
    """Rows of (heads, trials), optional weights, parameters, and a split point."""
    N = draw(st.integers(2, 12))
    K = draw(st.integers(1, 3))
    trials = np.array(draw(st.lists(st.integers(0, 30), min_size=N, max_size=N)), float)
    frac = np.array(draw(st.lists(st.floats(0, 1), min_size=N, max_size=N)))
    heads = np.floor(frac * trials)
    w = np.array(draw(st.lists(st.floats(0.01, 1), min_size=K, max_size=K)))
    p = np.array(draw(st.lists(st.floats(0.01, 0.99), min_size=K, max_size=K)))
    sw = draw(st.one_of(st.none(), st.lists(st.floats(0, 5), min_size=N, max_size=N)))
    cut = draw(st.integers(0, N))
    return heads, trials, _params(w / w.sum(), p), None if sw is None else np.array(sw), cut


@given(_problem())
def test_statistics_of_two_blocks_add_up_to_those_of_the_whole(problem):
    heads, trials, params, sw, cut = problem
    whole = B.suff_stats(heads, trials, params, sw)
    a = B.suff_stats(heads[:cut], trials[:cut], params, None if sw is None else sw[:cut])
    b = B.suff_stats(heads[cut:], trials[cut:], params, None if sw is None else sw[cut:])
    total = a + b
    for name in ("nk", "heads", "trials"):
        np.testing.assert_allclose(getattr(total, name), getattr(whole, name), rtol=1e-12,
                                   atol=1e-12)
    assert total.loglik == pytest.approx(whole.loglik, rel=1e-12, abs=1e-12)
    assert total.weight_sum == pytest.approx(whole.weight_sum)
    zero = B.BinomialStats.zeros(params.n_components)
    np.testing.assert_array_equal((zero + whole).nk, whole.nk)


def test_loglik_and_responsibilities_match_scipy():
    heads = np.array([0, 3, 7, 10, 5])
    trials = np.array([10, 10, 12, 10, 5])
    params = _params([0.3, 0.7], [0.25, 0.8])
    pmf = np.stack([w * sps.binom.pmf(heads, trials, p)
                    for w, p in zip(params.weights, params.probs)], axis=1)
    s = B.suff_stats(heads, trials, params)
    assert s.loglik == pytest.approx(np.log(pmf.sum(axis=1)).sum(), rel=1e-12)
    resp = pmf / pmf.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(s.nk, resp.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(s.heads, heads @ resp, rtol=1e-12)
    np.testing.assert_allclose(s.trials, trials @ resp, rtol=1e-12)
    assert s.weight_sum == 5


def test_huge_trial_counts_stay_finite_and_accurate():
    # C(2e6, 1e6) overflows float64 by far; the log-space E-step must not.
    heads, trials = np.array([1_000_000.0, 1_000_100.0]), np.array([2e6, 2e6])
    params = _params([0.5, 0.5], [0.5, 0.5001])
    s = B.suff_stats(heads, trials, params)
    expected = np.logaddexp(
        np.log(0.5) + sps.binom.logpmf(heads, trials, 0.5),
        np.log(0.5) + sps.binom.logpmf(heads, trials, 0.5001),
    ).sum()
    assert np.isfinite(s.loglik)
    # log C(n, h) is about 1.4e6 here and cancels against h log p + (n - h) log(1 - p)
    # down to -15: round-off in a number of size 1e6 is ~1e-9, on either side.
    assert s.loglik == pytest.approx(expected, abs=1e-8)


def test_probabilities_zero_and_one_need_no_special_case():
    heads, trials = np.array([0, 10, 4]), np.array([10, 10, 10])
    L = B.log_joint(heads, trials, _params([0.2, 0.3, 0.5], [0.0, 1.0, 0.5]))
    assert L[0, 0] == pytest.approx(np.log(0.2))  # all tails under a coin that never lands heads
    assert L[1, 1] == pytest.approx(np.log(0.3))
    assert L[0, 1] == -np.inf and L[2, 0] == -np.inf and L[2, 1] == -np.inf
    resp, log_norm = B.responsibilities(L)
    np.testing.assert_allclose(resp.sum(axis=1), 1.0)
    assert np.all(np.isfinite(log_norm))


def test_rows_of_zero_weight_add_nothing_even_when_impossible():
    params = _params([1.0], [1.0])  # every flip heads: a row with a tail is impossible
    s = B.suff_stats(np.array([10, 3]), np.array([10, 10]), params, np.array([1.0, 0.0]))
    assert s.loglik == 0.0 and s.nk[0] == 1.0 and s.heads[0] == 10 and s.trials[0] == 10


def test_m_step_is_the_weighted_share_of_heads():
    s = B.BinomialStats(np.array([3.0, 1.0]), np.array([12.0, 2.5]), np.array([30.0, 10.0]),
                        -5.0, 4.0)
    params, report = B.m_step(s)
    np.testing.assert_allclose(params.weights, [0.75, 0.25])
    np.testing.assert_allclose(params.probs, [0.4, 0.25])
    assert report.empty == ()


def test_m_step_maximises_the_expected_complete_log_likelihood():
    rng = np.random.default_rng(0)
    trials = rng.integers(1, 20, 40).astype(float)
    heads = rng.binomial(trials.astype(int), 0.4).astype(float)
    old = _params([0.5, 0.5], [0.3, 0.6])
    resp, _ = B.responsibilities(B.log_joint(heads, trials, old))
    new, _ = B.m_step(B.suff_stats(heads, trials, old))

    def q(params):
        L = B.log_joint(heads, trials, params)
        return float((resp * L).sum())

    best = q(new)
    for dw in (-0.05, 0.05):
        for dp in (-0.02, 0.02):
            w = new.weights + np.array([dw, -dw])
            assert q(_params(w, new.probs + np.array([dp, -dp]))) < best


def test_empty_component_keeps_its_probability_with_weight_zero():
    s = B.BinomialStats(np.array([2.0, 0.0]), np.array([5.0, 0.0]), np.array([10.0, 0.0]),
                        -1.0, 2.0)
    params, report = B.m_step(s, previous=_params([0.5, 0.5], [0.4, 0.9]))
    np.testing.assert_allclose(params.weights, [1.0, 0.0])
    np.testing.assert_allclose(params.probs, [0.5, 0.9])
    assert report.empty == (1,)


def test_statistics_of_different_sizes_do_not_add():
    with pytest.raises(ValueError, match="2 and 3 components"):
        B.BinomialStats.zeros(2) + B.BinomialStats.zeros(3)


def test_n_parameters():
    assert B.n_parameters(1) == 1 and B.n_parameters(3) == 5
