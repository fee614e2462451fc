"""The Gaussian family's contract: additive statistics, a correct E-step, an exact M-step.

Every test here talks to ``emix.families.gaussian`` and the NumPy backend directly (no
estimator), and compares against formulas written out with plain NumPy/SciPy.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

import emix
from emix.backends.numpy_backend import NumpyBackend
from emix.families import gaussian as G
from emix.families import gaussian_kernel as GK

COV_TYPES = G.COVARIANCE_TYPES
BACKEND = NumpyBackend()


# --------------------------------------------------------------------------- helpers
def random_params(rng, K, D, ct, center=None, spread=1.0) -> G.GaussianMixtureParams:
    """Valid random parameters: simplex weights, means near the data, SPD covariances."""
    center = np.zeros(D) if center is None else np.asarray(center, float)
    weights = rng.dirichlet(np.ones(K))
    means = center + spread * rng.normal(size=(K, D))
    s2 = spread**2
    if ct == "full":
        A = rng.normal(size=(K, D, D))
        cov = s2 * (np.einsum("kij,klj->kil", A, A) / D + 0.2 * np.eye(D))
    elif ct == "tied":
        A = rng.normal(size=(D, D))
        cov = s2 * (A @ A.T / D + 0.2 * np.eye(D))
    elif ct == "diag":
        cov = s2 * rng.uniform(0.2, 2.0, size=(K, D))
    else:
        cov = s2 * rng.uniform(0.2, 2.0, size=K)
    pc = G.precisions_cholesky_from_covariances(cov, ct)
    return G.GaussianMixtureParams(weights, means, cov, pc, ct)


def full_covariances(params: G.GaussianMixtureParams) -> np.ndarray:
    """Every component's covariance as a (K, D, D) matrix, whatever the type."""
    K, D = params.means.shape
    ct, cov = params.covariance_type, params.covariances
    if ct == "full":
        return cov
    if ct == "tied":
        return np.broadcast_to(cov, (K, D, D)).copy()
    if ct == "diag":
        return np.stack([np.diag(c) for c in cov])
    return np.stack([c * np.eye(D) for c in cov])


def stats_of(X, w, params, frame, block_size=None) -> G.GaussianStats:
    plan = G.estep_plan(params, frame)
    return GK.mixture_pass(
        BACKEND,
        X,
        w,
        plan,
        covariance_type=params.covariance_type,
        frame=frame,
        n_components=params.n_components,
        block_size=block_size,
    )


def stats_from_resp(X, w, R, ct, frame) -> G.GaussianStats:
    return GK.mixture_pass(
        BACKEND,
        X,
        w,
        None,
        covariance_type=ct,
        frame=frame,
        n_components=R.shape[1],
        resp=lambda a, b: R[a:b],
    )


def data_frame(X) -> G.Frame:
    X64 = np.asarray(X, dtype=np.float64)
    return G.Frame.from_data(X64.mean(axis=0), X64.var(axis=0))


def assert_stats_close(a: G.GaussianStats, b: G.GaussianStats, rtol: float, ll_scale: float):
    """``a`` equals ``b`` to ``rtol`` relative to the size of the quantities summed."""
    assert a.covariance_type == b.covariance_type
    assert a.n_rows == b.n_rows
    scale = max(np.max(np.abs(b.resp_moments)), 1e-300)
    np.testing.assert_allclose(a.resp_moments, b.resp_moments, rtol=rtol, atol=rtol * scale)
    if b.scatter is None:
        assert a.scatter is None
    else:
        sc = max(np.max(np.abs(b.scatter)), 1e-300)
        np.testing.assert_allclose(a.scatter, b.scatter, rtol=rtol, atol=rtol * sc)
    np.testing.assert_allclose(a.loglik, b.loglik, rtol=rtol, atol=rtol * ll_scale)
    np.testing.assert_allclose(a.weight_sum, b.weight_sum, rtol=rtol)


def row_logliks(X, params) -> np.ndarray:
    """Independent reference: logsumexp_k(log w_k + log N(x | mu_k, Sigma_k)) per row."""
    covs = full_covariances(params)
    X64 = np.asarray(X, dtype=np.float64)
    cols = [
        np.log(params.weights[k])
        + multivariate_normal.logpdf(X64, params.means[k], covs[k]).reshape(len(X64))
        for k in range(params.n_components)
    ]
    return logsumexp(np.stack(cols, axis=1), axis=1)


