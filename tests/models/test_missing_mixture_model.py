"""MixtureModel with missing values (NaN): exact EM on Poisson, Bernoulli, categorical
(and other column-independent) mixtures, checked against closed forms and scipy."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as ss
from scipy.special import logsumexp

from emix import MixtureModel
from emix._missing import MissingDataWarning
from emix.exceptions import InputError

TRUTH = {
    "poisson": {"rates": np.array([[1.0, 6.0, 2.0, 8.0, 3.0], [7.0, 1.5, 5.0, 2.0, 0.5]])},
    "bernoulli": {"probabilities": np.array([[0.1, 0.8, 0.2, 0.9, 0.3], [0.85, 0.2, 0.7, 0.15, 0.6]])},
    # four columns of three categories
    "categorical": {"probabilities": np.array([
        [0.7, 0.2, 0.1, 0.1, 0.2, 0.7, 0.6, 0.3, 0.1, 0.2, 0.2, 0.6],
        [0.1, 0.3, 0.6, 0.8, 0.1, 0.1, 0.1, 0.2, 0.7, 0.5, 0.4, 0.1],
    ])},
}
WEIGHTS = np.array([0.4, 0.6])


def _draw(name, rng, N):
    z = (rng.random(N) < WEIGHTS[1]).astype(int)
    if name == "poisson":
        X = rng.poisson(TRUTH[name]["rates"][z]).astype(float)
    elif name == "bernoulli":
        X = (rng.random((N, 5)) < TRUTH[name]["probabilities"][z]).astype(float)
    else:
        p = TRUTH[name]["probabilities"]
        cols = [(rng.random(N)[:, None] > np.cumsum(p[z, 3 * j : 3 * j + 3], axis=1)).sum(axis=1)
                for j in range(4)]
        X = np.minimum(np.stack(cols, axis=1), 2).astype(float)
    return X, z


def _options(name):
    return {"family_options": {"n_categories": 3}} if name == "categorical" else {}


def _mcar(rng, X, frac):
    Xm = X.copy()
    Xm[rng.random(X.shape) < frac] = np.nan
    return Xm


def _cell_logpmf(name, params, k, Z):
    """log p(x_d | k) of every cell of Z (N, D), missing cells set to a valid value."""
    if name == "poisson":
        return ss.poisson(params["rates"][k]).logpmf(Z)
    if name == "bernoulli":
        return ss.bernoulli(params["probabilities"][k]).logpmf(Z)
    p = params["probabilities"][k]
    return np.stack([np.log(p[3 * j : 3 * j + 3][Z[:, j].astype(int)]) for j in range(Z.shape[1])],
                    axis=1)


def _direct_log_joint(name, model, X):
    """``log w_k + sum over observed cells of log p(x_d | k)`` from scipy, (N, K)."""
    O = ~np.isnan(X)
    Z = np.where(O, X, 0.0)
    return np.stack([
        np.log(model.weights_[k]) + np.where(O, _cell_logpmf(name, model.params_, k, Z), 0.0).sum(axis=1)
        for k in range(len(model.weights_))
    ], axis=1)


def _fit(name, X, **kw):
    kw = {"random_state": 0, "label_order": "mean", **_options(name), **kw}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingDataWarning)
        return MixtureModel(name, 2, **kw).fit(X)


# --------------------------------------------------------------------------- K = 1
def test_one_component_is_the_observed_data_maximum_likelihood(rng):
    X = rng.poisson([2.0, 5.0, 0.5], size=(200, 3)).astype(float)
    Xm = _mcar(rng, X, 0.3)
    w = rng.uniform(0.2, 3.0, X.shape[0])
    Xm[(~np.isnan(Xm)).sum(axis=1) == 0, 0] = 1.0  # no empty rows here
    m = MixtureModel("poisson", 1, tol=1e-12).fit(Xm, sample_weight=w)
    O = ~np.isnan(Xm)
    want = (w[:, None] * np.where(O, Xm, 0)).sum(0) / (w[:, None] * O).sum(0)
    np.testing.assert_allclose(m.rates_[0], want, rtol=1e-12)
    e = MixtureModel("exponential", 1, tol=1e-12).fit(Xm + 0.5)
    np.testing.assert_allclose(e.rates_[0], 1.0 / np.nanmean(Xm + 0.5, axis=0), rtol=1e-12)
    b = MixtureModel("bernoulli", 1, tol=1e-12).fit(np.where(np.isnan(Xm), np.nan, Xm > 1))
    np.testing.assert_allclose(b.probabilities_[0], np.nanmean(np.where(np.isnan(Xm), np.nan, Xm > 1), axis=0),
                               rtol=1e-12)
    c = MixtureModel("categorical", 1, tol=1e-12).fit(np.minimum(Xm, 3))
    freq = [np.bincount(col[~np.isnan(col)].astype(int), minlength=4) for col in np.minimum(Xm, 3).T]
    np.testing.assert_allclose(c.probabilities_[0], np.concatenate([f / f.sum() for f in freq]), rtol=1e-12)


# --------------------------------------------------------------------------- scores
@pytest.mark.parametrize("name", ["poisson", "bernoulli", "categorical"])
def test_score_samples_is_the_marginal_of_the_observed_cells(name, rng):
    X, _ = _draw(name, rng, 300)
    Xm = _mcar(rng, X, 0.2)
    Xm[5] = np.nan
    m = _fit(name, Xm, max_iter=20)
    L = _direct_log_joint(name, m, Xm)
    np.testing.assert_allclose(m.score_samples(Xm), logsumexp(L, axis=1), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(m.predict_proba(Xm), np.exp(L - logsumexp(L, axis=1, keepdims=True)),
                               atol=1e-10)
    np.testing.assert_array_equal(m.predict(Xm), np.argmax(L, axis=1))
    # A row with nothing observed: the prior.
    np.testing.assert_allclose(m.predict_proba(Xm[5:6])[0], m.weights_, rtol=1e-12)
    assert abs(m.score_samples(Xm[5:6])[0]) < 1e-12
    # BIC counts the rows with an observed value.
    n_obs = int((~np.isnan(Xm)).any(axis=1).sum())
    want = -2.0 * m.score_samples(Xm).sum() + m._n_parameters() * math.log(n_obs)
    np.testing.assert_allclose(m.bic(Xm), want, rtol=1e-10)


# --------------------------------------------------------------------------- accuracy
@pytest.mark.parametrize("name", ["poisson", "bernoulli", "categorical"])
def test_mcar_fit_beats_complete_case_analysis(name):
    key = next(iter(TRUTH[name]))
    wins = 0
    for seed in range(3):
        rng = np.random.default_rng(100 + seed)
        X, _ = _draw(name, rng, 600)
        Xm = _mcar(rng, X, 0.2)
        em = _fit(name, Xm, tol=1e-6, max_iter=300)
        cc = _fit(name, Xm[~np.isnan(Xm).any(axis=1)], tol=1e-6, max_iter=300)
        err_em = np.abs(em.params_[key] - TRUTH[name][key]).mean()
        err_cc = np.abs(cc.params_[key] - TRUTH[name][key]).mean()
        wins += err_em < err_cc
    assert wins == 3


@settings(max_examples=10)
@given(seed=st.integers(0, 2**16), frac=st.floats(0.05, 0.5),
       name=st.sampled_from(["poisson", "bernoulli", "categorical"]))
def test_log_likelihood_never_decreases(seed, frac, name):
    rng = np.random.default_rng(seed)
    X, _ = _draw(name, rng, 80)
    Xm = _mcar(rng, X, frac)
    if np.isnan(Xm).all(axis=0).any() or (~np.isnan(Xm)).any(axis=1).sum() < 2:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence and empty rows are not the point
        try:
            m = MixtureModel(name, 2, random_state=seed, max_iter=20, tol=0.0, **_options(name)).fit(Xm)
        except InputError:  # fewer distinct observed rows than components
            return
    h = m.lower_bounds_
    assert np.all(np.diff(h) >= -1e-10 * np.abs(h[1:]))


# --------------------------------------------------------------------------- impute
def test_impute_is_the_conditional_mean(rng):
    X, _ = _draw("poisson", rng, 400)
    Xm = _mcar(rng, X, 0.2)
    Xm[3] = np.nan
    m = _fit("poisson", Xm, max_iter=30)
    L = _direct_log_joint("poisson", m, Xm)
    r = np.exp(L - logsumexp(L, axis=1, keepdims=True))
    filled = m.impute(Xm)
    O = ~np.isnan(Xm)
    np.testing.assert_allclose(filled, np.where(O, Xm, r @ m.rates_), rtol=1e-10)
    assert np.array_equal(filled[O], Xm[O])
    np.testing.assert_allclose(filled[3], m.weights_ @ m.rates_, rtol=1e-12)
    # Better than the column means on the cells that were hidden.
    miss = ~O & ~np.isnan(X)
    col_mean = np.where(O, Xm, np.nanmean(Xm, axis=0))
    assert np.sqrt(np.mean((filled[miss] - X[miss]) ** 2)) < np.sqrt(np.mean((col_mean[miss] - X[miss]) ** 2))


def test_multiple_imputations_have_the_conditional_spread(rng):
    X, _ = _draw("poisson", rng, 300)
    Xm = _mcar(rng, X, 0.2)
    m = _fit("poisson", Xm, max_iter=30)
    rows = np.flatnonzero(np.isnan(Xm).any(axis=1))[:4]
    Xr = Xm[rows]
    n = 3000
    draws = m.impute(Xr, n_draws=n, random_state=1)
    assert draws.shape == (n,) + Xr.shape
    O = ~np.isnan(Xr)
    assert np.all(draws[:, O] == Xr[O])
    L = _direct_log_joint("poisson", m, Xr)
    r = np.exp(L - logsumexp(L, axis=1, keepdims=True))
    mean = r @ m.rates_
    var = r @ (m.rates_ + m.rates_ ** 2) - mean ** 2  # a mixture of Poissons
    got_mean, got_var = draws.mean(axis=0), draws.var(axis=0)
    assert np.all(np.abs(got_mean - mean)[~O] <= 5 * np.sqrt(var[~O] / n))
    np.testing.assert_allclose(got_var[~O], var[~O], rtol=0.12)
    np.testing.assert_array_equal(m.impute(Xr, n_draws=3, random_state=7),
                                  m.impute(Xr, n_draws=3, random_state=7))


def test_impute_fills_a_product_part_by_part(rng):
    X, _ = _draw("poisson", rng, 200)
    B = (rng.random((200, 2)) < 0.4).astype(float)
    Xm = _mcar(rng, np.hstack([X[:, :2], B]), 0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingDataWarning)
        m = MixtureModel({"poisson": [0, 1], "bernoulli": [2, 3]}, 2, random_state=0).fit(Xm)
    filled = m.impute(Xm)
    assert not np.isnan(filled).any()
    fam = m.family_
    _, fp = m._current_params()
    r = m.predict_proba(Xm)
    want = np.hstack([r @ fp["0:rates"], r @ fp["1:probabilities"]])
    np.testing.assert_allclose(filled, np.where(np.isnan(Xm), want, Xm), rtol=1e-10)
    assert fam.name == "product"


# --------------------------------------------------------------------------- edges
def test_rows_with_nothing_observed_are_ignored_with_one_warning(rng):
    X, _ = _draw("poisson", rng, 100)
    Xm = _mcar(rng, X, 0.1)
    Xm[[3, 50]] = np.nan
    w = rng.uniform(0.5, 2.0, 100)
    with pytest.warns(MissingDataWarning, match="2 rows have every value missing") as rec:
        a = MixtureModel("poisson", 2, random_state=0).fit(Xm, sample_weight=w)
    assert len([x for x in rec if issubclass(x.category, MissingDataWarning)]) == 1
    keep = np.setdiff1d(np.arange(100), [3, 50])
    b = MixtureModel("poisson", 2, random_state=0).fit(Xm[keep], sample_weight=w[keep])
    np.testing.assert_array_equal(a.rates_, b.rates_)
    np.testing.assert_array_equal(a.lower_bounds_, b.lower_bounds_)


def test_missing_error_inf_and_bad_keyword(rng):
    X, _ = _draw("poisson", rng, 60)
    Xm = _mcar(rng, X, 0.1)
    with pytest.raises(InputError, match="NaN"):
        MixtureModel("poisson", 2, missing="error").fit(Xm)
    fitted = MixtureModel("poisson", 2, missing="error", random_state=0).fit(X)
    with pytest.raises(InputError, match="NaN"):
        fitted.score_samples(Xm)
    Xi = X.copy()
    Xi[4, 2] = -np.inf
    with pytest.raises(InputError, match=r"inf.*rows? 4.*column 2"):
        MixtureModel("poisson", 2).fit(Xi)
    with pytest.raises(InputError, match="missing must be one of"):
        MixtureModel("poisson", 2, missing="mean").fit(X)
    # Out-of-support values are still named; NaN is not one of them.
    Xb = Xm.copy()
    Xb[7, 1] = 2.5
    with pytest.raises(InputError, match=r"row 7, column 1"):
        MixtureModel("poisson", 2).fit(Xb)


@pytest.mark.parametrize("name", ["poisson", "bernoulli", "categorical"])
def test_no_nan_is_the_complete_data_fit_bit_for_bit(name, rng):
    X, _ = _draw(name, rng, 300)
    a = MixtureModel(name, 2, random_state=3, missing="em", **_options(name)).fit(X)
    b = MixtureModel(name, 2, random_state=3, missing="error", **_options(name)).fit(X)
    np.testing.assert_array_equal(a.lower_bounds_, b.lower_bounds_)
    key = next(iter(TRUTH[name]))
    np.testing.assert_array_equal(a.params_[key], b.params_[key])
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))


def test_torch_cpu_equals_numpy_with_missing_cells(rng):
    pytest.importorskip("torch")
    X, _ = _draw("poisson", rng, 300)
    Xm = _mcar(rng, X, 0.2)
    a = _fit("poisson", Xm)
    b = _fit("poisson", Xm, device="cpu")
    np.testing.assert_allclose(a.rates_, b.rates_, rtol=1e-10)
    np.testing.assert_allclose(a.lower_bounds_, b.lower_bounds_, rtol=1e-12)
    np.testing.assert_allclose(a.impute(Xm), b.impute(Xm), rtol=1e-10)


def test_partial_fit_and_minibatch_take_missing_cells(rng, tmp_path):
    X, _ = _draw("poisson", rng, 600)
    Xm = _mcar(rng, X, 0.2)
    Xm[10] = np.nan
    m = MixtureModel("poisson", 2, random_state=0, label_order="mean")
    for a in range(0, 600, 200):
        m.partial_fit(Xm[a : a + 200])
    assert m.n_batches_seen_ == 3
    assert np.all(np.isfinite(m.rates_))
    full = _fit("poisson", Xm)
    order = np.argsort(m.rates_[:, 0])
    np.testing.assert_allclose(m.rates_[order], full.rates_, atol=1.0)
    # algorithm="minibatch" reads a file's NaN the same way, batch by batch.
    np.save(tmp_path / "x.npy", Xm)
    with pytest.warns(MissingDataWarning, match=r"1 row .* \(rows 10\)"):
        mb = MixtureModel("poisson", 2, random_state=0, label_order="mean").fit(
            tmp_path / "x.npy", algorithm="minibatch", batch_rows=200, n_epochs=3)
    assert mb.n_batches_seen_ == 9
    np.testing.assert_allclose(mb.rates_, full.rates_, atol=1.0)
    with pytest.raises(InputError, match="column 1 has no observed value in the first batch"):
        Xc = Xm[:50].copy()
        Xc[:, 1] = np.nan
        MixtureModel("poisson", 2).partial_fit(Xc)


def test_impute_refuses_a_path(rng, tmp_path):
    X, _ = _draw("poisson", rng, 50)
    path = tmp_path / "x.npy"
    np.save(path, X)
    m = MixtureModel("poisson", 2, random_state=0).fit(X)
    with pytest.raises(InputError, match="fills an array in memory"):
        m.impute(str(path))
