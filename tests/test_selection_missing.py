"""emix.select on data with missing values: candidates fitted by EM for incomplete data,
BIC counting the rows with an observed value."""

from __future__ import annotations

import numpy as np
import pytest

import emix
from emix.exceptions import InputError


def _two_clusters(rng, n=240, frac=0.15):
    X = np.concatenate([rng.normal(0, 1, (n // 2, 2)), rng.normal(6, 1, (n // 2, 2))])
    X[rng.random(X.shape) < frac] = np.nan
    X[np.isnan(X).all(axis=1), 0] = 0.5  # keep every row observed somewhere
    return X


def test_select_fits_candidates_on_missing_values(rng):
    X = _two_clusters(rng)
    res = emix.select(X, n_components=range(1, 4), covariance_types=["full"], n_init=1,
                      random_state=0)
    assert res.n_components == 2
    # The chosen model's BIC is the criterion in the table and the model's own.
    best = res.best_model
    assert best.missing == "em"
    assert best.bic(X) == pytest.approx(res.best["bic"], rel=1e-10)
    # BIC counts parameters as before and observations as the rows (all observed here).
    ll = best.score(X) * len(X)
    p = res.best["n_parameters"]
    assert best.bic(X) == pytest.approx(-2 * ll + p * np.log(len(X)), rel=1e-10)


def test_select_over_families_with_missing_counts(rng):
    counts = np.concatenate([rng.poisson(2, (150, 2)), rng.poisson(15, (150, 2))]).astype(float)
    counts[rng.random(counts.shape) < 0.1] = np.nan
    counts[np.isnan(counts).all(axis=1), 1] = 3.0
    res = emix.select(counts, n_components=range(1, 4), families=["poisson"], n_init=1,
                      random_state=0)
    assert res.n_components == 2


def test_select_missing_error_and_inf(rng):
    X = _two_clusters(rng)
    with pytest.raises(InputError, match="NaN"):
        emix.select(X, n_components=[1, 2], covariance_types=["full"], missing="error")
    X[3, 1] = np.inf
    with pytest.raises(InputError, match="inf"):
        emix.select(X, n_components=[1, 2], covariance_types=["full"])
    with pytest.raises(InputError, match="missing must be one of"):
        emix.select(X, n_components=[1, 2], missing="drop")