# --------------------------------------------------------------------------- additivity
@given(
    seed=st.integers(0, 2**32 - 1),
    N=st.integers(2, 200),
    D=st.integers(1, 5),
    K=st.integers(1, 4),
    ct=st.sampled_from(COV_TYPES),
    dtype=st.sampled_from([np.float64, np.float32]),
    weighted=st.booleans(),
    split=st.floats(0.0, 1.0),
)
def test_stats_of_a_split_add_up_to_stats_of_the_whole(seed, N, D, K, ct, dtype, weighted, split):
    rng = np.random.default_rng(seed)
    offset = rng.normal(scale=10.0, size=D)
    spread = 10.0 ** rng.uniform(-2, 2)
    X = (offset + spread * rng.normal(size=(N, D))).astype(dtype)
    w = rng.uniform(0.0, 3.0, size=N) if weighted else None
    params = random_params(rng, K, D, ct, center=offset, spread=spread)
    frame = data_frame(X)
    s = int(round(split * N))  # 0 and N give an empty side: its statistics are zeros

    whole = stats_of(X, w, params, frame)
    left = stats_of(X[:s], None if w is None else w[:s], params, frame)
    right = stats_of(X[s:], None if w is None else w[s:], params, frame)
    total = left + right

    rtol = 1e-12 if dtype == np.float64 else 1e-5
    lse = row_logliks(X, params)
    ll_scale = float(np.sum(np.abs(lse if w is None else w * lse)))
    assert total.n_rows == N == left.n_rows + right.n_rows
    assert total.frame.same_as(frame)
    assert_stats_close(total, whole, rtol, ll_scale)
    # sum() starts from 0, which __radd__ accepts.
    assert_stats_close(sum([left, right]), whole, rtol, ll_scale)


def test_stats_in_different_frames_refuse_to_add(rng):
    X = rng.normal(size=(20, 2))
    params = random_params(rng, 2, 2, "full")
    a = stats_of(X[:10], None, params, G.Frame.identity(2))
    b = stats_of(X[10:], None, params, G.Frame(np.ones(2), 1.0))
    with pytest.raises(emix.InputError, match="frame"):
        a + b
    c = stats_of(X[10:], None, random_params(rng, 2, 2, "diag"), G.Frame.identity(2))
    with pytest.raises(emix.InputError, match="covariance type"):
        a + c


