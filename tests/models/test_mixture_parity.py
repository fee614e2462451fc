"""emix.GaussianMixture against scikit-learn, SciPy and closed forms.

Every comparison starts both libraries from the same parameters (``weights_init``,
``means_init``, ``precisions_init``) so that the two EM trajectories must coincide up to
round-off; the references for densities are computed independently with
``scipy.stats.multivariate_normal``.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

import emix

sklearn = pytest.importorskip("sklearn")
from sklearn.exceptions import ConvergenceWarning as SkConvergenceWarning  # noqa: E402
from sklearn.mixture import GaussianMixture as SkGaussianMixture  # noqa: E402

COV_TYPES = ("full", "tied", "diag", "spherical")


# --------------------------------------------------------------------------- data
def _mixture_data(rng, n, d, k, separation, shape_noise=None):
    """Rows from K correlated Gaussians with uneven weights; returns X, true means.

    The true means are drawn with spread ``separation`` and redrawn until every pair
    is at least ``separation`` apart, so "separated" cases really are. Component k's
    covariance is A A^T with A = I + shape_noise * G (G standard normal); the default
    shape_noise keeps ||shape_noise * G|| near 0.35 * 2, so A stays well conditioned
    (condition number of A A^T below ~30) while its correlations are far from diagonal.
    """
    if shape_noise is None:
        shape_noise = 0.2 / math.sqrt(max(d, 3) / 3)
    for _ in range(1000):
        means = rng.normal(size=(k, d)) * separation
        gaps = [np.linalg.norm(means[i] - means[j]) for i in range(k) for j in range(i)]
        if not gaps or min(gaps) >= separation:
            break
    weights = np.arange(1, k + 1, dtype=float)
    weights /= weights.sum()
    counts = rng.multinomial(n, weights)
    parts = []
    for j, c in enumerate(counts):
        A = np.eye(d) + shape_noise * rng.normal(size=(d, d))  # correlated
        parts.append(means[j] + rng.normal(size=(c, d)) @ A.T)
    X = np.vstack(parts)[rng.permutation(n)]
    return X, means


def _initial(rng, X, k, covariance_type, true_means=None):
    """Starting parameters (weights, means, precisions) shared by both libraries.

    Precisions are deliberately non-diagonal for 'full' and 'tied' (the data's own
    correlation), so that a mishandled Cholesky factor cannot go unnoticed.
    """
    n, d = X.shape
    weights = np.full(k, 1.0 / k)
    if true_means is not None:
        means = true_means + 0.3 * rng.normal(size=true_means.shape)
    else:
        means = X[rng.choice(n, k, replace=False)].copy()
    S = np.atleast_2d(np.cov(X.T))
    scales = 0.5 + 0.25 * np.arange(k)
    if covariance_type == "full":
        prec = np.stack([np.linalg.inv(S * s) for s in scales])
        prec = 0.5 * (prec + np.transpose(prec, (0, 2, 1)))
    elif covariance_type == "tied":
        prec = np.linalg.inv(S * 0.5)
        prec = 0.5 * (prec + prec.T)
    elif covariance_type == "diag":
        prec = 1.0 / (np.diag(S)[None, :] * scales[:, None])
    else:
        prec = 1.0 / (np.mean(np.diag(S)) * scales)
    return weights, means, prec


def _start_at(covariance_type, init, **kw):
    """Estimator keywords that start EM at ``init`` = (weights, means, precisions)."""
    w, m, p = init
    return dict(
        covariance_type=covariance_type, weights_init=w, means_init=m, precisions_init=p,
        **kw,
    )


def _both(k, covariance_type, init, **kw):
    common = _start_at(covariance_type, init, random_state=0, **kw)
    return emix.GaussianMixture(k, **common), SkGaussianMixture(k, **common)


def _fit_pair(X, k, covariance_type, init, **kw):
    """Fit emix and sklearn from the same start; expect ConvergenceWarning iff tol=0."""
    e, s = _both(k, covariance_type, init, **kw)
    if kw.get("tol", 1e-3) == 0:
        with pytest.warns(emix.ConvergenceWarning):
            e.fit(X)
        with pytest.warns(SkConvergenceWarning):
            s.fit(X)
    else:
        e.fit(X)
        s.fit(X)
    return e, s


def _assert_close(actual, expected, rtol, what):
    """Relative agreement, with an absolute floor at rtol times the array's scale."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    scale = max(float(np.max(np.abs(expected))), 1e-300)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale, err_msg=what)


