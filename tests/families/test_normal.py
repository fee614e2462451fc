"""The Gaussian in the family contract: log-densities, statistics, M-step, parity with
GaussianMixture."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats as sps

import emix
from emix.backends.numpy_backend import NumpyBackend
from emix.exceptions import DegenerateComponentError, InputError
from emix.families import get_family
from emix.families.normal import Normal
from emix.models._kernels import GivenRespKernel, LogJointKernel, MixtureKernel, stats_from_acc

BACKEND = NumpyBackend()


def _bound(fam, X, w=None):
    return fam.bind(BACKEND.column_summary(X, w), X.shape[1])


def _pass(fam, X, params, weights, w=None, block_size=None):
    kernel = MixtureKernel(fam, params, weights)
    acc = BACKEND.stats_pass(X, w, kernel, block_size=block_size, width=fam.feature_width())
    return stats_from_acc(acc, len(X), fam)


def _resp_stats(fam, X, resp, w=None):
    kernel = GivenRespKernel(fam, lambda a, b: resp[a:b], resp.shape[1])
    return stats_from_acc(BACKEND.stats_pass(X, w, kernel), len(X), fam)


def _full(ct, covs, D):
    """Covariances of any type as (K, D, D) matrices."""
    if ct == "full":
        return covs
    if ct == "diag":
        return np.stack([np.diag(c) for c in covs])
    return np.stack([c * np.eye(D) for c in covs])


def _random_covs(rng, ct, K, D):
    if ct == "full":
        A = rng.normal(size=(K, D, D))
        return A @ np.transpose(A, (0, 2, 1)) + 0.5 * np.eye(D)
    if ct == "diag":
        return rng.uniform(0.3, 3.0, size=(K, D))
    return rng.uniform(0.3, 3.0, size=K)


@pytest.mark.parametrize("ct", ["full", "diag", "spherical"])
def test_log_density_equals_scipy_far_from_zero(ct, rng):
    # An offset of 1e3 and unequal column scales: the frame keeps the expanded form exact.
    D, K = 3, 2
    X = rng.normal(size=(400, D)) * [1.0, 4.0, 0.25] + [1e3, -2e3, 5.0]
    fam = _bound(Normal(ct), X)
    covs = _random_covs(rng, ct, K, D)
    params = {"means": X[:K] + 0.5, "covariances": covs}
    w = np.array([0.35, 0.65])
    L = BACKEND.map_rows(X, LogJointKernel(fam, params, w), width=fam.feature_width())
    full = _full(ct, covs, D)
    ref = np.stack(
        [np.log(w[k]) + sps.multivariate_normal(params["means"][k], full[k]).logpdf(X)
         for k in range(K)], axis=1
    )
    np.testing.assert_allclose(L, ref, rtol=1e-10, atol=1e-10)
    stats = _pass(fam, X, params, w)
    assert stats.loglik == pytest.approx(np.logaddexp.reduce(ref, axis=1).sum(), rel=1e-12)


@pytest.mark.parametrize("ct", ["full", "diag", "spherical"])
def test_m_step_is_the_weighted_mean_and_covariance_plus_reg_covar(ct, rng):
    D, K = 2, 3
    X = rng.normal(size=(200, D)) * [2.0, 0.5] + [50.0, -3.0]
    sw = rng.uniform(0.0, 2.0, size=len(X))
    resp = rng.dirichlet(np.ones(K), size=len(X))
    fam = _bound(Normal(ct, reg_covar=1e-3), X, sw)
    params, issues = fam.m_step(_resp_stats(fam, X, resp, sw), None)
    assert issues == []
    for k in range(K):
        r = resp[:, k] * sw
        mean = r @ X / r.sum()
        cov = (X - mean).T @ ((X - mean) * r[:, None]) / r.sum()
        np.testing.assert_allclose(params["means"][k], mean, rtol=1e-12)
        want = {"full": cov + 1e-3 * np.eye(D), "diag": np.diag(cov) + 1e-3,
                "spherical": np.trace(cov) / D + 1e-3}[ct]
        np.testing.assert_allclose(params["covariances"][k], want, rtol=1e-10)


@given(
    n=st.integers(2, 40), cut=st.integers(0, 40), ct=st.sampled_from(["full", "diag", "spherical"]),
    weighted=st.booleans(), seed=st.integers(0, 2**16),
)
def test_statistics_of_two_blocks_add_up_to_those_of_the_whole(n, cut, ct, weighted, seed):
    rng = np.random.default_rng(seed)
    cut = min(cut, n)
    X = rng.normal(size=(n, 2)) + 10.0
    w = rng.uniform(0, 3, size=n) if weighted else None
    fam = _bound(Normal(ct), X, w)
    params = {"means": np.array([[10.0, 10.0], [11.0, 9.0]]),
              "covariances": _random_covs(rng, ct, 2, 2)}
    weights = np.array([0.4, 0.6])
    whole = _pass(fam, X, params, weights, w)
    parts = [
        _pass(fam, X[a:b], params, weights, None if w is None else w[a:b])
        for a, b in ((0, cut), (cut, n)) if b > a
    ]
    total = sum(parts)
    np.testing.assert_allclose(total.S, whole.S, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(total.nk, whole.nk, rtol=1e-12, atol=1e-12)
    assert total.loglik == pytest.approx(whole.loglik, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("ct", ["full", "diag", "spherical"])
def test_em_agrees_with_gaussian_mixture_from_the_same_start(ct, rng):
    D, K, n_iter = 2, 3, 12
    X = np.vstack([rng.normal(c, s, size=(150, D)) for c, s in ((0, 1.0), (4, 0.5), (8, 2.0))])
    X = X + 100.0
    means = X[[0, 160, 310]] + 0.1
    covs = {"full": np.stack([np.eye(D)] * K), "diag": np.ones((K, D)),
            "spherical": np.ones(K)}[ct]
    weights = np.full(K, 1.0 / K)
    fam = _bound(Normal(ct, reg_covar=1e-4), X)
    params = {"means": means, "covariances": covs}
    logliks = []
    for _ in range(n_iter):
        stats = _pass(fam, X, params, weights)
        logliks.append(stats.loglik / stats.weight_sum)
        params, issues = fam.m_step(stats, params)
        weights = stats.nk / stats.weight_sum
        assert issues == []
    gm = emix.GaussianMixture(
        K, covariance_type=ct, reg_covar=1e-4, max_iter=n_iter, tol=0.0,
        weights_init=np.full(K, 1.0 / K), means_init=means, precisions_init=1.0 / covs
        if ct != "full" else np.linalg.inv(covs),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # not converged at tol=0: expected
        gm.fit(X)
    np.testing.assert_allclose(weights, gm.weights_, rtol=1e-8)
    np.testing.assert_allclose(params["means"], gm.means_, rtol=1e-9)
    np.testing.assert_allclose(params["covariances"], gm.covariances_, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(logliks[-1], gm.lower_bound_, rtol=1e-10)


def test_empty_component_keeps_previous_parameters_and_is_named(rng):
    X = rng.normal(size=(50, 2))
    fam = _bound(Normal("diag"), X)
    resp = np.zeros((50, 2))
    resp[:, 0] = 1.0
    stats = _resp_stats(fam, X, resp)
    with pytest.raises(DegenerateComponentError, match="component 1"):
        fam.m_step(stats, None)
    prev = {"means": np.array([[0.0, 0.0], [7.0, 7.0]]),
            "covariances": np.array([[1.0, 1.0], [2.0, 3.0]])}
    params, issues = fam.m_step(stats, prev)
    np.testing.assert_array_equal(params["means"][1], prev["means"][1])
    np.testing.assert_array_equal(params["covariances"][1], prev["covariances"][1])
    assert any("component 1" in m and "empty" in m for m in issues)


def test_collapsed_component_is_named():
    X = np.concatenate([np.full((30, 1), 2.0), np.linspace(-5, 5, 60)[:, None]])
    fam = _bound(Normal("full"), X)
    resp = np.zeros((90, 2))
    resp[:30, 0] = 1.0
    resp[30:, 1] = 1.0
    params, issues = fam.m_step(_resp_stats(fam, X, resp), None)
    assert len(issues) == 1 and "component 0 collapsed" in issues[0]
    with pytest.raises(DegenerateComponentError, match="component 0"):
        _bound(Normal("full", reg_covar=0.0), X).m_step(_resp_stats(fam, X, resp), None)


@pytest.mark.parametrize("ct", ["full", "diag", "spherical"])
def test_sampling_then_fitting_recovers_the_parameters(ct, rng):
    D = 2
    fam = Normal(ct)
    fam.n_features = D
    covs = {"full": np.array([[[2.0, 0.6], [0.6, 0.5]]]), "diag": np.array([[2.0, 0.5]]),
            "spherical": np.array([1.5])}[ct]
    params = {"means": np.array([[3.0, -1.0]]), "covariances": covs}
    X = fam.sample(params, 0, 20000, rng)
    bound = _bound(fam, X)
    fit, _ = bound.m_step(_resp_stats(bound, X, np.ones((len(X), 1))), None)
    np.testing.assert_allclose(fit["means"], params["means"], atol=0.05)
    np.testing.assert_allclose(fit["covariances"], covs, rtol=0.05, atol=0.02)


def test_float32_data_give_float64_close_answers(rng):
    # Rounded to float32 first, so that only the arithmetic differs.
    X = (rng.normal(size=(300, 2)) * 3 + 1e4).astype(np.float32).astype(np.float64)
    params = {"means": X[:2].copy(), "covariances": np.stack([np.eye(2) * 9] * 2)}
    out = []
    for dt in (np.float64, np.float32):
        Xd = X.astype(dt)
        fam = _bound(Normal("full"), Xd)
        out.append(_pass(fam, Xd, params, np.array([0.5, 0.5])))
    assert out[1].loglik == pytest.approx(out[0].loglik, rel=1e-6)


def test_torch_cpu_gives_the_same_statistics(rng):
    torch_backend = pytest.importorskip("emix.backends.torch_backend")
    pytest.importorskip("torch")
    X = rng.normal(size=(257, 3)) + 5
    for ct in ("full", "diag", "spherical"):
        fam = _bound(Normal(ct), X)
        params = {"means": X[:2], "covariances": _random_covs(rng, ct, 2, 3)}
        kernel = MixtureKernel(fam, params, np.array([0.3, 0.7]))
        a = BACKEND.stats_pass(X, None, kernel, width=fam.feature_width())
        b = torch_backend.TorchBackend("cpu").stats_pass(X, None, kernel, width=fam.feature_width())
        for key in a:
            np.testing.assert_allclose(b[key], a[key], rtol=1e-11, atol=1e-11)


def test_parameter_count_registry_and_checks():
    fam = get_family("gaussian", covariance_type="diag")
    assert isinstance(fam, Normal)
    fam.n_features = 3
    assert fam.n_parameters(2) == 2 * (3 + 3)
    assert Normal("full").bind(None, 3).n_parameters(2) == 2 * (3 + 6)
    assert Normal("spherical").bind(None, 3).n_parameters(4) == 4 * (3 + 1)
    with pytest.raises(InputError, match="covariance_type"):
        Normal("tied")
    with pytest.raises(InputError, match="reg_covar"):
        Normal(reg_covar=-1.0)
    full = Normal("full").bind(None, 2)
    good = {"means": np.zeros((2, 2)), "covariances": np.stack([np.eye(2)] * 2)}
    assert full.validate_params(good, 2)["means"].shape == (2, 2)
    bad = {"means": np.zeros((2, 2)), "covariances": np.stack([np.eye(2), -np.eye(2)])}
    with pytest.raises(InputError, match="component 1"):
        full.validate_params(bad, 2)
    with pytest.raises(InputError, match="shape"):
        full.validate_params({"means": np.zeros((2, 2)), "covariances": np.ones((2, 2))}, 2)
    with pytest.raises(InputError, match="bound"):
        Normal().natural(good)
