"""emix.MixtureModel: EM for any family and for products of families over columns, checked
against EM written out by hand, scipy.stats densities, and emix.GaussianMixture."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import stats

import emix
from emix.families.poisson import Poisson
from emix.families.product import Product

pd = pytest.importorskip("pandas")


def _poisson_data(rng, n=400):
    z = rng.random(n) < 0.4
    rates = np.where(z[:, None], [[8.0, 1.0]], [[2.0, 10.0]])
    return rng.poisson(rates).astype(np.float64)


def _mixed_frame(rng, n=500):
    z = rng.random(n) < 0.5
    return pd.DataFrame(
        {
            "a": rng.normal(np.where(z, 3.0, 0.0), 1.0),
            "id": np.arange(n, dtype=float),
            "b": rng.normal(np.where(z, -2.0, 1.0), 0.5),
            "c": rng.poisson(np.where(z, 9.0, 2.0)).astype(float),
        }
    )


def _quiet_fit(model, X, **kw):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=emix.ConvergenceWarning)
        return model.fit(X, **kw)


# --------------------------------------------------------------------------- Poisson
def test_poisson_em_matches_em_written_out(rng):
    X = _poisson_data(rng)
    w0 = np.array([0.3, 0.7])
    r0 = np.array([[5.0, 5.0], [1.0, 8.0]])
    model = _quiet_fit(
        emix.MixtureModel("poisson", 2, weights_init=w0, params_init={"rates": r0}, tol=0, max_iter=6),
        X,
    )
    # Textbook EM with scipy's densities.
    w, r, history = w0.copy(), r0.copy(), []
    for _ in range(6):
        logp = np.log(w) + stats.poisson.logpmf(X[:, None, :], r[None]).sum(axis=2)  # (N, K)
        lse = np.logaddexp.reduce(logp, axis=1)
        history.append(lse.mean())
        R = np.exp(logp - lse[:, None])
        nk = R.sum(axis=0)
        w, r = nk / len(X), (R.T @ X) / nk[:, None]
    np.testing.assert_allclose(model.lower_bounds_, history, rtol=1e-12)
    np.testing.assert_allclose(model.weights_, w, rtol=1e-11)
    np.testing.assert_allclose(model.rates_, r, rtol=1e-11)
    # Densities of the fitted model against scipy's.
    dens = np.logaddexp.reduce(
        np.log(model.weights_) + stats.poisson.logpmf(X[:, None, :], model.rates_[None]).sum(axis=2), axis=1
    )
    np.testing.assert_allclose(model.score_samples(X), dens, rtol=1e-12)
    assert model.score(X) == pytest.approx(dens.mean(), rel=1e-12)
    np.testing.assert_allclose(model.predict_proba(X).sum(axis=1), 1.0, rtol=1e-12)


def test_poisson_fit_recovers_rates_and_reports(rng):
    X = _poisson_data(rng, 2000)
    m = emix.MixtureModel("poisson", 2, random_state=0, label_order="mean").fit(X)
    np.testing.assert_allclose(m.rates_, [[2.0, 10.0], [8.0, 1.0]], atol=0.4)
    np.testing.assert_allclose(m.weights_, [0.6, 0.4], atol=0.05)
    assert m.converged_ and m.n_iter_ == len(m.lower_bounds_) and m.lower_bound_ == m.lower_bounds_[-1]
    assert not m.degenerate_ and m.degenerate_components_.size == 0
    assert isinstance(m.family_, Poisson) and m.family_.n_features == 2
    assert m.params_.keys() == {"rates"} and m.n_features_in_ == 2
    # K rates per column plus K - 1 free weights.
    assert m._n_parameters() == 2 * 2 + 1
    ll = m.score(X) * len(X)
    assert m.bic(X) == pytest.approx(-2 * ll + 5 * math.log(len(X)))
    assert m.aic(X) == pytest.approx(-2 * ll + 10)
    Xs, y = m.sample(500)
    assert Xs.shape == (500, 2) and y.shape == (500,) and set(np.unique(y)) <= {0, 1}
    assert np.all(Xs == np.floor(Xs)) and np.all(Xs >= 0)
    assert np.array_equal(m.fit_predict(X), m.predict(X))


@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random", "random_from_data"])
def test_every_start_is_reproducible_from_the_seed(rng, init_params):
    X = _poisson_data(rng, 300)
    kw = dict(init_params=init_params, random_state=7, n_init=2)
    a = emix.MixtureModel("poisson", 2, **kw).fit(X)
    b = emix.MixtureModel("poisson", 2, **kw).fit(X)
    assert np.array_equal(a.rates_, b.rates_) and a.lower_bound_ == b.lower_bound_
    c = emix.MixtureModel("poisson", 2, **{**kw, "random_state": np.random.default_rng(7)}).fit(X)
    assert np.array_equal(a.rates_, c.rates_)


def test_integer_sample_weights_equal_repeated_rows(rng):
    X = _poisson_data(rng, 150)
    counts = rng.integers(0, 4, len(X))
    counts[:2] = 1
    kw = dict(weights_init=[0.5, 0.5], params_init={"rates": [[4.0, 4.0], [2.0, 9.0]]}, tol=0, max_iter=8)
    a = _quiet_fit(emix.MixtureModel("poisson", 2, **kw), X, sample_weight=counts)
    b = _quiet_fit(emix.MixtureModel("poisson", 2, **kw), np.repeat(X, counts, axis=0))
    np.testing.assert_allclose(a.rates_, b.rates_, rtol=1e-12)
    np.testing.assert_allclose(a.lower_bounds_, b.lower_bounds_, rtol=1e-12)
    # The seeded starts draw rows by cumulative weight, so they agree too.
    a = emix.MixtureModel("poisson", 2, random_state=3, init_params="random_from_data").fit(X, sample_weight=counts)
    b = emix.MixtureModel("poisson", 2, random_state=3, init_params="random_from_data").fit(np.repeat(X, counts, axis=0))
    np.testing.assert_allclose(a.rates_, b.rates_, rtol=1e-9)


def test_label_order_renumbers_components(rng):
    X = _poisson_data(rng, 600)
    base = emix.MixtureModel("poisson", 2, random_state=1).fit(X)
    by_mean = emix.MixtureModel("poisson", 2, random_state=1, label_order="mean").fit(X)
    by_weight = emix.MixtureModel("poisson", 2, random_state=1, label_order="weight").fit(X)
    assert by_mean.rates_[0, 0] < by_mean.rates_[1, 0]
    assert by_weight.weights_[0] >= by_weight.weights_[1]
    for m in (by_mean, by_weight):
        perm = [int(np.flatnonzero(np.all(base.rates_ == r, axis=1))[0]) for r in m.rates_]
        assert sorted(perm) == [0, 1]
        np.testing.assert_array_equal(m.weights_, base.weights_[perm])
        np.testing.assert_array_equal(m.predict_proba(X), base.predict_proba(X)[:, perm])


def test_empty_component_keeps_weight_zero_and_is_named(rng):
    X = _poisson_data(rng, 200) + 1.0  # no zero counts: a rate of ~0 explains no row
    with pytest.warns(emix.DegenerateComponentWarning, match="component 2 is empty"):
        m = _quiet_fit(
            emix.MixtureModel(
                "poisson", 3, weights_init=[0.4, 0.4, 0.2],
                params_init={"rates": [[3.0, 11.0], [9.0, 2.0], [1e-300, 1e-300]]}, max_iter=20,
            ),
            X,
        )
    assert m.degenerate_ and m.degenerate_components_.tolist() == [2]
    assert m.weights_[2] == 0.0 and m.rates_[2, 0] == 1e-300
    assert np.all(np.diff(m.lower_bounds_) > -1e-12)
    with pytest.warns(emix.DegenerateComponentWarning, match="component 0 is empty"):
        m2 = _quiet_fit(
            emix.MixtureModel(
                "poisson", 3, weights_init=[0.4, 0.4, 0.2], label_order="mean",
                params_init={"rates": [[3.0, 11.0], [9.0, 2.0], [1e-300, 1e-300]]}, max_iter=20,
            ),
            X,
        )
    # Renumbered first (smallest rates), and its message follows it.
    assert m2.degenerate_components_.tolist() == [0] and m2.weights_[0] == 0.0


def test_warm_start_continues_from_the_fit(rng):
    X = _poisson_data(rng, 300)
    full = _quiet_fit(emix.MixtureModel("poisson", 2, random_state=0, tol=0, max_iter=6), X)
    m = emix.MixtureModel("poisson", 2, random_state=0, tol=0, max_iter=3, warm_start=True)
    _quiet_fit(m, X)
    _quiet_fit(m, X)
    np.testing.assert_allclose(m.rates_, full.rates_, rtol=1e-12)


def test_callback_sees_every_iteration_and_can_stop(rng):
    X = _poisson_data(rng, 200)
    seen = []

    def cb(it, ll, params):
        weights, fp = params
        seen.append((it, ll, weights.shape, fp["rates"].shape))
        return it == 3

    m = emix.MixtureModel("poisson", 2, random_state=0, tol=0, max_iter=50, callback=cb).fit(X)
    assert [s[0] for s in seen] == [1, 2, 3] and m.n_iter_ == 3
    assert seen[0][2:] == ((2,), (2, 2))
    np.testing.assert_allclose([s[1] for s in seen], m.lower_bounds_)


def test_float32_stays_float32(rng):
    X = _poisson_data(rng, 300)
    a = emix.MixtureModel("poisson", 2, random_state=0, label_order="mean").fit(X.astype(np.float32))
    b = emix.MixtureModel("poisson", 2, random_state=0, label_order="mean").fit(X)
    assert a.rates_.dtype == np.float32 and a.weights_.dtype == np.float32
    assert a.sample(5)[0].dtype == np.float32
    np.testing.assert_allclose(a.rates_, b.rates_, rtol=1e-4)


def test_params_round_trip_through_get_set_params():
    m = emix.MixtureModel("poisson", 3, tol=1e-4, label_order="mean")
    p = m.get_params()
    assert p["family"] == "poisson" and p["n_components"] == 3 and p["label_order"] == "mean"
    assert emix.MixtureModel(**p).get_params() == p
    m.set_params(n_components=4)
    assert m.n_components == 4 and "n_components=4" in repr(m)
    with pytest.raises(emix.InputError, match="Invalid parameter"):
        m.set_params(nope=1)


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(family="zipf"), "unknown family 'zipf'"),
        (dict(family=3), "family must be a name"),
        (dict(init_params="ward"), "init_params"),
        (dict(n_components=0), "n_components"),
        (dict(label_order="size"), "label_order"),
        (dict(weights_init=[0.2, 0.2]), "weights_init must sum to 1"),
        (dict(params_init={"rates": [[1.0, 2.0]]}), "one entry per component"),
        (dict(params_init={"lambda": [[1.0, 2.0]] * 2}), "need 'rates'"),
        (dict(family_options={"n": 3}), "does not accept the options"),
        (dict(family=Poisson(), family_options={"n": 3}), "family object"),
        (dict(columns=["x"]), "no column names"),
        (dict(columns=[5]), "columns must hold"),
    ],
)
def test_bad_parameters_are_named(rng, kwargs, match):
    X = _poisson_data(rng, 50)
    with pytest.raises(emix.InputError, match=match):
        emix.MixtureModel(**{"n_components": 2, **kwargs}).fit(X)


def test_bad_data_is_named(rng):
    X = _poisson_data(rng, 50)
    bad = X.copy()
    bad[7, 1] = 2.5
    with pytest.raises(emix.InputError, match="row 7, column 1"):
        emix.MixtureModel("poisson", 2).fit(bad)
    m = emix.MixtureModel("poisson", 2, random_state=0).fit(X)
    bad[7, 1] = -1
    with pytest.raises(emix.InputError, match="row 7, column 1"):
        m.predict(bad)
    with pytest.raises(emix.InputError, match="3 features"):
        m.predict(np.zeros((4, 3)))
    with pytest.raises(emix.InputError, match="at least as many rows"):
        emix.MixtureModel("poisson", 60).fit(X)
    with pytest.raises(emix.NotFittedError):
        emix.MixtureModel().predict(X)
    with pytest.raises(emix.InputError, match="sample_weight"):
        emix.MixtureModel().fit(X, sample_weight=-np.ones(len(X)))
    with pytest.raises(emix.InputError, match="NaN"):
        emix.MixtureModel().fit(np.full((5, 2), np.nan))


# --------------------------------------------------------------------------- Gaussian
@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_gaussian_alone_is_gaussian_mixture(rng, covariance_type):
    X = np.vstack([rng.normal(0, 1, (150, 2)), rng.normal(4, 0.5, (150, 2))])
    kw = dict(covariance_type=covariance_type, random_state=0, n_init=2, label_order="mean")
    a = emix.MixtureModel("gaussian", 2, **kw).fit(X)
    b = emix.GaussianMixture(2, **kw).fit(X)
    for attr in ("weights_", "means_", "covariances_", "precisions_cholesky_", "lower_bounds_"):
        np.testing.assert_array_equal(getattr(a, attr), getattr(b, attr))
    assert (a.converged_, a.n_iter_, a.lower_bound_) == (b.converged_, b.n_iter_, b.lower_bound_)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    np.testing.assert_array_equal(a.score_samples(X), b.score_samples(X))
    assert a.bic(X) == b.bic(X) and a.aic(X) == b.aic(X)
    np.testing.assert_array_equal(a.sample(7)[0], b.sample(7)[0])
    np.testing.assert_array_equal(a.params_["means"], b.means_)
    # Options reach GaussianMixture; Gaussian params_init uses its names.
    c = emix.MixtureModel(
        "gaussian", 2, family_options={"reg_covar": 1e-3}, params_init={"means": b.means_}, covariance_type=covariance_type,
        random_state=0,
    ).fit(X)
    d = emix.GaussianMixture(
        2, reg_covar=1e-3, means_init=b.means_, covariance_type=covariance_type, random_state=0
    ).fit(X)
    np.testing.assert_array_equal(c.covariances_, d.covariances_)
    with pytest.raises(emix.InputError, match="family_options for 'gaussian'"):
        emix.MixtureModel("gaussian", family_options={"df": 3}).fit(X)


# --------------------------------------------------------------------------- products
def _product_logpdf(m):
    """The fitted product's density, from scipy.stats part by part."""
    g, p = m.params_["gaussian"], m.params_["poisson"]

    def f(df):
        Xg, Xc = df[["a", "b"]].to_numpy(), df[["c"]].to_numpy()
        comp = [
            np.log(m.weights_[k])
            + stats.multivariate_normal(g["means"][k], g["covariances"][k]).logpdf(Xg)
            + stats.poisson.logpmf(Xc, p["rates"][k]).sum(axis=1)
            for k in range(len(m.weights_))
        ]
        return np.logaddexp.reduce(np.column_stack(comp), axis=1)

    return f