def _full_covariances(model):
    """Every component's covariance as a (K, D, D) array, whatever the type."""
    K, D = model.means_.shape
    c = np.asarray(model.covariances_, dtype=np.float64)
    ct = model.covariance_type
    if ct == "full":
        return c
    if ct == "tied":
        return np.broadcast_to(c, (K, D, D))
    if ct == "diag":
        return np.stack([np.diag(v) for v in c])
    return np.stack([v * np.eye(D) for v in c])


def _reference_log_joint(model, X):
    """log w_k + log N(x | mu_k, Sigma_k) with scipy, shape (N, K)."""
    covs = _full_covariances(model)
    return np.column_stack(
        [
            math.log(model.weights_[k])
            + stats.multivariate_normal(model.means_[k], covs[k]).logpdf(X).reshape(-1)
            for k in range(len(model.weights_))
        ]
    )


def _n_free_parameters(ct, K, D):
    cov = {"full": K * D * (D + 1) / 2, "tied": D * (D + 1) / 2, "diag": K * D, "spherical": K}
    return cov[ct] + K * D + (K - 1)


def _sklearn_with_params_of(e):
    """An sklearn GaussianMixture carrying emix's fitted parameters (no sklearn fit)."""
    s = SkGaussianMixture(e.n_components, covariance_type=e.covariance_type)
    s.weights_ = np.asarray(e.weights_, dtype=np.float64)
    s.means_ = np.asarray(e.means_, dtype=np.float64)
    s.covariances_ = np.asarray(e.covariances_, dtype=np.float64)
    s.precisions_cholesky_ = np.asarray(e.precisions_cholesky_, dtype=np.float64)
    s.precisions_ = np.asarray(e.precisions_, dtype=np.float64)
    s.converged_ = e.converged_
    s.n_iter_ = e.n_iter_
    s.lower_bound_ = e.lower_bound_
    s.n_features_in_ = e.n_features_in_
    return s


# (name, N, D, K, separation); separation is the sd of the true means in units of the
# within-component spread: 8 separates the components, 1 makes them overlap heavily.
CASES = [
    ("1d-overlap", 500, 1, 2, 1.2),
    ("1d-separated", 500, 1, 2, 8.0),
    ("5d-overlap", 2000, 5, 3, 1.0),
    ("5d-separated", 2000, 5, 3, 8.0),
    ("12d-separated", 3000, 12, 6, 8.0),
    ("12d-overlap", 3000, 12, 6, 1.5),
]
N_ITER = 25


