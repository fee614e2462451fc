"""emix.bootstrap (emix.uncertainty): standard errors against closed forms, label alignment, failures, errors.

For well-separated components the responsibilities are 0 or 1, so the mixture's
estimates are those of labelled data: a mean's standard error is
``sqrt(Sigma_k[d, d] / (N w_k))``, a weight's ``sqrt(w_k (1 - w_k) / N)`` and a 1-D
variance's ``Sigma_k sqrt(2 / (N w_k))``. With ``n_boot=1000`` a bootstrap standard error
carries about 2.5% Monte Carlo error, so the 15% tolerance holds for any seed (the worst
of 12 seeds x 13 standard errors was 7%).
"""

from __future__ import annotations

import numpy as np
import pytest

import emix
from emix import GaussianMixture, InputError, NotFittedError
from emix.uncertainty import BootstrapResult, align_components, bootstrap
from emix.datasets import sample_gaussian_mixture


def _seed(rng) -> int:
    return int(rng.integers(2**31))


@pytest.fixture
def one_d(rng):
    N = 2000
    X, labels = sample_gaussian_mixture(
        N, [0.3, 0.7], [[0.0], [15.0]], [[[1.0]], [[4.0]]], random_state=_seed(rng)
    )
    return X, GaussianMixture(2, random_state=0).fit(X), labels


def _relative_errors(result: BootstrapResult, N: int):
    w = result.weights
    D = result.means.shape[1]
    var = result.covariances[:, np.arange(D), np.arange(D)]
    means = result.means_se / np.sqrt(var / (N * w[:, None])) - 1
    weights = result.weights_se / np.sqrt(w * (1 - w) / N) - 1
    return means, weights


def test_standard_errors_match_closed_forms_1d(one_d, rng):
    X, model, labels = one_d
    N = X.shape[0]
    result = bootstrap(model, X, n_boot=1000, random_state=_seed(rng))
    assert result.n_replicates == 1000 and result.n_failed == 0
    means, weights = _relative_errors(result, N)
    assert np.all(np.abs(means) < 0.15), means
    assert np.all(np.abs(weights) < 0.15), weights
    # A variance's standard error rests on the sample's fourth moment, sqrt((m4 - s^4) / n),
    # which wanders too far from the Gaussian 2 s^4 / n at n = 600 to be compared with it.
    expected = []
    for k in range(2):
        # Components are well separated: the fitted component owns the rows nearest it.
        x = X[labels == np.argmin(np.abs(np.array([0.0, 15.0]) - result.means[k, 0])), 0]
        d = x - x.mean()
        expected.append(np.sqrt((np.mean(d**4) - np.mean(d**2) ** 2) / len(x)))
    var_se = result.covariances_se[:, 0, 0] / np.array(expected) - 1
    assert np.all(np.abs(var_se) < 0.15), var_se


def test_standard_errors_match_closed_forms_2d_three_components(rng):
    N = 3000
    covs = [np.diag([1.0, 2.0]), [[2.0, 0.5], [0.5, 1.0]], np.diag([1.5, 1.0])]
    X, _ = sample_gaussian_mixture(
        N, [0.2, 0.3, 0.5], [[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]], covs,
        random_state=_seed(rng),
    )
    model = GaussianMixture(3, random_state=0).fit(X)
    result = bootstrap(model, X, n_boot=1000, random_state=_seed(rng))
    means, weights = _relative_errors(result, N)
    # Every coordinate of every component on its own, no averaging.
    assert np.all(np.abs(means) < 0.15), means
    assert np.all(np.abs(weights) < 0.15), weights
    assert result.means_boot.shape == (1000, 3, 2)
    assert result.covariances_boot.shape == (1000, 3, 2, 2)


