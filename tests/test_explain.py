"""emix.explain: the teaching trace is EM as emix computes it, shown step by step."""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest

from emix import GaussianMixture
from emix.datasets import load_heights, load_two_coins
from emix.datasets.coins import TEXTBOOK_HEADS
from emix.exceptions import InputError
from emix.explain import Trace, explain, trace_binomial, trace_gaussian_1d
from emix.families import binomial as B
from emix.models.binomial import BinomialMixture


@pytest.fixture(scope="module")
def coins() -> Trace:
    return explain("coins")


@pytest.fixture(scope="module")
def heights() -> Trace:
    return explain("heights")


def _non_decreasing(logliks, rtol=1e-12):
    drops = -np.diff(logliks)
    return bool(np.all(drops <= rtol * np.abs(logliks[1:]).clip(1)))


def test_textbook_first_iteration_gives_the_published_biases():
    # Do & Batzoglou (2008): from 0.6 and 0.5, one iteration gives 0.71 and 0.58.
    trace = trace_binomial(TEXTBOOK_HEADS, 10, n_iter=1)
    np.testing.assert_allclose(trace.initial["bias"], [0.6, 0.5])
    np.testing.assert_allclose(trace.records[0].after["bias"].round(2), [0.71, 0.58])


def test_coins_trace_log_likelihood_never_decreases(coins):
    assert coins.kind == "binomial" and coins.converged
    assert coins.logliks.shape == (coins.n_iter + 1,)
    assert _non_decreasing(coins.logliks)
    assert np.all(coins.increases >= -1e-12)
    assert coins.logliks[-1] > coins.logliks[0]


def test_heights_trace_log_likelihood_never_decreases(heights):
    assert heights.kind == "gaussian" and heights.n == 200
    # reg_covar=1e-6 makes each M-step very slightly inexact; far below this tolerance.
    assert _non_decreasing(heights.logliks, rtol=1e-9)
    assert heights.logliks[-1] > heights.logliks[0]


def test_records_chain_and_match_the_fitted_model(coins, heights):
    for trace in (coins, heights):
        for a, b in zip(trace.records, trace.records[1:]):
            assert b.iteration == a.iteration + 1
            assert b.loglik == pytest.approx(a.loglik_after, rel=1e-12)
            for name in trace.parameter_names:
                np.testing.assert_array_equal(a.after[name], b.before[name])
        model = trace.model
        assert trace.n_iter == model.n_iter_
        np.testing.assert_allclose(trace.logliks[:-1] / trace.n, model.lower_bounds_,
                                   rtol=1e-12)
        np.testing.assert_allclose(trace.final["weight"], model.weights_, rtol=1e-12)
    np.testing.assert_allclose(coins.final["bias"], coins.model.probs_, rtol=1e-12)
    np.testing.assert_allclose(heights.final["mean"], heights.model.means_[:, 0], rtol=1e-12)
    np.testing.assert_allclose(heights.final["sd"] ** 2, heights.model.covariances_, rtol=1e-12)


def test_heights_trace_equals_an_ordinary_fit_from_the_same_start(heights):
    x = load_heights().heights
    start = heights.initial
    np.testing.assert_allclose(start["mean"], np.quantile(x, [0.25, 0.75]))
    np.testing.assert_allclose(start["sd"], [x.std()] * 2)
    gm = GaussianMixture(2, covariance_type="spherical", tol=1e-4, max_iter=1000,
                         weights_init=start["weight"], means_init=start["mean"][:, None],
                         precisions_init=start["sd"] ** -2.0).fit(x)
    np.testing.assert_allclose(heights.final["mean"], gm.means_[:, 0], rtol=1e-12)
    np.testing.assert_allclose(heights.final["sd"] ** 2, gm.covariances_, rtol=1e-12)
    np.testing.assert_allclose(heights.final["weight"], gm.weights_, rtol=1e-12)
    # The responsibilities shown are the estimator's own for those rows and parameters.
    gm0 = GaussianMixture(2, covariance_type="spherical", max_iter=0,
                          weights_init=start["weight"], means_init=start["mean"][:, None],
                          precisions_init=start["sd"] ** -2.0).fit(x)
    first = heights.records[0]
    np.testing.assert_allclose(first.values, x[first.rows])
    np.testing.assert_allclose(first.responsibilities, gm0.predict_proba(x[first.rows]),
                               rtol=1e-10)
    assert first.loglik == pytest.approx(gm0.score(x) * 200, rel=1e-12)


