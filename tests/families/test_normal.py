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


CTS = ["full", "tied", "diag", "spherical"]


def _full(ct, covs, D, K=2):
    """Covariances of any type as (K, D, D) matrices."""
    if ct == "full":
        return covs
    if ct == "tied":
        return np.stack([covs] * K)
    if ct == "diag":
        return np.stack([np.diag(c) for c in covs])
    return np.stack([c * np.eye(D) for c in covs])


def _random_covs(rng, ct, K, D):
    if ct == "full":
        A = rng.normal(size=(K, D, D))
        return A @ np.transpose(A, (0, 2, 1)) + 0.5 * np.eye(D)
    if ct == "tied":
        A = rng.normal(size=(D, D))
        return A @ A.T + 0.5 * np.eye(D)
    if ct == "diag":
        return rng.uniform(0.3, 3.0, size=(K, D))
    return rng.uniform(0.3, 3.0, size=K)


@pytest.mark.parametrize("ct", CTS)
def test_log_density_equals_scipy_far_from_zero(ct, rng):
    # An offset of 1e3 and unequal column scales: the frame keeps the expanded form exact.
    D, K = 3, 2
    X = rng.normal(size=(400, D)) * [1.0, 4.0, 0.25] + [1e3, -2e3, 5.0]
    fam = _bound(Normal(ct), X)
    covs = _random_covs(rng, ct, K, D)
    params = {"means": X[:K] + 0.5, "covariances": covs}
    w = np.array([0.35, 0.65])
    L = BACKEND.map_rows(X, LogJointKernel(fam, params, w), width=fam.feature_width())
    full = _full(ct, covs, D, K)
    ref = np.stack(
        [np.log(w[k]) + sps.multivariate_normal(params["means"][k], full[k]).logpdf(X)
         for k in range(K)], axis=1
    )
    np.testing.assert_allclose(L, ref, rtol=1e-10, atol=1e-10)
    stats = _pass(fam, X, params, w)
    assert stats.loglik == pytest.approx(np.logaddexp.reduce(ref, axis=1).sum(), rel=1e-12)


@pytest.mark.parametrize("ct", CTS)
def test_m_step_is_the_weighted_mean_and_covariance_plus_reg_covar(ct, rng):
    D, K = 2, 3
    X = rng.normal(size=(200, D)) * [2.0, 0.5] + [50.0, -3.0]
    sw = rng.uniform(0.0, 2.0, size=len(X))
    resp = rng.dirichlet(np.ones(K), size=len(X))
    fam = _bound(Normal(ct, reg_covar=1e-3), X, sw)
    params, issues = fam.m_step(_resp_stats(fam, X, resp, sw), None)
    assert issues == []
    pooled = np.zeros((D, D))
    for k in range(K):
        r = resp[:, k] * sw
        mean = r @ X / r.sum()
        cov = (X - mean).T @ ((X - mean) * r[:, None]) / r.sum()
        pooled += cov * r.sum() / sw.sum()
        np.testing.assert_allclose(params["means"][k], mean, rtol=1e-12)
        if ct == "tied":
            continue
        want = {"full": cov + 1e-3 * np.eye(D), "diag": np.diag(cov) + 1e-3,
                "spherical": np.trace(cov) / D + 1e-3}[ct]
        np.testing.assert_allclose(params["covariances"][k], want, rtol=1e-10)
    if ct == "tied":
        # One covariance: the responsibility-weighted within-component scatter, pooled.
        assert params["covariances"].shape == (D, D)
        np.testing.assert_allclose(params["covariances"], pooled + 1e-3 * np.eye(D), rtol=1e-10)


