"""Tests of emix.datasets.load_heights."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import stats

from emix.datasets import HeightsData, HeightsTruth, load_heights
from emix.exceptions import InputError


def test_default_sample_has_documented_shape_dtype_and_truth():
    data = load_heights()
    assert isinstance(data, HeightsData)
    assert data.heights.shape == (200,) and data.heights.dtype == np.float64
    assert data.is_boy.shape == (200,) and data.is_boy.dtype == np.bool_
    assert data.n == 200
    assert int(data.is_boy.sum()) == 100
    assert data.truth == HeightsTruth(
        boys_mean=176.0,
        boys_sd=7.0,
        girls_mean=163.0,
        girls_sd=6.5,
        boys_weight=0.5,
        girls_weight=0.5,
    )


def test_true_weights_are_the_group_shares():
    data = load_heights(n_boys=30, n_girls=90, random_state=1)
    assert data.truth.boys_weight == pytest.approx(0.25)
    assert data.truth.girls_weight == pytest.approx(0.75)
    assert int(data.is_boy.sum()) == 30 and int((~data.is_boy).sum()) == 90


def test_same_seed_same_data_and_different_seed_different_data():
    a = load_heights(random_state=3)
    b = load_heights(random_state=3)
    c = load_heights(random_state=4)
    np.testing.assert_array_equal(a.heights, b.heights)
    np.testing.assert_array_equal(a.is_boy, b.is_boy)
    assert not np.array_equal(a.heights, c.heights)


def test_generator_is_used_and_advanced():
    rng = np.random.default_rng(5)
    first = load_heights(random_state=rng)
    second = load_heights(random_state=rng)
    assert not np.array_equal(first.heights, second.heights)
    again = load_heights(random_state=np.random.default_rng(5))
    np.testing.assert_array_equal(first.heights, again.heights)


def test_none_seed_gives_fresh_data():
    assert load_heights(random_state=None).heights.shape == (200,)


def test_rows_are_shuffled_so_order_reveals_nothing():
    data = load_heights()
    # Sorted labels would leak the groups through the row order.
    assert not np.array_equal(data.is_boy, np.sort(data.is_boy)[::-1])
    assert not np.array_equal(data.is_boy, np.sort(data.is_boy))
    # Boys should appear throughout, not in one block: both halves hold plenty of each.
    assert 25 < int(data.is_boy[:100].sum()) < 75


def test_each_group_follows_its_generating_normal():
    n = 20_000
    data = load_heights(n_boys=n, n_girls=n, random_state=6)
    t = data.truth
    for mask, mean, sd in (
        (data.is_boy, t.boys_mean, t.boys_sd),
        (~data.is_boy, t.girls_mean, t.girls_sd),
    ):
        group = data.heights[mask]
        # Sampling error of the mean is sd/sqrt(n); 5 of them is a generous margin.
        assert abs(group.mean() - mean) < 5 * sd / np.sqrt(n)
        assert abs(group.std() - sd) < 5 * sd / np.sqrt(2 * n)
        assert stats.kstest(group, stats.norm(mean, sd).cdf).pvalue > 1e-4


def test_boys_are_taller_on_average():
    data = load_heights(random_state=0)
    assert data.heights[data.is_boy].mean() > data.heights[~data.is_boy].mean()


def test_one_group_may_be_empty():
    data = load_heights(n_boys=0, n_girls=10)
    assert data.n == 10 and not data.is_boy.any()
    assert data.truth.boys_weight == 0.0 and data.truth.girls_weight == 1.0


def test_result_is_frozen_and_arrays_are_read_only():
    data = load_heights(n_boys=5, n_girls=5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        data.heights = np.zeros(10)
    with pytest.raises(dataclasses.FrozenInstanceError):
        data.truth.boys_mean = 0.0
    with pytest.raises(ValueError, match="read-only"):
        data.heights[0] = 0.0
    with pytest.raises(ValueError, match="read-only"):
        data.is_boy[0] = True


def test_numpy_integer_counts_are_accepted():
    data = load_heights(n_boys=np.int64(4), n_girls=np.int32(6), random_state=np.int64(2))
    assert data.n == 10


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_boys": -1}, "n_boys must be at least 0, got -1"),
        ({"n_girls": -5}, "n_girls must be at least 0, got -5"),
        ({"n_boys": 10.0}, r"n_boys must be an integer, got 10.0 \(float\)"),
        ({"n_girls": "100"}, r"n_girls must be an integer, got '100' \(str\)"),
        ({"n_boys": True}, r"n_boys must be an integer, got True \(bool\)"),
        ({"n_boys": 0, "n_girls": 0}, "both 0: the sample would be empty"),
        ({"random_state": "seed"}, "random_state must be None, a non-negative integer"),
        ({"random_state": 1.5}, "random_state must be None, a non-negative integer"),
        ({"random_state": -1}, "random_state must be non-negative, got -1"),
    ],
)
def test_bad_arguments_raise_naming_the_problem(kwargs, message):
    with pytest.raises(InputError, match=message):
        load_heights(**kwargs)


def test_means_and_sds_are_parameters_and_recorded_in_the_truth():
    data = load_heights(
        n_boys=50, n_girls=50, random_state=7,
        boys_mean=180.0, boys_sd=5.0, girls_mean=160.0, girls_sd=4.0,
    )
    assert data.truth == HeightsTruth(
        boys_mean=180.0, boys_sd=5.0, girls_mean=160.0, girls_sd=4.0,
        boys_weight=0.5, girls_weight=0.5,
    )


def test_same_seed_other_parameters_gives_the_same_draws_shifted_and_scaled():
    base = load_heights(random_state=8)
    moved = load_heights(random_state=8, boys_mean=186.0, boys_sd=14.0, girls_mean=150.0,
                         girls_sd=3.25)
    np.testing.assert_array_equal(base.is_boy, moved.is_boy)
    b = base.is_boy
    np.testing.assert_allclose(moved.heights[b], 186.0 + (base.heights[b] - 176.0) * 2.0)
    np.testing.assert_allclose(moved.heights[~b], 150.0 + (base.heights[~b] - 163.0) * 0.5)


def test_default_parameters_keep_the_seeded_data():
    np.testing.assert_array_equal(
        load_heights(random_state=0).heights,
        load_heights(random_state=0, boys_mean=176.0, boys_sd=7.0, girls_mean=163.0,
                     girls_sd=6.5).heights,
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"boys_sd": 0.0}, "boys_sd must be positive, got 0.0"),
        ({"girls_sd": -1}, "girls_sd must be positive"),
        ({"boys_mean": float("inf")}, "boys_mean must be finite"),
        ({"girls_mean": "160"}, r"girls_mean must be a number, got '160' \(str\)"),
        ({"boys_sd": True}, "boys_sd must be a number"),
    ],
)
def test_bad_means_and_sds(kwargs, message):
    with pytest.raises(InputError, match=message):
        load_heights(**kwargs)
