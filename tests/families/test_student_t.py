"""Student-t components by EM over latent scales: log-densities against scipy, the ECM
update, recovery of heavy-tailed components, the nested single-t MLE, fixed df."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from scipy import stats as sps
from scipy.special import digamma, gammaln

import emix
from emix.backends.numpy_backend import NumpyBackend
from emix.exceptions import DegenerateComponentError, InputError
from emix.families import get_family
from emix.families.student_t import DF_MAX, DF_MIN, StudentT, solve_df
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


def _em(fam, X, params, weights, n_iter, w=None):
    """``n_iter`` EM steps; returns the parameters, weights and the log-likelihood path
    (the log-likelihood of the parameters entering each step)."""
    path = []
    for _ in range(n_iter):
        stats = _pass(fam, X, params, weights, w)
        path.append(stats.loglik)
        params, _ = fam.m_step(stats, params)
        weights = stats.nk / stats.weight_sum
    return params, weights, np.array(path)


def _full(ct, scales, D):
    if ct == "full":
        return scales
    if ct == "diag":
        return np.stack([np.diag(c) for c in scales])
    return np.stack([c * np.eye(D) for c in scales])


def _random_scales(rng, ct, K, D):
    if ct == "full":
        A = rng.normal(size=(K, D, D))
        return A @ np.transpose(A, (0, 2, 1)) + 0.5 * np.eye(D)
    if ct == "diag":
        return rng.uniform(0.3, 3.0, size=(K, D))
    return rng.uniform(0.3, 3.0, size=K)


# ----------------------------------------------------------------- (a) log-densities
@pytest.mark.parametrize("ct", ["full", "diag", "spherical"])
def test_log_density_equals_scipy_multivariate_t(ct, rng):
    D, K = 3, 2
    X = sps.multivariate_t(np.array([100.0, -50.0, 3.0]), np.diag([1.0, 9.0, 0.25]), df=3).rvs(
        500, random_state=rng
    )
    fam = _bound(StudentT(ct), X)
    scales = _random_scales(rng, ct, K, D)
    params = {"means": X[:K] + 0.3, "scales": scales, "df": np.array([1.7, 12.0])}
    w = np.array([0.4, 0.6])
    L = BACKEND.map_rows(X, LogJointKernel(fam, params, w), width=fam.feature_width())
    full = _full(ct, scales, D)
    ref = np.stack(
        [np.log(w[k])
         + sps.multivariate_t(params["means"][k], full[k], df=params["df"][k]).logpdf(X)
         for k in range(K)], axis=1,
    )
    np.testing.assert_allclose(L, ref, rtol=1e-10, atol=1e-10)
    stats = _pass(fam, X, params, w)
    assert stats.loglik == pytest.approx(np.logaddexp.reduce(ref, axis=1).sum(), rel=1e-12)


def test_log_density_equals_scipy_t_in_one_dimension(rng):
    x = sps.t(2.5, loc=-3.0, scale=0.2).rvs(400, random_state=rng)
    X = x[:, None]
    for ct, scale in (("full", [[[0.04]], [[4.0]]]), ("diag", [[0.04], [4.0]]),
                      ("spherical", [0.04, 4.0])):
        fam = _bound(StudentT(ct), X)
        params = {"means": np.array([[-3.0], [1.0]]), "scales": np.array(scale),
                  "df": np.array([2.5, 0.8])}
        L = BACKEND.map_rows(X, LogJointKernel(fam, params, np.array([0.5, 0.5])))
        ref0 = np.log(0.5) + sps.t(2.5, loc=-3.0, scale=0.2).logpdf(x)
        ref1 = np.log(0.5) + sps.t(0.8, loc=1.0, scale=2.0).logpdf(x)
        np.testing.assert_allclose(L, np.stack([ref0, ref1], axis=1), rtol=1e-10, atol=1e-10)


# ----------------------------------------------------------------- statistics
def test_statistics_and_extra_sums_are_the_weighted_sums_they_claim(rng):
    D = 2
    X = rng.standard_t(3, size=(300, D)) + [4.0, -1.0]
    sw = rng.uniform(0, 2, size=len(X))
    fam = _bound(StudentT("full"), X, sw)
    params = {"means": np.array([[4.0, -1.0], [3.0, 0.0]]),
              "scales": _random_scales(rng, "full", 2, D), "df": np.array([3.0, 8.0])}
    w = np.array([0.3, 0.7])
    stats = _pass(fam, X, params, w, sw, block_size=37)
    # Brute force: responsibilities from scipy, u from the Mahalanobis distance.
    logp = np.stack([np.log(w[k]) + sps.multivariate_t(params["means"][k], params["scales"][k],
                                                       df=params["df"][k]).logpdf(X)
                     for k in range(2)], axis=1)
    R = np.exp(logp - np.logaddexp.reduce(logp, axis=1, keepdims=True)) * sw[:, None]
    s = fam.frame.scale
    for k in range(2):
        diff = X - params["means"][k]
        delta = np.einsum("ni,ij,nj->n", diff, np.linalg.inv(params["scales"][k]), diff)
        u = (params["df"][k] + D) / (params["df"][k] + delta)
        ru = R[:, k] * u
        z = (X - fam.frame.center) / s
        assert stats.nk[k] == pytest.approx(R[:, k].sum(), rel=1e-10)
        assert stats.extra["sum_u"][k] == pytest.approx(ru.sum(), rel=1e-10)
        assert stats.extra["sum_log_u_minus_u"][k] == pytest.approx(
            R[:, k] @ (np.log(u) - u), rel=1e-10)
        np.testing.assert_allclose(stats.S[k, -D:], ru @ z, rtol=1e-9)
        np.testing.assert_allclose(stats.S[k, 0], ru @ (z[:, 0] ** 2), rtol=1e-9)


@given(n=st.integers(2, 30), cut=st.integers(0, 30), weighted=st.booleans(),
       seed=st.integers(0, 2**16))
def test_statistics_of_two_blocks_add_up_to_those_of_the_whole(n, cut, weighted, seed):
    rng = np.random.default_rng(seed)
    cut = min(cut, n)
    X = rng.standard_t(2, size=(n, 2))
    w = rng.uniform(0, 3, size=n) if weighted else None
    fam = _bound(StudentT("diag"), X, w)
    params = {"means": np.array([[0.0, 0.0], [1.0, -1.0]]), "scales": np.ones((2, 2)),
              "df": np.array([2.0, 6.0])}
    weights = np.array([0.5, 0.5])
    whole = _pass(fam, X, params, weights, w)
    total = sum(_pass(fam, X[a:b], params, weights, None if w is None else w[a:b])
                for a, b in ((0, cut), (cut, n)) if b > a)
    np.testing.assert_allclose(total.S, whole.S, rtol=1e-10, atol=1e-12)
    for name in whole.extra:
        np.testing.assert_allclose(total.extra[name], whole.extra[name], rtol=1e-10, atol=1e-12)
    assert total.loglik == pytest.approx(whole.loglik, rel=1e-12, abs=1e-12)


def test_initial_statistics_from_responsibilities_use_unit_scales(rng):
    X = rng.normal(size=(100, 2))
    resp = rng.dirichlet([1, 1], size=100)
    fam = _bound(StudentT("diag"), X)
    stats = _resp_stats(fam, X, resp)
    np.testing.assert_allclose(stats.extra["sum_u"], resp.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats.extra["sum_log_u_minus_u"], -resp.sum(axis=0), rtol=1e-12)
    params, issues = fam.m_step(stats, None)
    assert issues == [] and np.all(params["df"] == 10.0)
    for k in range(2):  # u = 1: the Gaussian moments
        r = resp[:, k]
        mean = r @ X / r.sum()
        np.testing.assert_allclose(params["means"][k], mean, rtol=1e-10)
        np.testing.assert_allclose(params["scales"][k], r @ (X - mean) ** 2 / r.sum() + 1e-6,
                                   rtol=1e-10)


# ----------------------------------------------------------------- the df equation
def test_df_update_maximises_the_expected_complete_data_log_likelihood():
    # Q(nu) = n [nu/2 log(nu/2) - log Gamma(nu/2) + nu/2 (E log tau - E tau)], per unit n.
    for mean_g, df_old, D in ((-1.05, 4.0, 1), (-1.3, 2.0, 3), (-1.001, 30.0, 2)):
        e_log_tau_minus_tau = mean_g + digamma((df_old + D) / 2) - np.log((df_old + D) / 2)

        def q(nu, g=e_log_tau_minus_tau):
            return nu / 2 * np.log(nu / 2) - gammaln(nu / 2) + nu / 2 * g

        nu = solve_df(mean_g, df_old, D)
        grid = np.geomspace(DF_MIN, DF_MAX, 20001)
        assert q(nu) >= q(grid).max() - 1e-12
        assert DF_MIN <= nu <= DF_MAX
    # No evidence of heavy tails (log u - u = -1 at every row and df_old large): upper bound.
    assert solve_df(-1.0, 1e3, 1) == DF_MAX


# ----------------------------------------------------------------- (b) recovery
def test_heavy_tailed_components_are_recovered_where_a_gaussian_mixture_is_biased():
    """Two 2-D t components with nu = 3 (3,000 rows each).

    Measured: each fitted location minus the truth, in units of the true scale sd of
    that coordinate, and sqrt(diag(fitted scatter)) / sqrt(diag(true scatter)). The
    asymptotic standard errors at nu = 3, n = 3,000 are about 0.022 (location, same
    units) and 0.018 (scale ratio, df known; a little more with df learned), so 0.1 is
    4-5 of them. A Gaussian mixture's sd estimates sqrt(nu / (nu - 2)) = 1.73 times the
    scale instead (the t's variance), far outside that.
    """
    rng = np.random.default_rng(20261123)
    locs = np.array([[-5.0, 0.0], [5.0, 2.0]])
    scat = np.array([[[1.0, 0.3], [0.3, 0.5]], [[0.25, 0.0], [0.0, 1.0]]])
    X = np.vstack([sps.multivariate_t(locs[k], scat[k], df=3).rvs(3000, random_state=rng)
                   for k in range(2)])
    sd = np.sqrt(np.diagonal(scat, axis1=1, axis2=2))
    tm = emix.MixtureModel(family="student_t", n_components=2, covariance_type="full",
                           tol=1e-8, max_iter=500, random_state=0, label_order="mean").fit(X)
    assert tm.converged_
    loc_err = np.abs(tm.means_ - locs) / sd
    scale_ratio = np.sqrt(np.diagonal(tm.scales_, axis1=1, axis2=2)) / sd
    assert loc_err.max() < 0.1, loc_err  # measured 0.033
    assert np.abs(scale_ratio - 1).max() < 0.1, scale_ratio  # measured 0.971 .. 1.027
    assert np.all(np.abs(tm.df_ - 3.0) < 0.6), tm.df_  # measured 2.92, 2.90
    assert np.all(np.diff(tm.lower_bounds_) >= -1e-12)
    gm = emix.GaussianMixture(2, covariance_type="full", random_state=0, label_order="mean").fit(X)
    g_ratio = np.sqrt(np.diagonal(gm.covariances_, axis1=1, axis2=2)) / sd
    assert np.all(g_ratio > 1.4), g_ratio  # measured 1.57 .. 1.74: biased


# ----------------------------------------------------------------- (c) monotone
@given(
    n=st.integers(15, 60), D=st.integers(1, 2), K=st.integers(1, 3),
    ct=st.sampled_from(["full", "diag", "spherical"]),
    df=st.sampled_from([None, None, 1.5, 5.0]), weighted=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_log_likelihood_never_decreases(n, D, K, ct, df, weighted, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_t(2.5, size=(n, D)) * rng.uniform(0.1, 10) + rng.uniform(-100, 100)
    w = rng.uniform(0.1, 3, size=n) if weighted else None
    # reg_covar = 0: the EM step is then the exact maximiser, so monotone to round-off.
    fam = _bound(StudentT(ct, df=df, reg_covar=0.0), X, w)
    resp = rng.dirichlet(np.ones(K), size=n)
    try:
        params, _ = fam.m_step(_resp_stats(fam, X, resp, w), None)
        _, _, path = _em(fam, X, params, (resp if w is None else resp * w[:, None]).sum(0)
                         / (n if w is None else w.sum()), 25, w)
    except DegenerateComponentError:
        assume(False)  # a component collapsed onto repeated points: no likelihood to track
    drops = np.diff(path)
    assert np.all(drops >= -1e-9 * np.abs(path[1:])), (drops.min(), path)


# ----------------------------------------------------------------- (d) nested model
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_component_fit_equals_the_student_t_mle(seed):
    x = sps.t(3, loc=10.0, scale=2.0).rvs(1500, random_state=np.random.default_rng(seed))
    ref = emix.mle.fit("student_t", x)
    m1 = emix.MixtureModel(family="student_t", n_components=1, tol=1e-12, max_iter=5000,
                           family_options={"reg_covar": 0.0}).fit(x[:, None])
    n = len(x)
    assert m1.lower_bound_ * n == pytest.approx(ref.loglik, rel=1e-10, abs=1e-7)
    assert m1.df_[0] == pytest.approx(ref.params["df"], rel=1e-4)
    assert m1.means_[0, 0] == pytest.approx(ref.params["loc"], rel=1e-6)
    assert np.sqrt(m1.scales_[0, 0, 0]) == pytest.approx(ref.params["scale"], rel=1e-5)
    # The nested model: two components never fit worse than one t.
    m2 = emix.MixtureModel(family="student_t", n_components=2, tol=1e-6, max_iter=500,
                           random_state=0).fit(x[:, None])
    assert m2.lower_bound_ * n >= ref.loglik  # measured +1.8, +1.3, +3.0


def test_two_component_fit_beats_the_single_t_on_bimodal_data():
    rng = np.random.default_rng(7)
    x = np.concatenate([sps.t(3, loc=-5, scale=1).rvs(1500, random_state=rng),
                        sps.t(3, loc=5, scale=0.5).rvs(1500, random_state=rng)])
    with pytest.warns(UserWarning, match="no heavier-tailed"):
        ref = emix.mle.fit("student_t", x)  # bimodal: the best single t is a normal
    m2 = emix.MixtureModel(family="student_t", n_components=2, tol=1e-8, max_iter=500,
                           random_state=0).fit(x[:, None])
    assert m2.lower_bound_ * len(x) >= ref.loglik + 1000  # measured -6235.7 vs -9177.8


# ----------------------------------------------------------------- (e) fixed df
def test_fixed_df_stays_fixed(rng):
    X = np.vstack([rng.standard_t(3, size=(400, 2)) - 4, rng.standard_t(3, size=(400, 2)) + 4])
    m = emix.MixtureModel(family="student_t", n_components=2, covariance_type="diag",
                          family_options={"df": 3.0}, random_state=0).fit(X)
    np.testing.assert_array_equal(m.df_, [3.0, 3.0])
    fam = _bound(StudentT("spherical", df=7.5), X)
    params = {"means": np.array([[-4.0, -4.0], [4.0, 4.0]]), "scales": np.ones(2),
              "df": np.array([7.5, 7.5])}
    params, _, _ = _em(fam, X, params, np.array([0.5, 0.5]), 5)
    np.testing.assert_array_equal(params["df"], [7.5, 7.5])
    assert fam.n_parameters(2) == 2 * (2 + 1)
    assert StudentT("spherical").bind(None, 2).n_parameters(2) == 2 * (2 + 1 + 1)
    with pytest.raises(InputError, match="fixed at 7.5"):
        fam.validate_params({**params, "df": np.array([7.5, 3.0])}, 2)
    assert fam.validate_params({"means": params["means"], "scales": params["scales"]}, 2)[
        "df"].tolist() == [7.5, 7.5]


# ----------------------------------------------------------------- the rest
def test_weighted_rows_equal_repeated_rows(rng):
    X = rng.standard_t(3, size=(40, 2))
    counts = rng.integers(0, 4, size=40)
    Xr = np.repeat(X, counts, axis=0)
    start = {"means": np.array([[-1.0, 0.0], [1.0, 0.0]]),
             "scales": np.stack([np.eye(2)] * 2), "df": np.array([5.0, 5.0])}
    a = _em(_bound(StudentT("full"), X, counts.astype(float)), X, start, np.array([.5, .5]), 10,
            counts.astype(float))
    b = _em(_bound(StudentT("full"), Xr), Xr, start, np.array([.5, .5]), 10)
    for key in start:
        np.testing.assert_allclose(a[0][key], b[0][key], rtol=1e-9)
    np.testing.assert_allclose(a[2], b[2], rtol=1e-10)


@pytest.mark.parametrize("ct", ["full", "diag", "spherical"])
def test_samples_have_the_student_t_distribution(ct, rng):
    # (x - m)^T Sigma^-1 (x - m) / D of a t draw is F(D, nu) distributed.
    D, df = 2, 4.0
    fam = StudentT(ct).bind(None, D)
    scales = {"full": np.array([[[2.0, 0.6], [0.6, 0.5]]]), "diag": np.array([[2.0, 0.5]]),
              "spherical": np.array([1.5])}[ct]
    params = {"means": np.array([[3.0, -1.0]]), "scales": scales, "df": np.array([df])}
    x = fam.sample(params, 0, 4000, rng)
    diff = x - params["means"][0]
    delta = np.einsum("ni,ij,nj->n", diff, np.linalg.inv(_full(ct, scales, D)[0]), diff)
    assert sps.kstest(delta / D, sps.f(D, df).cdf).pvalue > 1e-3
    # and a 1-D sample refitted by the single-t MLE gives its parameters back
    one = StudentT("full").bind(None, 1)
    y = one.sample({"means": np.array([[2.0]]), "scales": np.array([[[0.25]]]),
                    "df": np.array([4.0])}, 0, 4000, rng)[:, 0]
    ref = emix.mle.fit("student_t", y)
    assert ref.params["loc"] == pytest.approx(2.0, abs=0.04)  # se 0.009
    assert ref.params["scale"] == pytest.approx(0.5, rel=0.08)  # se 1.7%
    assert ref.params["df"] == pytest.approx(4.0, rel=0.4)  # se ~10%


def test_torch_cpu_gives_the_same_statistics(rng):
    torch_backend = pytest.importorskip("emix.backends.torch_backend")
    pytest.importorskip("torch")
    X = rng.standard_t(3, size=(257, 3)) + 5
    for ct in ("full", "diag", "spherical"):
        fam = _bound(StudentT(ct), X)
        params = {"means": X[:2], "scales": _random_scales(rng, ct, 2, 3), "df": np.array([2., 9.])}
        kernel = MixtureKernel(fam, params, np.array([0.3, 0.7]))
        a = BACKEND.stats_pass(X, None, kernel, width=fam.feature_width())
        b = torch_backend.TorchBackend("cpu").stats_pass(X, None, kernel, width=fam.feature_width())
        for key in a:
            np.testing.assert_allclose(b[key], a[key], rtol=1e-11, atol=1e-11)


def test_float32_pass_is_close_to_float64(rng):
    X = (rng.standard_t(3, size=(300, 2)) * 3 + 1e3).astype(np.float32)
    params = {"means": np.array([[1e3, 1e3], [1002.0, 998.0]]),
              "scales": np.stack([np.eye(2) * 9] * 2), "df": np.array([3.0, 4.0])}
    out = [_pass(_bound(StudentT("full"), Xd), Xd, params, np.array([0.5, 0.5]))
           for Xd in (X.astype(np.float64), X)]
    assert out[1].loglik == pytest.approx(out[0].loglik, rel=1e-6)
    np.testing.assert_allclose(out[1].extra["sum_u"], out[0].extra["sum_u"], rtol=1e-5)


def test_registry_config_and_bad_arguments():
    fam = get_family("student_t", covariance_type="diag", df=4)
    assert isinstance(fam, StudentT) and fam.df == 4.0
    assert fam.get_config() == {"covariance_type": "diag", "df": 4.0, "reg_covar": 1e-6}
    for bad in (0, -1.0, float("inf"), "many"):
        with pytest.raises(InputError, match="df"):
            StudentT(df=bad)
    fam = StudentT("full").bind(None, 2)
    good = {"means": np.zeros((2, 2)), "scales": np.stack([np.eye(2)] * 2), "df": [3.0, 4.0]}
    assert fam.validate_params(good, 2)["df"].shape == (2,)
    with pytest.raises(InputError, match="component 1"):
        fam.validate_params({**good, "df": [3.0, -1.0]}, 2)
    with pytest.raises(InputError, match="scales"):
        fam.validate_params({**good, "scales": np.ones((2, 2))}, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        StudentT().bind(None, 1).sample(
            {"means": np.zeros((1, 1)), "scales": np.ones((1, 1, 1)), "df": np.array([0.7])},
            0, 10, np.random.default_rng(0))


@pytest.mark.parametrize("ct", ["full", "diag", "spherical"])
@pytest.mark.parametrize("family", ["gaussian", "student_t"])
def test_reg_gap_bounds_the_fall_of_regularised_em(family, ct, rng):
    # Spread 0.1 against reg_covar = 0.02: the regulariser matters, EM is not monotone,
    # and reg_gap is the most each step may lose (per unit weight).
    X = np.vstack([rng.standard_t(3, size=(60, 2)) * 0.1,
                   rng.standard_t(3, size=(60, 2)) * 0.1 + 1.0])
    fam = _bound(get_family(family, covariance_type=ct, reg_covar=0.02), X)
    resp = rng.dirichlet([1, 1], size=len(X))
    params, _ = fam.m_step(_resp_stats(fam, X, resp), None)
    weights = resp.mean(axis=0)
    lls, gaps = [], []
    for _ in range(15):
        stats = _pass(fam, X, params, weights)
        lls.append(stats.loglik / stats.weight_sum)
        gaps.append(fam.reg_gap(stats))
        params, _ = fam.m_step(stats, params)
        weights = stats.nk / stats.weight_sum
    assert all(g > 0 for g in gaps)
    assert np.all(np.diff(lls) >= -np.array(gaps[:-1]) - 1e-12)
    # reg_covar = 0: no gap
    assert _bound(get_family(family, covariance_type=ct, reg_covar=0.0), X).reg_gap(stats) == 0.0