@pytest.mark.parametrize(
    ("covariance_type", "cov_shape"),
    [("full", (2, 2, 2)), ("tied", (2, 2)), ("diag", (2, 2)), ("spherical", (2,))],
)
def test_shapes_and_intervals_for_every_covariance_type(rng, covariance_type, cov_shape):
    X, _ = sample_gaussian_mixture(
        600, [0.4, 0.6], [[0.0, 0.0], [8.0, 8.0]], [np.eye(2), np.eye(2) * 2],
        random_state=_seed(rng),
    )
    model = GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(X)
    r = bootstrap(model, X, n_boot=60, random_state=_seed(rng), level=0.9)
    B = r.n_replicates
    assert (r.weights_boot.shape, r.means_boot.shape) == ((B, 2), (B, 2, 2))
    assert r.covariances.shape == cov_shape
    assert r.covariances_boot.shape == (B, *cov_shape)
    for name in ("weights", "means", "covariances"):
        est, lo, hi, se = (getattr(r, name + s) for s in ("", "_lower", "_upper", "_se"))
        assert lo.shape == hi.shape == se.shape == est.shape
        assert np.all(lo <= est) and np.all(est <= hi), name
        assert np.all(se > 0), name
        np.testing.assert_array_equal(est, np.asarray(getattr(model, name + "_"), float))
    # Level: the 90% interval lies inside the replicates' range, and is their 5%/95% points.
    np.testing.assert_allclose(r.means_lower, np.quantile(r.means_boot, 0.05, axis=0))
    np.testing.assert_allclose(r.means_upper, np.quantile(r.means_boot, 0.95, axis=0))
    table = r.summary()
    assert "90% interval" in table
    n_cov_rows = {"full": 6, "tied": 3, "diag": 4, "spherical": 2}[covariance_type]
    assert len(table.splitlines()) == 3 + 2 * 3 + n_cov_rows


def test_result_is_read_only(one_d):
    X, model, _ = one_d
    r = bootstrap(model, X, n_boot=5, random_state=0)
    with pytest.raises(ValueError):
        r.means_se[0, 0] = 1.0
    with pytest.raises(AttributeError):
        r.level = 0.5


def test_reproducible_with_a_seed(one_d):
    X, model, _ = one_d
    a = bootstrap(model, X, n_boot=20, random_state=7)
    b = bootstrap(model, X, n_boot=20, random_state=7)
    c = bootstrap(model, X, n_boot=20, random_state=8)
    for name in ("weights_boot", "means_boot", "covariances_boot", "means_se"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.means_boot, c.means_boot)
    assert a.summary() == b.summary()


# ------------------------------------------------------------------ label alignment


def test_align_components_undoes_a_permutation(rng):
    K, D = 4, 3
    means = rng.normal(scale=5, size=(K, D))
    A = rng.normal(size=(K, D, D))
    covs = A @ np.swapaxes(A, 1, 2) + np.eye(D)
    perm = np.array([2, 0, 3, 1])
    # Small perturbations, as a replicate's fit would have.
    m2 = means[perm] + rng.normal(scale=0.05, size=(K, D))
    c2 = covs[perm] * 1.02
    found = align_components(means, covs, m2, c2, "full")
    np.testing.assert_allclose(m2[found], means, atol=0.3)
    np.testing.assert_array_equal(found, np.argsort(perm))
    np.testing.assert_array_equal(align_components(means, covs, means, covs), np.arange(K))


@pytest.mark.parametrize("covariance_type", ["diag", "spherical", "tied"])
def test_align_components_other_covariance_types(covariance_type):
    means = np.array([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]])
    covs = {
        "diag": np.array([[1.0, 2.0], [0.5, 0.5], [3.0, 1.0]]),
        "spherical": np.array([1.0, 0.5, 3.0]),
        "tied": np.array([[1.0, 0.3], [0.3, 2.0]]),
    }[covariance_type]
    perm = np.array([1, 2, 0])
    c2 = covs if covariance_type == "tied" else covs[perm]
    found = align_components(means, covs, means[perm] + 0.1, c2, covariance_type)
    np.testing.assert_array_equal(found, np.argsort(perm))