@given(
    n=st.integers(2, 40), cut=st.integers(0, 40), ct=st.sampled_from(CTS),
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


@pytest.mark.parametrize("ct", CTS)
def test_em_agrees_with_gaussian_mixture_from_the_same_start(ct, rng):
    D, K, n_iter = 2, 3, 12
    X = np.vstack([rng.normal(c, s, size=(150, D)) for c, s in ((0, 1.0), (4, 0.5), (8, 2.0))])
    X = X + 100.0
    means = X[[0, 160, 310]] + 0.1
    covs = {"full": np.stack([np.eye(D)] * K), "tied": np.eye(D), "diag": np.ones((K, D)),
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
        if ct not in ("full", "tied") else np.linalg.inv(covs),
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


@pytest.mark.parametrize("ct", CTS)
def test_sampling_then_fitting_recovers_the_parameters(ct, rng):
    D = 2
    fam = Normal(ct)
    fam.n_features = D
    covs = {"full": np.array([[[2.0, 0.6], [0.6, 0.5]]]), "tied": np.array([[2.0, 0.6], [0.6, 0.5]]),
            "diag": np.array([[2.0, 0.5]]), "spherical": np.array([1.5])}[ct]
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
    for ct in CTS:
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
    # Tied: one shared covariance, D(D+1)/2 parameters, plus K means.
    assert Normal("tied").bind(None, 3).n_parameters(4) == 6 + 4 * 3
    with pytest.raises(InputError, match="covariance_type"):
        Normal("banana")
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


# --------------------------------------------------------------------------- tied
def _three_blobs(rng):
    X = np.vstack([rng.normal(c, 1.0, size=(120, 2)) @ [[1.0, 0.4], [0.0, 0.8]] + c
                   for c in (0.0, 5.0, 10.0)])
    return X + [300.0, -40.0]


def test_tied_mixture_model_equals_gaussian_mixture_and_keeps_the_shared_covariance(rng, tmp_path):
    X = _three_blobs(rng)
    K, n_iter = 3, 15
    # The start lists the components out of order, so label_order must renumber them.
    means = X[[300, 0, 150]] + 0.2
    start = dict(weights_init=[0.2, 0.3, 0.5], max_iter=n_iter, tol=0.0)
    gm = emix.GaussianMixture(K, covariance_type="tied", reg_covar=1e-4, means_init=means,
                              precisions_init=np.eye(2), **start)
    mm = emix.MixtureModel(Normal("tied", reg_covar=1e-4), K, label_order="mean",
                           params_init={"means": means, "covariances": np.eye(2)}, **start)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", emix.ConvergenceWarning)
        gm.fit(X)
        mm.fit(X)
    order = np.argsort(gm.means_[:, 0])
    assert not np.array_equal(order, np.arange(K))  # the renumbering was not the identity
    assert mm.covariances_.shape == gm.covariances_.shape == (2, 2)
    np.testing.assert_allclose(mm.covariances_, gm.covariances_, rtol=1e-8)
    np.testing.assert_allclose(mm.means_, gm.means_[order], rtol=1e-8)
    np.testing.assert_allclose(mm.weights_, gm.weights_[order], rtol=1e-8)
    np.testing.assert_allclose(mm.lower_bounds_, gm.lower_bounds_, rtol=1e-10)
    assert mm.bic(X) == pytest.approx(gm.bic(X), rel=1e-12)
    np.testing.assert_allclose(mm.predict_proba(X), gm.predict_proba(X)[:, order], atol=1e-9)
    # Save and load keep the (D, D) layout.
    path = tmp_path / "tied.emix"
    mm.save(path)
    back = emix.load(path)
    np.testing.assert_array_equal(back.covariances_, mm.covariances_)
    np.testing.assert_array_equal(back.score_samples(X), mm.score_samples(X))
    # Sampling draws every component with the shared covariance.
    Xs, ys = mm.sample(20000)
    for k in range(K):
        np.testing.assert_allclose(np.cov(Xs[ys == k].T), mm.covariances_, rtol=0.1, atol=0.05)


def test_permute_params_leaves_shared_parameters_alone():
    from emix.families._base import permute_params

    fam = Normal("tied")
    assert fam.shared_param_names == ("covariances",)
    assert Normal("full").shared_param_names == ()
    # D = K = 2: a shape test could not tell the shared matrix from per-component rows.
    cov = np.array([[2.0, 0.5], [0.5, 1.0]])
    out = permute_params({"means": np.array([[0.0, 1.0], [2.0, 3.0]]), "covariances": cov},
                         np.array([1, 0]), fam.shared_param_names)
    np.testing.assert_array_equal(out["means"], [[2.0, 3.0], [0.0, 1.0]])
    np.testing.assert_array_equal(out["covariances"], cov)


def test_tied_parameters_are_checked():
    fam = Normal("tied").bind(None, 2)
    good = fam.validate_params({"means": np.zeros((3, 2)), "covariances": np.eye(2)}, 3)
    assert good["covariances"].shape == (2, 2)
    with pytest.raises(InputError, match=r"shape \(2, 2\)"):
        fam.validate_params({"means": np.zeros((3, 2)), "covariances": np.stack([np.eye(2)] * 3)}, 3)
    with pytest.raises(InputError, match="tied covariances is not symmetric"):
        fam.validate_params({"means": np.zeros((3, 2)), "covariances": [[1.0, 0.5], [0.0, 1.0]]}, 3)
    with pytest.raises(InputError, match="tied covariance.*not positive definite"):
        fam.validate_params({"means": np.zeros((3, 2)), "covariances": -np.eye(2)}, 3)
    with pytest.raises(InputError, match="one entry per component"):
        fam.validate_params({"means": np.zeros((2, 2)), "covariances": np.eye(2)}, 3)


def test_tied_reg_covar_zero_refuses_a_round_off_variance():
    # Column 1 is constant within every component: the pooled variance there is 0.
    X = np.column_stack([np.linspace(-3, 3, 60), np.repeat([1.0, 4.0], 30)])
    resp = np.zeros((60, 2))
    resp[:30, 0] = 1.0
    resp[30:, 1] = 1.0
    fam = _bound(Normal("tied", reg_covar=0.0), X)
    with pytest.raises(DegenerateComponentError, match="the tied covariance.*column 1"):
        fam.m_step(_resp_stats(fam, X, resp), None)
    # Regularised, it is named as a collapse of the shared covariance.
    fam = _bound(Normal("tied", reg_covar=1e-6), X)
    _, issues = fam.m_step(_resp_stats(fam, X, resp), None)
    assert any("shared covariance collapsed" in m for m in issues), issues


def test_tied_reg_gap_is_the_closed_form(rng):
    X = _three_blobs(rng)
    resp = rng.dirichlet(np.ones(3), size=len(X))
    fam = _bound(Normal("tied", reg_covar=0.05), X)
    stats = _resp_stats(fam, X, resp)
    gap = fam.reg_gap(stats)
    # Closed form: W/2 sum_i [log(1 + r/l_i) - r/(l_i + r)] / W over the pooled scatter.
    params, _ = fam.m_step(stats, None)
    lam = np.linalg.eigvalsh(params["covariances"] - 0.05 * np.eye(2))
    want = 0.5 * np.sum(np.log1p(0.05 / lam) - 0.05 / (lam + 0.05))
    assert gap == pytest.approx(want, rel=1e-10)


def test_a_product_with_a_tied_gaussian_part_orders_its_components(rng):
    X = _three_blobs(rng)[:240]
    counts = np.concatenate([rng.poisson(2.0, 120), rng.poisson(9.0, 120)])[:, None]
    data = np.hstack([X, counts])
    m = emix.MixtureModel({"gaussian": [0, 1], "poisson": [2]}, 2, covariance_type="tied",
                          label_order="mean", random_state=0)
    m.fit(data)
    cov = m.params_["gaussian"]["covariances"]
    assert cov.shape == (2, 2)
    assert m.params_["gaussian"]["means"][0, 0] < m.params_["gaussian"]["means"][1, 0]
    np.testing.assert_allclose(np.sort(m.params_["poisson"]["rates"][:, 0]), [2.0, 9.0], rtol=0.2)


def test_student_t_with_a_tied_scatter(rng):
    from emix.families.student_t import StudentT

    D, K = 2, 2
    X = rng.standard_t(5, size=(300, D)) + [20.0, -5.0]
    fam = _bound(StudentT("tied"), X)
    assert fam.shared_param_names == ("scales",)
    scale = np.array([[1.5, 0.4], [0.4, 0.8]])
    params = {"means": X[:K] + 0.3, "scales": scale, "df": np.array([3.0, 7.0])}
    w = np.array([0.45, 0.55])
    L = BACKEND.map_rows(X, LogJointKernel(fam, params, w), width=fam.feature_width())
    ref = np.stack(
        [np.log(w[k]) + sps.multivariate_t(params["means"][k], scale, df=params["df"][k]).logpdf(X)
         for k in range(K)], axis=1
    )
    np.testing.assert_allclose(L, ref, rtol=1e-10, atol=1e-10)
    assert fam.n_parameters(K) == K * D + 3 + K
    m = emix.MixtureModel(StudentT("tied", reg_covar=0.0), K, params_init=params,
                          weights_init=w, max_iter=20, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", emix.ConvergenceWarning)
        m.fit(X)
    assert m.scales_.shape == (D, D)
    h = m.lower_bounds_
    assert np.all(np.diff(h) >= -1e-10 * np.abs(h[1:]))
