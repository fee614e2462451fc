"""label_order: the same solution gets the same labels, whatever the seed or restart."""

from __future__ import annotations

import numpy as np
import pytest

import emix
from emix.datasets import sample_gaussian_mixture

COV_TYPES = ["full", "tied", "diag", "spherical"]


@pytest.fixture(scope="module")
def X():
    X, _ = sample_gaussian_mixture(
        900, [0.2, 0.3, 0.5], [[0, 0], [6, -1], [2, 7]],
        [np.eye(2), [[2.0, 0.6], [0.6, 1.0]], 0.5 * np.eye(2)], random_state=11,
    )
    return X


def same_solution_fits(X, **kw):
    """Fits from several seeds that reach the best maximum (some seeds stop at a worse
    local one; they are a different solution and rightly labelled differently)."""
    models = [emix.GaussianMixture(3, random_state=s, init_params="random_from_data",
                                   tol=1e-9, max_iter=2000, **kw).fit(X) for s in range(10)]
    best = max(m.lower_bound_ for m in models)
    same = [m for m in models if abs(m.lower_bound_ - best) <= 1e-8 * abs(best)]
    assert len(same) >= 4
    return same


@pytest.mark.parametrize("ct", COV_TYPES)
def test_without_label_order_seeds_permute_the_labels(X, ct):
    """The problem label_order solves is real: the same solution, different numbering."""
    models = same_solution_fits(X, covariance_type=ct)
    orders = {tuple(np.argsort(m.means_[:, 0])) for m in models}
    assert len(orders) > 1


@pytest.mark.parametrize("ct", COV_TYPES)
@pytest.mark.parametrize("order", ["mean", "weight"])
def test_label_order_gives_identical_labels_for_the_same_solution(X, ct, order):
    models = same_solution_fits(X, covariance_type=ct, label_order=order)
    ref = models[0]
    for m in models[1:]:
        # The same solution, so the same labels and the same parameters, component by component.
        np.testing.assert_array_equal(m.predict(X), ref.predict(X))
        np.testing.assert_allclose(m.means_, ref.means_, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(m.weights_, ref.weights_, rtol=1e-4)
        np.testing.assert_allclose(m.covariances_, ref.covariances_, rtol=1e-4, atol=1e-4)
    if order == "mean":
        assert np.all(np.diff(ref.means_[:, 0]) > 0)
    else:
        assert np.all(np.diff(ref.weights_) < 0)


def test_label_order_permutes_every_fitted_array_consistently(X):
    plain = emix.GaussianMixture(3, random_state=4, covariance_type="full").fit(X)
    ordered = emix.GaussianMixture(3, random_state=4, covariance_type="full",
                                   label_order="weight").fit(X)
    perm = np.argsort(-plain.weights_, kind="stable")
    for attr in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        np.testing.assert_array_equal(getattr(ordered, attr), getattr(plain, attr)[perm])
    # Components summed in another order: equal to round-off, not bit for bit.
    np.testing.assert_allclose(ordered.predict_proba(X), plain.predict_proba(X)[:, perm],
                               rtol=1e-12, atol=1e-300)
    assert ordered.lower_bound_ == plain.lower_bound_


def test_mean_order_breaks_exact_ties_on_the_next_feature_and_weight_ties_by_mean():
    from emix.families import gaussian as G

    means = np.array([[1.0, 3.0], [0.0, 2.0], [1.0, -1.0], [0.0, 9.0]])
    weights = np.array([0.25, 0.25, 0.4, 0.1])
    cov = np.ones((4, 2))
    params = G.GaussianMixtureParams(weights, means, cov, 1 / np.sqrt(cov), "diag")
    assert G.canonical_order(params, "mean").tolist() == [1, 3, 2, 0]
    assert G.canonical_order(params, "weight").tolist() == [2, 1, 0, 3]
    permuted = G.permute(params, np.array([1, 3, 2, 0]))
    np.testing.assert_array_equal(permuted.means[:, 0], [0, 0, 1, 1])
    np.testing.assert_array_equal(permuted.weights, [0.25, 0.1, 0.4, 0.25])


def test_degenerate_components_are_renumbered_with_the_labels():
    rng = np.random.default_rng(0)
    X = np.vstack([np.tile([5.0, 5.0], (60, 1)), rng.normal(size=(200, 2))])
    kw = dict(weights_init=[60 / 260, 200 / 260], means_init=[[5.0, 5.0], [0.0, 0.0]],
              precisions_init=np.stack([np.eye(2)] * 2), random_state=0)
    with pytest.warns(emix.DegenerateComponentWarning, match=r"component 0 collapsed"):
        plain = emix.GaussianMixture(2, **kw).fit(X)
    with pytest.warns(emix.DegenerateComponentWarning, match=r"component 1 collapsed"):
        ordered = emix.GaussianMixture(2, label_order="mean", **kw).fit(X)
    assert plain.degenerate_components_.tolist() == [0]
    assert ordered.degenerate_components_.tolist() == [1]
    np.testing.assert_allclose(ordered.means_[1], [5.0, 5.0])


def test_bad_label_order_is_refused(X):
    with pytest.raises(emix.InputError, match="label_order must be one of"):
        emix.GaussianMixture(2, label_order="size").fit(X)


def test_ward_start_is_deterministic_whatever_the_seed(X):
    a = emix.GaussianMixture(3, init_params="ward", random_state=0).fit(X)
    b = emix.GaussianMixture(3, init_params="ward", random_state=99).fit(X)
    np.testing.assert_array_equal(a.means_, b.means_)
    assert a.n_iter_ == b.n_iter_
    # Restarts after the first are random k-means starts: the best is kept.
    c = emix.GaussianMixture(3, init_params="ward", n_init=3, random_state=0).fit(X)
    assert c.lower_bound_ >= a.lower_bound_ - 1e-12


def test_ward_start_on_more_rows_than_it_links_is_still_deterministic():
    from emix.em import init

    X, _ = sample_gaussian_mixture(
        init.WARD_MAX_ROWS + 3001, [0.5, 0.5], [[0], [8]], [[[1.0]], [[1.0]]],
        random_state=0)
    a = emix.GaussianMixture(2, init_params="ward", random_state=1, max_iter=0).fit(X)
    b = emix.GaussianMixture(2, init_params="ward", random_state=2, max_iter=0).fit(X)
    np.testing.assert_array_equal(a.means_, b.means_)
    np.testing.assert_allclose(np.sort(a.means_[:, 0]), [0, 8], atol=0.3)