def test_alignment_separates_equal_means_by_their_spread():
    # A narrow peak on a wide background: the means nearly coincide, so a distance
    # between means would pair them at random; the covariances decide.
    means = np.array([[0.0, 0.0], [0.2, 0.0]])
    covs = np.array([np.eye(2) * 0.1, np.eye(2) * 10.0])
    swapped_means = np.array([[0.15, 0.0], [0.05, 0.0]])  # closer to the other one
    swapped_covs = covs[::-1] * 1.1
    np.testing.assert_array_equal(
        align_components(means, covs, swapped_means, swapped_covs), [1, 0]
    )


def test_align_components_errors():
    zeros, ones = np.zeros, np.ones
    with pytest.raises(InputError, match="shape"):
        align_components(zeros((2, 2)), ones((2, 2)), zeros((3, 2)), ones((3, 2)), "diag")
    with pytest.raises(InputError, match="singular"):
        align_components(zeros((2, 1)), zeros((2, 1, 1)), zeros((2, 1)), ones((2, 1, 1)))


class _ReversingMixture(GaussianMixture):
    """Reports its components in reverse order: every refit comes back permuted."""

    def fit(self, X, y=None, sample_weight=None):
        super().fit(X, y, sample_weight)
        for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
            setattr(self, name, getattr(self, name)[::-1].copy())
        return self


def test_bootstrap_relabels_refits_that_permute_components(one_d):
    X, plain, _ = one_d
    reversing = _ReversingMixture(2, random_state=0).fit(X)
    np.testing.assert_allclose(reversing.means_, plain.means_[::-1])
    r = bootstrap(reversing, X, n_boot=30, random_state=3)
    ref = bootstrap(plain, X, n_boot=30, random_state=3)
    assert r.n_relabelled == 30 and ref.n_relabelled == 0
    np.testing.assert_array_equal(r.permutations, np.tile([1, 0], (30, 1)))
    # Relabelled, the replicates are the plain model's with the components reversed.
    np.testing.assert_allclose(r.means_boot, ref.means_boot[:, ::-1], rtol=1e-10)
    np.testing.assert_allclose(r.weights_se, ref.weights_se[::-1], rtol=1e-8)
    assert "relabelled" in r.summary()


# ------------------------------------------------------------------ weights, tolerance


def test_sample_weights_are_frequencies(rng):
    # Integer weights must bootstrap like the repeated rows: same standard errors.
    X, _ = sample_gaussian_mixture(
        600, [0.5, 0.5], [[0.0], [10.0]], [[[1.0]], [[1.0]]], random_state=_seed(rng)
    )
    counts = rng.integers(1, 4, size=X.shape[0])
    weighted = GaussianMixture(2, random_state=0).fit(X, sample_weight=counts)
    Xr = np.repeat(X, counts, axis=0)
    repeated = GaussianMixture(2, random_state=0).fit(Xr)
    a = bootstrap(weighted, X, sample_weight=counts, n_boot=500, random_state=_seed(rng))
    b = bootstrap(repeated, Xr, n_boot=500, random_state=_seed(rng))
    np.testing.assert_allclose(a.means_se, b.means_se, rtol=0.2)
    np.testing.assert_allclose(a.weights_se, b.weights_se, rtol=0.2)
    # Resampling rows and keeping their weights would inflate the SE by
    # sqrt(E[c^2] / E[c]) = sqrt(7 / 3) = 1.53 here, and this closed form would fail.
    n = counts.sum() * a.weights
    np.testing.assert_allclose(a.means_se[:, 0], np.sqrt(a.covariances[:, 0, 0] / n), rtol=0.15)


