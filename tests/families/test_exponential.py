"""Exponential family: kernels against scipy.stats.expon, the M-step against the closed
form, monotone EM, the collapse onto 0, support errors, end-to-end fits."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.special import logsumexp

from emix import MixtureModel
from emix.backends.numpy_backend import NumpyBackend
from emix.exceptions import InputError
from emix.families import get_family
from emix.families.exponential import COLLAPSE_RATIO, Exponential
from emix.models._kernels import GivenRespKernel, LogJointKernel, MixtureKernel, stats_from_acc

BK = NumpyBackend()
RATES = np.array([[2.0, 0.5], [0.1, 1.0], [1.0, 10.0]])
W = np.array([0.3, 0.5, 0.2])


def bound(X):
    return Exponential().bind(BK.column_summary(X, None), X.shape[1])


def draw(rng, n, rates=RATES, weights=W):
    z = rng.choice(len(weights), size=n, p=weights)
    return rng.exponential(1.0 / rates[z]), z


def e_step(fam, X, rates, weights, w=None, block_size=16):
    kernel = MixtureKernel(fam, {"rates": rates}, weights)
    acc = BK.stats_pass(X, w, kernel, block_size=block_size, width=fam.feature_width())
    return stats_from_acc(acc, len(X), fam)


def scipy_log_joint(X, rates, weights):
    """``log w_k + sum_d log Expon(x_d | scale = 1 / lambda_kd)`` by scipy.stats."""
    return np.stack(
        [np.log(weights[k]) + stats.expon.logpdf(X, scale=1.0 / rates[k]).sum(axis=1) for k in range(len(weights))],
        axis=1,
    )


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_log_joint_matches_scipy(rng, dtype, tol):
    X, _ = draw(rng, 103)
    X[0, 0] = 0.0  # zero is in the support
    fam = bound(X)
    L = BK.map_rows(X.astype(dtype), LogJointKernel(fam, {"rates": RATES}, W), block_size=17)
    assert L.shape == (103, 3) and L.dtype == dtype
    ref = scipy_log_joint(X.astype(dtype).astype(np.float64), RATES, W)
    np.testing.assert_allclose(L, ref, rtol=tol, atol=tol * np.abs(ref).max())


def test_m_step_is_weighted_closed_form(rng):
    X, _ = draw(rng, 80)
    fam = bound(X)
    R = rng.dirichlet(np.ones(3), size=80)
    w = rng.uniform(0.1, 3.0, 80)
    acc = BK.stats_pass(X, w, GivenRespKernel(fam, lambda a, b: R[a:b], 3), block_size=16, width=2)
    params, issues = fam.m_step(stats_from_acc(acc, 80, fam), None)
    Rw = R * w[:, None]
    # The weighted MLE of an exponential rate: total weight over weighted total duration.
    expected = Rw.sum(axis=0)[:, None] / (Rw.T @ X)
    np.testing.assert_allclose(params["rates"], expected, rtol=1e-12)
    assert issues == []


def test_em_increases_loglik_and_matches_scipy(rng):
    X, _ = draw(rng, 300)
    fam = bound(X)
    rates = rng.uniform(0.3, 3.0, (3, 2))
    weights = np.full(3, 1 / 3)
    history = []
    for _ in range(30):
        s = e_step(fam, X, rates, weights)
        assert s.loglik == pytest.approx(logsumexp(scipy_log_joint(X, rates, weights), axis=1).sum(), rel=1e-12)
        history.append(s.loglik)
        rates = fam.m_step(s, {"rates": rates})[0]["rates"]
        weights = s.nk / s.weight_sum
    assert np.all(np.diff(history) >= -1e-9 * abs(history[-1]))
    assert history[-1] > history[0] + 1.0


@settings(max_examples=15)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(5, 40), K=st.integers(1, 3))
def test_em_never_decreases(seed, n, K):
    g = np.random.default_rng(seed)
    X = g.exponential(g.uniform(0.1, 10.0, 2), size=(n, 2))
    fam = bound(X)
    rates = g.uniform(0.05, 5.0, (K, 2))
    weights = g.dirichlet(np.ones(K))
    prev = -np.inf
    for _ in range(8):
        s = e_step(fam, X, rates, weights, block_size=7)
        assert s.loglik >= prev - 1e-9 * max(1.0, abs(prev))
        prev = s.loglik
        rates = fam.m_step(s, {"rates": rates})[0]["rates"]
        weights = s.nk / s.weight_sum


def test_statistics_add_over_blocks_and_weights_repeat_rows(rng):
    X, _ = draw(rng, 60)
    fam = bound(X)
    whole = e_step(fam, X, RATES, W)
    parts = e_step(fam, X[:17], RATES, W) + e_step(fam, X[17:], RATES, W)
    np.testing.assert_allclose(parts.S, whole.S, rtol=1e-12)
    assert parts.loglik == pytest.approx(whole.loglik, rel=1e-12)
    counts = rng.integers(0, 4, 60)
    weighted = e_step(fam, X, RATES, W, w=counts.astype(np.float64))
    repeated = e_step(fam, np.repeat(X, counts, axis=0), RATES, W)
    np.testing.assert_allclose(weighted.S, repeated.S, rtol=1e-12)
    assert weighted.loglik == pytest.approx(repeated.loglik, rel=1e-12)


def test_collapse_onto_zero_is_capped_and_named():
    """A component that owns only zeros in a column has no finite MLE rate."""
    X = np.array([[0.0, 1.0], [0.0, 2.0], [3.0, 1.0], [5.0, 4.0]])
    fam = bound(X)
    R = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    acc = BK.stats_pass(X, None, GivenRespKernel(fam, lambda a, b: R[a:b], 2), width=2)
    params, issues = fam.m_step(stats_from_acc(acc, 4, fam), None)
    assert params["rates"][0, 0] == pytest.approx(1.0 / (COLLAPSE_RATIO * X[:, 0].mean()))
    np.testing.assert_allclose(params["rates"][1], [2 / 8.0, 2 / 5.0])
    assert len(issues) == 1 and "component 0" in issues[0] and "column 0" in issues[0]
    # The capped rate still gives finite log-densities and statistics.
    s = e_step(fam, X, params["rates"], np.array([0.5, 0.5]))
    assert np.isfinite(s.loglik) and np.all(np.isfinite(s.S))


def test_empty_component_keeps_previous_and_is_named(rng):
    X, _ = draw(rng, 30)
    fam = bound(X)
    s = e_step(fam, X, RATES[:2], np.array([1.0, 0.0]))
    params, issues = fam.m_step(s, {"rates": RATES[:2]})
    np.testing.assert_array_equal(params["rates"][1], RATES[1])
    assert len(issues) == 1 and "component 1" in issues[0]


def test_support_error_names_row_and_column():
    names = np.array(["wait", "service"], dtype=object)
    with pytest.raises(InputError, match=r"row 1, column 'service'.*-0\.5"):
        Exponential().check_support(np.array([[0.0, 1.0], [2.0, -0.5]]), names)
    Exponential().check_support(np.zeros((2, 2)))  # zero durations are accepted
    with pytest.raises(InputError, match="row 2, column 0"):
        MixtureModel("exponential", 1).fit(np.array([[1.0], [2.0], [-1.0]]))


def test_validate_params_and_counts():
    fam = Exponential().bind({"mean": np.ones(2)}, 2)
    assert fam.n_parameters(3) == 6
    np.testing.assert_allclose(fam.component_means({"rates": RATES}), 1.0 / RATES)
    with pytest.raises(InputError, match="component 1, column 0"):
        fam.validate_params({"rates": [[1.0, 2.0], [0.0, 1.0]]}, 2)
    with pytest.raises(InputError, match="shape"):
        fam.validate_params({"rates": [1.0, 2.0]}, 2)
    assert isinstance(get_family("exponential"), Exponential)


def test_sample_then_fit_recovers(rng):
    rates = np.array([[0.2, 1.0], [5.0, 2.0]])
    fam = Exponential().bind({"mean": np.ones(2)}, 2)
    n = 10000
    draws = np.vstack([fam.sample({"rates": rates}, k, n, rng) for k in range(2)])
    assert draws.shape == (2 * n, 2) and np.all(draws >= 0)
    np.testing.assert_allclose(draws[:n].mean(axis=0), 1.0 / rates[0], rtol=0.05)
    m = MixtureModel(
        "exponential", 2, n_init=3, random_state=0, label_order="mean", tol=1e-9, max_iter=2000
    ).fit(draws)
    # label_order='mean' sorts by the mean 1/rate: the fast component first.
    np.testing.assert_allclose(m.rates_, rates[[1, 0]], rtol=0.1)
    np.testing.assert_allclose(m.weights_, [0.5, 0.5], atol=0.03)


def test_mixture_model_end_to_end(rng):
    X, _ = draw(rng, 400)
    m = MixtureModel("exponential", 2, random_state=1, tol=1e-8, max_iter=1000).fit(X)
    assert m.rates_.shape == (2, 2)
    ref = logsumexp(scipy_log_joint(X, m.rates_, m.weights_), axis=1)
    np.testing.assert_allclose(m.score_samples(X), ref, rtol=1e-10)
    assert np.all(np.diff(m.lower_bounds_) >= -1e-9 * abs(m.lower_bounds_[-1]))
    assert m.aic(X) == pytest.approx(-2 * ref.sum() + 2 * (4 + 1), rel=1e-10)


def test_numpy_and_torch_fit_agree(rng):
    pytest.importorskip("torch")
    X, _ = draw(rng, 200)
    kw = dict(random_state=3, tol=1e-10, max_iter=15)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter may be reached; both runs alike
        a = MixtureModel("exponential", 2, **kw).fit(X)
        b = MixtureModel("exponential", 2, device="cpu", **kw).fit(X)
    np.testing.assert_allclose(b.rates_, a.rates_, rtol=1e-8)
    np.testing.assert_allclose(b.lower_bounds_, a.lower_bounds_, rtol=1e-10)
