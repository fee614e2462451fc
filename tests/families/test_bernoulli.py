"""Bernoulli family: kernels against scipy.stats, the M-step against the closed form,
EM monotone, support errors, and end-to-end fits through MixtureModel."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.special import logsumexp

import emix
from emix import MixtureModel
from emix.backends.numpy_backend import NumpyBackend
from emix.exceptions import InputError
from emix.families import get_family
from emix.families._base import LOG_ZERO
from emix.families.bernoulli import Bernoulli
from emix.models._kernels import GivenRespKernel, LogJointKernel, MixtureKernel, stats_from_acc

BK = NumpyBackend()
P = np.array([[0.9, 0.1, 0.7, 0.5], [0.2, 0.8, 0.3, 0.5], [0.5, 0.5, 0.95, 0.05]])
W = np.array([0.5, 0.3, 0.2])


def bound(X):
    return Bernoulli().bind(BK.column_summary(X, None), X.shape[1])


def draw(rng, n, probs=P, weights=W):
    z = rng.choice(len(weights), size=n, p=weights)
    return (rng.random((n, probs.shape[1])) < probs[z]).astype(np.float64), z


def e_step(fam, X, probs, weights, w=None, block_size=16):
    kernel = MixtureKernel(fam, {"probabilities": probs}, weights)
    acc = BK.stats_pass(X, w, kernel, block_size=block_size, width=fam.feature_width())
    return stats_from_acc(acc, len(X), fam)


def scipy_log_joint(X, probs, weights):
    """``log w_k + sum_d log Bernoulli(x_d | p_kd)``, (N, K), by scipy.stats."""
    return np.stack(
        [np.log(weights[k]) + stats.bernoulli.logpmf(X, probs[k]).sum(axis=1) for k in range(len(weights))],
        axis=1,
    )


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 2e-5)])
def test_log_joint_matches_scipy(rng, dtype, tol):
    X, _ = draw(rng, 101)
    fam = bound(X)
    L = BK.map_rows(X.astype(dtype), LogJointKernel(fam, {"probabilities": P}, W), block_size=13)
    assert L.shape == (101, 3) and L.dtype == dtype
    np.testing.assert_allclose(L, scipy_log_joint(X, P, W), rtol=tol, atol=tol)


def test_edge_probabilities_are_exact(rng):
    """p = 0 or 1 (a valid MLE) gives exact log-densities, impossible rows LOG_ZERO."""
    probs = np.array([[1.0, 0.0, 0.5], [0.25, 0.75, 0.5]])
    X = np.array([[1, 0, 1], [1, 1, 0], [0, 0, 0]], dtype=np.float64)
    fam = bound(X)
    for dtype in (np.float64, np.float32):
        L = BK.map_rows(X.astype(dtype), LogJointKernel(fam, {"probabilities": probs}, np.ones(2)))
        ref = scipy_log_joint(X, probs, np.ones(2))
        finite = np.isfinite(ref)
        np.testing.assert_allclose(L[finite], ref[finite], rtol=1e-6)
        assert np.all(L[~finite] <= LOG_ZERO / 2)
    # The mixture log-likelihood of the possible rows is exact, with no NaN anywhere.
    st_ = e_step(fam, X[:1], probs, np.array([0.5, 0.5]))
    assert st_.loglik == pytest.approx(logsumexp(scipy_log_joint(X[:1], probs, [0.5, 0.5])), rel=1e-12)


def test_m_step_is_weighted_closed_form(rng):
    X, _ = draw(rng, 80)
    fam = bound(X)
    R = rng.dirichlet(np.ones(3), size=80)
    w = rng.uniform(0.1, 3.0, 80)
    kernel = GivenRespKernel(fam, lambda a, b: R[a:b], 3)
    acc = BK.stats_pass(X, w, kernel, block_size=16, width=fam.feature_width())
    params, issues = fam.m_step(stats_from_acc(acc, 80, fam), None)
    Rw = R * w[:, None]
    expected = (Rw.T @ X) / Rw.sum(axis=0)[:, None]
    np.testing.assert_allclose(params["probabilities"], expected, rtol=1e-12)
    assert issues == []


def test_em_increases_loglik_and_matches_scipy(rng):
    X, _ = draw(rng, 300)
    fam = bound(X)
    probs = rng.uniform(0.2, 0.8, (3, 4))
    weights = np.full(3, 1 / 3)
    history = []
    for _ in range(25):
        s = e_step(fam, X, probs, weights)
        # The pass's log-likelihood is the mixture's, by scipy.stats.
        assert s.loglik == pytest.approx(logsumexp(scipy_log_joint(X, probs, weights), axis=1).sum(), rel=1e-12)
        history.append(s.loglik)
        probs = fam.m_step(s, {"probabilities": probs})[0]["probabilities"]
        weights = s.nk / s.weight_sum
    assert np.all(np.diff(history) >= -1e-9 * abs(history[-1]))
    assert history[-1] > history[0] + 1.0


@settings(max_examples=15)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(5, 40), K=st.integers(1, 3))
def test_em_never_decreases(seed, n, K):
    g = np.random.default_rng(seed)
    X = (g.random((n, 3)) < 0.5).astype(np.float64)
    fam = bound(X)
    probs = g.uniform(0.0, 1.0, (K, 3))
    weights = g.dirichlet(np.ones(K))
    prev = -np.inf
    for _ in range(8):
        s = e_step(fam, X, probs, weights, block_size=7)
        assert s.loglik >= prev - 1e-9 * max(1.0, abs(prev))
        prev = s.loglik
        probs = fam.m_step(s, {"probabilities": probs})[0]["probabilities"]
        weights = s.nk / s.weight_sum


def test_statistics_add_over_blocks_and_weights_repeat_rows(rng):
    X, _ = draw(rng, 60)
    fam = bound(X)
    whole = e_step(fam, X, P, W)
    parts = e_step(fam, X[:23], P, W) + e_step(fam, X[23:], P, W)
    np.testing.assert_allclose(parts.S, whole.S, rtol=1e-12)
    assert parts.loglik == pytest.approx(whole.loglik, rel=1e-12)
    counts = rng.integers(0, 4, 60)
    weighted = e_step(fam, X, P, W, w=counts.astype(np.float64))
    repeated = e_step(fam, np.repeat(X, counts, axis=0), P, W)
    np.testing.assert_allclose(weighted.S, repeated.S, rtol=1e-12)
    assert weighted.loglik == pytest.approx(repeated.loglik, rel=1e-12)


def test_empty_component_keeps_previous_and_is_named(rng):
    X, _ = draw(rng, 30)
    fam = bound(X)
    probs = np.vstack([P[0], P[1]])
    s = e_step(fam, X, probs, np.array([1.0, 0.0]))
    params, issues = fam.m_step(s, {"probabilities": probs})
    np.testing.assert_array_equal(params["probabilities"][1], probs[1])
    assert len(issues) == 1 and "component 1" in issues[0]
    with pytest.raises(emix.DegenerateComponentError, match="component 1 received no data"):
        fam.m_step(s, None)


def test_support_error_names_row_and_column():
    X = np.array([[0, 1], [1, 1], [1, 0.5]])
    with pytest.raises(InputError, match=r"row 2, column 'b'.*0\.5"):
        Bernoulli().check_support(X, np.array(["a", "b"], dtype=object))
    with pytest.raises(InputError, match="row 0, column 1"):
        Bernoulli().check_support(np.array([[0.0, 2.0]]))
    with pytest.raises(InputError, match="row 2, column 1"):
        MixtureModel("bernoulli", 1).fit(X)


def test_validate_params_and_counts():
    fam = Bernoulli().bind({"mean": np.zeros(2)}, 2)
    assert fam.n_parameters(3) == 6 and fam.feature_width() == 4
    out = fam.validate_params({"probabilities": [[0.1, 1.0], [0.0, 0.5]]}, 2)
    assert out["probabilities"].dtype == np.float64
    with pytest.raises(InputError, match="component 1, column 0"):
        fam.validate_params({"probabilities": [[0.1, 0.2], [1.5, 0.5]]}, 2)
    with pytest.raises(InputError, match="shape"):
        fam.validate_params({"probabilities": [[0.1, 0.2, 0.3], [0.1, 0.2, 0.3]]}, 2)
    with pytest.raises(InputError, match="probabilities"):
        fam.validate_params({}, 2)
    assert isinstance(get_family("bernoulli"), Bernoulli)


def test_sample_then_fit_recovers(rng):
    fam = Bernoulli().bind({"mean": np.zeros(4)}, 4)
    n = 20000
    probs = np.array([[0.9, 0.1, 0.8, 0.5], [0.1, 0.9, 0.2, 0.5]])
    draws = np.vstack([fam.sample({"probabilities": probs}, k, n, rng) for k in range(2)])
    assert draws.shape == (2 * n, 4) and set(np.unique(draws)) <= {0.0, 1.0}
    np.testing.assert_allclose(draws[:n].mean(axis=0), probs[0], atol=0.015)
    # Splitting on the uninformative last column is a local maximum: restarts avoid it.
    m = MixtureModel(
        "bernoulli", 2, n_init=3, random_state=0, label_order="mean", tol=1e-8, max_iter=500
    ).fit(draws)
    # Sorted by the first column's probability: component 0 is probs[1].
    np.testing.assert_allclose(m.probabilities_, probs[[1, 0]], atol=0.03)
    np.testing.assert_allclose(m.weights_, [0.5, 0.5], atol=0.03)


def test_mixture_model_end_to_end(rng):
    X, _ = draw(rng, 400)
    m = MixtureModel("bernoulli", 3, n_init=2, random_state=1, tol=1e-8, max_iter=300).fit(X)
    assert m.probabilities_.shape == (3, 4)
    ref = logsumexp(scipy_log_joint(X, m.probabilities_, m.weights_), axis=1)
    np.testing.assert_allclose(m.score_samples(X), ref, rtol=1e-10)
    assert np.all(np.diff(m.lower_bounds_) >= -1e-9 * abs(m.lower_bounds_[-1]))
    # BIC counts K*D probabilities plus K - 1 weights.
    assert m.bic(X) == pytest.approx(-2 * ref.sum() + (12 + 2) * np.log(400), rel=1e-10)


def test_numpy_and_torch_fit_agree(rng):
    pytest.importorskip("torch")
    X, _ = draw(rng, 200)
    kw = dict(random_state=3, tol=1e-10, max_iter=15)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter may be reached; both runs alike
        a = MixtureModel("bernoulli", 2, **kw).fit(X)
        b = MixtureModel("bernoulli", 2, device="cpu", **kw).fit(X)
    np.testing.assert_allclose(b.probabilities_, a.probabilities_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(b.lower_bounds_, a.lower_bounds_, rtol=1e-10)