def test_default_tolerance_lets_replicates_reach_their_own_optimum(rng):
    # Overlapping components: EM crawls, and the model's tol=1e-3 would stop every
    # replicate a step from where it started, shrinking the SEs several-fold. Same seed,
    # same resamples, so the comparisons are free of Monte Carlo noise.
    X, _ = sample_gaussian_mixture(
        500, [0.4, 0.6], [[0.0], [3.0]], [[[1.0]], [[1.0]]], random_state=_seed(rng)
    )
    model = GaussianMixture(2, tol=1e-10, max_iter=5000, random_state=0).fit(X)
    seed = _seed(rng)
    default = bootstrap(model, X, n_boot=6, random_state=seed)
    exact = bootstrap(model, X, n_boot=6, random_state=seed, tol=1e-13, max_iter=20000)
    np.testing.assert_allclose(default.means_se, exact.means_se, rtol=0.03)
    loose = bootstrap(model, X, n_boot=6, random_state=seed, tol=1e-3)
    assert np.mean(loose.means_se / exact.means_se) < 0.8


# ------------------------------------------------------------------ failures, warnings


def test_failed_replicates_are_excluded_counted_and_warned(rng):
    # Three rows far away form their own component; many resamples draw none or one of
    # them, leaving that component empty or collapsed.
    X = np.concatenate([rng.normal(size=300), [40.0, 41.0, 42.5]])[:, None]
    model = GaussianMixture(2, random_state=0).fit(X)
    with pytest.warns(UserWarning, match="replicates failed"):
        r = bootstrap(model, X, n_boot=40, random_state=_seed(rng))
    assert r.n_failed > 2
    assert r.n_replicates == 40 - r.n_failed
    assert all(isinstance(i, int) and reason for i, reason in r.failures)
    assert len({i for i, _ in r.failures}) == r.n_failed
    assert "failed and were excluded" in r.summary()
    # The survivors are real fits: the far component keeps a positive variance.
    assert np.all(r.covariances_boot[:, :, 0, 0] > 1e-3)


def test_non_converged_replicates_are_counted_not_warned_each(rng):
    X, _ = sample_gaussian_mixture(
        500, [0.5, 0.5], [[0.0], [2.0]], [[[1.0]], [[1.0]]], random_state=_seed(rng)
    )
    model = GaussianMixture(2, tol=1e-8, max_iter=2000, random_state=0).fit(X)
    # pytest.warns re-raises any other warning (a ConvergenceWarning from a refit).
    with pytest.warns(UserWarning, match="reached max_iter=2") as record:
        r = bootstrap(model, X, n_boot=10, random_state=0, max_iter=2)
    assert len(record) == 1
    assert r.n_not_converged == 10 - int(r.converged.sum()) > 0
    assert "stopped at max_iter" in r.summary()


def test_warns_when_x_is_not_the_fitted_data(one_d):
    X, model, _ = one_d
    with pytest.warns(UserWarning, match="not be the data the model was fitted on"):
        bootstrap(model, X + 0.5, n_boot=10, random_state=0)


def test_summary_uses_feature_names(rng):
    pd = pytest.importorskip("pandas")
    X, _ = sample_gaussian_mixture(
        400, [0.5, 0.5], [[0.0, 0.0], [8.0, 8.0]], [np.eye(2), np.eye(2)],
        random_state=_seed(rng),
    )
    df = pd.DataFrame(X, columns=["height", "weight"])
    model = GaussianMixture(2, covariance_type="diag", random_state=0).fit(df)
    r = bootstrap(model, df, n_boot=10, random_state=0)
    assert r.feature_names == ("height", "weight")
    table = str(r)
    assert "mean[height]" in table and "var[weight]" in table


# ------------------------------------------------------------------ input errors