def test_product_on_a_dataframe_by_column_name(rng):
    df = _mixed_frame(rng)
    m = emix.MixtureModel({"gaussian": ["a", "b"], "poisson": ["c"]}, 2, random_state=0, label_order="mean").fit(df)
    assert isinstance(m.family_, Product)
    assert m.columns_.tolist() == [0, 2, 3] and m.n_features_in_ == 4  # "id" is not read
    assert list(m.feature_names_in_) == ["a", "id", "b", "c"]
    g, p = m.params_["gaussian"], m.params_["poisson"]
    np.testing.assert_allclose(g["means"], [[0, 1], [3, -2]], atol=0.2)
    np.testing.assert_allclose(p["rates"][:, 0], [2, 9], atol=0.5)
    np.testing.assert_allclose(m.score_samples(df), _product_logpdf(m)(df), rtol=1e-10)
    # means, covariances (3 each for full D=2) and rates per component, plus one weight
    assert m._n_parameters() == 2 * (2 + 3) + 2 * 1 + 1
    Xs, y = m.sample(400)
    assert Xs.shape == (400, 3)
    # Columns come back in the data's order: a, b (Gaussian), c (counts).
    assert np.all(Xs[:, 2] == np.floor(Xs[:, 2])) and np.any(Xs[:, 0] != np.floor(Xs[:, 0]))
    # The same fit from integer positions on the array, parts listed the other way round.
    m2 = emix.MixtureModel([("poisson", [3]), ("gaussian", [0, 2])], 2, random_state=0, label_order="mean").fit(df.to_numpy())
    np.testing.assert_allclose(m2.params_["gaussian"]["means"], g["means"], rtol=1e-10)
    np.testing.assert_allclose(m2.params_["poisson"]["rates"], p["rates"], rtol=1e-10)
    bad = df.copy()
    bad.loc[11, "c"] = 0.5
    with pytest.raises(emix.InputError, match="row 11, column 'c'"):
        m.predict(bad)
    with pytest.raises(emix.InputError, match="row 11, column 3"):
        m2.predict(bad.to_numpy())