def test_coins_trace_equals_an_ordinary_fit_and_shows_its_statistics(coins):
    data = load_two_coins(n_sets=20, random_state=0)
    bm = BinomialMixture(2, n_trials=10, n_init=1, weights_init=[0.5, 0.5],
                         probs_init=[0.6, 0.5]).fit(data.heads)
    np.testing.assert_allclose(coins.final["bias"], bm.probs_, rtol=1e-12)
    np.testing.assert_allclose(coins.final["weight"], bm.weights_, rtol=1e-12)
    for rec in coins.records:
        s = rec.statistics
        # The M-step's output is exactly heads / flips credited, from the E-step's sums.
        np.testing.assert_allclose(rec.after["bias"], s["heads"] / s["trials"], rtol=1e-12)
        np.testing.assert_allclose(rec.after["weight"], s["count"] / 20, rtol=1e-12)
        params = B.BinomialMixtureParams(rec.before["weight"], rec.before["bias"])
        expected = B.responsibilities(
            B.log_joint(data.heads[rec.rows], np.full(len(rec.rows), 10), params))[0]
        np.testing.assert_allclose(rec.responsibilities, expected)


def test_coins_example_recovers_both_biases_on_a_larger_set():
    n_sets = 2000
    trace = explain("coins", n_sets=n_sets, random_state=3)
    assert trace.converged and _non_decreasing(trace.logliks)
    for k, (p, w) in enumerate(zip((0.8, 0.45), (0.5, 0.5))):
        se = math.sqrt(p * (1 - p) / (w * n_sets * 10))
        assert abs(trace.final["bias"][k] - p) < 8 * se  # A starts higher and stays so


def test_n_iter_stops_exactly_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trace = explain("heights", n_iter=2, n_rows=4)
    assert trace.n_iter == 2 and not trace.converged
    assert [r.iteration for r in trace.records] == [1, 2]
    assert trace.records[0].responsibilities.shape == (4, 2)
    np.testing.assert_allclose(trace.records[0].responsibilities.sum(axis=1), 1.0)
    assert trace.path("mean").shape == (3, 2)
    assert "stopped after the 2 iterations asked for" in trace.to_text()


def test_text_has_aligned_tables_and_plain_explanations(coins):
    text = str(coins)
    assert text == coins.to_text()
    for phrase in ("E-step", "M-step", "Starting guess", "Iteration 1", "log-likelihood",
                   "responsibilit", "never fell", "P(heads) EM / true"):
        assert phrase in text
    # Detailed iterations, then one line each.
    assert "Iteration 5\n" in text and "Iteration 6\n" not in text
    assert re.search(r"^    6 +-\d+\.\d{3}", text, flags=re.MULTILINE)
    # Every table's rows are as long as its rule (numbers right-aligned under headings).
    block = text.split("Iteration 1\n")[1].split("Iteration 2\n")[0]
    lines = block.splitlines()
    rules = [i for i, line in enumerate(lines)
             if line.startswith("    -") and set(line.strip()) == {"-"}]
    assert len(rules) >= 2
    for i in rules:
        width = len(lines[i])
        table = [lines[i + 1 + j] for j in range(2)]  # first two data rows
        assert all(len(row) == width for row in table), (lines[i], table)
    full = coins.to_text(detailed=None)
    assert f"Iteration {coins.n_iter}\n" in full and "one line each" not in full


def test_given_rows_and_names_are_used():
    x = np.r_[np.linspace(0.5, 1.5, 10), np.linspace(4.5, 5.5, 10)]
    trace = trace_gaussian_1d(x, rows=[0, 10], n_iter=1,
                              component_names=("low", "high"), means_init=[0.0, 6.0],
                              sds_init=[1.0, 1.0])
    rec = trace.records[0]
    np.testing.assert_array_equal(rec.rows, [0, 10])
    np.testing.assert_allclose(rec.values, [0.5, 4.5])
    assert rec.responsibilities[0, 0] > 0.99 and rec.responsibilities[1, 1] > 0.99
    assert "P(low)" in trace.to_text()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: explain("dice"), "unknown example 'dice'; choose one of heights, coins"),
        (lambda: explain("coins", n_iter=0), "n_iter must be >= 1"),
        (lambda: explain("heights", n_rows=-1), "n_rows must be >= 0"),
        (lambda: trace_gaussian_1d([1.0, 2.0, 3.0], rows=[5]), "rows holds 5, outside 0..2"),
        (lambda: trace_gaussian_1d([1.0, 2.0, 3.0], means_init=[1.0]), r"shape \(2,\)"),
        (lambda: trace_gaussian_1d([1.0, 2.0, 3.0], sds_init=[1.0, 0.0]), "must be positive"),
        (lambda: trace_binomial([3, 11], 10), "heads exceed the number of trials"),
        (lambda: explain("coins").path("mean"), "unknown parameter 'mean'"),
    ],
)
def test_errors_name_the_problem(call, message):
    with pytest.raises(InputError, match=message):
        call()