def test_errors(one_d):
    X, model, _ = one_d
    with pytest.raises(NotFittedError, match="not fitted"):
        bootstrap(GaussianMixture(2), X)
    with pytest.raises(InputError, match="GaussianMixture"):
        bootstrap(object(), X)
    with pytest.raises(InputError, match="n_boot must be >= 2"):
        bootstrap(model, X, n_boot=1)
    with pytest.raises(InputError, match="n_boot must be an integer"):
        bootstrap(model, X, n_boot=10.0)
    with pytest.raises(InputError, match="X has 2 features, but GaussianMixture is expecting 1"):
        bootstrap(model, np.hstack([X, X]), n_boot=5)
    with pytest.raises(InputError, match="sample_weight has 3 entries but X has 2000 rows"):
        bootstrap(model, X, sample_weight=[1.0, 2.0, 3.0], n_boot=5)
    with pytest.raises(InputError, match="frequencies"):
        bootstrap(model, X, sample_weight=np.full(X.shape[0], 1e-4), n_boot=5)
    for level in (0.0, 1.0, 95, "0.9", True):
        with pytest.raises(InputError, match="level"):
            bootstrap(model, X, level=level, n_boot=5)
    with pytest.raises(InputError, match="max_iter"):
        bootstrap(model, X, max_iter=0, n_boot=5)
    with pytest.raises(InputError, match="tol"):
        bootstrap(model, X, tol=-1.0, n_boot=5)


@pytest.mark.parametrize(
    ("ct", "cov"),
    [("diag", np.ones(2)), ("tied", np.eye(3)), ("full", np.ones((2, 2))),
     ("spherical", np.ones(3))],
)
def test_align_components_refuses_covariances_of_the_wrong_shape(ct, cov):
    means = np.zeros((2, 2))
    good = {"full": np.stack([np.eye(2)] * 2), "tied": np.eye(2), "diag": np.ones((2, 2)),
            "spherical": np.ones(2)}[ct]
    with pytest.raises(InputError, match=r"covariances of shape .* do not match means"):
        align_components(means, good, means, cov, ct)
    with pytest.raises(InputError, match=r"covariances of shape .* do not match means"):
        align_components(means, cov, means, good, ct)


# ------------------------------------------------------------------ other families


def _poisson_data(rng, N=2000):
    w = np.array([0.3, 0.7])
    rates = np.array([[2.0, 30.0], [20.0, 5.0]])
    z = rng.choice(2, N, p=w)
    return rng.poisson(rates[z]).astype(float)


def test_poisson_standard_errors_match_closed_forms(rng):
    # Well separated, so each component's rate is the mean count of its own rows:
    # SE sqrt(rate / n_k); a weight's is sqrt(w (1 - w) / N). n_boot=300 carries about
    # 4% Monte Carlo error; 20% leaves room for the estimate standing in for the truth.
    N = 2000
    X = _poisson_data(rng, N)
    model = emix.MixtureModel("poisson", 2, label_order="mean", random_state=0).fit(X)
    r = bootstrap(model, X, n_boot=300, random_state=_seed(rng))
    assert r.family == "poisson" and r.parameter_names == ("weights", "rates")
    assert r.n_replicates == 300 and r.rates_boot.shape == (300, 2, 2)
    nk = model.weights_ * N
    ratio = r.rates_se / np.sqrt(model.rates_ / nk[:, None])
    assert np.all(np.abs(ratio - 1) < 0.2), ratio
    ratio = r.weights_se / np.sqrt(model.weights_ * (1 - model.weights_) / N)
    assert np.all(np.abs(ratio - 1) < 0.2), ratio
    np.testing.assert_array_equal(r.rates, model.rates_)
    np.testing.assert_array_equal(r.se["rates"], r.rates_se)
    assert np.all(r.rates_lower <= r.rates) and np.all(r.rates <= r.rates_upper)
    text = r.summary()
    assert "2-component poisson mixture" in text and "rates[1]" in text
    assert len(text.splitlines()) == 3 + 2 * 3