@pytest.mark.parametrize("covariance_type", COV_TYPES)
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_fixed_iterations_match_sklearn(rng, case, covariance_type):
    name, n, d, k, sep = case
    X, true_means = _mixture_data(rng, n, d, k, sep)
    init = _initial(rng, X, k, covariance_type, true_means if sep > 4 else None)
    e, s = _fit_pair(X, k, covariance_type, init, tol=0.0, max_iter=N_ITER)

    assert e.n_iter_ == s.n_iter_ == N_ITER
    assert e.converged_ is False and s.converged_ is False
    assert math.isclose(e.lower_bound_, s.lower_bound_, rel_tol=1e-8), (
        e.lower_bound_,
        s.lower_bound_,
    )
    # The whole history, not just its end: the first entry is the log-likelihood of the
    # initial parameters, so it checks how precisions_init was read.
    assert len(e.lower_bounds_) == len(s.lower_bounds_) == N_ITER
    _assert_close(e.lower_bounds_, s.lower_bounds_, 1e-8, "lower_bounds_")

    _assert_close(e.weights_, s.weights_, 1e-6, "weights_")
    _assert_close(e.means_, s.means_, 1e-6, "means_")
    _assert_close(e.covariances_, s.covariances_, 1e-6, "covariances_")
    _assert_close(e.precisions_cholesky_, s.precisions_cholesky_, 1e-6, "precisions_cholesky_")
    _assert_close(e.precisions_, s.precisions_, 1e-6, "precisions_")


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_precisions_init_is_read_as_precision(rng, covariance_type):
    """With max_iter=1, lower_bound_ is the log-likelihood of the initial parameters.

    Computed independently with scipy from weights_init, means_init and
    inv(precisions_init): a non-diagonal precision must be factored so that
    U @ U.T == precision (scikit-learn's convention), not U.T @ U.
    """
    X, _ = _mixture_data(rng, 600, 3, 2, 3.0)
    w, m, p = _initial(rng, X, 2, covariance_type)
    if covariance_type in ("full", "tied"):
        off_diagonal = p[..., ~np.eye(3, dtype=bool)]
        assert np.abs(off_diagonal).max() > 1e-2  # the factor's convention matters
    model = emix.GaussianMixture(
        2,
        covariance_type=covariance_type,
        weights_init=w,
        means_init=m,
        precisions_init=p,
        max_iter=1,
        tol=0.0,
    )
    with pytest.warns(emix.ConvergenceWarning):
        model.fit(X)
    if covariance_type == "full":
        covs = [np.linalg.inv(pk) for pk in p]
    elif covariance_type == "tied":
        covs = [np.linalg.inv(p)] * 2
    elif covariance_type == "diag":
        covs = [np.diag(1.0 / pk) for pk in p]
    else:
        covs = [np.eye(3) / pk for pk in p]
    ref = logsumexp(
        np.column_stack(
            [np.log(w[j]) + stats.multivariate_normal(m[j], covs[j]).logpdf(X) for j in range(2)]
        ),
        axis=1,
    ).mean()
    assert math.isclose(model.lower_bounds_[0], ref, rel_tol=1e-10), (model.lower_bounds_[0], ref)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_predictions_match_independent_references(rng, covariance_type):
    """score_samples, predict_proba, predict, score, bic, aic of emix's own fitted
    parameters against scipy (independent) and sklearn given the same parameters."""
    X, _ = _mixture_data(rng, 1500, 4, 3, 2.0)
    e = emix.GaussianMixture(3, covariance_type=covariance_type, random_state=1, max_iter=300)
    e.fit(X)
    X_new, _ = _mixture_data(rng, 400, 4, 3, 2.5)

    L = _reference_log_joint(e, X_new)
    ref_ss = logsumexp(L, axis=1)
    ref_proba = np.exp(L - ref_ss[:, None])
    n = X_new.shape[0]
    p = _n_free_parameters(covariance_type, 3, 4)
    ref_bic = -2.0 * ref_ss.sum() + p * math.log(n)
    ref_aic = -2.0 * ref_ss.sum() + 2.0 * p

    _assert_close(e.score_samples(X_new), ref_ss, 1e-9, "score_samples vs scipy")
    np.testing.assert_allclose(e.predict_proba(X_new), ref_proba, rtol=1e-7, atol=1e-10)
    np.testing.assert_array_equal(e.predict(X_new), np.argmax(L, axis=1))
    assert math.isclose(e.score(X_new), ref_ss.mean(), rel_tol=1e-10)
    assert math.isclose(e.bic(X_new), ref_bic, rel_tol=1e-10)
    assert math.isclose(e.aic(X_new), ref_aic, rel_tol=1e-10)

    s = _sklearn_with_params_of(e)
    _assert_close(e.score_samples(X_new), s.score_samples(X_new), 1e-9, "score_samples vs sk")
    np.testing.assert_allclose(e.predict_proba(X_new), s.predict_proba(X_new), atol=1e-10)
    np.testing.assert_array_equal(e.predict(X_new), s.predict(X_new))
    assert math.isclose(e.bic(X_new), s.bic(X_new), rel_tol=1e-10)
    assert math.isclose(e.aic(X_new), s.aic(X_new), rel_tol=1e-10)
    # The parameter count behind bic/aic: sklearn's, and the test's own.
    assert e._n_parameters() == s._n_parameters() == p