# --------------------------------------------------------------------------- E-step
@pytest.mark.parametrize("ct", COV_TYPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weighted", [False, True])
def test_estep_loglik_matches_scipy(rng, ct, dtype, weighted):
    for K, D in [(1, 1), (3, 2), (4, 5)]:
        offset = rng.normal(scale=5.0, size=D)
        X = (offset + 2.0 * rng.normal(size=(150, D))).astype(dtype)
        w = rng.uniform(0.0, 2.0, size=150) if weighted else None
        params = random_params(rng, K, D, ct, center=offset, spread=2.0)
        stats = stats_of(X, w, params, data_frame(X), block_size=64)
        ref_rows = row_logliks(X, params)
        ref = float(np.sum(ref_rows if w is None else w * ref_rows))
        scale = float(np.sum(np.abs(ref_rows if w is None else w * ref_rows)))
        rtol = 1e-11 if dtype == np.float64 else 2e-5
        assert abs(stats.loglik - ref) <= rtol * scale, (stats.loglik, ref)
        # The per-row log joint (used by predict) agrees as well.
        L = GK.log_joint(BACKEND, X, G.estep_plan(params, data_frame(X)), block_size=64)
        assert L.dtype == dtype
        row_scale = np.maximum(np.abs(ref_rows), 1.0)
        np.testing.assert_array_less(np.abs(logsumexp(L.astype(float), axis=1) - ref_rows),
                                     10 * rtol * row_scale + 1e-300)


@pytest.mark.parametrize("ct", COV_TYPES)
def test_estep_responsibilities_are_the_posterior(rng, ct):
    K, D, N = 3, 3, 80
    X = rng.normal(size=(N, D))
    params = random_params(rng, K, D, ct)
    covs = full_covariances(params)
    logj = np.stack(
        [np.log(params.weights[k]) + multivariate_normal.logpdf(X, params.means[k], covs[k])
         for k in range(K)],
        axis=1,
    )
    R = np.exp(logj - logsumexp(logj, axis=1, keepdims=True))
    frame = data_frame(X)
    got = stats_of(X, None, params, frame)
    # The given-responsibility pass takes moments about each component's mean; move
    # them to the plan pass's anchors (none) before comparing.
    want = stats_from_resp(X, None, R, ct, frame).reanchor(got.anchors)
    np.testing.assert_allclose(got.resp_moments, want.resp_moments, rtol=1e-10, atol=1e-10)


# --------------------------------------------------------------------------- M-step
def direct_mstep(X, w, R, ct, reg):
    """Weighted ML parameters written out from X and explicit responsibilities R."""
    N, D = X.shape
    w = np.ones(N) if w is None else w
    Rw = R * w[:, None]
    nk = Rw.sum(axis=0)
    W = w.sum()
    means = Rw.T @ X / nk[:, None]
    full = np.stack(
        [(Rw[:, k, None] * (X - means[k])).T @ (X - means[k]) / nk[k] for k in range(R.shape[1])]
    )
    eye = np.eye(D)
    if ct == "full":
        cov = full + reg * eye
    elif ct == "tied":
        cov = np.einsum("k,kij->ij", nk, full) / W + reg * eye
    elif ct == "diag":
        cov = np.diagonal(full, axis1=1, axis2=2) + reg
    else:
        cov = np.diagonal(full, axis1=1, axis2=2).mean(axis=1) + reg
    return nk / W, means, cov


@pytest.mark.parametrize("ct", COV_TYPES)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_m_step_matches_direct_weighted_formulas(rng, ct, weighted, dtype):
    for K, D, N in [(1, 1, 30), (2, 3, 100), (4, 5, 257)]:
        offset = rng.normal(scale=3.0, size=D)
        X = (offset + rng.normal(size=(N, D)) * rng.uniform(0.5, 3.0, size=D)).astype(dtype)
        X64 = X.astype(np.float64)
        w = rng.uniform(0.0, 2.0, size=N) if weighted else None
        R = rng.dirichlet(np.full(K, 0.5), size=N)
        reg = 1e-3
        stats = stats_from_resp(X, w, R, ct, data_frame(X))
        assert stats.loglik == 0.0
        params, report = G.m_step(stats, reg)
        assert report.empty == () and report.issues == ()
        weights, means, cov = direct_mstep(X64, w, R, ct, reg)
        rtol = 1e-10 if dtype == np.float64 else 1e-4
        np.testing.assert_allclose(params.weights, weights, rtol=rtol)
        np.testing.assert_allclose(params.means, means, rtol=rtol, atol=rtol * np.abs(X64).max())
        np.testing.assert_allclose(
            params.covariances, cov, rtol=rtol, atol=rtol * np.abs(cov).max()
        )
        # The stored Cholesky factor is the precision's: U U^T = cov^-1.
        prec = params.precisions
        if ct in ("full", "tied"):
            covs = params.covariances if ct == "full" else params.covariances[None]
            precs = prec if ct == "full" else prec[None]
            for c, p in zip(covs, precs):
                # Cholesky reads the lower triangle; symmetry itself is the next test.
                lower = np.tril(c) + np.tril(c, -1).T
                np.testing.assert_allclose(p @ lower, np.eye(D), atol=1e-10)
        else:
            np.testing.assert_allclose(prec * params.covariances, 1.0, rtol=1e-10)


@pytest.mark.parametrize("ct", ["full", "tied"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_m_step_covariances_are_exactly_symmetric(rng, ct, dtype):
    """A covariance matrix is symmetric; its precision Cholesky factor is of that matrix.

    The Cholesky factorisation reads one triangle only, so an asymmetric covariance
    would be stored next to the precision of a different matrix.
    """
    N, D, K = 257, 5, 4
    X = rng.normal(size=(N, D)).astype(dtype)
    w = rng.uniform(0.0, 2.0, size=N)
    R = rng.dirichlet(np.full(K, 0.5), size=N)
    stats = stats_from_resp(X, w, R, ct, data_frame(X))
    if stats.scatter is not None:
        np.testing.assert_array_equal(stats.scatter, stats.scatter.T)
    cov = G.m_step(stats, 1e-3)[0].covariances
    np.testing.assert_array_equal(cov, np.swapaxes(cov, -1, -2))


def test_m_step_keeps_an_empty_component_from_previous(rng):
    X = rng.normal(size=(50, 2))
    R = np.zeros((50, 3))
    R[:, 0] = 0.4
    R[:, 1] = 0.6
    prev = random_params(rng, 3, 2, "full")
    stats = stats_from_resp(X, None, R, "full", data_frame(X))
    params, report = G.m_step(stats, 1e-6, previous=prev)
    assert report.empty == (2,)
    assert params.weights[2] == 0.0
    np.testing.assert_array_equal(params.means[2], prev.means[2])
    np.testing.assert_array_equal(params.covariances[2], prev.covariances[2])
    with pytest.raises(emix.DegenerateComponentError, match="component 2"):
        G.m_step(stats, 1e-6)


# --------------------------------------------------------------------------- blocking
@pytest.mark.parametrize("ct", COV_TYPES)
@pytest.mark.parametrize("weighted", [False, True])
def test_block_size_does_not_change_the_statistics(rng, ct, weighted):
    N, D, K = 503, 3, 3
    offset = rng.normal(scale=4.0, size=D)
    X = offset + rng.normal(size=(N, D))
    w = rng.uniform(0.0, 2.0, size=N) if weighted else None
    params = random_params(rng, K, D, ct, center=offset)
    frame = data_frame(X)
    one = stats_of(X, w, params, frame, block_size=None)
    for bs in (7, 1, N + 10):
        many = stats_of(X, w, params, frame, block_size=bs)
        lse = row_logliks(X, params)
        assert_stats_close(many, one, 1e-12, float(np.sum(np.abs(lse if w is None else w * lse))))
        assert many.n_rows == N


# --------------------------------------------------------------------------- frames
@pytest.mark.parametrize("ct", COV_TYPES)
@pytest.mark.parametrize("weighted", [False, True])
def test_m_step_does_not_depend_on_the_frame(rng, ct, weighted):
    N, D, K = 300, 3, 3
    offset = rng.normal(scale=5.0, size=D)
    spread = 3.0
    X = offset + spread * rng.normal(size=(N, D))
    w = rng.uniform(0.0, 2.0, size=N) if weighted else None
    params = random_params(rng, K, D, ct, center=offset, spread=spread)
    frames = [
        G.Frame.identity(D),
        data_frame(X),
        G.Frame(offset + rng.normal(size=D), 3.7),  # a scale that is not a power of two
    ]
    results = []
    for frame in frames:
        stats = stats_of(X, w, params, frame)
        results.append((stats.loglik, G.m_step(stats, 1e-6)[0]))
    ll0, p0 = results[0]
    for ll, p in results[1:]:
        np.testing.assert_allclose(ll, ll0, rtol=1e-10)
        np.testing.assert_allclose(p.weights, p0.weights, rtol=1e-10)
        np.testing.assert_allclose(p.means, p0.means, rtol=1e-10, atol=1e-10 * np.abs(X).max())
        np.testing.assert_allclose(
            p.covariances, p0.covariances, rtol=1e-10, atol=1e-10 * np.abs(p0.covariances).max()
        )
        np.testing.assert_allclose(
            p.precisions_cholesky,
            p0.precisions_cholesky,
            rtol=1e-10,
            atol=1e-10 * np.abs(p0.precisions_cholesky).max(),
        )


def test_column_variances_read_off_the_statistics(rng):
    X = rng.normal(size=(400, 3)) * [0.5, 2.0, 7.0] + [1.0, -3.0, 100.0]
    R = rng.dirichlet(np.ones(2), size=400)
    for ct in ("full", "tied", "diag"):
        stats = stats_from_resp(X, None, R, ct, data_frame(X))
        np.testing.assert_allclose(stats.column_variances(), X.var(axis=0), rtol=1e-10)


@pytest.mark.parametrize("ct", COV_TYPES)
def test_n_parameters_counts_free_parameters(ct):
    K, D = 3, 4
    cov = {"full": K * D * (D + 1) // 2, "tied": D * (D + 1) // 2, "diag": K * D, "spherical": K}
    assert G.n_parameters(ct, K, D) == cov[ct] + K * D + K - 1


# --------------------------------------------------------------------------- accuracy
@pytest.mark.parametrize("ct", COV_TYPES)
@pytest.mark.parametrize(("dtype", "separation"), [(np.float64, 1e6), (np.float32, 1e3)])
def test_far_apart_components_keep_full_accuracy(ct, dtype, separation):
    """Two clusters of width ~1 at distance ``separation``, hard responsibilities.

    The data are exact in ``dtype`` and well conditioned per component, so a careful
    implementation (centring each component on its own mean, as scikit-learn does) gets
    the covariances and per-row log-densities to round-off. emix takes raw moments about
    one frame centre, where E[z z^T] - mu mu^T and the expanded quadratic form cancel:
    the error grows as eps * (separation / width)^2 (float64 at 1e6: ~1e-4; float32 at
    1e3: a few percent).
    """
    rng = np.random.default_rng(0)
    N, D = 400, 2
    lab = np.arange(N) % 2
    X = (np.array([[0.0, 0.0], [separation, -separation]])[lab]
         + rng.normal(size=(N, D)) * [1.0, 0.5]).astype(dtype)
    X64 = X.astype(np.float64)
    R = np.eye(2)[lab]
    frame = data_frame(X)
    params, _ = G.m_step(stats_from_resp(X, None, R, ct, frame), 0.0)
    _, _, cov = direct_mstep(X64, None, R, ct, 0.0)
    rtol = 1e-8 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(params.covariances, cov, rtol=rtol, atol=rtol * np.abs(cov).max())
    ref = row_logliks(X64, params)
    L = GK.log_joint(BACKEND, X, G.estep_plan(params, frame)).astype(np.float64)
    err = np.abs(logsumexp(L, axis=1) - ref) / np.maximum(np.abs(ref), 1.0)
    assert err.max() < (1e-9 if dtype == np.float64 else 1e-5), err.max()
