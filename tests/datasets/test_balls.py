"""Tests of emix.datasets.load_balls."""

from __future__ import annotations

import numpy as np
import pytest

from emix.datasets import load_balls
from emix.exceptions import InputError


def test_default_draws_hold_exactly_seventy_black_balls():
    draws = load_balls()
    assert draws.shape == (100,) and draws.dtype == np.int64
    assert set(np.unique(draws)) == {0, 1}
    assert int(draws.sum()) == 70
    assert draws.mean() == 0.7  # the maximum-likelihood estimate a learner should find


def test_draws_are_shuffled_and_seeded():
    draws = load_balls()
    assert not np.array_equal(draws, np.sort(draws)[::-1])
    np.testing.assert_array_equal(load_balls(random_state=4), load_balls(random_state=4))
    assert not np.array_equal(load_balls(random_state=4), load_balls(random_state=5))


@pytest.mark.parametrize(("n", "b"), [(1, 0), (1, 1), (7, 7), (10, 0)])
def test_edge_counts(n, b):
    draws = load_balls(n_draws=n, n_black=b)
    assert draws.shape == (n,) and int(draws.sum()) == b


def test_draws_are_read_only():
    with pytest.raises(ValueError, match="read-only"):
        load_balls()[0] = 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_draws": 0}, "n_draws must be at least 1, got 0"),
        ({"n_black": -1}, "n_black must be at least 0, got -1"),
        ({"n_draws": 5, "n_black": 6}, "n_black=6 is more than n_draws=5"),
        ({"n_black": 7.0}, "n_black must be an integer"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(InputError, match=message):
        load_balls(**kwargs)
