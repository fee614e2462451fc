"""The Binomial family (``families.binomial.Binomial``): kernels against scipy.stats.binom
and the functional binomial E-step, the M-step against the closed form, monotone EM,
support errors, end-to-end fits."""

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
from emix.families import binomial as B
from emix.families import get_family
from emix.families._base import LOG_ZERO
from emix.families.binomial import Binomial
from emix.models._kernels import GivenRespKernel, LogJointKernel, MixtureKernel, stats_from_acc

BK = NumpyBackend()
P = np.array([[0.3, 0.9], [0.6, 0.5], [0.85, 0.1]])
W = np.array([0.25, 0.45, 0.3])
N_TRIALS = 12


def bound(X, n_trials=N_TRIALS):
    return Binomial(n_trials).bind(BK.column_summary(X, None), X.shape[1])


def draw(rng, n, probs=P, weights=W, n_trials=N_TRIALS):
    z = rng.choice(len(weights), size=n, p=weights)
    return rng.binomial(n_trials, probs[z]).astype(np.float64), z


def draw_pairs(rng, n, probs=(0.2, 0.7), weights=(0.4, 0.6)):
    z = rng.choice(len(weights), size=n, p=weights)
    trials = rng.integers(0, 25, n)
    heads = rng.binomial(trials, np.asarray(probs)[z])
    return np.column_stack([heads, trials]).astype(np.float64), z


def e_step(fam, X, probs, weights, w=None, block_size=16):
    kernel = MixtureKernel(fam, {"probabilities": probs}, weights)
    acc = BK.stats_pass(X, w, kernel, block_size=block_size, width=fam.feature_width())
    return stats_from_acc(acc, len(X), fam)


def scipy_log_joint(X, probs, weights, n_trials=N_TRIALS):
    """``log w_k + sum_d log Binom(h_d | n, p_kd)`` by scipy.stats; (heads, trials)
    columns when ``n_trials`` is None."""
    out = []
    for k in range(len(weights)):
        if n_trials is None:
            lp = stats.binom.logpmf(X[:, 0], X[:, 1], probs[k, 0])
        else:
            lp = stats.binom.logpmf(X, n_trials, probs[k]).sum(axis=1)
        out.append(np.log(weights[k]) + lp)
    return np.stack(out, axis=1)


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 2e-5)])
def test_log_joint_matches_scipy(rng, dtype, tol):
    X, _ = draw(rng, 99)
    fam = bound(X)
    assert fam.feature_width() == 4
    L = BK.map_rows(X.astype(dtype), LogJointKernel(fam, {"probabilities": P}, W), block_size=10)
    assert L.shape == (99, 3) and L.dtype == dtype
    ref = scipy_log_joint(X, P, W)
    np.testing.assert_allclose(L, ref, rtol=tol, atol=tol * np.abs(ref).max())


def test_pairs_match_scipy_and_the_functional_e_step(rng):
    X, _ = draw_pairs(rng, 120)
    fam = bound(X, None)
    probs = np.array([[0.25], [0.65]])
    weights = np.array([0.5, 0.5])
    L = BK.map_rows(X, LogJointKernel(fam, {"probabilities": probs}, weights), block_size=32)
    np.testing.assert_allclose(L, scipy_log_joint(X, probs, weights, None), rtol=1e-12)
    # The same statistics as the functional binomial E-step the teaching code uses.
    s = e_step(fam, X, probs, weights)
    ref = B.suff_stats(X[:, 0], X[:, 1], B.BinomialMixtureParams(weights, probs[:, 0]))
    np.testing.assert_allclose(s.nk, ref.nk, rtol=1e-12)
    np.testing.assert_allclose(s.S[:, 0], ref.heads, rtol=1e-12)
    np.testing.assert_allclose(s.S[:, 0] + s.S[:, 1], ref.trials, rtol=1e-12)
    assert s.loglik == pytest.approx(ref.loglik, rel=1e-12)


def test_edge_probabilities_are_exact():
    """p = 0 or 1 (a valid MLE) gives exact log-densities, impossible rows LOG_ZERO."""
    X = np.array([[10.0], [0.0], [4.0]])
    fam = bound(X, 10)
    probs = np.array([[1.0], [0.0]])
    L = BK.map_rows(X, LogJointKernel(fam, {"probabilities": probs}, np.ones(2)))
    np.testing.assert_array_equal(L[0, 0], 0.0)
    np.testing.assert_array_equal(L[1, 1], 0.0)
    assert L[0, 1] <= LOG_ZERO and L[2, 0] <= LOG_ZERO and L[2, 1] <= LOG_ZERO


