"""Tests of emix.datasets.load_casino (the dishonest casino)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from emix.datasets import CasinoData, load_casino
from emix.datasets import casino as C
from emix.exceptions import InputError


def test_default_sample_shapes_dtypes_and_truth():
    data = load_casino()
    assert isinstance(data, CasinoData)
    assert data.rolls.shape == (300,) and data.rolls.dtype == np.int64
    assert data.dice.shape == (300,) and data.dice.dtype == np.int64
    assert data.n_rolls == 300
    assert set(np.unique(data.rolls)) <= set(range(1, 7))
    assert set(np.unique(data.dice)) <= {0, 1}
    np.testing.assert_array_equal(data.codes, data.rolls - 1)
    t = data.truth
    np.testing.assert_array_equal(t.transmat, [[0.95, 0.05], [0.1, 0.9]])
    np.testing.assert_allclose(t.emissionprob[0], np.full(6, 1 / 6))
    np.testing.assert_array_equal(t.emissionprob[1], [0.1] * 5 + [0.5])
    np.testing.assert_array_equal(t.startprob, C.START_PROBS)
    assert C.DIE_NAMES == ("fair", "loaded")


def test_same_seed_same_data_and_generator_is_advanced():
    a, b = load_casino(random_state=3), load_casino(random_state=3)
    np.testing.assert_array_equal(a.rolls, b.rolls)
    np.testing.assert_array_equal(a.dice, b.dice)
    rng = np.random.default_rng(1)
    assert not np.array_equal(load_casino(100, rng).rolls, load_casino(100, rng).rolls)


def test_long_sample_follows_the_generating_chain_and_dice():
    n = 60_000
    data = load_casino(n, random_state=5)
    d, r = data.dice, data.rolls
    # Switch frequencies: fair -> loaded and loaded -> fair, within 5 standard errors.
    for i, p in ((0, C.SWITCH_TO_LOADED), (1, C.SWITCH_TO_FAIR)):
        out = d[:-1] == i
        share = np.mean(d[1:][out] != i)
        assert abs(share - p) < 5 * np.sqrt(p * (1 - p) / out.sum())
    # The stationary share of the loaded die is 0.05 / (0.05 + 0.1) = 1/3.
    assert abs(d.mean() - 1 / 3) < 0.03
    for k, probs in ((0, C.FAIR_PROBS), (1, C.LOADED_PROBS)):
        faces = np.bincount(r[d == k], minlength=7)[1:] / np.sum(d == k)
        se = np.sqrt(np.asarray(probs) * (1 - np.asarray(probs)) / np.sum(d == k))
        assert np.all(np.abs(faces - probs) < 5 * se), (k, faces)


def test_options_change_the_dice_and_the_switching():
    data = load_casino(200, switch_to_loaded=0.0, start_probs=(1.0, 0.0))
    assert np.all(data.dice == 0)
    data = load_casino(200, loaded_probs=[0, 0, 0, 0, 0, 1], switch_to_fair=0.0,
                       start_probs=(0.0, 1.0))
    assert np.all(data.dice == 1) and np.all(data.rolls == 6)


def test_result_is_frozen_and_read_only():
    data = load_casino(5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        data.rolls = np.zeros(5)
    for a in (data.rolls, data.dice, data.truth.transmat):
        with pytest.raises(ValueError, match="read-only"):
            a[0] = 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(n_rolls=0), "n_rolls must be at least 1"),
        (dict(n_rolls=2.5), "n_rolls must be an integer"),
        (dict(loaded_probs=[0.5, 0.5]), "loaded_probs must hold 6"),
        (dict(fair_probs=[0.2] * 6), "fair_probs must sum to 1"),
        (dict(switch_to_fair=1.5), r"switch_to_fair must lie in \[0, 1\]"),
        (dict(switch_to_loaded=float("nan")), "switch_to_loaded must lie"),
        (dict(start_probs=(0.5, "a")), "start_probs must be a number"),
        (dict(random_state=-1), "random_state must be non-negative"),
    ],
)
def test_errors_name_the_problem(kwargs, message):
    with pytest.raises(InputError, match=message):
        load_casino(**kwargs)