def test_bernoulli_standard_errors_match_closed_forms(rng):
    N = 1500
    p = np.array([[0.1, 0.9, 0.5, 0.05, 0.9, 0.1, 0.85, 0.1, 0.9, 0.15],
                  [0.9, 0.1, 0.2, 0.95, 0.1, 0.9, 0.1, 0.9, 0.1, 0.85]])
    z = rng.choice(2, N, p=[0.35, 0.65])
    X = (rng.random((N, p.shape[1])) < p[z]).astype(float)
    model = emix.MixtureModel("bernoulli", 2, n_init=2, random_state=0).fit(X)
    r = bootstrap(model, X, n_boot=300, random_state=_seed(rng))
    P, nk = model.probabilities_, model.weights_ * N
    ratio = r.probabilities_se / np.sqrt(P * (1 - P) / nk[:, None])
    assert np.all(np.abs(ratio - 1) < 0.2), ratio


class _ReversingPoisson(emix.MixtureModel):
    """Reports its components in the reverse of EM's order, so every refit comes out
    reversed relative to its start and must be relabelled."""

    def fit(self, X, y=None, sample_weight=None):
        super().fit(X, sample_weight=sample_weight)
        self.weights_ = self.weights_[::-1].copy()
        self.rates_ = self.rates_[::-1].copy()
        return self


def test_family_replicates_are_aligned_by_the_rows_they_own(rng):
    X = _poisson_data(rng, 600)
    kw = dict(family="poisson", n_components=2, random_state=0)
    plain = emix.MixtureModel(**kw).fit(X)
    reversing = _ReversingPoisson(**kw).fit(X)
    np.testing.assert_array_equal(reversing.rates_, plain.rates_[::-1])
    r = bootstrap(reversing, X, n_boot=20, random_state=5)
    ref = bootstrap(plain, X, n_boot=20, random_state=5)
    assert r.n_relabelled == 20 and ref.n_relabelled == 0
    np.testing.assert_array_equal(r.permutations, np.tile([1, 0], (20, 1)))
    np.testing.assert_allclose(r.rates_boot, ref.rates_boot[:, ::-1], rtol=1e-9)
    np.testing.assert_allclose(r.weights_se, ref.weights_se[::-1], rtol=1e-9)


def test_product_families_on_a_dataframe(rng):
    pd = pytest.importorskip("pandas")
    N = 800
    z = rng.choice(2, N, p=[0.4, 0.6])
    df = pd.DataFrame({
        "x": rng.normal(np.array([0.0, 6.0])[z], 1.0),
        "visits": rng.poisson(np.array([2.0, 12.0])[z]).astype(float),
        "ignored": rng.normal(size=N),
    })
    model = emix.MixtureModel(
        {"gaussian": ["x"], "poisson": ["visits"]}, 2, label_order="mean", random_state=0
    ).fit(df)
    r = bootstrap(model, df, n_boot=40, random_state=_seed(rng))
    assert r.parameter_names == ("weights", "gaussian.means", "gaussian.covariances",
                                 "poisson.rates")
    nk = model.weights_ * N
    se = r.se["poisson.rates"][:, 0]
    expected = np.sqrt(model.params_["poisson"]["rates"][:, 0] / nk)
    # 40 replicates: about 11% Monte Carlo error.
    assert np.all(np.abs(se / expected - 1) < 0.4), se / expected
    text = r.summary()
    assert "rates[visits]" in text and "means[x]" in text and "ignored" not in text


def test_student_t_with_fixed_df_has_no_spread_in_df(rng):
    x = np.concatenate([rng.standard_t(3, 300), 10 + rng.standard_t(3, 300)])
    from emix.families.student_t import StudentT

    model = emix.MixtureModel(StudentT(df=3.0), 2, random_state=0).fit(x)
    r = bootstrap(model, x, n_boot=10, random_state=_seed(rng))
    np.testing.assert_array_equal(r.df_se, 0.0)
    assert np.all(r.means_se > 0) and np.all(r.scales_se > 0)


