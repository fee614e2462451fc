"""The missing-value hooks of the Normal and Student-t families against direct
computation: scipy.stats marginals, closed-form conditional moments, brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import digamma, gammaln
from scipy.stats import multivariate_normal

from emix.backends.numpy_backend import NumpyOps
from emix.families.normal import Normal
from emix.families.student_t import StudentT

CTS = ("full", "tied", "diag", "spherical")
K, D, N = 2, 3, 60


def _setup(rng, family, dtype=np.float64):
    X = rng.normal(size=(N, D)) * 2.0 + 5.0
    hide = rng.random(X.shape) < 0.3
    hide[:3] = False  # some complete rows in the block
    hide[3] = True  # and one with nothing observed
    X[hide] = np.nan
    summary = {"mean": np.nanmean(X, axis=0), "var": np.nanvar(X, axis=0)}
    fam = family.bind(summary, D)
    ct = fam.covariance_type
    means = rng.normal(size=(K, D)) + 5.0
    A = rng.normal(size=(K, D, D))
    full = A @ np.transpose(A, (0, 2, 1)) + np.eye(D)
    cov = {"full": full, "tied": full[0], "diag": np.diagonal(full, axis1=1, axis2=2).copy(),
           "spherical": np.array([1.5, 0.7])}[ct]
    params = {"means": means, fam._cov_key: cov}
    if isinstance(fam, StudentT):
        params["df"] = np.array([3.0, 8.0])
    return X.astype(dtype), fam, params, fam._full_covs(params)


def _expected_T(fam, x, mean, cov, w_fill=1.0):
    """E[T(z) | x_O] (brute force) in the family's frame, weights for fill and cov."""
    s, c = fam.frame.scale, fam.frame.center
    o = ~np.isnan(x)
    m = ~o
    f = x.copy()
    C = np.zeros((D, D))
    if m.any():
        if o.any():
            Soo, Smo = cov[np.ix_(o, o)], cov[np.ix_(m, o)]
            f[m] = mean[m] + Smo @ np.linalg.solve(Soo, x[o] - mean[o])
            C[np.ix_(m, m)] = cov[np.ix_(m, m)] - Smo @ np.linalg.solve(Soo, Smo.T)
        else:
            f[m] = mean[m]
            C = cov.copy()
    z = (f - c) / s
    Cz = C / s**2
    E2 = w_fill * np.outer(z, z) + Cz
    layout = fam._missing_layout()
    if layout == "full":
        iu, ju = np.triu_indices(D)
        quad = E2[iu, ju]
    elif layout == "diag":
        quad = np.diag(E2)
    else:
        quad = [np.trace(E2)]
    return np.concatenate([quad, w_fill * z])


@pytest.mark.parametrize("ct", CTS)
def test_normal_hooks_equal_direct_computation(rng, ct):
    X, fam, params, covs = _setup(rng, Normal(ct))
    ops = NumpyOps(X.dtype)
    O = ~np.isnan(X)
    st = fam.missing_state(ops, params)
    L, ctx = fam.missing_log_joint(ops, st, X, O)
    want = np.zeros((K, N))
    for n, x in enumerate(X):
        o = O[n]
        for k in range(K):
            if o.any():
                want[k, n] = multivariate_normal(params["means"][k][o],
                                                 covs[k][np.ix_(o, o)]).logpdf(x[o])
    np.testing.assert_allclose(L, want, rtol=1e-10, atol=1e-10)
    # Complete rows agree with the complete-data form.
    eta, A = fam.natural(params)
    Lc = eta @ fam.features(ops, X[:3]) - A[:, None]
    np.testing.assert_allclose(L[:, :3], Lc, rtol=1e-10)
    R = rng.random((K, N))
    S, extra = fam.missing_stats(ops, st, ctx, R)
    want_S = sum(R[k, n] * _expected_T(fam, X[n], params["means"][k], covs[k])
                 for n in range(N) for k in [0]), sum(
        R[1, n] * _expected_T(fam, X[n], params["means"][1], covs[1]) for n in range(N))
    np.testing.assert_allclose(S, np.stack(want_S), rtol=1e-9, atol=1e-9)
    assert extra == {}


