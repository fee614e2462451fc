"""Tests of emix.datasets.load_two_coins."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from emix.datasets import CoinsData, CoinsTruth, load_two_coins
from emix.datasets.coins import TEXTBOOK_HEADS
from emix.exceptions import InputError


def test_default_sample_shapes_dtypes_and_truth():
    data = load_two_coins()
    assert isinstance(data, CoinsData)
    assert data.heads.shape == (20,) and data.heads.dtype == np.int64
    assert data.coin.shape == (20,) and data.coin.dtype == np.int64
    assert data.n_sets == 20 and data.n_flips == 10
    assert set(np.unique(data.coin)) <= {0, 1}
    assert np.all((data.heads >= 0) & (data.heads <= 10))
    np.testing.assert_array_equal(data.tails, 10 - data.heads)
    assert data.truth == CoinsTruth(biases=(0.8, 0.45), weights=(0.5, 0.5))


def test_same_seed_same_data_and_generator_is_advanced():
    a, b = load_two_coins(random_state=3), load_two_coins(random_state=3)
    np.testing.assert_array_equal(a.heads, b.heads)
    np.testing.assert_array_equal(a.coin, b.coin)
    rng = np.random.default_rng(1)
    first, second = load_two_coins(50, random_state=rng), load_two_coins(50, random_state=rng)
    assert not np.array_equal(first.heads, second.heads)


def test_large_sample_follows_the_generating_coins():
    n = 20_000
    data = load_two_coins(n_sets=n, n_flips=12, biases=(0.7, 0.2), weights=(0.3, 0.7),
                          random_state=2)
    share_a = np.mean(data.coin == 0)
    assert abs(share_a - 0.3) < 5 * np.sqrt(0.3 * 0.7 / n)
    for c, p in enumerate((0.7, 0.2)):
        heads = data.heads[data.coin == c]
        flips = heads.size * 12
        assert abs(heads.sum() / flips - p) < 5 * np.sqrt(p * (1 - p) / flips)


def test_extreme_biases_and_weights_are_allowed():
    data = load_two_coins(n_sets=30, biases=(1.0, 0.0), weights=(1.0, 0.0))
    assert np.all(data.coin == 0) and np.all(data.heads == 10)


def test_result_is_frozen_and_read_only():
    data = load_two_coins(n_sets=4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        data.heads = np.zeros(4)
    with pytest.raises(ValueError, match="read-only"):
        data.heads[0] = 1
    with pytest.raises(ValueError, match="read-only"):
        data.coin[0] = 1


def test_textbook_heads_are_the_published_five_sets():
    assert TEXTBOOK_HEADS == (5, 9, 8, 4, 7)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_sets": 0}, "n_sets must be at least 1, got 0"),
        ({"n_flips": 0}, "n_flips must be at least 1, got 0"),
        ({"n_sets": 2.0}, r"n_sets must be an integer, got 2.0 \(float\)"),
        ({"biases": (0.5,)}, "biases must hold exactly 2 numbers"),
        ({"biases": (1.2, 0.5)}, r"biases must lie in \[0, 1\]; coin A's is 1.2"),
        ({"biases": (0.5, float("nan"))}, "biases must be finite"),
        ({"biases": "ab"}, "biases must be a pair of numbers"),
        ({"biases": 0.5}, "biases must be a pair of numbers"),
        ({"weights": (0.7, 0.7)}, "weights must sum to 1"),
        ({"weights": (1.5, -0.5)}, "weights must be non-negative"),
        ({"random_state": "x"}, "random_state must be None"),
    ],
)
def test_bad_arguments_raise_naming_the_problem(kwargs, message):
    with pytest.raises(InputError, match=message):
        load_two_coins(**kwargs)
