"""Tests of emix.datasets.sample_gaussian_mixture."""

from __future__ import annotations

import numpy as np
import pytest

from emix.datasets import sample_gaussian_mixture
from emix.exceptions import InputError, NonNumericError

WEIGHTS = [0.2, 0.5, 0.3]
MEANS = [[0.0, 0.0], [6.0, 1.0], [-4.0, 5.0]]
COVS = [
    [[1.0, 0.3], [0.3, 0.5]],
    [[2.0, -0.8], [-0.8, 1.0]],
    [[0.5, 0.0], [0.0, 3.0]],
]


def test_shapes_and_dtypes():
    X, labels = sample_gaussian_mixture(100, WEIGHTS, MEANS, COVS, random_state=0)
    assert X.shape == (100, 2) and X.dtype == np.float64
    assert labels.shape == (100,) and labels.dtype == np.int64
    assert set(np.unique(labels)) <= {0, 1, 2}


def test_reproducible_from_seed_and_generator():
    a = sample_gaussian_mixture(50, WEIGHTS, MEANS, COVS, random_state=1)
    b = sample_gaussian_mixture(50, WEIGHTS, MEANS, COVS, random_state=np.random.default_rng(1))
    c = sample_gaussian_mixture(50, WEIGHTS, MEANS, COVS, random_state=2)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_large_sample_recovers_weights_means_and_covariances():
    n = 60_000
    X, labels = sample_gaussian_mixture(n, WEIGHTS, MEANS, COVS, random_state=3)
    for k, (w, mean, cov) in enumerate(zip(WEIGHTS, MEANS, COVS)):
        rows = X[labels == k]
        # Binomial standard error of a share, and of a mean, with a margin of 5.
        assert abs(rows.shape[0] / n - w) < 5 * np.sqrt(w * (1 - w) / n)
        se_mean = np.sqrt(np.diag(cov) / rows.shape[0])
        assert np.all(np.abs(rows.mean(axis=0) - mean) < 5 * se_mean)
        np.testing.assert_allclose(np.cov(rows, rowvar=False), cov, atol=0.06)


def test_one_dimensional_mixture():
    X, labels = sample_gaussian_mixture(
        20_000, [0.5, 0.5], [[163.0], [176.0]], [[[6.5**2]], [[7.0**2]]], random_state=4
    )
    assert X.shape == (20_000, 1)
    assert abs(X[labels == 0, 0].std() - 6.5) < 0.2
    assert abs(X[labels == 1, 0].mean() - 176.0) < 0.3


def test_singular_covariance_samples_lie_on_a_line():
    X, _ = sample_gaussian_mixture(
        200, [1.0], [[1.0, 2.0]], [[[1.0, 1.0], [1.0, 1.0]]], random_state=5
    )
    # Covariance [[1, 1], [1, 1]] puts all mass on x2 - x1 = 1.
    np.testing.assert_allclose(X[:, 1] - X[:, 0], 1.0, atol=1e-12)


def test_zero_weight_component_is_never_drawn():
    _, labels = sample_gaussian_mixture(500, [0.0, 1.0], [[0.0], [1.0]], [[[1.0]], [[1.0]]])
    assert np.all(labels == 1)


def test_weights_within_round_off_of_one_are_accepted():
    X, _ = sample_gaussian_mixture(
        10, [0.1] * 10, [[float(k)] for k in range(10)], [[[1.0]]] * 10, random_state=0
    )
    assert X.shape == (10, 1)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0, WEIGHTS, MEANS, COVS), "n_samples must be at least 1, got 0"),
        ((2.5, WEIGHTS, MEANS, COVS), r"n_samples must be an integer, got 2.5"),
        ((10, [0.5, 0.6, -0.1], MEANS, COVS), r"non-negative, but weights\[2\] = -0.1"),
        ((10, [0.2, 0.5, 0.2], MEANS, COVS), "weights must sum to 1, but they sum to 0.9"),
        ((10, [0.5, 0.5], MEANS, COVS), "weights has 2 components but means has 3 rows"),
        ((10, WEIGHTS, [0.0, 1.0, 2.0], COVS), r"means must have shape \(n_components, n_feat"),
        (
            (10, WEIGHTS, MEANS, COVS[:2]),
            r"\(3, 2, 2\) to match weights and means, got \(2, 2, 2\)",
        ),
        ((10, [[0.5, 0.5]], MEANS, COVS), r"weights must have shape \(n_components,\)"),
        ((10, [], np.empty((0, 1)), np.empty((0, 1, 1))), "weights is empty"),
        ((10, WEIGHTS, [[0.0, np.nan], [1.0, 1.0], [2.0, 2.0]], COVS), r"means\[0, 1\]"),
        (
            (10, WEIGHTS, MEANS, [COVS[0], [[1.0, 0.5], [0.0, 1.0]], COVS[2]]),
            r"covariances\[1\] \(component 1\) is not symmetric",
        ),
        (
            (10, WEIGHTS, MEANS, [COVS[0], COVS[1], [[1.0, 2.0], [2.0, 1.0]]]),
            r"covariances\[2\] \(component 2\) is not positive semi-definite",
        ),
    ],
)
def test_bad_arguments_raise_naming_the_problem(args, message):
    with pytest.raises(InputError, match=message):
        sample_gaussian_mixture(*args, random_state=0)


def test_non_numeric_argument():
    with pytest.raises(NonNumericError, match="means must be a numeric array"):
        sample_gaussian_mixture(10, [1.0], [["a"]], [[[1.0]]])