def test_product_of_one_part_is_that_family(rng):
    X = _poisson_data(rng, 300)
    kw = dict(random_state=0, tol=1e-8, max_iter=200)
    a = emix.MixtureModel("poisson", 2, **kw).fit(X)
    b = emix.MixtureModel([(Poisson(), [0, 1])], 2, **kw).fit(X)
    np.testing.assert_allclose(b.params_["poisson"]["rates"], a.rates_, rtol=1e-12)
    assert b._n_parameters() == a._n_parameters()
    # Two Poisson parts over single columns are the same model again.
    c = emix.MixtureModel([("poisson", [0]), ("poisson", [1])], 2, **kw).fit(X)
    assert set(c.params_) == {"poisson_1", "poisson_2"}
    np.testing.assert_allclose(
        np.hstack([c.params_["poisson_1"]["rates"], c.params_["poisson_2"]["rates"]]), a.rates_, rtol=1e-10
    )


def test_product_weights_and_params_init(rng):
    df = _mixed_frame(rng, 120)
    counts = rng.integers(0, 3, len(df))
    counts[0] = 1
    fam = {"gaussian": ["a", "b"], "poisson": ["c"]}
    init = {
        "gaussian": {"means": [[0.0, 0.0], [2.0, -1.0]], "covariances": [np.eye(2), np.eye(2)]},
        "poisson": {"rates": [[3.0], [6.0]]},
    }
    kw = dict(weights_init=[0.5, 0.5], params_init=init, tol=0, max_iter=5)
    a = _quiet_fit(emix.MixtureModel(fam, 2, **kw), df, sample_weight=counts)
    b = _quiet_fit(emix.MixtureModel(fam, 2, **kw), df.loc[df.index.repeat(counts)])
    np.testing.assert_allclose(a.lower_bounds_, b.lower_bounds_, rtol=1e-11)
    for part in ("gaussian", "poisson"):
        for k, v in a.params_[part].items():
            np.testing.assert_allclose(v, b.params_[part][k], rtol=1e-9, atol=1e-12)
    with pytest.raises(emix.InputError, match="keyed by part"):
        emix.MixtureModel(fam, 2, params_init={"normal": {}}).fit(df)


