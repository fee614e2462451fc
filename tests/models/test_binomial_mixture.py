"""BinomialMixture: brute force on tiny problems, EM's guarantees, recovery, errors."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats as sps

from emix.datasets import load_two_coins
from emix.exceptions import ConvergenceWarning, InputError, NotFittedError
from emix.models.binomial import BinomialMixture


def _brute_force(heads, trials, weights, probs):
    """Exact marginal likelihood and posteriors by enumerating every labelling."""
    N, K = len(heads), len(weights)
    total = 0.0
    post = np.zeros((N, K))
    for z in itertools.product(range(K), repeat=N):
        joint = math.prod(
            weights[k] * sps.binom.pmf(heads[i], trials[i], probs[k]) for i, k in enumerate(z)
        )
        total += joint
        for i, k in enumerate(z):
            post[i, k] += joint
    return math.log(total), post / total


def test_likelihood_and_posteriors_match_enumeration_of_all_labellings():
    heads, trials = np.array([2, 9, 5, 7]), np.array([10, 10, 8, 12])
    bm = BinomialMixture(3, random_state=0, n_init=2).fit(np.c_[heads, trials])
    loglik, post = _brute_force(heads, trials, bm.weights_, bm.probs_)
    X = np.c_[heads, trials]
    assert bm.score(X) * len(heads) == pytest.approx(loglik, rel=1e-12)
    np.testing.assert_allclose(bm.predict_proba(X), post, rtol=1e-10, atol=1e-14)
    np.testing.assert_array_equal(bm.predict(X), post.argmax(axis=1))


def test_fit_reaches_a_stationary_point_of_the_exact_likelihood():
    heads, trials = np.array([1, 9, 8, 2, 10]), np.full(5, 10)
    bm = BinomialMixture(2, n_trials=10, tol=1e-12, max_iter=2000, random_state=1).fit(heads)
    w, p = bm.weights_, bm.probs_

    def loglik(w0, p0, p1):
        return _brute_force(heads, trials, [w0, 1 - w0], [p0, p1])[0]

    base = loglik(w[0], p[0], p[1])
    for dw, dp0, dp1 in [(1e-4, 0, 0), (-1e-4, 0, 0), (0, 1e-4, 0), (0, -1e-4, 0),
                         (0, 0, 1e-4), (0, 0, -1e-4)]:
        assert loglik(w[0] + dw, p[0] + dp0, p[1] + dp1) <= base + 1e-9


@st.composite
def _counts(draw):
    N = draw(st.integers(3, 25))
    trials = np.array(draw(st.lists(st.integers(1, 20), min_size=N, max_size=N)))
    frac = np.array(draw(st.lists(st.floats(0, 1), min_size=N, max_size=N)))
    return np.floor(frac * trials).astype(int), trials, draw(st.integers(1, 3)), draw(
        st.integers(0, 2**16))


@given(_counts())
def test_log_likelihood_never_decreases(case):
    heads, trials, K, seed = case
    K = min(K, len(heads))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        bm = BinomialMixture(K, n_trials=trials, n_init=1, tol=0, max_iter=30,
                             random_state=seed, init_params="random").fit(heads)
    diffs = np.diff(bm.lower_bounds_)
    assert np.all(diffs >= -1e-12 * np.abs(bm.lower_bounds_[1:]).clip(1))


def test_integer_weights_equal_repeated_rows():
    rng = np.random.default_rng(3)
    heads = rng.integers(0, 11, 30)
    reps = rng.integers(0, 4, 30)
    reps[0] = 1
    kw = {"n_trials": 10, "weights_init": [0.5, 0.5], "probs_init": [0.7, 0.3], "n_init": 1,
          "tol": 1e-10, "max_iter": 500}
    a = BinomialMixture(2, **kw).fit(heads, sample_weight=reps)
    b = BinomialMixture(2, **kw).fit(np.repeat(heads, reps))
    np.testing.assert_allclose(a.weights_, b.weights_, rtol=1e-10)
    np.testing.assert_allclose(a.probs_, b.probs_, rtol=1e-10)
    np.testing.assert_allclose(a.lower_bounds_, b.lower_bounds_, rtol=1e-12)
    assert a.n_iter_ == b.n_iter_


def test_recovers_the_two_coins_within_sampling_error():
    data = load_two_coins(n_sets=3000, random_state=11)
    bm = BinomialMixture(2, n_trials=data.n_flips, random_state=0).fit(data.heads)
    assert bm.converged_
    order = np.argsort(bm.probs_)[::-1]  # coin A is the one of higher bias
    for c, k in enumerate(order):
        p, w = data.truth.biases[c], data.truth.weights[c]
        flips = w * data.n_sets * data.n_flips
        # 4 standard errors of a labels-known estimate, doubled for the hidden labels.
        assert abs(bm.probs_[k] - p) < 8 * math.sqrt(p * (1 - p) / flips)
        assert abs(bm.weights_[k] - w) < 8 * math.sqrt(w * (1 - w) / data.n_sets)


def test_two_column_input_and_per_row_trials_agree_with_a_scalar():
    data = load_two_coins(n_sets=200, random_state=2)
    kw = {"weights_init": [0.5, 0.5], "probs_init": [0.6, 0.5], "n_init": 1}
    a = BinomialMixture(2, n_trials=10, **kw).fit(data.heads)
    b = BinomialMixture(2, **kw).fit(np.c_[data.heads, np.full(200, 10)])
    c = BinomialMixture(2, n_trials=np.full(200, 10), **kw).fit(data.heads.reshape(-1, 1))
    d = BinomialMixture(2, **kw).fit(data.heads, n_trials=10)
    for other in (b, c, d):
        np.testing.assert_allclose(other.probs_, a.probs_, rtol=1e-12)
    assert a.n_features_in_ == 1 and b.n_features_in_ == 2
    np.testing.assert_allclose(b.predict_proba(np.c_[data.heads, np.full(200, 10)]),
                               a.predict_proba(data.heads))
    # A model fitted with ten flips per set scores sets of other sizes when told so.
    s = a.score_samples([3, 30], n_trials=[5, 40])
    expected = np.log(sum(w * sps.binom.pmf([3, 30], [5, 40], p)
                          for w, p in zip(a.weights_, a.probs_)))
    np.testing.assert_allclose(s, expected, rtol=1e-12)


def test_estimator_api():
    data = load_two_coins(n_sets=100, random_state=5)
    bm = BinomialMixture(2, n_trials=10, random_state=0)
    with pytest.raises(NotFittedError, match="not fitted yet"):
        bm.predict(data.heads)
    labels = bm.fit_predict(data.heads)
    assert labels.shape == (100,) and set(labels) <= {0, 1}
    assert bm.weights_.shape == (2,) and bm.probs_.shape == (2,)
    assert bm.weights_.sum() == pytest.approx(1.0)
    assert bm.lower_bounds_.shape == (bm.n_iter_,)
    assert bm.lower_bound_ == bm.lower_bounds_[-1]
    proba = bm.predict_proba(data.heads)
    assert proba.shape == (100, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    ll = bm.score_samples(data.heads).sum()
    assert bm.score(data.heads) == pytest.approx(ll / 100)
    assert bm.bic(data.heads) == pytest.approx(-2 * ll + 3 * math.log(100))
    assert bm.aic(data.heads) == pytest.approx(-2 * ll + 6)
    heads, comp = bm.sample(50)
    assert heads.shape == (50,) and comp.shape == (50,) and heads.max() <= 10
    assert bm.get_params()["n_trials"] == 10
    assert "n_components" not in repr(bm) and "n_trials=10" in repr(bm)
    assert bm.set_params(n_components=3).n_components == 3
    assert bm.params_.probs.shape == (2,)


def test_fixed_start_is_deterministic_and_callback_sees_each_iteration():
    seen = []
    kw = {"n_trials": 10, "weights_init": [0.5, 0.5], "probs_init": [0.6, 0.5]}
    bm = BinomialMixture(2, callback=lambda it, ll, p: seen.append((it, ll, p)), **kw)
    bm.fit([5, 9, 8, 4, 7])
    again = BinomialMixture(2, n_init=3, **kw).fit([5, 9, 8, 4, 7])
    np.testing.assert_array_equal(bm.probs_, again.probs_)
    its = [it for it, _, _ in seen[-bm.n_iter_:]]
    assert its == list(range(1, bm.n_iter_ + 1))
    np.testing.assert_allclose([ll for _, ll, _ in seen[-bm.n_iter_:]], bm.lower_bounds_)
    np.testing.assert_allclose(seen[0][2].probs, [0.6, 0.5])


def test_callback_returning_true_stops_without_a_warning():
    bm = BinomialMixture(2, n_trials=10, n_init=1, random_state=0,
                         callback=lambda it, ll, p: it >= 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bm.fit([1, 2, 8, 9, 5])
    assert bm.n_iter_ == 2 and not bm.converged_


def test_warns_when_max_iter_is_reached():
    with pytest.warns(ConvergenceWarning, match="max_iter=2"):
        BinomialMixture(2, n_trials=10, max_iter=2, tol=0, random_state=0).fit([1, 2, 8, 9, 5])


def test_all_heads_rows_give_a_probability_of_one():
    bm = BinomialMixture(2, n_trials=10, random_state=0).fit([10, 10, 10, 0, 0, 0])
    assert sorted(bm.probs_.tolist()) == pytest.approx([0.0, 1.0])
    assert np.isfinite(bm.score([10, 0]))


@pytest.mark.parametrize(
    ("X", "kwargs", "message"),
    [
        ([3, -1, 2, -4], {"n_trials": 10}, r"non-negative counts; negative at rows 1, 3"),
        ([3, 2.5, 2], {"n_trials": 10},
         r"whole numbers \(counts\); not at rows 1 \(row 1 has 2.5\)"),
        ([3, 12, 2], {"n_trials": 10},
         r"heads exceed the number of trials at rows 1 \(row 1 has 12 heads in 10 trials\)"),
        ([3, 5, 2], {"n_trials": [10, 4, 10]}, "heads exceed the number of trials at rows 1"),
        ([3, 5, 2], {"n_trials": [10, 10]}, "n_trials has 2 entries but X has 3 rows"),
        ([3, 5, 2], {"n_trials": 9.5}, "n_trials must be a non-negative integer; got 9.5"),
        ([3, 5, 2], {"n_trials": -1}, "n_trials must be a non-negative integer"),
        ([3, 5, 2], {}, "n_trials is not set"),
        ([[3, 10, 1]], {}, "X has 3 column"),
        ([[3, 10], [2, 10]], {"n_trials": 10}, "with n_trials given X must be one column"),
        ([3, np.nan, 2], {"n_trials": 10}, "NaN"),
        ([3], {"n_trials": 10}, "need at least as many rows as components"),
        ([0, 0, 0], {"n_trials": 0}, "every row has 0 trials"),
    ],
)
def test_bad_input_is_named(X, kwargs, message):
    with pytest.raises(InputError, match=message):
        BinomialMixture(2, **kwargs).fit(X)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_components": 0}, "n_components must be >= 1"),
        ({"init_params": "kmeans"}, "init_params must be one of"),
        ({"probs_init": [0.5, 1.5]}, r"probs_init must lie in \[0, 1\]"),
        ({"probs_init": [0.5]}, r"probs_init must have shape \(2,\)"),
        ({"weights_init": [0.5, 0.6]}, "weights_init must sum to 1"),
        ({"callback": 3}, "callback must be callable"),
    ],
)
def test_bad_parameters_are_named(kwargs, message):
    with pytest.raises(InputError, match=message):
        BinomialMixture(**{"n_components": 2, "n_trials": 10, **kwargs}).fit([1, 5, 9])


def test_prediction_checks_its_input():
    bm = BinomialMixture(2, n_trials=10, random_state=0).fit([1, 2, 8, 9])
    with pytest.raises(InputError, match="heads exceed the number of trials"):
        bm.predict([11])
    with pytest.raises(InputError, match="expecting 1 features"):
        bm.predict([[1, 10]])
    per_row = BinomialMixture(2, random_state=0).fit([1, 2, 8, 9], n_trials=[10, 10, 9, 9])
    with pytest.raises(InputError, match="n_trials is needed"):
        per_row.predict([1])
    assert per_row.predict([1], n_trials=10).shape == (1,)
    # One number given to fit is remembered for new rows.
    once = BinomialMixture(2, random_state=0).fit([1, 2, 8, 9], n_trials=10)
    assert once.n_trials_ == 10
    np.testing.assert_allclose(once.predict_proba([3]), once.predict_proba([3], n_trials=10))
    two = BinomialMixture(2, random_state=0).fit([[1, 10], [2, 10], [8, 10], [9, 10]])
    with pytest.raises(InputError, match="do not pass n_trials as well"):
        two.predict([[1, 10]], n_trials=10)
