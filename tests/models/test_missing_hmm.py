"""HMMs with missing emission values (NaN): the recursions against brute-force
enumeration of every state path on tiny problems, fitting, imputation and the
complete-data path unchanged."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as ss
from scipy.special import logsumexp

from emix import HMM
from emix.exceptions import InputError


# --------------------------------------------------------------------------- cases
def _case(name, rng, K, T):
    """``(emission, options, X (T, D) with NaN, params, log_B (T, K) from scipy)``.

    Some cells are missing, and row 2 entirely; ``log_B`` is the log-density of each
    row's observed cells (0 for the empty row), summed cell by cell with scipy.stats.
    """
    if name == "poisson":
        rates = rng.uniform(0.5, 6.0, size=(K, 2))
        X = rng.poisson(3.0, size=(T, 2)).astype(float)
        cell = lambda k: ss.poisson(rates[k]).logpmf(np.nan_to_num(X))  # noqa: E731
        params, opts, emission = {"rates": rates}, {}, "poisson"
    elif name == "gaussian-full":
        means = rng.normal(scale=2.0, size=(K, 3))
        B = rng.normal(size=(K, 3, 3))
        cov = B @ np.transpose(B, (0, 2, 1)) + 0.5 * np.eye(3)
        X = rng.normal(scale=2.0, size=(T, 3))
        X[0, 1] = np.nan
        X[2] = np.nan
        X[T - 1, [0, 2]] = np.nan
        O = ~np.isnan(X)
        # The marginal of a Gaussian over each row's observed coordinates.
        log_B = np.array([[
            ss.multivariate_normal(means[k][o], cov[k][np.ix_(o, o)]).logpdf(x[o]) if o.any() else 0.0
            for k in range(K)] for x, o in zip(X, O)])
        return "gaussian", {"covariance_type": "full"}, X, {"means": means, "covariances": cov}, log_B
    else:  # gaussian-diag
        means = rng.normal(scale=2.0, size=(K, 2))
        var = rng.uniform(0.3, 2.0, size=(K, 2))
        X = rng.normal(scale=2.0, size=(T, 2))
        cell = lambda k: ss.norm(means[k], np.sqrt(var[k])).logpdf(np.nan_to_num(X))  # noqa: E731
        params, opts, emission = {"means": means, "covariances": var}, {"covariance_type": "diag"}, "gaussian"
    X[0, 1] = np.nan
    X[2] = np.nan
    X[T - 1, 0] = np.nan
    O = ~np.isnan(X)
    log_B = np.stack([np.where(O, cell(k), 0.0).sum(axis=1) for k in range(K)], axis=1)
    return emission, opts, X, params, log_B


def _enumerate(log_B, pi, A):
    """Likelihood, filtered and smoothed probabilities and the best path of one sequence
    by summing over every one of the K^T state paths."""
    T, K = log_B.shape
    lpi, lA = np.log(pi), np.log(A)

    def path_logp(z):
        return (lpi[z[0]] + sum(lA[z[t - 1], z[t]] for t in range(1, len(z)))
                + sum(log_B[t, z[t]] for t in range(len(z))))

    paths = np.array(list(itertools.product(range(K), repeat=T)))
    lp = np.array([path_logp(z) for z in paths])
    loglik = logsumexp(lp)
    smoothed = np.stack([
        [np.exp(logsumexp(lp[paths[:, t] == k]) - loglik) for k in range(K)] for t in range(T)
    ])
    filtered = np.empty((T, K))
    for t in range(T):
        pre = np.array(list(itertools.product(range(K), repeat=t + 1)))
        lq = np.array([path_logp(z) for z in pre])
        filtered[t] = [np.exp(logsumexp(lq[pre[:, -1] == k]) - logsumexp(lq)) for k in range(K)]
    best = int(np.argmax(lp))
    return loglik, filtered, smoothed, paths[best], lp[best]


def _frozen(emission, opts, params, pi, A, K):
    """An HMM whose fit leaves the given parameters as they are (no EM iteration)."""
    return HMM(K, emission, startprob_init=pi, transmat_init=A, emission_init=params,
               max_iter=0, **opts)


@pytest.mark.parametrize("name,K,T", [("poisson", 3, 5), ("poisson", 2, 4),
                                      ("gaussian-diag", 3, 5), ("gaussian-full", 2, 5)])
def test_recursions_with_missing_cells_equal_enumeration(name, K, T, rng):
    emission, opts, X, params, log_B = _case(name, rng, K, T)
    pi = rng.dirichlet(np.ones(K))
    A = rng.dirichlet(np.ones(K), size=K)
    m = _frozen(emission, opts, params, pi, A, K).fit(X)
    loglik, filtered, smoothed, path, best = _enumerate(log_B, pi, A)
    # A whole missing step is still a time step: T rows out, emission 1 there.
    s = m.score_samples(X)
    assert s.shape == (T,)
    assert abs(s[2]) < 1e-12
    np.testing.assert_allclose(s.sum(), loglik, rtol=1e-10)
    np.testing.assert_allclose(m.score(X) * T, loglik, rtol=1e-10)
    np.testing.assert_allclose(m.filter(X), filtered, atol=1e-10)
    np.testing.assert_allclose(m.predict_proba(X), smoothed, atol=1e-10)
    logprob, vpath = m.decode(X)
    np.testing.assert_allclose(logprob, best, rtol=1e-10)
    np.testing.assert_array_equal(vpath, path)
    # Through the missing step the filter just propagates the chain.
    np.testing.assert_allclose(m.filter(X)[2], filtered[1] @ A, atol=1e-10)


def test_impute_is_the_smoothed_conditional_mean(rng):
    K, T = 3, 5
    emission, opts, X, params, log_B = _case("poisson", rng, K, T)
    pi = rng.dirichlet(np.ones(K))
    A = rng.dirichlet(np.ones(K), size=K)
    m = _frozen(emission, opts, params, pi, A, K).fit(X)
    _, _, smoothed, _, _ = _enumerate(log_B, pi, A)
    filled = m.impute(X)
    O = ~np.isnan(X)
    want = np.where(O, X, smoothed @ params["rates"])
    np.testing.assert_allclose(filled, want, rtol=1e-10)
    assert np.array_equal(filled[O], X[O])


def test_multiple_imputations_draw_paths_from_the_posterior(rng):
    K, T = 2, 4
    emission, opts, X, params, log_B = _case("poisson", rng, K, T)
    pi = np.array([0.5, 0.5])
    A = np.array([[0.9, 0.1], [0.2, 0.8]])
    m = _frozen(emission, opts, params, pi, A, K).fit(X)
    _, _, smoothed, _, _ = _enumerate(log_B, pi, A)
    n = 4000
    draws = m.impute(X, n_draws=n, random_state=0)
    assert draws.shape == (n, T, 2)
    O = ~np.isnan(X)
    assert np.all(draws[:, O] == X[O])
    # The empty row's cells: a Poisson mixture over its smoothed state probabilities.
    r = smoothed[2]
    mean = r @ params["rates"]
    var = r @ (params["rates"] + params["rates"] ** 2) - mean ** 2
    got = draws[:, 2, :]
    assert np.all(np.abs(got.mean(axis=0) - mean) <= 5 * np.sqrt(var / n))
    np.testing.assert_allclose(got.var(axis=0), var, rtol=0.1)


def test_sampled_paths_follow_the_joint_posterior(rng):
    from emix.models.hmm import sample_paths

    K, T = 2, 4
    _, _, X, params, log_B = _case("poisson", rng, K, T)
    pi = np.array([0.5, 0.5])
    A = np.array([[0.9, 0.1], [0.2, 0.8]])
    _, filtered, _, _, _ = _enumerate(log_B, pi, A)
    paths = np.array(list(itertools.product(range(K), repeat=T)))
    lp = np.log(pi)[paths[:, 0]] + sum(np.log(A)[paths[:, t - 1], paths[:, t]] for t in range(1, T))
    lp = lp + sum(log_B[t, paths[:, t]] for t in range(T))
    want = np.exp(lp - logsumexp(lp))  # p(path | x) for all K^T paths
    n = 6000
    draw_rng = np.random.default_rng(5)
    codes = sample_paths(filtered, A, np.array([T]), draw_rng, n) @ (K ** np.arange(T)[::-1])
    freq = np.bincount(codes, minlength=K ** T) / n
    assert np.all(np.abs(freq - want) <= 5 * np.sqrt(want * (1 - want) / n) + 1e-3)


def _chain_data(rng, T=400, p_missing=0.2):
    A = np.array([[0.95, 0.05], [0.1, 0.9]])
    z = np.zeros(T, dtype=int)
    for t in range(1, T):
        z[t] = rng.choice(2, p=A[z[t - 1]])
    rates = np.array([[1.0, 6.0], [7.0, 2.0]])
    X = rng.poisson(rates[z]).astype(float)
    Xm = X.copy()
    Xm[rng.random(X.shape) < p_missing] = np.nan
    return X, Xm, rates


def test_fit_with_missing_cells_keeps_empty_rows_and_recovers_rates(rng):
    X, Xm, rates = _chain_data(rng)
    Xm[7] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning: empty rows are time steps, kept
        m = HMM(2, "poisson", random_state=0, label_order="mean").fit(Xm)
    assert np.all(np.diff(m.lower_bounds_) >= -1e-12 * np.abs(m.lower_bounds_[1:]))
    np.testing.assert_allclose(m.rates_, rates, atol=0.6)
    assert m.score_samples(Xm).shape == (X.shape[0],)
    assert m.predict(Xm).shape == (X.shape[0],)


def test_no_nan_gives_the_complete_data_fit_bit_for_bit(rng):
    X, _, _ = _chain_data(rng, T=300)
    a = HMM(2, "poisson", random_state=1, missing="em").fit(X)
    b = HMM(2, "poisson", random_state=1, missing="error").fit(X)
    np.testing.assert_array_equal(a.lower_bounds_, b.lower_bounds_)
    np.testing.assert_array_equal(a.rates_, b.rates_)
    np.testing.assert_array_equal(a.transmat_, b.transmat_)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))


def test_missing_error_and_inf(rng):
    X, Xm, _ = _chain_data(rng, T=50)
    with pytest.raises(InputError, match="NaN"):
        HMM(2, "poisson", missing="error").fit(Xm)
    fitted = HMM(2, "poisson", random_state=0).fit(X)
    fitted.missing = "error"
    with pytest.raises(InputError, match="NaN"):
        fitted.predict(Xm)
    Xi = X.copy()
    Xi[3, 1] = np.inf
    with pytest.raises(InputError, match=r"inf.*rows? 3.*column 1"):
        HMM(2, "poisson").fit(Xi)
    Xc = X.copy()
    Xc[:, 1] = np.nan
    with pytest.raises(InputError, match="column 1 .*no observed value"):
        HMM(2, "poisson").fit(Xc)
    with pytest.raises(InputError, match="missing must be one of"):
        HMM(2, "poisson", missing="drop").fit(X)


@settings(max_examples=8)
@given(seed=st.integers(0, 2**16), frac=st.floats(0.05, 0.5))
def test_likelihood_never_decreases_with_missing_cells(seed, frac):
    rng = np.random.default_rng(seed)
    _, Xm, _ = _chain_data(rng, T=120, p_missing=frac)
    if np.isnan(Xm).all(axis=0).any():
        return
    m = HMM(2, "poisson", random_state=seed, max_iter=15, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence within 15 iterations is not the point
        m.fit(Xm)
    h = m.lower_bounds_
    assert np.all(np.diff(h) >= -1e-10 * np.abs(h[1:]))


def test_torch_cpu_equals_numpy_with_missing_cells(rng):
    pytest.importorskip("torch")
    _, Xm, _ = _chain_data(rng, T=200)
    a = HMM(2, "poisson", random_state=0).fit(Xm)
    b = HMM(2, "poisson", random_state=0, device="cpu").fit(Xm)
    np.testing.assert_allclose(a.rates_, b.rates_, rtol=1e-10)
    np.testing.assert_allclose(a.lower_bounds_, b.lower_bounds_, rtol=1e-12)
    np.testing.assert_allclose(a.predict_proba(Xm), b.predict_proba(Xm), atol=1e-10)


def test_gaussian_full_emissions_fit_with_missing_cells(rng):
    T = 500
    A = np.array([[0.95, 0.05], [0.1, 0.9]])
    z = np.zeros(T, dtype=int)
    for t in range(1, T):
        z[t] = rng.choice(2, p=A[z[t - 1]])
    means = np.array([[0.0, 0.0], [4.0, 3.0]])
    cov = np.array([[1.0, 0.8], [0.8, 1.0]])
    X = means[z] + rng.multivariate_normal(np.zeros(2), cov, size=T)
    Xm = _mcar(rng, X, 0.2)
    m = HMM(2, "gaussian", covariance_type="full", random_state=0, label_order="mean").fit(Xm)
    h = m.lower_bounds_
    assert np.all(np.diff(h) >= -1e-9 * np.abs(h[1:]))
    np.testing.assert_allclose(m.means_, means, atol=0.3)
    np.testing.assert_allclose(m.covariances_, np.stack([cov, cov]), atol=0.35)
    np.testing.assert_allclose(m.transmat_, A, atol=0.08)


def _mcar(rng, X, frac):
    Xm = X.copy()
    Xm[rng.random(X.shape) < frac] = np.nan
    return Xm


def test_bic_counts_rows_with_an_observed_value(rng):
    _, Xm, _ = _chain_data(rng, T=200)
    Xm[[4, 9]] = np.nan
    m = HMM(2, "poisson", random_state=0).fit(Xm)
    n_obs = int((~np.isnan(Xm)).any(axis=1).sum())
    assert n_obs < Xm.shape[0]
    want = -2.0 * m.score_samples(Xm).sum() + m._n_parameters() * np.log(n_obs)
    np.testing.assert_allclose(m.bic(Xm), want, rtol=1e-12)