@pytest.mark.parametrize(
    "family, match",
    [
        ({"student_t": ["a"], "poisson": ["c"]}, "not an exponential family"),
        ([("gaussian", ["a", "b"]), ("poisson", ["b"])], "column 'b' is in parts 0 and 1"),
        ({"poisson": ["zz"]}, "names column 'zz', which X does not have"),
        ([("gaussian", ["a"], 1)], "pair"),
        ([("poisson", [])], "no columns"),
        ({"poisson": [1.5]}, "names or integer positions"),
    ],
)
def test_bad_products_are_refused(rng, family, match):
    with pytest.raises(emix.InputError, match=match):
        emix.MixtureModel(family, 2).fit(_mixed_frame(rng, 40))


def test_product_positions_need_names_for_names(rng):
    with pytest.raises(emix.InputError, match="X has no column names"):
        emix.MixtureModel({"poisson": ["c"]}, 2).fit(_mixed_frame(rng, 40).to_numpy())
    with pytest.raises(emix.InputError, match="X has 4 columns"):
        emix.MixtureModel({"poisson": [9]}, 2).fit(_mixed_frame(rng, 40).to_numpy())


def test_columns_selects_what_a_single_family_reads(rng):
    df = _mixed_frame(rng, 200)
    m = emix.MixtureModel("poisson", 2, columns=["c"], random_state=0).fit(df)
    ref = emix.MixtureModel("poisson", 2, random_state=0).fit(df[["c"]].to_numpy())
    np.testing.assert_allclose(m.rates_, ref.rates_, rtol=1e-12)
    np.testing.assert_allclose(m.score_samples(df), ref.score_samples(df[["c"]].to_numpy()), rtol=1e-12)
    # Support errors name the column of X, not its place among the used ones.
    bad = df.to_numpy().copy()
    bad[3, 3] = -2
    m = emix.MixtureModel("poisson", 2, columns=[3], random_state=0).fit(df.to_numpy())
    with pytest.raises(emix.InputError, match="row 3, column 3"):
        m.predict(bad)


