"""emix.select: model choice by BIC/AIC/ICL, with degenerate fits flagged and passed over."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import xlogy
from scipy.stats import multivariate_normal

import emix
from emix.datasets import sample_gaussian_mixture
from emix.families import gaussian as G
from emix.selection import COLUMNS, select


def _rot(theta):
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, -s], [s, c]])


def _covs(kind, K, D, rng):
    """Covariances of one of the four structures, different per component where allowed."""
    if kind == "spherical":
        # Distinct variances: with equal ones, 'tied' describes the data just as well.
        var = rng.permutation(0.4 * 2.5 ** np.arange(K))
        return np.stack([v * np.eye(D) for v in var])
    if kind == "diag":
        return np.stack([np.diag(rng.uniform(0.2, 2.0, D)) for _ in range(K)])
    if kind == "tied":
        A = rng.normal(size=(D, D))
        C = A @ A.T / D + 0.3 * np.eye(D)
        return np.repeat(C[None], K, axis=0)
    covs = []
    for _ in range(K):
        A = rng.normal(size=(D, D))
        covs.append(A @ A.T / D + 0.2 * np.eye(D))
    return np.stack(covs)


SETTINGS = [
    # (true K, true covariance type, D, N, separation)
    (3, "spherical", 2, 600, 7.0),
    (2, "full", 3, 600, 7.0),
    (4, "diag", 2, 800, 8.0),
    (3, "tied", 2, 600, 7.0),
]


@pytest.mark.slow
@pytest.mark.parametrize(("K", "kind", "D", "N", "sep"), SETTINGS)
def test_bic_recovers_the_true_number_of_components_and_covariance_type(K, kind, D, N, sep):
    hits = []
    for trial in range(10):
        rng = np.random.default_rng(1000 * K + trial)
        # Well separated: centres on a simplex-like spread, at least `sep` apart.
        means = sep * np.eye(max(K, D))[:K, :D] if K <= D else None
        if means is None:
            angles = 2 * np.pi * np.arange(K) / K
            means = np.zeros((K, D))
            means[:, 0], means[:, 1] = np.cos(angles), np.sin(angles)
            means *= sep / (2 * math.sin(math.pi / K))
        weights = rng.dirichlet(np.full(K, 8.0))
        X, _ = sample_gaussian_mixture(N, weights, means, _covs(kind, K, D, rng), rng)
        res = select(X, n_components=range(1, 6), random_state=trial, n_init=2)
        hits.append((res.n_components, res.covariance_type) == (K, kind))
    assert sum(hits) >= 9, hits


def rounded_two_groups(seed=0, n=300):
    """Two groups; the second feature is rounded to whole units, so it has ties."""
    rng = np.random.default_rng(seed)
    a = np.column_stack([rng.normal(0, 1, n), rng.normal(0, 0.7, n)])
    b = np.column_stack([rng.normal(6, 1, n), rng.normal(4, 0.7, n)])
    X = np.vstack([a, b])
    X[:, 1] = np.round(X[:, 1])
    return X


def test_unguarded_em_collapses_on_a_rounded_feature_and_select_passes_it_over():
    sk_mixture = pytest.importorskip("sklearn.mixture")
    X = rounded_two_groups()
    # scikit-learn's EM really finds a zero-variance component here, and its BIC, which
    # knows nothing of degeneracy, prefers that spurious fit to the true two groups.
    true = sk_mixture.GaussianMixture(2, random_state=0).fit(X)
    bad = sk_mixture.GaussianMixture(5, random_state=0).fit(X)
    smallest = min(np.linalg.eigvalsh(c)[0] for c in bad.covariances_)
    assert smallest < 2e-6  # reg_covar (1e-6) and nothing else
    assert bad.bic(X) < true.bic(X) - 1000

    # From the same solution, emix flags the fit, naming a component and the column.
    with pytest.warns(emix.DegenerateComponentWarning, match=r"component \d+ collapsed.*column 1"):
        gm = emix.GaussianMixture(
            5, weights_init=bad.weights_, means_init=bad.means_,
            precisions_init=bad.precisions_, random_state=0,
        ).fit(X)
    assert gm.degenerate_
    assert len(gm.degenerate_components_) >= 1

    res = select(X, n_components=range(1, 7), covariance_types=["full"], random_state=0)
    flagged = [r for r in res.table if r["degenerate"]]
    assert flagged, "the grid should contain at least one collapsed candidate"
    for r in flagged:
        assert "collapsed" in r["issues"] and "column 1" in r["issues"]
    # The collapsed candidates have by far the best BIC, yet are not chosen.
    assert min(r["bic"] for r in flagged) < res.best["bic"] - 1000
    assert (res.n_components, res.best["degenerate"]) == (2, False)
    # The option to keep them does what it says.
    kept = select(X, n_components=range(1, 7), covariance_types=["full"], random_state=0,
                  keep_degenerate=True)
    assert kept.best["degenerate"]


@pytest.fixture(scope="module")
def three_blobs():
    rng = np.random.default_rng(7)
    X, _ = sample_gaussian_mixture(
        450, [0.3, 0.3, 0.4], [[0, 0], [5, 0], [0, 5]],
        [np.eye(2), [[1.0, 0.5], [0.5, 1.0]], 0.5 * np.eye(2)], rng,
    )
    return X


@pytest.fixture(scope="module")
def small_grid(three_blobs):
    return select(three_blobs, n_components=[1, 2, 3, 4], random_state=0)


def test_table_rows_are_the_criteria_of_the_fitted_models(three_blobs, small_grid):
    X = three_blobs
    res = small_grid
    assert len(res.table) == 16 and len(res.models) == 16
    assert list(res.table[0]) == list(COLUMNS)
    for row, model in zip(res.table, res.models):
        assert (model.n_components, model.covariance_type) == (
            row["n_components"], row["covariance_type"])
        p = G.n_parameters(row["covariance_type"], row["n_components"], 2)
        assert row["n_parameters"] == p
        # The log-likelihood of the final parameters, computed independently with SciPy.
        covs = {
            "full": lambda: model.covariances_,
            "tied": lambda: [model.covariances_] * model.n_components,
            "diag": lambda: [np.diag(c) for c in model.covariances_],
            "spherical": lambda: [c * np.eye(2) for c in model.covariances_],
        }[model.covariance_type]()
        dens = np.stack([w * multivariate_normal.pdf(X, m, c)
                         for w, m, c in zip(model.weights_, model.means_, covs)], axis=1)
        dens = dens.reshape(len(X), -1)
        loglik = np.log(dens.sum(axis=1)).sum()
        np.testing.assert_allclose(row["log_likelihood"], loglik, rtol=1e-10)
        np.testing.assert_allclose(row["bic"], -2 * loglik + p * math.log(len(X)), rtol=1e-10)
        np.testing.assert_allclose(row["aic"], -2 * loglik + 2 * p, rtol=1e-10)
        resp = dens / dens.sum(axis=1, keepdims=True)
        entropy = -xlogy(resp, resp).sum()
        np.testing.assert_allclose(row["icl"], row["bic"] + 2 * entropy, rtol=1e-9)
        np.testing.assert_allclose(row["bic"], model.bic(X), rtol=1e-10)
        assert row["criterion"] == row["bic"]
    assert res.n_components == 3
    assert res.best_model is res.models[res.best_index]
    eligible = [r["bic"] for r in res.table if not r["degenerate"]]
    assert res.best["bic"] == min(eligible)


@pytest.mark.parametrize("criterion", ["aic", "icl"])
def test_other_criteria_choose_their_own_minimum(three_blobs, criterion):
    res = select(three_blobs, n_components=[1, 2, 3, 4], covariance_types=["full", "diag"],
                 criterion=criterion, random_state=0)
    values = [r[criterion] if not r["degenerate"] else np.inf for r in res.table]
    assert res.best_index == int(np.argmin(values))
    assert all(r["criterion"] == r[criterion] for r in res.table)
    assert res.criterion == criterion


def test_the_chosen_model_has_canonical_labels(small_grid):
    means = small_grid.best_model.means_
    assert np.all(np.diff(means[:, 0]) >= 0)


def test_same_seed_same_result_and_n_jobs_does_not_change_it(three_blobs):
    kw = dict(n_components=[2, 3], covariance_types=["full", "spherical"], random_state=3)
    a = select(three_blobs, **kw)
    b = select(three_blobs, **kw)
    c = select(three_blobs, n_jobs=2, **kw)
    for x, y, z in zip(a.table, b.table, c.table):
        assert x == y
        assert x == z
    np.testing.assert_array_equal(a.best_model.means_, c.best_model.means_)


def test_integer_weights_equal_repeated_rows(three_blobs):
    X = three_blobs[:200]
    w = np.random.default_rng(0).integers(0, 4, size=len(X))
    kw = dict(n_components=[1, 2, 3], covariance_types=["diag"], random_state=0, tol=1e-8)
    weighted = select(X, sample_weight=w, **kw)
    repeated = select(np.repeat(X, w, axis=0), **kw)
    for a, b in zip(weighted.table, repeated.table):
        np.testing.assert_allclose(a["bic"], b["bic"], rtol=1e-6)
        np.testing.assert_allclose(a["log_likelihood"], b["log_likelihood"], rtol=1e-6)
    assert weighted.n_components == repeated.n_components


def test_table_as_text_and_dataframe(small_grid):
    text = str(small_grid)
    assert "BIC" in text and "best" in text
    assert len(text.splitlines()) >= 18
    pd = pytest.importorskip("pandas")
    df = small_grid.to_frame()
    assert isinstance(df, pd.DataFrame)
    assert list(df.columns) == list(COLUMNS) and len(df) == 16


def test_one_dimensional_input_and_a_single_type():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, 300), rng.normal(6, 1, 300)])
    res = select(x, n_components=range(1, 4), covariance_types="full", random_state=0)
    assert res.n_components == 2
    assert res.best_model.n_features_in_ == 1


def test_failed_candidates_are_listed_not_chosen():
    # Only three distinct rows: K=4 cannot even start.
    X = np.repeat(np.array([[0.0, 0.0], [5.0, 1.0], [1.0, 7.0]]), 20, axis=0)
    X = X + np.random.default_rng(0).normal(scale=0.1, size=X.shape)
    X[:3] = X[:1]
    res = select(X, n_components=[3, 61], covariance_types=["spherical"], random_state=0)
    failed = [r for r in res.table if not math.isfinite(r["criterion"])]
    assert [r["n_components"] for r in failed] == [61]
    assert failed[0]["issues"].startswith("fit failed")
    assert res.models[1] is None and res.n_components == 3


def test_every_candidate_degenerate_is_an_error_unless_kept():
    # 20 rows, 5 or 6 full components in 2-D: each rests on about 4 rows, fewer than
    # the 6 parameters it owns.
    X = np.random.default_rng(0).normal(size=(20, 2))
    with pytest.raises(emix.EmixError, match="every candidate is degenerate.*keep_degenerate"):
        select(X, n_components=[5, 6], covariance_types=["full"], random_state=0)
    kept = select(X, n_components=[5, 6], covariance_types=["full"], random_state=0,
                  keep_degenerate=True)
    assert all(r["degenerate"] for r in kept.table)
    assert "fewer than its 6 free parameters" in kept.best["issues"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(criterion="bicc"), "criterion must be one of"),
        (dict(n_components=[]), "n_components is empty"),
        (dict(n_components=[0, 1]), "n_components"),
        (dict(n_components="three"), "n_components"),
        (dict(covariance_types=["full", "round"]), "'round' is not one of"),
        (dict(covariance_types=[]), "covariance_types is empty"),
        (dict(n_init=0), "n_init"),
        (dict(init_params="random"), "chooses init_params itself"),
        (dict(n_jobs=0), "n_jobs"),
        (dict(colour="red"), "unknown GaussianMixture parameter"),
        (dict(n_components=[500]), "smallest candidate has n_components=500"),
        (dict(sample_weight=np.ones(3)), "sample_weight"),
        (dict(random_state="seed"), "random_state"),
    ],
)
def test_bad_arguments_fail_before_fitting(three_blobs, kwargs, match):
    with pytest.raises(emix.InputError, match=match):
        select(three_blobs, **kwargs)


def test_bad_data_fails_with_the_usual_message():
    X = np.ones((10, 2))
    X[3, 1] = np.nan
    with pytest.raises(emix.InputError, match=r"rows? 3.*column 1"):
        select(X, n_components=[1, 2])