def test_m_step_is_weighted_closed_form(rng):
    X, _ = draw(rng, 80)
    fam = bound(X)
    R = rng.dirichlet(np.ones(3), size=80)
    w = rng.uniform(0.1, 3.0, 80)
    acc = BK.stats_pass(X, w, GivenRespKernel(fam, lambda a, b: R[a:b], 3), block_size=16, width=4)
    params, issues = fam.m_step(stats_from_acc(acc, 80, fam), None)
    Rw = R * w[:, None]
    # Credited heads over credited trials.
    expected = (Rw.T @ X) / (N_TRIALS * Rw.sum(axis=0))[:, None]
    np.testing.assert_allclose(params["probabilities"], expected, rtol=1e-12)
    assert issues == []


def test_em_matches_the_functional_binomial_mixture(rng):
    """Iterates of the family through the kernels equal those of families.binomial's
    functions (the reference implementation of the two-coins teaching code)."""
    X, _ = draw_pairs(rng, 200)
    fam = bound(X, None)
    probs, weights = np.array([[0.4], [0.5]]), np.array([0.5, 0.5])
    ref = B.BinomialMixtureParams(weights.copy(), probs[:, 0].copy())
    history = []
    for _ in range(30):
        s = e_step(fam, X, probs, weights)
        rs = B.suff_stats(X[:, 0], X[:, 1], ref)
        assert s.loglik == pytest.approx(rs.loglik, rel=1e-12)
        history.append(s.loglik)
        probs = fam.m_step(s, {"probabilities": probs})[0]["probabilities"]
        weights = s.nk / s.weight_sum
        ref = B.m_step(rs, ref)[0]
        np.testing.assert_allclose(probs[:, 0], ref.probs, rtol=1e-10)
        np.testing.assert_allclose(weights, ref.weights, rtol=1e-10)
    assert np.all(np.diff(history) >= -1e-9 * abs(history[-1]))
    assert history[-1] > history[0] + 1.0


@settings(max_examples=15)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(5, 40), K=st.integers(1, 3))
def test_em_never_decreases(seed, n, K):
    g = np.random.default_rng(seed)
    X = g.binomial(8, g.uniform(0, 1, 2), size=(n, 2)).astype(np.float64)
    fam = bound(X, 8)
    probs = g.uniform(0.0, 1.0, (K, 2))
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
    parts = e_step(fam, X[:29], P, W) + e_step(fam, X[29:], P, W)
    np.testing.assert_allclose(parts.S, whole.S, rtol=1e-12)
    assert parts.loglik == pytest.approx(whole.loglik, rel=1e-12)
    counts = rng.integers(0, 4, 60)
    weighted = e_step(fam, X, P, W, w=counts.astype(np.float64))
    repeated = e_step(fam, np.repeat(X, counts, axis=0), P, W)
    np.testing.assert_allclose(weighted.S, repeated.S, rtol=1e-12)
    assert weighted.loglik == pytest.approx(repeated.loglik, rel=1e-12)


def test_component_without_trials_keeps_its_probability():
    X = np.array([[0.0, 0.0], [0.0, 0.0], [3.0, 5.0], [4.0, 5.0]])
    fam = bound(X, None)
    R = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    acc = BK.stats_pass(X, None, GivenRespKernel(fam, lambda a, b: R[a:b], 2), width=2)
    stats_ = stats_from_acc(acc, 4, fam)
    params, issues = fam.m_step(stats_, None)
    np.testing.assert_allclose(params["probabilities"], [[0.5], [0.7]])
    assert len(issues) == 1 and "component 0" in issues[0] and "no trials" in issues[0]
    params, _ = fam.m_step(stats_, {"probabilities": np.array([[0.2], [0.9]])})
    assert params["probabilities"][0, 0] == 0.2


def test_support_errors_name_row_and_column():
    names = np.array(["heads", "flips"], dtype=object)
    with pytest.raises(InputError, match=r"heads exceed.*row 1, column 'heads' is 6"):
        Binomial().check_support(np.array([[1.0, 5.0], [6.0, 5.0]]), names)
    with pytest.raises(InputError, match=r"row 0, column 1 is 2\.5"):
        Binomial().check_support(np.array([[1.0, 2.5]]))
    with pytest.raises(InputError, match=r"non-negative; row 0, column 0 is -1"):
        Binomial(4).check_support(np.array([[-1.0, 2.0]]))
    with pytest.raises(InputError, match=r"n_trials=4.*row 1, column 1 is 5"):
        Binomial(4).check_support(np.array([[1.0, 2.0], [0.0, 5.0]]))
    with pytest.raises(InputError, match="two columns"):
        Binomial().check_support(np.array([[1.0, 2.0, 3.0]]))
    with pytest.raises(InputError, match="row 2, column 0"):
        MixtureModel("binomial", 1, family_options={"n_trials": 3}).fit(np.array([[1.0], [2.0], [4.0]]))