# --------------------------------------------------------------------------- converged
@pytest.mark.parametrize("covariance_type", COV_TYPES)
@pytest.mark.parametrize("separation", [1.0, 6.0], ids=["overlap", "separated"])
def test_converged_fits_agree_on_n_iter(rng, covariance_type, separation):
    X, true_means = _mixture_data(rng, 1500, 3, 3, separation)
    init = _initial(rng, X, 3, covariance_type, true_means if separation > 4 else None)
    e, s = _fit_pair(X, 3, covariance_type, init, max_iter=500)
    assert s.converged_ and e.converged_
    assert e.n_iter_ == s.n_iter_
    assert e.n_iter_ >= 2
    assert math.isclose(e.lower_bound_, s.lower_bound_, rel_tol=1e-8)
    _assert_close(e.lower_bounds_, s.lower_bounds_, 1e-8, "lower_bounds_")
    # The stopping rule: the last change is below tol, every earlier one is not.
    changes = np.abs(np.diff(e.lower_bounds_))
    assert changes[-1] < e.tol and np.all(changes[:-1] >= e.tol)


def test_unconverged_fit_agrees_with_sklearn(rng):
    X, _ = _mixture_data(rng, 1500, 3, 3, 1.0)
    init = _initial(rng, X, 3, "full")
    e, s = _both(3, "full", init, tol=1e-9, max_iter=4)
    with pytest.warns(emix.ConvergenceWarning):
        e.fit(X)
    with pytest.warns(SkConvergenceWarning):
        s.fit(X)
    assert e.converged_ is False and s.converged_ is False
    assert e.n_iter_ == s.n_iter_ == 4