def test_a_gaussian_mixture_model_bootstraps_its_gaussian_mixture(one_d):
    X, _, _ = one_d
    model = emix.MixtureModel("gaussian", 2, random_state=0).fit(X)
    a = bootstrap(model, X, n_boot=8, random_state=1)
    b = bootstrap(model.gaussian_mixture_, X, n_boot=8, random_state=1)
    np.testing.assert_array_equal(a.means_boot, b.means_boot)
    assert a.family == "gaussian" and a.covariance_type == "full"


def test_mixture_model_errors(rng):
    X = _poisson_data(rng, 200)
    with pytest.raises(NotFittedError):
        bootstrap(emix.MixtureModel("poisson", 2), X, n_boot=5)
    model = emix.MixtureModel("poisson", 2, random_state=0).fit(X)
    with pytest.raises(InputError, match="non-negative integer"):
        bootstrap(model, X + 0.5, n_boot=5)
    r = bootstrap(model, X, n_boot=3, random_state=0)
    with pytest.raises(AttributeError, match="its parameters are"):
        r.probabilities_se
    with pytest.raises(TypeError):
        r.se["rates"] = 0


def test_a_shared_tied_covariance_is_not_relabelled(rng):
    # K = D = 2, so only the family's shared_param_names tells the tied (D, D) matrix
    # from a per-component parameter. The same resamples refitted by GaussianMixture
    # reach the same optima.
    from emix.families.normal import Normal

    X, _ = sample_gaussian_mixture(
        400, [0.4, 0.6], [[0.0, 0.0], [6.0, 6.0]], [[[1.0, 0.3], [0.3, 1.0]]] * 2,
        random_state=_seed(rng),
    )
    model = emix.MixtureModel(Normal("tied"), 2, random_state=0, label_order="weight").fit(X)
    gm = GaussianMixture(2, covariance_type="tied", random_state=0).fit(X)
    if not np.allclose(gm.means_, model.means_, atol=1e-3):
        gm = GaussianMixture(
            2, covariance_type="tied", means_init=model.means_, weights_init=model.weights_
        ).fit(X)
    seed = _seed(rng)
    r = bootstrap(model, X, n_boot=15, random_state=seed)
    ref = bootstrap(gm, X, n_boot=15, random_state=seed)
    assert r.shared == ("covariances",) and r.covariances_boot.shape == (15, 2, 2)
    np.testing.assert_allclose(r.covariances_boot, ref.covariances_boot, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(r.means_boot, ref.means_boot, rtol=1e-4, atol=1e-5)
    lines = r.summary().splitlines()
    assert sum(line.startswith("all ") for line in lines) == 3


def test_missing_cells_widen_the_standard_error_of_their_column(rng):
    # One Gaussian, independent columns of unit variance; column 1 is 40% missing at
    # random, so its mean rests on ~60% of the rows: SE ~ 1 / sqrt(0.6 N) against
    # 1 / sqrt(N) for the complete column 0. A row with nothing observed is left out of
    # the resampling, with one warning.
    N = 400
    X = rng.normal(size=(N, 2))
    X[rng.random(N) < 0.4, 1] = np.nan
    X[7] = np.nan
    with pytest.warns(emix.MissingDataWarning):
        model = GaussianMixture(1, covariance_type="diag").fit(X)
    with pytest.warns(emix.MissingDataWarning, match=r"1 row .* \(rows 7\)"):
        result = bootstrap(model, X, n_boot=150, random_state=_seed(rng))
    assert result.n_failed == 0
    n_obs = (~np.isnan(X)).sum(axis=0)
    se = result.means_se[0] / np.sqrt(model.covariances_[0] / n_obs)
    np.testing.assert_allclose(se, 1.0, atol=0.2)
    assert result.means_se[0, 1] > 1.1 * result.means_se[0, 0]
    with pytest.raises(InputError, match="NaN"):
        bootstrap(GaussianMixture(1, missing="error").fit(X[~np.isnan(X).any(axis=1)]), X,
                  n_boot=2)
