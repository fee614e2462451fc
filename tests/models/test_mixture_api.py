"""The scikit-learn-style API of emix.GaussianMixture: seeds, restarts, warm starts,
callbacks, input kinds, sampling, verbosity, parameters, pickling and the identities
between its prediction methods."""

from __future__ import annotations

import math
import pickle
import re
import warnings

import numpy as np
import pytest

import emix
from emix.families.gaussian import GaussianMixtureParams

COV_TYPES = ("full", "tied", "diag", "spherical")
INIT_PARAMS = ("kmeans", "k-means++", "random", "random_from_data")


def _blobs(rng, n, means, sd=1.0):
    """Rows around ``means`` (K, D) with isotropic spread ``sd``; equal weights."""
    means = np.asarray(means, dtype=float)
    labels = rng.integers(0, len(means), size=n)
    return means[labels] + sd * rng.normal(size=(n, means.shape[1]))


def _three_blobs(rng, n=600, sd=1.0):
    return _blobs(rng, n, [[0.0, 0.0, 0.0], [4.0, 0.0, 1.0], [0.0, 5.0, -1.0]], sd)


def _fit_quiet(model, X, **kw):
    """Fit, ignoring only emix's ConvergenceWarning (tol=0 fits never converge)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=emix.ConvergenceWarning)
        return model.fit(X, **kw)


def _fitted_arrays(m):
    return [m.weights_, m.means_, m.covariances_, m.precisions_cholesky_, m.lower_bounds_]


# --------------------------------------------------------------------------- seeds
@pytest.mark.parametrize("init_params", INIT_PARAMS)
def test_same_seed_is_bit_for_bit_reproducible(rng, init_params):
    X = _three_blobs(rng, n=400, sd=1.5)
    kw = dict(init_params=init_params, n_init=3, random_state=42, max_iter=30)
    a = _fit_quiet(emix.GaussianMixture(3, **kw), X)
    b = _fit_quiet(emix.GaussianMixture(3, **kw), X)
    for x, y in zip(_fitted_arrays(a), _fitted_arrays(b)):
        assert np.array_equal(x, y)
    assert a.lower_bound_ == b.lower_bound_
    assert a.n_iter_ == b.n_iter_ and a.best_init_ == b.best_init_
    assert np.array_equal(a.predict_proba(X), b.predict_proba(X))
    # A Generator seeded the same way is the same seed.
    c = _fit_quiet(emix.GaussianMixture(3, **{**kw, "random_state": np.random.default_rng(42)}), X)
    assert np.array_equal(a.means_, c.means_)


@pytest.mark.parametrize("init_params", INIT_PARAMS)
def test_different_seeds_give_different_starts(rng, init_params):
    # Structureless data: every seed's starting point differs, so does the first bound.
    X = rng.uniform(-1, 1, size=(400, 2))
    firsts = set()
    for seed in range(5):
        m = _fit_quiet(
            emix.GaussianMixture(5, init_params=init_params, random_state=seed, max_iter=3), X
        )
        firsts.add(float(m.lower_bounds_[0]))
    assert len(firsts) >= 2


# --------------------------------------------------------------------------- n_init
def test_n_init_keeps_the_best_run(rng):
    X = rng.uniform(-1, 1, size=(500, 2))  # many local optima
    finals = []  # last log-likelihood of each restart, as the callback saw it

    def record(it, ll, params):
        if it == 1:
            finals.append(None)
        finals[-1] = ll

    single = _fit_quiet(emix.GaussianMixture(6, random_state=7, n_init=1, max_iter=30), X)
    many = _fit_quiet(
        emix.GaussianMixture(6, random_state=7, n_init=5, max_iter=30, callback=record), X
    )
    assert len(finals) == 5
    assert many.lower_bound_ >= single.lower_bound_
    # The first restart of n_init=5 is the n_init=1 run (one generator, drawn in order).
    assert finals[0] == single.lower_bound_
    assert many.best_init_ in range(5)
    assert many.lower_bound_ == max(finals)
    assert many.best_init_ == int(np.argmax(finals))
    assert many.lower_bounds_[-1] == many.lower_bound_


# --------------------------------------------------------------------------- warm start
@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_warm_start_continues_the_previous_fit(rng, covariance_type):
    X = _three_blobs(rng, sd=1.8)
    one = _fit_quiet(
        emix.GaussianMixture(3, covariance_type=covariance_type, random_state=3, tol=0.0,
                             max_iter=10),
        X,
    )
    two = emix.GaussianMixture(
        3, covariance_type=covariance_type, random_state=3, tol=0.0, max_iter=5, warm_start=True
    )
    _fit_quiet(two, X)
    np.testing.assert_allclose(two.lower_bounds_, one.lower_bounds_[:5], rtol=1e-12)
    _fit_quiet(two, X)
    assert two.n_iter_ == 5
    np.testing.assert_allclose(two.lower_bounds_, one.lower_bounds_[5:], rtol=1e-12)
    assert math.isclose(two.lower_bound_, one.lower_bound_, rel_tol=1e-12)
    for attr in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        np.testing.assert_allclose(getattr(two, attr), getattr(one, attr), rtol=1e-12,
                                   atol=1e-12, err_msg=attr)


def test_warm_start_ignores_n_init(rng):
    X = _three_blobs(rng, sd=1.5)
    starts = []

    def count_starts(it, ll, params):
        if it == 1:
            starts.append(ll)

    m = emix.GaussianMixture(3, random_state=0, n_init=4, warm_start=True, tol=0.0, max_iter=4,
                             callback=count_starts)
    _fit_quiet(m, X)
    assert len(starts) == 4  # the first fit does all its restarts
    end_of_first = m.means_.copy()
    ll_of_first = m.score(X)
    starts.clear()
    _fit_quiet(m, X)
    assert len(starts) == 1  # the warm fit starts once, from where the first stopped
    assert m.best_init_ == 0
    assert m.n_iter_ == 4
    assert not np.array_equal(m.means_, end_of_first)
    # Its first bound is the log-likelihood of the first fit's final parameters.
    assert math.isclose(starts[0], ll_of_first, rel_tol=1e-12)


@pytest.mark.parametrize("max_iter", [1, 2])
def test_warm_start_converges_across_calls_like_one_fit(rng, max_iter):
    """Warm calls of max_iter iterations converge where one long fit does: the change
    that crosses tol may span two calls (scikit-learn measures it from lower_bound_)."""
    X = _three_blobs(rng, sd=1.5)
    kw = dict(covariance_type="full", random_state=3, tol=1e-4)
    one = emix.GaussianMixture(3, max_iter=200, **kw).fit(X)
    assert one.converged_ and one.n_iter_ > 4
    warm = emix.GaussianMixture(3, max_iter=max_iter, warm_start=True, **kw)
    bounds = []
    for _ in range(200):
        _fit_quiet(warm, X)
        bounds.extend(warm.lower_bounds_)
        if warm.converged_:
            break
    assert warm.converged_ and len(bounds) == one.n_iter_
    np.testing.assert_allclose(bounds, one.lower_bounds_, rtol=1e-12)
    np.testing.assert_allclose(warm.means_, one.means_, rtol=1e-10, atol=1e-10)


# --------------------------------------------------------------------------- callback
def test_callback_sees_every_iteration(rng):
    X = _three_blobs(rng, sd=1.2)
    seen = []

    def cb(iteration, log_likelihood, params):
        seen.append((iteration, log_likelihood, params))

    m = emix.GaussianMixture(3, covariance_type="diag", random_state=0, callback=cb).fit(X)
    assert m.converged_
    assert [s[0] for s in seen] == list(range(1, m.n_iter_ + 1))
    np.testing.assert_array_equal([s[1] for s in seen], m.lower_bounds_)
    assert all(isinstance(s[2], GaussianMixtureParams) for s in seen)
    # The params handed over are the ones whose log-likelihood is reported.
    probe = emix.GaussianMixture(3, covariance_type="diag").fit(X)
    p = seen[-1][2]
    probe.weights_, probe.means_ = p.weights, p.means
    probe.covariances_, probe.precisions_cholesky_ = p.covariances, p.precisions_cholesky
    assert math.isclose(probe.score(X), seen[-1][1], rel_tol=1e-10)


def test_callback_returning_true_stops(rng):
    X = _three_blobs(rng, sd=1.5)
    calls = []

    def stop_at_3(iteration, log_likelihood, params):
        calls.append(iteration)
        return iteration >= 3

    m = emix.GaussianMixture(3, random_state=0, tol=0.0, max_iter=50, callback=stop_at_3)
    _fit_quiet(m, X)
    assert calls == [1, 2, 3]
    assert m.n_iter_ == 3
    assert len(m.lower_bounds_) == 3


def test_callback_stop_does_not_claim_max_iter_was_exhausted(rng):
    X = _three_blobs(rng, sd=1.5)
    m = emix.GaussianMixture(3, random_state=0, max_iter=50, callback=lambda i, ll, p: i >= 2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m.fit(X)
    assert m.n_iter_ == 2
    wrong = [
        str(w.message)
        for w in caught
        if issubclass(w.category, emix.ConvergenceWarning) and "max_iter=50" in str(w.message)
    ]
    assert not wrong, wrong[0]


# --------------------------------------------------------------------------- monotone
@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_lower_bounds_never_decrease(rng, covariance_type):
    configs = [(500, 2.0, 3, "random"), (600, 1.0, 5, "kmeans"), (300, 3.0, 2, "random_from_data")]
    for seed, (n, sd, K, init_params) in enumerate(configs):
        X = _three_blobs(rng, n=n, sd=sd)
        m = _fit_quiet(
            emix.GaussianMixture(K, covariance_type=covariance_type, random_state=seed,
                                 init_params=init_params, tol=1e-6, max_iter=100),
            X,
        )
        lb = m.lower_bounds_
        assert len(lb) == m.n_iter_ >= 2
        drops = lb[:-1] - lb[1:]
        assert np.all(drops <= 1e-9 * np.maximum(np.abs(lb[:-1]), 1.0)), drops.max()


# --------------------------------------------------------------------------- inputs
def test_list_of_lists_equals_numpy(rng):
    X = _three_blobs(rng, n=200)
    a = emix.GaussianMixture(3, random_state=0).fit(X)
    b = emix.GaussianMixture(3, random_state=0).fit(X.tolist())
    assert np.array_equal(a.means_, b.means_)
    assert np.array_equal(a.predict(X), b.predict(X.tolist()))
    assert not hasattr(b, "feature_names_in_")


def test_dataframe_feature_names(rng):
    pd = pytest.importorskip("pandas")
    X = _three_blobs(rng, n=300)
    df = pd.DataFrame(X, columns=["a", "b", "c"])
    m = emix.GaussianMixture(3, random_state=0).fit(df)
    ref = emix.GaussianMixture(3, random_state=0).fit(X)
    np.testing.assert_array_equal(m.feature_names_in_, ["a", "b", "c"])
    # Same fit up to round-off (a DataFrame's values arrive column-major).
    np.testing.assert_allclose(m.means_, ref.means_, rtol=1e-10, atol=1e-12)
    out = m.predict(df)
    assert isinstance(out, np.ndarray)
    assert isinstance(m.score_samples(df), np.ndarray)
    np.testing.assert_array_equal(out, ref.predict(X))
    with pytest.raises(ValueError, match="feature names should match"):
        m.predict(df.rename(columns={"c": "z"}))
    with pytest.raises(ValueError, match="feature names should match"):
        m.predict(df[["c", "b", "a"]])
    with pytest.warns(UserWarning, match="feature names"):
        m.predict(X)
    # Refitting on an array forgets the names.
    m.fit(X)
    assert not hasattr(m, "feature_names_in_")


def test_one_dimensional_input_is_one_feature(rng):
    heights = np.concatenate([rng.normal(162, 6, 300), rng.normal(178, 7, 300)])
    m = emix.GaussianMixture(2, random_state=0).fit(heights)
    assert m.means_.shape == (2, 1)
    assert m.n_features_in_ == 1
    assert sorted(m.means_[:, 0]) == pytest.approx([162, 178], abs=3)
    ref = emix.GaussianMixture(2, random_state=0).fit(heights.reshape(-1, 1))
    assert np.array_equal(m.means_, ref.means_)
    np.testing.assert_array_equal(m.predict(heights), ref.predict(heights.reshape(-1, 1)))
    np.testing.assert_array_equal(m.score_samples(heights[:5]),
                                  ref.score_samples(heights[:5, None]))


def test_one_dimensional_input_to_multifeature_model_says_reshape(rng):
    m = emix.GaussianMixture(2, random_state=0).fit(_three_blobs(rng, n=200))
    with pytest.raises(ValueError, match="Reshape"):
        m.predict(np.array([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="Reshape"):
        m.score_samples(np.array([1.0, 2.0, 3.0]))


# --------------------------------------------------------------------------- sample
@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_sample_matches_the_fitted_mixture(rng, covariance_type):
    X = _blobs(rng, 900, [[0.0, 0.0], [6.0, 1.0], [-1.0, 7.0]], 1.0)
    X[:300] *= [1.0, 2.0]  # some anisotropy
    m = emix.GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X)
    n = 60_000
    S, y = m.sample(n)
    assert S.shape == (n, 2) and y.shape == (n,)
    assert S.dtype == np.float64
    assert np.issubdtype(y.dtype, np.integer)
    counts = np.bincount(y, minlength=3)
    expected = n * m.weights_
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected)), (counts, expected)
    K, D = m.means_.shape
    if covariance_type == "full":
        covs = m.covariances_
    elif covariance_type == "tied":
        covs = np.broadcast_to(m.covariances_, (K, D, D))
    elif covariance_type == "diag":
        covs = np.stack([np.diag(v) for v in m.covariances_])
    else:
        covs = np.stack([v * np.eye(D) for v in m.covariances_])
    for k in range(K):
        Sk = S[y == k]
        nk = len(Sk)
        se = np.sqrt(np.diag(covs[k]) / nk)
        assert np.all(np.abs(Sk.mean(axis=0) - m.means_[k]) < 5 * se)
        emp = np.cov(Sk.T)
        # Sampling sd of a covariance entry ~ sqrt((s_ii s_jj + s_ij^2) / n).
        sd = np.sqrt((np.outer(np.diag(covs[k]), np.diag(covs[k])) + covs[k] ** 2) / nk)
        assert np.all(np.abs(emp - covs[k]) < 5 * sd), (emp, covs[k])
    # A seed fixes the draw; sample(1) works.
    S2, _ = m.sample(n)
    assert np.array_equal(S, S2)
    assert m.sample(1)[0].shape == (1, 2)


def test_sample_is_float32_for_float32_fits(rng):
    X = _three_blobs(rng, n=300).astype(np.float32)
    m = emix.GaussianMixture(3, random_state=0).fit(X)
    S, y = m.sample(50)
    assert S.dtype == np.float32 and S.shape == (50, 3) and y.shape == (50,)


def test_sample_before_fit_raises():
    with pytest.raises(emix.NotFittedError):
        emix.GaussianMixture(2).sample(3)


# --------------------------------------------------------------------------- verbose
def test_verbose_2_prints_one_line_per_iteration(rng, capsys):
    X = _three_blobs(rng, n=300, sd=1.5)
    m = emix.GaussianMixture(3, random_state=0, verbose=2, tol=1e-6, max_iter=200).fit(X)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.strip()]
    iter_lines = [ln for ln in lines if re.search(r"\biteration\s+\d+", ln)]
    assert len(iter_lines) == m.n_iter_ >= 3
    numbers = [int(re.search(r"iteration\s+(\d+)", ln).group(1)) for ln in iter_lines]
    assert numbers == list(range(1, m.n_iter_ + 1))
    # verbose=0 prints nothing.
    emix.GaussianMixture(3, random_state=0).fit(X)
    assert capsys.readouterr().out == ""


# --------------------------------------------------------------------------- params
def test_get_set_params_clone_and_repr():
    from sklearn.base import clone

    m = emix.GaussianMixture(3, covariance_type="diag", reg_covar=1e-4, random_state=5)
    params = m.get_params()
    assert params["n_components"] == 3 and params["covariance_type"] == "diag"
    assert params["reg_covar"] == 1e-4 and params["random_state"] == 5
    assert params["tol"] == 1e-3 and params["max_iter"] == 100
    c = clone(m)
    assert c is not m and c.get_params() == params
    assert m.set_params(n_components=4, tol=1e-5) is m
    assert m.n_components == 4 and m.get_params()["tol"] == 1e-5
    with pytest.raises(ValueError, match="Invalid parameter"):
        m.set_params(no_such_parameter=1)
    r = repr(emix.GaussianMixture(3, covariance_type="diag"))
    assert r.startswith("GaussianMixture(")
    assert "n_components=3" in r and "covariance_type='diag'" in r
    assert "tol=" not in r and "max_iter" not in r
    assert repr(emix.GaussianMixture()) == "GaussianMixture()"


def test_clone_of_fitted_model_is_unfitted(rng):
    from sklearn.base import clone

    m = emix.GaussianMixture(2, random_state=0).fit(_three_blobs(rng, n=100))
    c = clone(m)
    assert not hasattr(c, "means_")
    with pytest.raises(emix.NotFittedError):
        c.predict(np.zeros((2, 3)))


def test_pickle_round_trip_predicts_identically(rng):
    X = _three_blobs(rng, n=400)
    m = emix.GaussianMixture(3, covariance_type="tied", random_state=0).fit(X)
    m2 = pickle.loads(pickle.dumps(m))
    assert np.array_equal(m.predict_proba(X), m2.predict_proba(X))
    assert np.array_equal(m.score_samples(X), m2.score_samples(X))
    assert np.array_equal(m.predict(X), m2.predict(X))
    assert m2.get_params() == m.get_params()


# --------------------------------------------------------------------------- identities
def _n_free(ct, K, D):
    if ct == "full":
        cov = K * D * (D + 1) // 2
    elif ct == "tied":
        cov = D * (D + 1) // 2
    elif ct == "diag":
        cov = K * D
    else:
        cov = K
    return cov + K * D + K - 1


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_prediction_identities(rng, covariance_type):
    X = _three_blobs(rng, n=500, sd=1.5)
    X_new = _three_blobs(rng, n=123, sd=2.0)
    m = emix.GaussianMixture(4, covariance_type=covariance_type, random_state=0).fit(X)
    P = m.predict_proba(X_new)
    assert P.shape == (123, 4)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert np.all(P >= 0)
    np.testing.assert_array_equal(m.predict(X_new), np.argmax(P, axis=1))
    ss = m.score_samples(X_new)
    assert ss.shape == (123,)
    assert math.isclose(m.score(X_new), float(np.mean(ss)), rel_tol=1e-13)
    p = _n_free(covariance_type, 4, 3)
    N = len(X_new)
    assert math.isclose(m.bic(X_new), -2 * N * m.score(X_new) + p * math.log(N), rel_tol=1e-12)
    assert math.isclose(m.aic(X_new), -2 * N * m.score(X_new) + 2 * p, rel_tol=1e-12)
    # fit_predict agrees with fit then predict.
    labels = emix.GaussianMixture(4, covariance_type=covariance_type, random_state=0).fit_predict(X)
    np.testing.assert_array_equal(labels, m.predict(X))
    # Weighted score is the weighted mean of score_samples.
    w = rng.random(N)
    assert math.isclose(m.score(X_new, sample_weight=w), float(w @ ss / w.sum()), rel_tol=1e-12)