# --------------------------------------------------------------------------- torch
def test_numpy_and_torch_cpu_give_the_same_fit(rng):
    torch = pytest.importorskip("torch")
    from emix.backends.torch_backend import TorchBackend

    if not hasattr(TorchBackend, "stats_pass"):
        pytest.skip("the torch backend has no stats_pass yet")
    df = _mixed_frame(rng, 300)
    fam = {"gaussian": ["a", "b"], "poisson": ["c"]}
    kw = dict(random_state=0, tol=1e-9, max_iter=300, label_order="mean")
    a = emix.MixtureModel(fam, 2, **kw).fit(df)
    b = emix.MixtureModel(fam, 2, device="cpu", **kw).fit(df)
    assert abs(a.lower_bound_ - b.lower_bound_) < 1e-10
    for part in a.params_:
        for k, v in a.params_[part].items():
            np.testing.assert_allclose(b.params_[part][k], v, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(b.predict_proba(df), a.predict_proba(df), atol=1e-10)
    X = _poisson_data(rng, 300)
    c = emix.MixtureModel("poisson", 2, random_state=0).fit(torch.tensor(X))
    d = emix.MixtureModel("poisson", 2, random_state=0).fit(X)
    np.testing.assert_allclose(c.rates_, d.rates_, rtol=1e-12)
    assert isinstance(c.predict(torch.tensor(X)), np.ndarray)


# --------------------------------------------------------------------------- files
def test_save_and_load_a_product_exactly(rng, tmp_path):
    import json
    import zipfile

    df = _mixed_frame(rng, 200)
    fam = {"gaussian": ["a", "b"], "poisson": ["c"]}
    init = {"gaussian": {"means": [[0.0, 1.0], [3.0, -2.0]], "covariances": [np.eye(2)] * 2}, "poisson": {"rates": [[2.0], [9.0]]}}
    m = emix.MixtureModel(fam, 2, params_init=init, random_state=3, columns=["a", "b", "c"]).fit(df.astype(np.float32))
    path = tmp_path / "m.emix"
    m.save(path)
    back = emix.load(path)
    assert back.get_params()["family"] == fam and back.columns == ["a", "b", "c"]
    np.testing.assert_array_equal(back.params_init["poisson"]["rates"], [[2.0], [9.0]])
    for part in m.params_:
        for k, v in m.params_[part].items():
            assert back.params_[part][k].dtype == np.float32
            np.testing.assert_array_equal(back.params_[part][k], v)
    np.testing.assert_array_equal(back.predict_proba(df), m.predict_proba(df))
    np.testing.assert_array_equal(back.columns_, m.columns_)
    # MixtureModel files are format version 2; GaussianMixture files stay version 1.
    assert emix.io.read_header(path)["format_version"] == 2
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    header = json.loads(members["emix-model.json"])
    header["format_version"] = 1
    members["emix-model.json"] = json.dumps(header).encode()
    with zipfile.ZipFile(tmp_path / "v1.emix", "w") as z:
        for n, data in members.items():
            z.writestr(n, data)
    with pytest.raises(emix.ModelFileError, match="has no MixtureModel"):
        emix.load(tmp_path / "v1.emix")
    g = emix.MixtureModel("gaussian", 2, random_state=0).fit(df[["a", "b"]])
    with pytest.raises(emix.InputError, match="gaussian_mixture_"):
        g.save(tmp_path / "g.emix")
    g.gaussian_mixture_.save(tmp_path / "g.emix")
    assert emix.io.read_header(tmp_path / "g.emix")["format_version"] == 1


def test_a_product_allows_its_parts_regularisation_gap(rng):
    from emix.backends import NumpyBackend
    from emix.families.normal import Normal
    from emix.models._kernels import GivenRespKernel, stats_from_acc

    X = _mixed_frame(rng, 200)[["a", "b", "c"]].to_numpy()
    b = NumpyBackend()
    summary = b.column_summary(X, None)
    prod = Product([(Normal("diag", reg_covar=0.05), [0, 1]), (Poisson(), [2])]).bind(summary, 3)
    alone = Normal("diag", reg_covar=0.05).bind({k: (v[:2] if k != "n" else v) for k, v in summary.items()}, 2)
    resp = rng.dirichlet([1.0, 1.0], size=len(X))

    def stats(fam, Xs):
        k = GivenRespKernel(fam, lambda a, c: resp[a:c], 2)
        return stats_from_acc(b.stats_pass(Xs, None, k, width=fam.feature_width()), len(Xs), fam)

    gap = prod.reg_gap(stats(prod, X))
    assert gap > 0 and gap == pytest.approx(alone.reg_gap(stats(alone, X[:, :2])), rel=1e-12)


def test_warm_start_one_iteration_per_call_converges_like_one_fit():
    # scikit-learn's warm-start contract, for every family: repeated max_iter=1 fits
    # continue one EM run, and converged_ turns True when a call changes the mean
    # log-likelihood by less than tol.
    rng = np.random.default_rng(5)
    X = np.concatenate([rng.poisson(2.0, (300, 2)), rng.poisson(9.0, (300, 2))]).astype(float)
    one = emix.MixtureModel("poisson", n_components=2, tol=1e-4, max_iter=500, random_state=0).fit(X)
    warm = emix.MixtureModel("poisson", n_components=2, tol=1e-4, max_iter=1, random_state=0,
                             warm_start=True)
    history = []
    for _ in range(one.n_iter_ + 5):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", emix.ConvergenceWarning)
            warm.fit(X)
        history.append(warm.lower_bound_)
        if warm.converged_:
            break
    assert warm.converged_
    assert len(history) == one.n_iter_
    np.testing.assert_allclose(history, one.lower_bounds_, rtol=1e-12)
    np.testing.assert_allclose(warm.rates_, one.rates_, rtol=1e-10)