# --------------------------------------------------------------------------- weights
def _fit_quiet(model, X, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", emix.ConvergenceWarning)
        return model.fit(X, **kw)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_integer_weights_equal_repeated_rows_same_init(rng, covariance_type):
    X, _ = _mixture_data(rng, 400, 3, 3, 2.0)
    w = rng.integers(0, 4, size=len(X))
    w[:3] = [0, 1, 3]  # make sure zero, one and several all occur
    X_rep = np.repeat(X, w, axis=0)
    init = _initial(rng, X_rep, 3, covariance_type)
    kw = _start_at(covariance_type, init, tol=0.0, max_iter=15)
    a = _fit_quiet(emix.GaussianMixture(3, **kw), X, sample_weight=w)
    b = _fit_quiet(emix.GaussianMixture(3, **kw), X_rep)
    assert a.n_iter_ == b.n_iter_ == 15
    assert math.isclose(a.lower_bound_, b.lower_bound_, rel_tol=1e-10)
    _assert_close(a.lower_bounds_, b.lower_bounds_, 1e-10, "lower_bounds_")
    _assert_close(a.weights_, b.weights_, 1e-9, "weights_")
    _assert_close(a.means_, b.means_, 1e-9, "means_")
    _assert_close(a.covariances_, b.covariances_, 1e-9, "covariances_")
    # And sklearn on the repeated rows, from the same start, agrees with the weighted fit.
    s = SkGaussianMixture(3, **kw)
    with pytest.warns(SkConvergenceWarning):
        s.fit(X_rep)
    assert math.isclose(a.lower_bound_, s.lower_bound_, rel_tol=1e-8)
    _assert_close(a.means_, s.means_, 1e-6, "means_ vs sklearn on repeated rows")


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_integer_weights_equal_repeated_rows_kmeans_init_one_component(rng, covariance_type):
    X, _ = _mixture_data(rng, 300, 4, 1, 0.0)
    w = rng.integers(0, 5, size=len(X))
    X_rep = np.repeat(X, w, axis=0)
    a = emix.GaussianMixture(1, covariance_type=covariance_type, random_state=3)
    b = emix.GaussianMixture(1, covariance_type=covariance_type, random_state=3)
    a.fit(X, sample_weight=w)
    b.fit(X_rep)
    assert a.n_iter_ == b.n_iter_
    assert math.isclose(a.lower_bound_, b.lower_bound_, rel_tol=1e-10)
    _assert_close(a.means_, b.means_, 1e-10, "means_")
    _assert_close(a.covariances_, b.covariances_, 1e-10, "covariances_")
    # Independent reference: the weighted mean and biased weighted covariance.
    mean = np.average(X, axis=0, weights=w)
    _assert_close(a.means_[0], mean, 1e-10, "weighted mean")
    if covariance_type == "full":
        cov = np.cov(X.T, aweights=w, bias=True) + 1e-6 * np.eye(4)
        _assert_close(a.covariances_[0], cov, 1e-10, "weighted covariance")


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_integer_weights_equal_repeated_rows_kmeans_init_separated(rng, covariance_type):
    X, _ = _mixture_data(rng, 600, 2, 3, 10.0)
    w = rng.integers(1, 4, size=len(X))
    X_rep = np.repeat(X, w, axis=0)
    kw = dict(covariance_type=covariance_type, random_state=5, tol=1e-10, max_iter=500)
    a = emix.GaussianMixture(3, **kw).fit(X, sample_weight=w)
    b = emix.GaussianMixture(3, **kw).fit(X_rep)
    order_a = np.lexsort(a.means_.T[::-1])
    order_b = np.lexsort(b.means_.T[::-1])
    _assert_close(a.means_[order_a], b.means_[order_b], 1e-8, "sorted means_")
    _assert_close(a.weights_[order_a], b.weights_[order_b], 1e-8, "weights_")
    assert math.isclose(a.lower_bound_, b.lower_bound_, rel_tol=1e-10)


@pytest.mark.parametrize("init_params", ["same-start", "kmeans"])
def test_zero_weight_equals_dropping_the_row(rng, init_params):
    X, _ = _mixture_data(rng, 400, 3, 2, 6.0)
    w = (rng.random(len(X)) > 0.3).astype(float)
    kw = dict(covariance_type="full", random_state=11, tol=0.0, max_iter=20)
    if init_params == "same-start":
        init = _initial(rng, X[w > 0], 2, "full")
        kw = _start_at("full", init, random_state=11, tol=0.0, max_iter=20)
    a = _fit_quiet(emix.GaussianMixture(2, **kw), X, sample_weight=w)
    b = _fit_quiet(emix.GaussianMixture(2, **kw), X[w > 0])
    assert math.isclose(a.lower_bound_, b.lower_bound_, rel_tol=1e-10)
    order_a = np.argsort(a.means_[:, 0])
    order_b = np.argsort(b.means_[:, 0])
    _assert_close(a.means_[order_a], b.means_[order_b], 1e-9, "means_")
    _assert_close(a.covariances_[order_a], b.covariances_[order_b], 1e-9, "covariances_")
    _assert_close(a.weights_[order_a], b.weights_[order_b], 1e-9, "weights_")


# --------------------------------------------------------------------------- float32
@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_float32_keeps_dtype_and_agrees_with_float64(rng, covariance_type):
    # Well-conditioned components (see the elongated-component tests below for why).
    X, _ = _mixture_data(rng, 2000, 4, 3, 3.0, shape_noise=0.15)
    X32 = X.astype(np.float32)
    init = _initial(rng, X, 3, covariance_type)
    kw = _start_at(covariance_type, init, tol=0.0, max_iter=20)
    m32 = _fit_quiet(emix.GaussianMixture(3, **kw), X32)
    m64 = _fit_quiet(emix.GaussianMixture(3, **kw), X)
    for attr in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        assert getattr(m32, attr).dtype == np.float32, attr
        assert getattr(m64, attr).dtype == np.float64, attr
    assert m32.score_samples(X32).dtype == np.float32
    assert m32.predict_proba(X32).dtype == np.float32
    assert np.issubdtype(m32.predict(X32).dtype, np.integer)
    assert m32.sample(10)[0].dtype == np.float32
    assert math.isclose(m32.lower_bound_, m64.lower_bound_, rel_tol=1e-4)
    _assert_close(m32.lower_bounds_, m64.lower_bounds_, 1e-4, "lower_bounds_")
    _assert_close(m32.weights_, m64.weights_, 1e-3, "weights_")
    _assert_close(m32.means_, m64.means_, 1e-3, "means_")
    _assert_close(m32.covariances_, m64.covariances_, 1e-3, "covariances_")
    # Predictions of the float32 model on float32 data track the float64 reference.
    _assert_close(m32.score_samples(X32), m64.score_samples(X), 1e-3, "score_samples")
    assert np.mean(m32.predict(X32) == m64.predict(X)) > 0.99


def _elongated_data(seed, thin):
    """Two components in 3-D; the first has standard deviations (2, 1, thin) along a
    random rotation, so its covariance has condition number (2 / thin)^2."""
    from scipy.stats import special_ortho_group

    rng = np.random.default_rng(seed)
    R = special_ortho_group.rvs(3, random_state=seed)
    A = R @ np.diag([2.0, 1.0, thin])
    X0 = rng.normal(size=(1000, 3)) @ A.T + [4.0, 0.0, 0.0]
    X1 = rng.normal(size=(1000, 3)) + [-4.0, 2.0, 0.0]
    X = np.vstack([X0, X1])
    return X[rng.permutation(len(X))]


# Elongated components have large precisions, so the expanded quadratic form would
# cancel in float32; the E-step must notice and switch to the anchored form.
@pytest.mark.parametrize("thin", [0.03, 0.01])
def test_float32_log_density_accuracy_on_elongated_component(thin):
    X = _elongated_data(0, thin)
    X32 = X.astype(np.float32)
    m = emix.GaussianMixture(2, means_init=[[4.0, 0, 0], [-4.0, 2, 0]], random_state=0)
    m.fit(X)
    # Reference: the same parameters and the same (float32-rounded) rows in float64.
    ref = m.score_samples(X32.astype(np.float64))
    got = m.score_samples(X32).astype(np.float64)
    # scikit-learn's float32 arithmetic on the same parameters, as the bar to meet.
    s = _sklearn_with_params_of(m)
    for attr in ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_"):
        setattr(s, attr, getattr(s, attr).astype(np.float32))
    sk = s.score_samples(X32).astype(np.float64)
    scale = abs(ref.mean())
    sk_err = abs(sk.mean() - ref.mean()) / scale
    assert sk_err < 1e-6  # what float32 can do here
    # The mean log-likelihood must be accurate well inside the float32 drop tolerance
    # (1e-5 relative), or EM's own round-off looks like a likelihood drop.
    err = abs(got.mean() - ref.mean()) / scale
    assert err < 1e-6, f"emix float32 relative error {err:.2e}, sklearn {sk_err:.2e}"


def test_float32_fit_on_elongated_component_reports_no_drop():
    X = _elongated_data(7, 0.01)  # a seed on which float32 EM "dropped" six times
    # random_state fixes the k-means labels that give the starting weights/covariances.
    kw = dict(covariance_type="full", means_init=[[4.0, 0, 0], [-4.0, 2, 0]], tol=0.0,
              max_iter=40, random_state=0)
    with pytest.warns(emix.ConvergenceWarning):
        m64 = emix.GaussianMixture(2, **kw).fit(X)
    # float64 may dip by the regularisation gap (reg_covar is 1% of the thin
    # component's variance here); the monitor allows exactly that, and would have
    # raised LikelihoodDecreaseWarning (an error in this suite) beyond it.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m32 = emix.GaussianMixture(2, **kw).fit(X.astype(np.float32))
    drops = [
        str(w.message)
        for w in caught
        if issubclass(w.category, emix.LikelihoodDecreaseWarning)
    ]
    assert not drops, drops[0]
    assert math.isclose(m32.lower_bound_, m64.lower_bound_, rel_tol=1e-5)


# --------------------------------------------------------------------------- closed forms
@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_single_component_closed_form_in_one_iteration(rng, covariance_type):
    D = 4
    A = np.eye(D) + 0.5 * rng.normal(size=(D, D))
    X = rng.normal(size=(800, D)) @ A.T + rng.normal(size=D) * 3
    reg = 1e-6
    # A deliberately bad start: one M-step must land on the MLE whatever the start,
    # because a single component takes every row with responsibility 1.
    far = {"full": np.eye(D)[None] * 7.0, "tied": np.eye(D) * 7.0,
           "diag": np.full((1, D), 7.0), "spherical": np.array([7.0])}[covariance_type]
    model = emix.GaussianMixture(
        1,
        covariance_type=covariance_type,
        means_init=np.full((1, D), 50.0),
        precisions_init=far,
        max_iter=1,
        tol=0.0,
        reg_covar=reg,
    )
    with pytest.warns(emix.ConvergenceWarning):
        model.fit(X)
    mean = X.mean(axis=0)
    cov = np.cov(X.T, bias=True)
    expected = {
        "full": (cov + reg * np.eye(D))[None],
        "tied": cov + reg * np.eye(D),
        "diag": (np.diag(cov) + reg)[None],
        "spherical": np.array([np.trace(cov) / D + reg]),
    }[covariance_type]
    _assert_close(model.weights_, [1.0], 1e-14, "weights_")
    _assert_close(model.means_[0], mean, 1e-12, "means_")
    _assert_close(model.covariances_, expected, 1e-11, "covariances_")

    # The log-likelihood of the MLE, independently from scipy.
    full_cov = _full_covariances(model)[0]
    ref = stats.multivariate_normal(mean, full_cov).logpdf(X).mean()
    assert math.isclose(model.score(X), ref, rel_tol=1e-11)
    # The recorded bound of the one iteration is that of the (far) starting point.
    start = stats.multivariate_normal(np.full(D, 50.0), np.eye(D) / 7.0).logpdf(X).mean()
    assert math.isclose(model.lower_bound_, start, rel_tol=1e-11)

    # One more iteration: the bound is the MLE's log-likelihood and EM has converged.
    model2 = emix.GaussianMixture(1, covariance_type=covariance_type, reg_covar=reg)
    model2.fit(X)
    assert model2.converged_ and model2.n_iter_ == 2
    assert math.isclose(model2.lower_bound_, ref, rel_tol=1e-11)


def test_float32_fit_of_very_thin_component_settles():
    """Condition number ~4e5: float32 statistics would cycle; the anchored path sums in
    float64 and settles where float64 does."""
    X = _elongated_data(3, 0.003)
    kw = dict(covariance_type="full", means_init=[[4.0, 0, 0], [-4.0, 2, 0]], tol=0.0,
              max_iter=30, random_state=0)
    with pytest.warns(emix.ConvergenceWarning):
        m64 = emix.GaussianMixture(2, **kw).fit(X)
    with pytest.warns(emix.ConvergenceWarning):
        m32 = emix.GaussianMixture(2, **kw).fit(X.astype(np.float32))
    assert np.ptp(m32.lower_bounds_[-5:]) < 1e-6
    assert math.isclose(m32.lower_bound_, m64.lower_bound_, rel_tol=1e-6)
