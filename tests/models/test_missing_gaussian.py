"""GaussianMixture with missing values (NaN): exact EM for incomplete data.

References: closed forms of the Gaussian's marginals and conditionals, scipy.stats,
scipy.optimize on the observed-data likelihood, and a textbook row-by-row EM for the
multivariate normal with missing data (Little & Rubin, section 11.2).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

import emix
from emix import GaussianMixture
from emix._missing import MissingDataWarning

CTS = ("full", "tied", "diag", "spherical")

# Many fits here run a fixed number of iterations (tol=0) to compare paths.
pytestmark = pytest.mark.filterwarnings("ignore::emix.exceptions.ConvergenceWarning")


def _correlated(rng, n, D=3, shift=0.0):
    A = np.array([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.5, 0.3, 0.8]])[:D, :D]
    return rng.normal(size=(n, D)) @ A.T + shift


def _two_clusters(rng, n=400):
    X = np.vstack([_correlated(rng, n // 2), _correlated(rng, n - n // 2, shift=6.0)])
    return X[rng.permutation(n)]


def _hide(rng, X, rate):
    """X with cells hidden completely at random (no row loses every cell)."""
    Xm = X.copy()
    hide = rng.random(X.shape) < rate
    hide[hide.all(axis=1), 0] = False
    Xm[hide] = np.nan
    return Xm


def _full_covs(g):
    K, D = g.means_.shape
    c = g.covariances_
    if g.covariance_type == "full":
        return c
    if g.covariance_type == "tied":
        return np.broadcast_to(c, (K, D, D))
    if g.covariance_type == "diag":
        return np.array([np.diag(v) for v in c])
    return np.array([v * np.eye(D) for v in c])


# --------------------------------------------------------------------------- no NaN
@pytest.mark.parametrize("ct", CTS)
def test_without_nan_identical_to_complete_path(rng, ct):
    X = _two_clusters(rng, 300)
    a = GaussianMixture(2, covariance_type=ct, random_state=1, max_iter=20, tol=0).fit(X)
    b = GaussianMixture(2, covariance_type=ct, random_state=1, max_iter=20, tol=0,
                        missing="error").fit(X)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_", "lower_bounds_"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert np.array_equal(a.score_samples(X), b.score_samples(X))
    assert np.array_equal(a.impute(X), X)


# --------------------------------------------------------------------------- references
def _observed_loglik(X, mean, cov):
    """Observed-data log-likelihood of one Gaussian, by scipy per missingness pattern."""
    total = 0.0
    miss = np.isnan(X)
    for pattern in np.unique(miss, axis=0):
        o = ~pattern
        rows = X[(miss == pattern).all(axis=1)][:, o]
        total += np.sum(multivariate_normal(mean[o], cov[np.ix_(o, o)]).logpdf(rows))
    return total


def _classic_em(X, n_iter=3000, tol=1e-14):
    """Row-by-row EM for the multivariate normal with missing data."""
    N, D = X.shape
    mu = np.nanmean(X, axis=0)
    S = np.diag(np.nanvar(X, axis=0))
    for _ in range(n_iter):
        old = np.concatenate([mu, S.ravel()])
        s1 = np.zeros(D)
        s2 = np.zeros((D, D))
        for x in X:
            o = ~np.isnan(x)
            m = ~o
            f = x.copy()
            C = np.zeros((D, D))
            if m.any():
                Soo = S[np.ix_(o, o)]
                Smo = S[np.ix_(m, o)]
                f[m] = mu[m] + Smo @ np.linalg.solve(Soo, x[o] - mu[o])
                C[np.ix_(m, m)] = S[np.ix_(m, m)] - Smo @ np.linalg.solve(Soo, Smo.T)
            s1 += f
            s2 += np.outer(f, f) + C
        mu = s1 / N
        S = s2 / N - np.outer(mu, mu)
        if np.abs(np.concatenate([mu, S.ravel()]) - old).max() < tol:
            break
    return mu, S


def test_one_component_is_the_observed_data_mle(rng):
    X = _hide(rng, _correlated(rng, 40), 0.25)
    X = X[~np.isnan(X).all(axis=1)]
    g = GaussianMixture(1, reg_covar=0.0, tol=1e-13, max_iter=2000).fit(X)
    mu_em, S_em = _classic_em(X)
    np.testing.assert_allclose(g.means_[0], mu_em, atol=1e-7)
    np.testing.assert_allclose(g.covariances_[0], S_em, atol=1e-7)
    # Direct maximisation over the mean and a Cholesky factor (log-diagonal).
    D = X.shape[1]
    il = np.tril_indices(D)

    def unpack(theta):
        L = np.zeros((D, D))
        L[il] = theta[D:]
        L[np.diag_indices(D)] = np.exp(np.diag(L))
        return theta[:D], L @ L.T

    def nll(theta):
        m, S = unpack(theta)
        return -_observed_loglik(X, m, S)

    L0 = np.linalg.cholesky(np.diag(np.nanvar(X, axis=0)))
    L0[np.diag_indices(D)] = np.log(np.diag(L0))
    res = optimize.minimize(nll, np.concatenate([np.nanmean(X, axis=0), L0[il]]),
                            method="BFGS", options={"gtol": 1e-9})
    m_opt, S_opt = unpack(res.x)
    np.testing.assert_allclose(g.means_[0], m_opt, atol=1e-4)
    np.testing.assert_allclose(g.covariances_[0], S_opt, atol=1e-4)
    assert g.score(X) * len(X) == pytest.approx(-res.fun, abs=1e-6)
    assert g.score(X) * len(X) >= -res.fun - 1e-9


@pytest.mark.parametrize("ct", CTS)
def test_score_samples_is_the_observed_marginal_mixture(rng, ct):
    X = _hide(rng, _two_clusters(rng, 200), 0.3)
    X = X[~np.isnan(X).all(axis=1)]
    g = GaussianMixture(2, covariance_type=ct, random_state=0, max_iter=10, tol=0).fit(X)
    covs = _full_covs(g)
    want = []
    for x in X:
        o = ~np.isnan(x)
        want.append(logsumexp([
            math.log(g.weights_[k])
            + multivariate_normal(g.means_[k][o], covs[k][np.ix_(o, o)]).logpdf(x[o])
            for k in range(2)
        ]))
    np.testing.assert_allclose(g.score_samples(X), want, rtol=1e-10, atol=1e-10)
    p = g.predict_proba(X)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-12)


# --------------------------------------------------------------------------- against simpler methods
def _errors(g, means, covs):
    order = np.argsort(g.means_[:, 0])
    m = g.means_[order]
    c = _full_covs(g)[order]
    return np.abs(m - means).sum() + np.abs(c - covs).sum()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mcar_beats_complete_case_and_mean_imputation(seed):
    rng = np.random.default_rng(seed)
    X = _two_clusters(rng, 600)
    A = np.array([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.5, 0.3, 0.8]])
    means = np.array([np.zeros(3), np.full(3, 6.0)])
    covs = np.array([A @ A.T] * 2)
    Xm = _hide(rng, X, 0.2)
    kw = dict(n_components=2, random_state=0, tol=1e-6, max_iter=500)
    em = _errors(GaussianMixture(**kw).fit(Xm), means, covs)
    cc = _errors(GaussianMixture(**kw).fit(Xm[~np.isnan(Xm).any(axis=1)]), means, covs)
    filled = np.where(np.isnan(Xm), np.nanmean(Xm, axis=0), Xm)
    mi = _errors(GaussianMixture(**kw).fit(filled), means, covs)
    assert em < cc, (em, cc)
    assert em < mi, (em, mi)


def test_impute_beats_column_means(rng):
    X = _correlated(rng, 500)
    Xm = _hide(rng, X, 0.2)
    hidden = np.isnan(Xm)
    g = GaussianMixture(1, random_state=0).fit(Xm)
    Xi = g.impute(Xm)
    assert not np.isnan(Xi).any()
    assert np.array_equal(Xi[~hidden], X[~hidden])
    rmse = np.sqrt(np.mean((Xi[hidden] - X[hidden]) ** 2))
    base = np.sqrt(np.mean((np.nanmean(Xm, axis=0)[np.nonzero(hidden)[1]] - X[hidden]) ** 2))
    assert rmse < 0.8 * base, (rmse, base)


def test_multiple_imputations_match_the_conditional_distribution(rng):
    X = _hide(rng, _correlated(rng, 300), 0.1)
    g = GaussianMixture(1, random_state=0).fit(X)
    row = np.array([[0.7, np.nan, -0.4]])
    draws = g.impute(row, n_draws=4000, random_state=3)
    assert draws.shape == (4000, 1, 3)
    assert np.all(draws[:, 0, [0, 2]] == row[0, [0, 2]])
    S, mu = g.covariances_[0], g.means_[0]
    o, m = [0, 2], [1]
    cond_mean = mu[m] + S[np.ix_(m, o)] @ np.linalg.solve(S[np.ix_(o, o)], row[0, o] - mu[o])
    cond_var = S[1, 1] - S[np.ix_(m, o)] @ np.linalg.solve(S[np.ix_(o, o)], S[np.ix_(o, m)])
    d = draws[:, 0, 1]
    assert d.var() == pytest.approx(float(cond_var[0, 0]), rel=0.08)
    assert d.mean() == pytest.approx(float(cond_mean[0]), abs=4 * math.sqrt(cond_var[0, 0] / 4000))
    np.testing.assert_allclose(g.impute(row)[0, 1], cond_mean[0], rtol=1e-12)


# --------------------------------------------------------------------------- monotone
@settings(max_examples=12)
@given(
    seed=st.integers(0, 10_000),
    rate=st.floats(0.05, 0.4),
    ct=st.sampled_from(CTS),
    K=st.integers(1, 3),
)
def test_loglik_history_never_decreases(seed, rate, ct, K):
    rng = np.random.default_rng(seed)
    X = _hide(rng, _two_clusters(rng, 120), rate)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingDataWarning)
        warnings.simplefilter("ignore", emix.ConvergenceWarning)
        warnings.simplefilter("ignore", emix.DegenerateComponentWarning)
        g = GaussianMixture(K, covariance_type=ct, random_state=seed, max_iter=30, tol=0,
                            reg_covar=1e-6).fit(X)
    h = g.lower_bounds_
    assert np.all(np.diff(h) >= -1e-9 * np.abs(h[1:])), np.diff(h)


# --------------------------------------------------------------------------- API
def test_sample_weights_equal_repeated_rows(rng):
    X = _hide(rng, _two_clusters(rng, 120), 0.2)
    X = X[~np.isnan(X).all(axis=1)]
    w = rng.integers(0, 3, size=len(X)).astype(float)
    kw = dict(n_components=2, random_state=0, max_iter=15, tol=0, init_params="random_from_data")
    a = GaussianMixture(**kw, means_init=[[0, 0, 0], [6, 6, 6]]).fit(X, sample_weight=w)
    b = GaussianMixture(**kw, means_init=[[0, 0, 0], [6, 6, 6]]).fit(np.repeat(X, w.astype(int), axis=0))
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(a.covariances_, b.covariances_, rtol=1e-9, atol=1e-9)


def test_warm_start_continues_and_n_init(rng):
    X = _hide(rng, _two_clusters(rng, 200), 0.2)
    X = X[~np.isnan(X).all(axis=1)]
    full = GaussianMixture(2, random_state=0, max_iter=12, tol=0).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", emix.ConvergenceWarning)
        g = GaussianMixture(2, random_state=0, max_iter=6, tol=0, warm_start=True).fit(X)
        g.fit(X)
    np.testing.assert_allclose(g.means_, full.means_, rtol=1e-10)
    best = GaussianMixture(2, random_state=0, n_init=3, max_iter=30).fit(X)
    assert best.lower_bound_ >= full.lower_bound_ - 1e-3


def test_all_missing_rows_are_warned_once_and_get_the_prior(rng):
    X = _hide(rng, _two_clusters(rng, 100), 0.1)
    X[[3, 50]] = np.nan
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        g = GaussianMixture(2, random_state=0).fit(X)
    msgs = [str(r.message) for r in rec if issubclass(r.category, MissingDataWarning)]
    assert len(msgs) == 1 and msgs[0].startswith("2 rows have every value missing"), msgs
    assert "rows 3, 50" in msgs[0]
    np.testing.assert_allclose(g.predict_proba(X[[3]])[0], g.weights_, rtol=1e-12)
    assert g.score_samples(X[[3, 50]]) == pytest.approx([0.0, 0.0], abs=1e-12)
    np.testing.assert_allclose(g.impute(X[[3]])[0], g.weights_ @ g.means_, rtol=1e-12)
    # BIC counts the rows with an observed value, and the observed log-likelihood.
    n = len(X) - 2
    want = -2 * g.score_samples(X).sum() + g._n_parameters() * math.log(n)
    assert g.bic(X) == pytest.approx(want, rel=1e-12)


def test_inf_is_an_error_naming_the_cell(rng):
    X = _hide(rng, _two_clusters(rng, 50), 0.1)
    X[7, 2] = np.inf
    with pytest.raises(emix.InputError, match=r"inf.*row.? 7.*column 2"):
        GaussianMixture(2).fit(X)
    g = GaussianMixture(2, random_state=0).fit(np.nan_to_num(X, posinf=0.0))
    with pytest.raises(emix.InputError, match=r"inf.*row.? 7.*column 2"):
        g.predict(X)


def test_missing_error_keeps_the_strict_behaviour(rng):
    X = _two_clusters(rng, 50)
    X[4, 1] = np.nan
    with pytest.raises(emix.InputError, match=r"NaN.*row.? 4.*column 1"):
        GaussianMixture(2, missing="error").fit(X)
    with pytest.raises(emix.InputError, match="missing must be one of"):
        GaussianMixture(2, missing="drop").fit(X)
    with pytest.raises(emix.InputError, match="column 1 of X has no observed value"):
        Y = X.copy()
        Y[:, 1] = np.nan
        GaussianMixture(2).fit(Y)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
@pytest.mark.parametrize("ct", CTS)
def test_torch_equals_numpy(rng, ct, device):
    torch = pytest.importorskip("torch")
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    X = _hide(rng, _two_clusters(rng, 150 if device == "cpu" else 3000), 0.2)
    kw = dict(n_components=2, covariance_type=ct, random_state=0, max_iter=5, tol=0)
    a = GaussianMixture(**kw).fit(X)
    b = GaussianMixture(**kw, device=device).fit(X)
    np.testing.assert_allclose(b.means_, a.means_, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(b.covariances_, a.covariances_, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(b.lower_bounds_, a.lower_bounds_, rtol=1e-11)
    np.testing.assert_allclose(b.score_samples(X), a.score_samples(X), rtol=1e-9)
    np.testing.assert_allclose(b.impute(X), a.impute(X), rtol=1e-9, atol=1e-11)
    c = GaussianMixture(**kw, device=device).fit(X.astype(np.float32))
    np.testing.assert_allclose(c.means_, a.means_, rtol=1e-4, atol=1e-4)


def test_float32_with_nan(rng):
    X = _hide(rng, _two_clusters(rng, 300), 0.2).astype(np.float32)
    X = X[~np.isnan(X).all(axis=1)]
    a = GaussianMixture(2, random_state=0, max_iter=15, tol=0).fit(X)
    b = GaussianMixture(2, random_state=0, max_iter=15, tol=0).fit(X.astype(np.float64))
    assert a.means_.dtype == np.float32
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("ct", CTS)
def test_fast_passes_equal_the_per_pattern_reference(rng, ct, monkeypatch):
    """The low-rank (full, tied) and independent-column (diag, spherical) passes equal
    the per-pattern natural-parameter pass, with patterns large and small."""
    from emix.families import gaussian_missing as GM

    X = _hide(rng, _two_clusters(rng, 300), 0.25)
    X = np.vstack([X, np.repeat(X[:6], 40, axis=0)])  # a few patterns with many rows
    kw = dict(n_components=2, covariance_type=ct, random_state=0, max_iter=4, tol=0)
    fast = GaussianMixture(**kw).fit(X)
    monkeypatch.setattr(GM, "_LOW_RANK", False)
    ref = GaussianMixture(**kw).fit(X)
    np.testing.assert_allclose(fast.means_, ref.means_, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fast.covariances_, ref.covariances_, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(fast.lower_bounds_, ref.lower_bounds_, rtol=1e-13)
    np.testing.assert_allclose(fast.score_samples(X), ref.score_samples(X), rtol=1e-12)


@pytest.mark.parametrize("ct", ["full", "diag"])
def test_partial_fit_first_step_is_one_em_iteration(rng, ct):
    # Stepwise EM's first step (step size 1) is the E-step on the batch and the M-step
    # on its statistics: one iteration of the batch fit from the same start.
    Xm = _hide(rng, _two_clusters(rng, 300), 0.2)
    start = GaussianMixture(2, covariance_type=ct, random_state=0).fit(_two_clusters(rng, 300))
    kw = dict(covariance_type=ct, weights_init=start.weights_, means_init=start.means_,
              precisions_init=start.precisions_)
    step = GaussianMixture(2, **kw).partial_fit(Xm)
    one = GaussianMixture(2, max_iter=1, tol=0.0, **kw).fit(Xm)
    np.testing.assert_allclose(step.means_, one.means_, rtol=1e-10)
    np.testing.assert_allclose(step.covariances_, one.covariances_, rtol=1e-10)
    # A later batch is taken in the first batch's frame and moves the fit.
    before = step.means_.copy()
    step.partial_fit(_hide(rng, _two_clusters(rng, 300), 0.2))
    assert step.n_batches_seen_ == 2 and not np.allclose(step.means_, before)


def test_minibatch_with_nan_counts_empty_rows_once_in_the_whole_data(rng):
    Xm = _hide(rng, _two_clusters(rng, 400), 0.2)
    Xm[[5, 250]] = np.nan
    with pytest.warns(MissingDataWarning, match=r"2 rows .* \(rows 5, 250\)") as rec:
        g = GaussianMixture(2, random_state=0).fit(Xm, algorithm="minibatch",
                                                   batch_rows=100, n_epochs=2)
    assert sum(issubclass(r.category, MissingDataWarning) for r in rec) == 1
    assert g.n_batches_seen_ == 8
    centres = np.sort(g.means_[:, 0])
    np.testing.assert_allclose(centres, [0.0, 6.0], atol=0.5)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), block=st.integers(7, 400), big=st.sampled_from([4, 16, 1024]),
       ct=st.sampled_from(["full", "tied"]), weighted=st.booleans())
def test_low_rank_pass_is_additive_over_any_blocks(seed, block, big, ct, weighted):
    """The low-rank pass's statistics do not depend on where blocks cut the sorted rows
    or on which pieces take the one-product or the padded route: they equal the
    per-pattern reference pass, and hence add up over blocks."""
    import emix.families.gaussian as G
    from emix.backends.numpy_backend import NumpyBackend
    from emix.families import gaussian_missing as GM

    rng = np.random.default_rng(seed)
    X = _hide(rng, _two_clusters(rng, 240), 0.3)
    X = np.vstack([X, np.repeat(X[:3], 30, axis=0)])  # patterns with many rows
    miss = np.isnan(X)
    inc = np.flatnonzero(miss.any(axis=1) & ~miss.all(axis=1))
    groups = GM.group_patterns(miss[inc])
    Xs = X[inc][groups.order]
    groups = GM.PatternGroups(np.arange(len(inc)), groups.observed, groups.starts,
                              groups.n_missing)
    ws = rng.uniform(0.5, 2.0, len(inc)) if weighted else None
    g = GaussianMixture(2, covariance_type=ct, random_state=0, max_iter=2, tol=0).fit(
        _two_clusters(rng, 200))
    frame = G.Frame.from_data(np.nanmean(X, axis=0), np.nanvar(X, axis=0))
    plan = G.estep_plan(g._params, frame)
    be = NumpyBackend()
    old = GM._BIG_SEGMENT
    try:
        GM._BIG_SEGMENT = big
        fast = GM.missing_pass(be, Xs, ws, groups, plan, block_size=block)
    finally:
        GM._BIG_SEGMENT = old
    old = GM._LOW_RANK
    try:
        GM._LOW_RANK = False
        ref = GM.missing_pass(be, Xs, ws, groups, plan)
    finally:
        GM._LOW_RANK = old
    np.testing.assert_allclose(fast.resp_moments, ref.resp_moments, rtol=1e-10, atol=1e-9)
    assert fast.loglik == pytest.approx(ref.loglik, rel=1e-12)
    if ct == "tied":
        np.testing.assert_allclose(fast.scatter, ref.scatter, rtol=1e-10, atol=1e-9)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 300), D=st.sampled_from([1, 5, 57, 58, 70]),
       rate=st.sampled_from([0.05, 0.5]))
def test_group_patterns_orders_rows_by_count_then_bits_stably(seed, n, D, rate):
    # Both the integer-key path (D <= 57) and the byte-key path must give: patterns by
    # number of missing cells, then by their cells read as bits (first column highest),
    # and each pattern's rows in their original order.
    from emix.families import gaussian_missing as GM

    miss = np.random.default_rng(seed).random((n, D)) < rate
    g = GM.group_patterns(miss)
    assert sorted(g.order.tolist()) == list(range(n))
    rows = [g.order[a:b] for a, b in zip(g.starts[:-1], g.starts[1:])]
    for p, r in enumerate(rows):
        assert r.size and np.all(np.diff(r) > 0)
        assert np.all(miss[r] == ~g.observed[p]) and g.n_missing[p] == miss[r[0]].sum()
    keys = [(int(c), tuple(~o)) for c, o in zip(g.n_missing, g.observed)]
    assert all(a < b for a, b in zip(keys, keys[1:]))  # strictly: patterns are distinct