@pytest.mark.parametrize("ct", ["full", "diag"])
def test_student_t_hooks_equal_direct_computation(rng, ct):
    X, fam, params, covs = _setup(rng, StudentT(ct))
    ops = NumpyOps(X.dtype)
    O = ~np.isnan(X)
    df = params["df"]
    st = fam.missing_state(ops, params)
    L, ctx = fam.missing_log_joint(ops, st, X, O)
    R = rng.random((K, N))
    S, extra = fam.missing_stats(ops, st, ctx, R)
    want_L = np.zeros((K, N))
    want_S = np.zeros_like(S)
    su = np.zeros(K)
    slu = np.zeros(K)
    for n, x in enumerate(X):
        o = O[n]
        p = int(o.sum())
        for k in range(K):
            mu, cov, nu = params["means"][k], covs[k], df[k]
            if p:
                d = x[o] - mu[o]
                delta = float(d @ np.linalg.solve(cov[np.ix_(o, o)], d))
                logdet = np.linalg.slogdet(cov[np.ix_(o, o)])[1]
            else:
                delta, logdet = 0.0, 0.0
            want_L[k, n] = (gammaln((nu + p) / 2) - gammaln(nu / 2) - p / 2 * math.log(nu * math.pi)
                            - logdet / 2 - (nu + p) / 2 * math.log1p(delta / nu))
            u = (nu + p) / (nu + delta)
            want_S[k] += R[k, n] * _expected_T(fam, x, mu, cov, w_fill=u)
            su[k] += R[k, n] * u
            # E[log tau] - E[tau] written as the complete-data M-step reads it (with D).
            e_log = digamma((nu + p) / 2) - math.log((nu + delta) / 2)
            slu[k] += R[k, n] * (e_log - u - digamma((nu + D) / 2) + math.log((nu + D) / 2))
    np.testing.assert_allclose(L, want_L, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(S, want_S, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(extra["sum_u"], su, rtol=1e-10)
    np.testing.assert_allclose(extra["sum_log_u_minus_u"], slu, rtol=1e-10)


def test_conditional_means_and_draws(rng):
    X, fam, params, covs = _setup(rng, Normal("full"))
    O = ~np.isnan(X)
    cm = fam.conditional_means(params, X, O)
    n = int(np.flatnonzero(~O.all(axis=1) & O.any(axis=1))[0])
    o, m = O[n], ~O[n]
    k = 1
    mu, cov = params["means"][k], covs[k]
    want = mu[m] + cov[np.ix_(m, o)] @ np.linalg.solve(cov[np.ix_(o, o)], X[n, o] - mu[o])
    np.testing.assert_allclose(cm[k, n, m], want, rtol=1e-12)
    assert np.array_equal(cm[k, n, o], X[n, o])
    rows = np.repeat(X[n:n + 1], 3000, axis=0)
    draws = fam.conditional_draw(params, rows, np.repeat(O[n:n + 1], 3000, axis=0),
                                 np.full(3000, k), np.random.default_rng(0))
    cvar = cov[np.ix_(m, m)] - cov[np.ix_(m, o)] @ np.linalg.solve(cov[np.ix_(o, o)], cov[np.ix_(o, m)])
    np.testing.assert_allclose(draws[:, m].mean(axis=0), want, atol=4 * np.sqrt(np.diag(cvar).max() / 3000))
    np.testing.assert_allclose(np.var(draws[:, m], axis=0), np.diag(cvar), rtol=0.1)
    assert np.all(draws[:, o] == X[n, o])


def test_student_t_draws_scale_the_conditional_by_the_latent_scale(rng):
    # tau | x_O ~ Gamma((nu + p) / 2, rate (nu + delta) / 2), then x_M | tau is the
    # Gaussian conditional with covariance / tau: its variance is cvar E[1 / tau] =
    # cvar (nu + delta) / (nu + p - 2).
    from emix.families import gaussian_missing as GM

    X, fam, params, covs = _setup(rng, StudentT("full"))
    O = ~np.isnan(X)
    rows = np.flatnonzero(~O.all(axis=1) & O.any(axis=1))
    z = rng.integers(0, K, N).astype(np.int64)
    got = np.empty(rows.size)
    GM._numba_kernels().observed_mahalanobis(X, O, z, params["means"], covs, rows, got)
    for i, n in enumerate(rows):
        o, k = O[n], z[n]
        d = X[n, o] - params["means"][k, o]
        assert got[i] == pytest.approx(d @ np.linalg.solve(covs[k][np.ix_(o, o)], d), rel=1e-10)
    n, k = int(rows[0]), 1
    o, m = O[n], ~O[n]
    mu, cov, nu = params["means"][k], covs[k], params["df"][k]
    d = X[n, o] - mu[o]
    delta = d @ np.linalg.solve(cov[np.ix_(o, o)], d)
    want = mu[m] + cov[np.ix_(m, o)] @ np.linalg.solve(cov[np.ix_(o, o)], d)
    cvar = cov[np.ix_(m, m)] - cov[np.ix_(m, o)] @ np.linalg.solve(cov[np.ix_(o, o)], cov[np.ix_(o, m)])
    scale = (nu + delta) / (nu + o.sum() - 2)
    draws = fam.conditional_draw(params, np.repeat(X[n:n + 1], 4000, axis=0),
                                 np.repeat(O[n:n + 1], 4000, axis=0), np.full(4000, k),
                                 np.random.default_rng(0))
    np.testing.assert_allclose(draws[:, m].mean(axis=0), want,
                               atol=4 * np.sqrt(scale * np.diag(cvar).max() / 4000))
    np.testing.assert_allclose(np.var(draws[:, m], axis=0), scale * np.diag(cvar), rtol=0.12)
    assert np.all(draws[:, o] == X[n, o])


@pytest.mark.parametrize("family", [StudentT("full"), Normal("full"), Normal("diag")],
                         ids=["t-full", "normal-full", "normal-diag"])
def test_torch_hooks_equal_numpy(rng, family):
    torch = pytest.importorskip("torch")
    from emix.backends.torch_backend import TorchOps

    X, fam, params, _ = _setup(rng, family)
    O = ~np.isnan(X)
    R = rng.random((K, N))
    out = []
    for ops, conv in ((NumpyOps(X.dtype), np.asarray),
                      (TorchOps(torch.float64, torch.device("cpu")), torch.as_tensor)):
        st = fam.missing_state(ops, params)
        L, ctx = fam.missing_log_joint(ops, st, conv(X), conv(O))
        S, extra = fam.missing_stats(ops, st, ctx, conv(R))
        out.append([ops.to_host(a) for a in (L, S) + tuple(extra.values())])
    for a, b in zip(*out):
        np.testing.assert_allclose(a, b, rtol=1e-12)