def test_constructor_validate_params_and_counts():
    for bad in (-1, 2.5, True, "ten", [3]):
        with pytest.raises(InputError, match="n_trials"):
            Binomial(bad)
    fam = Binomial(5).bind({"mean": np.ones(3)}, 3)
    assert fam.n_parameters(2) == 6 and fam.feature_width() == 6
    with pytest.raises(InputError, match="component 0, count 2"):
        fam.validate_params({"probabilities": [[0.1, 0.2, 1.3]]}, 1)
    pairs = Binomial().bind({"mean": np.array([2.0, 10.0])}, 2)
    assert pairs.n_parameters(2) == 2 and pairs.feature_width() == 2
    # (K,) is accepted for a single count, as BinomialMixture's probs_ are.
    assert pairs.validate_params({"probabilities": [0.2, 0.8]}, 2)["probabilities"].shape == (2, 1)
    np.testing.assert_allclose(
        pairs.component_means({"probabilities": np.array([[0.2], [0.8]])}), [[2.0, 10.0], [8.0, 10.0]]
    )
    with pytest.raises(InputError, match="n_trials"):
        pairs.sample({"probabilities": np.array([[0.2]])}, 0, 3, np.random.default_rng(0))
    with pytest.raises(InputError, match="two columns"):
        Binomial().bind({"mean": np.ones(3)}, 3)
    assert get_family("binomial", n_trials=3).get_config() == {"n_trials": 3}


def test_sample_then_fit_recovers(rng):
    probs = np.array([[0.2, 0.9], [0.7, 0.4]])
    fam = Binomial(10).bind({"mean": np.ones(2)}, 2)
    n = 5000
    draws = np.vstack([fam.sample({"probabilities": probs}, k, n, rng) for k in range(2)])
    assert draws.shape == (2 * n, 2) and np.all((draws >= 0) & (draws <= 10))
    m = MixtureModel(
        "binomial", 2, n_init=2, random_state=0, label_order="mean", tol=1e-9, max_iter=500,
        family_options={"n_trials": 10},
    ).fit(draws)
    np.testing.assert_allclose(m.probabilities_, probs, atol=0.02)
    np.testing.assert_allclose(m.weights_, [0.5, 0.5], atol=0.03)


def test_mixture_model_end_to_end_on_pairs(rng):
    X, _ = draw_pairs(rng, 400)
    m = MixtureModel("binomial", 2, random_state=1, tol=1e-9, max_iter=1000).fit(X)
    assert m.probabilities_.shape == (2, 1)
    ref = logsumexp(scipy_log_joint(X, m.probabilities_, m.weights_, None), axis=1)
    np.testing.assert_allclose(m.score_samples(X), ref, rtol=1e-10)
    assert np.all(np.diff(m.lower_bounds_) >= -1e-9 * abs(m.lower_bounds_[-1]))
    np.testing.assert_allclose(np.sort(m.probabilities_[:, 0]), [0.2, 0.7], atol=0.05)


def test_numpy_and_torch_fit_agree(rng):
    pytest.importorskip("torch")
    X, _ = draw(rng, 200)
    kw = dict(random_state=3, tol=1e-10, max_iter=15, family_options={"n_trials": N_TRIALS})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter may be reached; both runs alike
        a = MixtureModel("binomial", 2, **kw).fit(X)
        b = MixtureModel("binomial", 2, device="cpu", **kw).fit(X)
    np.testing.assert_allclose(b.probabilities_, a.probabilities_, rtol=1e-8)
    np.testing.assert_allclose(b.lower_bounds_, a.lower_bounds_, rtol=1e-10)


def test_binomial_mixture_is_the_general_model(rng):
    """BinomialMixture runs MixtureModel(family=Binomial()) on (heads, trials) columns:
    from the same start both give the same path, parameters and densities."""
    from emix import BinomialMixture

    X, _ = draw_pairs(rng, 300)
    kw = dict(weights_init=[0.5, 0.5], tol=1e-10, max_iter=500)
    bm = BinomialMixture(2, probs_init=[0.3, 0.6], **kw).fit(X[:, 0], n_trials=X[:, 1])
    mm = MixtureModel("binomial", 2, params_init={"probabilities": [[0.3], [0.6]]}, **kw).fit(X)
    assert isinstance(bm.mixture_model_, MixtureModel)
    np.testing.assert_array_equal(bm.lower_bounds_, mm.lower_bounds_)
    np.testing.assert_array_equal(bm.probs_, mm.probabilities_[:, 0])
    np.testing.assert_array_equal(bm.weights_, mm.weights_)
    s = bm.score_samples(X[:, 0], n_trials=X[:, 1])
    np.testing.assert_allclose(s, mm.score_samples(X), rtol=1e-14)
    # And the functional reference (families.binomial) agrees on the densities.
    ref = B.responsibilities(B.log_joint(X[:, 0], X[:, 1], bm.params_))[1]
    np.testing.assert_allclose(s, ref, rtol=1e-12)
