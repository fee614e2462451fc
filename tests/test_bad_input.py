"""Bad input: every error is an emix error whose message names the problem.

One test per case. Each asserts the type (always a subclass of ``emix.EmixError``, never
a raw NumPy/SciPy exception) and that the message says what and where.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

import emix
from emix import GaussianMixture

COV_TYPES = ("full", "tied", "diag", "spherical")


@pytest.fixture
def X(rng):
    return rng.normal(size=(60, 2))


@pytest.fixture
def fitted(X):
    return GaussianMixture(2, random_state=0).fit(X)


def raises(exc=emix.EmixError, match=None):
    """pytest.raises that also insists the exception is an emix error."""
    assert issubclass(exc, emix.EmixError)
    return pytest.raises(exc, match=match)


def two_blobs(rng, n=150):
    return np.vstack([rng.normal(size=(n, 2)), [6.0, 6.0] + rng.normal(size=(n, 2)) * [1, 0.5]])


def same_up_to_permutation(a, b):
    pairs = set(zip(a.tolist(), b.tolist()))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


# --------------------------------------------------------------------------- shape
def test_empty_input_zero_rows():
    with raises(emix.InputError, match=r"empty.*0 rows"):
        GaussianMixture().fit(np.empty((0, 2)))


def test_empty_input_zero_columns():
    with raises(emix.InputError, match=r"no columns|0 feature"):
        GaussianMixture().fit(np.empty((5, 0)))


def test_fewer_rows_than_components(X):
    with raises(emix.InputError, match=r"3 sample.*n_components=5"):
        GaussianMixture(5).fit(X[:3])


def test_fewer_positively_weighted_rows_than_components(X):
    w = np.zeros(len(X))
    w[:2] = 1.0
    with raises(emix.InputError, match=r"2 sample.*positive weight.*n_components=3"):
        GaussianMixture(3).fit(X, sample_weight=w)


def test_three_dimensional_input(X):
    with raises(emix.InputError, match=r"2-D.*\(5, 6, 4\)"):
        GaussianMixture().fit(np.zeros((5, 6, 4)))


def test_scalar_input():
    with raises(emix.InputError, match="scalar"):
        GaussianMixture().fit(3.0)


def test_ragged_nested_list():
    with raises(emix.InputError, match="cannot be read as an array"):
        GaussianMixture().fit([[1.0, 2.0], [3.0]])


# --------------------------------------------------------------------------- values
def test_nan_and_inf_name_rows_and_columns(X):
    X = X.copy()
    X[3, 1] = np.nan
    X[7, 0] = np.inf
    with raises(emix.InputError) as info:
        GaussianMixture(missing="error").fit(X)
    msg = str(info.value)
    assert re.search(r"NaN.*\brows? 3\b.*column 1\b", msg), msg
    assert re.search(r"inf.*\brows? 7\b.*column 0\b", msg), msg


def test_nan_in_dataframe_names_the_column_name(X):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(X, columns=["height", "weight"])
    df.loc[4, "weight"] = np.nan
    with raises(emix.InputError, match=r"NaN.*rows? 4.*'weight'"):
        GaussianMixture(missing="error").fit(df)


def test_non_numeric_object_array_names_row_and_column(X):
    Xo = X.astype(object)
    Xo[4, 1] = "abc"
    with raises(emix.InputError) as info:
        GaussianMixture().fit(Xo)
    assert isinstance(info.value, TypeError)  # NonNumericError is a TypeError too
    msg = str(info.value)
    assert "column 1" in msg and "row 4" in msg and "'abc'" in msg, msg


def test_non_numeric_dataframe_column_names_column_and_row(X):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"a": X[:, 0], "b": X[:, 1].astype(str), "c": X[:, 0]})
    df.loc[6, "b"] = "oops"
    with raises(emix.InputError) as info:
        GaussianMixture().fit(df)
    msg = str(info.value)
    assert "'b'" in msg and "row 6" in msg and "'oops'" in msg, msg
    # If the message gives a position too, it must be the column's real position (1).
    m = re.search(r"index (\d+)", msg)
    assert m is None or m.group(1) == "1", msg


def test_complex_input(X):
    with raises(emix.InputError, match=r"[Cc]omplex"):
        GaussianMixture().fit(X + 1j)


@pytest.mark.parametrize("kind", ["csr_matrix", "csr_array", "coo_matrix"])
def test_sparse_input_mentions_sparse(X, kind):
    sparse = pytest.importorskip("scipy.sparse")
    with raises(emix.InputError, match="sparse"):
        GaussianMixture().fit(getattr(sparse, kind)(X))


def test_datetime_input_is_not_numeric():
    dates = np.array(["2020-01-01", "2020-01-02", "2020-01-03"], dtype="datetime64[D]")
    with raises(emix.InputError, match="datetime64.*not numeric"):
        GaussianMixture().fit(dates.reshape(-1, 1))


# --------------------------------------------------------------------------- weights
def test_sample_weight_wrong_length(X):
    with raises(emix.InputError, match=r"sample_weight has 59 .*60 rows"):
        GaussianMixture().fit(X, sample_weight=np.ones(59))


def test_sample_weight_negative_names_the_row(X):
    w = np.ones(len(X))
    w[5] = -1.0
    with raises(emix.InputError, match=r"non-negative.*\brows? 5\b"):
        GaussianMixture().fit(X, sample_weight=w)


def test_sample_weight_all_zero(X):
    with raises(emix.InputError, match=r"sample_weight.*zero"):
        GaussianMixture().fit(X, sample_weight=np.zeros(len(X)))


def test_sample_weight_nan_names_the_row(X):
    w = np.ones(len(X))
    w[9] = np.nan
    with raises(emix.InputError, match=r"sample_weight.*NaN.*\brows? 9\b"):
        GaussianMixture().fit(X, sample_weight=w)


def test_sample_weight_two_dimensional(X):
    with raises(emix.InputError, match=r"sample_weight.*1-D.*\(60, 1\)"):
        GaussianMixture().fit(X, sample_weight=np.ones((60, 1)))


def test_sample_weight_not_numeric(X):
    with raises(emix.InputError, match=r"sample_weight must be numeric"):
        GaussianMixture().fit(X, sample_weight=["a"] * len(X))


# --------------------------------------------------------------------------- parameters
def test_n_components_zero(X):
    with raises(emix.InputError, match=r"n_components must be >= 1; got 0"):
        GaussianMixture(0).fit(X)


def test_n_components_not_integer(X):
    with raises(emix.InputError, match=r"n_components must be an integer; got 1\.5"):
        GaussianMixture(1.5).fit(X)


def test_bad_covariance_type(X):
    with raises(emix.InputError, match=r"covariance_type must be one of .*'bogus'"):
        GaussianMixture(covariance_type="bogus").fit(X)


@pytest.mark.parametrize(
    ("param", "value", "pattern"),
    [
        ("reg_covar", -1.0, r"reg_covar must be >= 0"),
        ("reg_covar", float("nan"), r"reg_covar must be finite"),
        ("tol", -1.0, r"tol must be >= 0"),
        ("n_init", 0, r"n_init must be >= 1"),
        ("max_iter", -1, r"max_iter must be >= 0"),
        ("block_size", 0, r"block_size must be >= 1"),
        ("init_params", "foo", r"init_params must be one of .*'foo'"),
        ("random_state", "x", r"random_state must be .*str"),
    ],
)
def test_bad_scalar_parameter_is_named(X, param, value, pattern):
    with raises(emix.InputError, match=pattern):
        GaussianMixture(2, **{param: value}).fit(X)


# --------------------------------------------------------------------------- initial values
def test_weights_init_wrong_shape(X):
    with raises(emix.InputError, match=r"weights_init must have shape \(2,\); got \(1,\)"):
        GaussianMixture(2, weights_init=[1.0]).fit(X)


def test_weights_init_not_summing_to_one(X):
    with raises(emix.InputError, match=r"weights_init must sum to 1"):
        GaussianMixture(2, weights_init=[0.3, 0.3]).fit(X)


def test_weights_init_negative(X):
    with raises(emix.InputError, match=r"weights_init must be finite and non-negative"):
        GaussianMixture(2, weights_init=[1.5, -0.5]).fit(X)


def test_means_init_wrong_shape(X):
    with raises(emix.InputError, match=r"means_init must have shape \(2, 2\); got \(2, 3\)"):
        GaussianMixture(2, means_init=np.zeros((2, 3))).fit(X)


def test_means_init_nan(X):
    with raises(emix.InputError, match=r"means_init contains NaN"):
        GaussianMixture(2, means_init=[[0.0, np.nan], [1.0, 1.0]]).fit(X)


@pytest.mark.parametrize(
    ("ct", "shape", "expected"),
    [
        ("full", (3, 2, 2), r"\(2, 2, 2\)"),
        ("tied", (2, 2, 2), r"\(2, 2\)"),
        ("diag", (2, 3), r"\(2, 2\)"),
        ("spherical", (2, 2), r"\(2,\)"),
    ],
)
def test_precisions_init_wrong_shape(X, ct, shape, expected):
    p = np.ones(shape) if ct in ("diag", "spherical") else np.broadcast_to(np.eye(shape[-1]), shape)
    with raises(emix.InputError, match=rf"precisions_init must have shape {expected}.*'{ct}'"):
        GaussianMixture(2, covariance_type=ct, precisions_init=p).fit(X)


def test_precisions_init_not_positive_definite_names_the_component(X):
    bad = np.stack([np.eye(2), np.array([[1.0, 2.0], [2.0, 1.0]])])
    with raises(emix.InputError, match=r"precisions_init\[1\] is not positive definite"):
        GaussianMixture(2, precisions_init=bad).fit(X)


def test_precisions_init_tied_not_positive_definite(X):
    with raises(emix.InputError, match=r"precisions_init.* not positive definite"):
        GaussianMixture(2, covariance_type="tied", precisions_init=-np.eye(2)).fit(X)


def test_precisions_init_not_symmetric(X):
    bad = np.stack([np.eye(2), np.array([[1.0, 0.5], [0.0, 1.0]])])
    with raises(emix.InputError, match=r"precisions_init\[1\] is not symmetric"):
        GaussianMixture(2, precisions_init=bad).fit(X)


@pytest.mark.parametrize("ct", ["diag", "spherical"])
def test_precisions_init_non_positive_variances(X, ct):
    p = np.array([[1.0, 1.0], [1.0, -1.0]]) if ct == "diag" else np.array([1.0, 0.0])
    with raises(emix.InputError, match=r"precisions_init must be positive"):
        GaussianMixture(2, covariance_type=ct, precisions_init=p).fit(X)


# --------------------------------------------------------------------------- prediction
@pytest.mark.parametrize("method", ["predict", "predict_proba", "score_samples", "score"])
def test_predict_before_fit(X, method):
    with raises(emix.NotFittedError, match=rf"not fitted.*{method}"):
        getattr(GaussianMixture(), method)(X)


def test_sample_before_fit():
    with raises(emix.NotFittedError, match="not fitted"):
        GaussianMixture().sample(3)


def test_predict_with_wrong_number_of_features_names_both(fitted, rng):
    with raises(emix.InputError, match=r"3 features.*expecting 2 features"):
        fitted.predict(rng.normal(size=(5, 3)))


def test_predict_with_nan_names_the_row(fitted, X):
    X = X.copy()
    X[2, 0] = np.nan
    fitted.set_params(missing="error")
    with raises(emix.InputError, match=r"NaN.*\brows? 2\b.*column 0"):
        fitted.predict(X)


def test_predict_with_one_row_as_1d_array(fitted, X):
    with raises(emix.InputError, match=r"1-D.*reshape"):
        fitted.predict(X[0])


# --------------------------------------------------------------------------- degenerate data
def test_constant_column_warns_naming_it_and_still_fits(X):
    X = X.copy()
    X[:, 1] = 3.0
    with pytest.warns(emix.DataScaleWarning, match=r"column 1 .*constant"):
        gm = GaussianMixture(2, random_state=0).fit(X)
    assert np.all(np.isfinite(gm.means_))
    np.testing.assert_allclose(gm.means_[:, 1], 3.0)
    assert gm.predict(X).shape == (len(X),)


def test_constant_dataframe_column_warns_with_its_name(X):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"x": X[:, 0], "level": np.full(len(X), 3.0)})
    with pytest.warns(emix.DataScaleWarning, match=r"'level'.*constant"):
        GaussianMixture(2, random_state=0).fit(df)


def test_constant_column_with_zero_reg_covar_is_an_error(X):
    X = X.copy()
    X[:, 0] = 1.0
    with raises(emix.InputError, match=r"column 0 .*constant.*reg_covar=0"):
        GaussianMixture(2, reg_covar=0.0).fit(X)


def test_all_rows_identical_with_two_components():
    X = np.tile([1.0, 2.0], (30, 1))
    with raises(emix.InputError, match=r"identical.*n_components=2"):
        GaussianMixture(2).fit(X)


def test_all_rows_identical_with_one_component_fits_and_warns():
    X = np.tile([1.0, 2.0], (30, 1))
    with pytest.warns(emix.DataScaleWarning, match=r"identical|constant"):
        gm = GaussianMixture(1).fit(X)
    np.testing.assert_allclose(gm.means_, [[1.0, 2.0]])
    np.testing.assert_allclose(gm.covariances_, [1e-6 * np.eye(2)])


def test_fewer_distinct_rows_than_components():
    X = np.repeat([[0.0, 0.0], [1.0, 1.0]], 10, axis=0)
    with raises(emix.InputError, match=r"fewer than n_components=3 distinct rows"):
        GaussianMixture(3, random_state=0).fit(X)


# --------------------------------------------------------------------------- data scale
@pytest.mark.parametrize("ct", COV_TYPES)
def test_tiny_scale_default_reg_covar_warns(rng, ct):
    X = 1e-12 * two_blobs(rng)
    with pytest.warns(emix.DataScaleWarning, match=r"reg_covar=1e-06.*reg_covar="):
        # The regulariser then supplies nearly all of every variance: degenerate, too.
        with pytest.warns(emix.DegenerateComponentWarning, match=r"reg_covar=1e-06"):
            gm = GaussianMixture(2, covariance_type=ct, random_state=0).fit(X)
    assert gm.degenerate_


@pytest.mark.parametrize("ct", COV_TYPES)
@pytest.mark.parametrize(("scale", "reg"), [(1e-12, 1e-30), (1e12, 1e-6)])
def test_extreme_scale_recovers_the_unit_scale_fit(rng, ct, scale, reg):
    X = two_blobs(rng)
    kw = dict(covariance_type=ct, tol=1e-10, max_iter=300, random_state=0)
    unit = GaussianMixture(2, **kw).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DataScaleWarning, no other warning
        gm = GaussianMixture(2, reg_covar=reg, **kw).fit(scale * X)
    labels_u, labels_s = unit.predict(X), gm.predict(scale * X)
    assert same_up_to_permutation(labels_u, labels_s)
    o, p = np.argsort(gm.means_[:, 0]), np.argsort(unit.means_[:, 0])
    np.testing.assert_allclose(gm.means_[o], scale * unit.means_[p], rtol=1e-6,
                               atol=1e-6 * scale * np.abs(unit.means_).max())
    np.testing.assert_allclose(gm.weights_[o], unit.weights_[p], rtol=1e-6)
    cov_u = unit.covariances_ if ct == "tied" else unit.covariances_[p]
    cov_s = gm.covariances_ if ct == "tied" else gm.covariances_[o]
    # reg_covar=1e-6 on the unit data is not scaled at 1e12, hence 1e-5 here.
    np.testing.assert_allclose(cov_s, scale**2 * cov_u, rtol=1e-5,
                               atol=1e-5 * scale**2 * np.abs(cov_u).max())


# --------------------------------------------------------------------------- collapse
def collapsing_data(rng):
    """60 rows exactly at (5, 5) plus 200 rows from N(0, I)."""
    return np.vstack([np.tile([5.0, 5.0], (60, 1)), rng.normal(size=(200, 2))])


@pytest.mark.parametrize("ct", ["full", "diag", "spherical"])  # tied pools: no collapse
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_component_collapsing_onto_repeated_values_warns(ct, seed):
    X = collapsing_data(np.random.default_rng(seed))
    with pytest.warns(emix.DegenerateComponentWarning, match=r"component 1 .*reg_covar") as rec:
        gm = GaussianMixture(2, covariance_type=ct, means_init=[[0.0, 0.0], [5.0, 5.0]],
                             random_state=0).fit(X)
    assert any("collapsed" in str(w.message) for w in rec)
    np.testing.assert_allclose(gm.means_[1], [5.0, 5.0])
    np.testing.assert_allclose(gm.weights_[1], 60 / 260)


@pytest.mark.parametrize("ct", ["full", "diag", "spherical"])
def test_component_collapsing_without_reg_covar_is_an_error(ct):
    # Several data sets: whether the collapsed variance comes out as exactly 0 (an error)
    # or as a round-off residue such as 1.8e-15 (a fit with a warning) must not decide
    # the outcome.
    for seed in range(20):
        X = collapsing_data(np.random.default_rng(seed))
        with raises(emix.DegenerateComponentError, match=r"component 1\b"):
            GaussianMixture(2, covariance_type=ct, reg_covar=0.0,
                            means_init=[[0.0, 0.0], [5.0, 5.0]], random_state=0).fit(X)


# --------------------------------------------------------------------------- float64 range
@pytest.mark.parametrize("ct", COV_TYPES)
@pytest.mark.parametrize("init", ["kmeans", "random"])
def test_data_whose_variance_overflows_float64_is_named_as_such(rng, ct, init):
    # Every value is finite, but the spread of values near 1e300 has no float64 variance.
    X = two_blobs(rng) * 1e300
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NumPy's own overflow notice
        with raises(emix.InputError, match=r"too large for float64.*column\(s\) 0, 1") as info:
            GaussianMixture(2, covariance_type=ct, init_params=init, random_state=0).fit(X)
    assert "distinct rows" not in str(info.value)


def test_large_but_representable_data_still_fit(rng):
    X = two_blobs(rng)
    small = GaussianMixture(2, random_state=0).fit(X)
    large = GaussianMixture(2, random_state=0, reg_covar=1e-6 * 2.0**400).fit(X * 2.0**200)
    np.testing.assert_allclose(large.means_ / 2.0**200, small.means_, rtol=1e-9)


def test_frame_scale_when_the_mean_variance_would_overflow():
    from emix.families.gaussian import Frame

    # Each variance is finite; their sum is not. The scale is still a power of two.
    frame = Frame.from_data(np.zeros(3), np.full(3, 1.5e308))
    assert np.isfinite(frame.scale) and frame.scale == 2.0**512
