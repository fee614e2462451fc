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
    X[3, 1] = np.inf  # NaN is a missing value (missing='em'); inf is still an error
    with pytest.raises(emix.InputError, match=r"rows? 3.*column 1"):
        select(X, n_components=[1, 2])


# ------------------------------------------------------------------ other families


@pytest.fixture(scope="module")
def counts():
    rng = np.random.default_rng(4)
    z = rng.choice(2, 500, p=[0.4, 0.6])
    return rng.poisson(np.array([[2.0, 9.0], [12.0, 1.0]])[z]).astype(float)


def test_families_choose_the_family_and_count_its_parameters(counts):
    from scipy.stats import binom, poisson

    from emix.families.binomial import Binomial

    res = select(counts, n_components=[1, 2, 3], families=["poisson", Binomial(n_trials=40)],
                 random_state=0)
    assert [r["family"] for r in res.table] == ["poisson"] * 3 + ["binomial(n_trials=40)"] * 3
    assert all(r["covariance_type"] is None for r in res.table)
    assert (res.family, res.n_components, res.covariance_type) == ("poisson", 2, None)
    assert isinstance(res.best_model, emix.MixtureModel)
    for row, model in zip(res.table, res.models):
        K = row["n_components"]
        # Two columns: a rate or a probability each per component, and K - 1 weights.
        assert row["n_parameters"] == 2 * K + K - 1
        # The log-likelihood of the final parameters, independently with SciPy.
        if row["family"] == "poisson":
            logp = poisson.logpmf(counts[:, None, :], model.rates_[None]).sum(axis=2)
        else:
            logp = binom.logpmf(counts[:, None, :], 40, model.probabilities_[None]).sum(axis=2)
        expected = np.logaddexp.reduce(logp + np.log(model.weights_), axis=1).sum()
        np.testing.assert_allclose(row["log_likelihood"], expected, rtol=1e-9)
        np.testing.assert_allclose(
            row["bic"], -2 * expected + row["n_parameters"] * math.log(500), rtol=1e-9
        )
    text = str(res)
    assert text.splitlines()[0].startswith("family") and "binomial(n_trials=40)" in text


def test_student_t_counts_learned_degrees_of_freedom_only():
    from emix.families.student_t import StudentT

    rng = np.random.default_rng(1)
    x = np.concatenate([rng.standard_t(3, 200), 9 + rng.standard_t(3, 200)])
    res = select(x, n_components=[1, 2], covariance_types=["full", "tied"],
                 families=["student_t", StudentT(df=3.0), "gaussian"], random_state=0)
    rows = {(r["family"], r["covariance_type"], r["n_components"]): r for r in res.table}
    # A family object keeps its own covariance type; a name takes the grid's.
    assert ("student_t(df=3.0)", "tied", 1) not in rows and ("student_t", "tied", 2) in rows
    for K in (1, 2):
        # 1-D: a location and a scale per component, plus K - 1 weights; learned df add K.
        assert rows[("student_t(df=3.0)", "full", K)]["n_parameters"] == 3 * K - 1
        assert rows[("student_t", "full", K)]["n_parameters"] == 4 * K - 1
        # Tied: one scale shared by all components.
        assert rows[("student_t", "tied", K)]["n_parameters"] == 3 * K
        assert rows[("gaussian", "tied", K)]["n_parameters"] == 2 * K
    assert res.family.startswith("student_t") and res.n_components == 2


def test_discrete_and_continuous_families_are_not_compared(counts):
    for families in (["poisson", "gaussian"], ["poisson", "exponential"],
                     [{"gaussian": [0], "poisson": [1]}, "poisson"],
                     [{"gaussian": [0], "poisson": [1]}, {"poisson": [0]}],
                     # (heads, trials): the trials are conditioned on, not modelled.
                     ["poisson", "binomial"]):
        with pytest.raises(emix.InputError, match="cannot be compared by likelihood"):
            select(counts, n_components=[1, 2], families=families)
    # The same kind of likelihood on every column is comparable, products included.
    from emix.families.binomial import Binomial

    res = select(counts, n_components=[2],
                 families=[[("poisson", [0]), (Binomial(n_trials=40), [1])], "poisson"],
                 random_state=0)
    assert len(res.table) == 2 and all(math.isfinite(r["bic"]) for r in res.table)


def test_products_compare_on_a_dataframe_and_results_do_not_depend_on_n_jobs():
    pd = pytest.importorskip("pandas")
    from emix.families.binomial import Binomial
    from emix.families.normal import Normal

    rng = np.random.default_rng(2)
    z = rng.choice(2, 400, p=[0.5, 0.5])
    df = pd.DataFrame({"x": rng.normal(np.array([0.0, 5.0])[z]),
                       "n": rng.poisson(np.array([2.0, 9.0])[z]).astype(float)})
    families = [{"gaussian": ["x"], "poisson": ["n"]},
                [(Normal(covariance_type="spherical"), ["x"]), (Binomial(n_trials=30), ["n"])]]
    a = select(df, n_components=[1, 2], families=families, random_state=0)
    b = select(df, n_components=[1, 2], families=families, random_state=0, n_jobs=2)
    assert [r["family"] for r in a.table] == (
        ["gaussian[x]+poisson[n]"] * 2
        + ["gaussian(covariance_type='spherical')[x]+binomial(n_trials=30)[n]"] * 2
    )
    for x, y in zip(a.table, b.table):
        assert x == y
    assert a.n_components == 2
    # A product's count: a Gaussian mean and variance, and a rate, per component.
    assert a.table[1]["n_parameters"] == 2 * 3 + 1


def test_failed_family_candidates_are_listed_not_chosen(counts):
    from emix.families.binomial import Binomial

    # Counts above n_trials are outside the binomial's support: its fit fails.
    res = select(counts, n_components=[2], families=["poisson", Binomial(n_trials=5)],
                 random_state=0)
    assert res.family == "poisson"
    failed = res.table[1]
    assert failed["degenerate"] and failed["issues"].startswith("fit failed")
    assert res.models[1] is None


def test_default_grid_is_gaussian_and_prints_as_before(small_grid):
    assert all(r["family"] == "gaussian" for r in small_grid.table)
    assert small_grid.family == "gaussian"
    assert not str(small_grid).startswith("family")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(families=[]), "families is empty"),
        (dict(families=["weibull"]), "unknown family 'weibull'"),
        (dict(families=["poisson"], weights_init=[0.5, 0.5]), "starting values"),
        (dict(families=["poisson"], family_options={}), "takes no family_options"),
        (dict(families=["poisson"], colour="red"), "unknown GaussianMixture parameter"),
    ],
)
def test_bad_family_arguments_fail_before_fitting(counts, kwargs, match):
    with pytest.raises(emix.InputError, match=match):
        select(counts, n_components=[1, 2], **kwargs)
