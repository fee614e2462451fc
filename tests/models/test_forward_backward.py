"""The compiled HMM recursions against brute-force enumeration of every state path."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emix.exceptions import InputError
from emix.models import forward_backward as FB


def enumerate_paths(log_B, pi, A):
    """log p(x), smoothed posteriors, expected transitions, best path and its log p."""
    T, K = log_B.shape
    with np.errstate(divide="ignore"):
        lpi, lA = np.log(pi), np.log(A)
    paths = list(itertools.product(range(K), repeat=T))
    lp = np.array(
        [lpi[p[0]] + log_B[0, p[0]] + sum(lA[p[t - 1], p[t]] + log_B[t, p[t]] for t in range(1, T))
         for p in paths]
    )
    ll = np.logaddexp.reduce(lp)
    post = np.zeros((T, K))
    xi = np.zeros((K, K))
    start = np.zeros(K)
    if np.isfinite(ll):
        w = np.exp(lp - ll)
        for p, wi in zip(paths, w):
            start[p[0]] += wi
            for t in range(T):
                post[t, p[t]] += wi
            for t in range(1, T):
                xi[p[t - 1], p[t]] += wi
    best = int(np.argmax(lp))
    return ll, post, xi, start, np.array(paths[best]), lp[best]


def problem(seed, T, K, zeros=False):
    rng = np.random.default_rng(seed)
    log_B = rng.normal(scale=3.0, size=(T, K))
    pi = rng.dirichlet(np.ones(K))
    A = rng.dirichlet(np.ones(K), size=K)
    if zeros and K > 1:
        A = np.triu(A)  # left-right: structural zeros below the diagonal
        A /= A.sum(axis=1, keepdims=True)
    return log_B, pi, A


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10**6), T=st.integers(1, 6), K=st.integers(1, 3), zeros=st.booleans())
def test_recursions_equal_enumeration_of_all_paths(seed, T, K, zeros):
    log_B, pi, A = problem(seed, T, K, zeros)
    ll, post, xi, start, path, lp = enumerate_paths(log_B, pi, A)
    fb = FB.forward_backward(log_B, pi, A)
    np.testing.assert_allclose(fb.loglik[0], ll, rtol=1e-12)
    np.testing.assert_allclose(fb.posteriors, post, atol=1e-12)
    np.testing.assert_allclose(fb.transitions, xi, atol=1e-12)
    np.testing.assert_allclose(fb.start, start, atol=1e-12)
    fw = FB.forward(log_B, pi, A)
    np.testing.assert_allclose(fw.step_loglik.sum(), ll, rtol=1e-12)
    for t in range(T):
        # Filtered at t is the smoothed posterior of the prefix x_1..x_t.
        np.testing.assert_allclose(fw.filtered[t], enumerate_paths(log_B[: t + 1], pi, A)[1][t],
                                   atol=1e-12)
    vlp, vpath = FB.viterbi(log_B, pi, A)
    np.testing.assert_allclose(vlp[0], lp, rtol=1e-12)
    # Ties between paths are measure-zero for continuous random log-emissions.
    np.testing.assert_array_equal(vpath, path)


def test_filtering_is_causal():
    log_B, pi, A = problem(3, 40, 3)
    a = FB.forward(log_B, pi, A).filtered
    changed = log_B.copy()
    changed[25:] = np.random.default_rng(9).normal(scale=5.0, size=(15, 3))
    b = FB.forward(changed, pi, A).filtered
    c = FB.forward(log_B[:25], pi, A).filtered
    np.testing.assert_array_equal(a[:25], b[:25])
    np.testing.assert_array_equal(a[:25], c)


def test_sequences_are_independent_and_statistics_add():
    log_B, pi, A = problem(5, 30, 3)
    lengths = [7, 13, 10]
    whole = FB.forward_backward(log_B, pi, A, lengths)
    parts = [FB.forward_backward(log_B[a:b], pi, A) for a, b in ((0, 7), (7, 20), (20, 30))]
    np.testing.assert_allclose(whole.loglik, [p.loglik[0] for p in parts], rtol=1e-13)
    np.testing.assert_allclose(whole.posteriors, np.vstack([p.posteriors for p in parts]), atol=1e-14)
    np.testing.assert_allclose(whole.transitions, sum(p.transitions for p in parts), rtol=1e-12)
    np.testing.assert_allclose(whole.start, sum(p.start for p in parts), rtol=1e-12)
    _, path = FB.viterbi(log_B, pi, A, lengths)
    np.testing.assert_array_equal(path[7:20], FB.viterbi(log_B[7:20], pi, A)[1])


def test_long_sequences_do_not_underflow():
    # 10^5 steps of log-densities near -50: the unscaled forward variable would be
    # exp(-5e6); the scaled one stays normalised.
    log_B, pi, A = problem(1, 100_000, 4)
    log_B = log_B - 50.0
    fb = FB.forward_backward(log_B, pi, A)
    assert np.isfinite(fb.loglik).all()
    np.testing.assert_allclose(fb.posteriors.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(fb.transitions.sum(), 100_000 - 1, rtol=1e-10)
    fw = FB.forward(log_B, pi, A)
    np.testing.assert_allclose(fw.loglik, fb.loglik, rtol=1e-13)


def test_impossible_row_gives_minus_inf_and_no_nan():
    log_B, pi, A = problem(2, 6, 2)
    log_B[3] = -np.inf
    fb = FB.forward_backward(log_B, pi, A)
    assert fb.loglik[0] == -np.inf
    assert not np.isnan(fb.posteriors).any() and not np.isnan(fb.transitions).any()
    assert FB.forward(log_B, pi, A).loglik[0] == -np.inf


def test_structural_zeros_get_no_expected_transitions():
    log_B, pi, A = problem(4, 50, 3, zeros=True)
    fb = FB.forward_backward(log_B, pi, A)
    assert np.all(fb.transitions[np.tril_indices(3, -1)] == 0.0)


@pytest.mark.parametrize(
    "lengths, match",
    [([3, 3], "sum to 6 but X has 7"), ([7, 0], "positive"), ([[7]], "1-D"), ([3.5, 3.5], "whole")],
)
def test_bad_lengths_are_named(lengths, match):
    log_B, pi, A = problem(0, 7, 2)
    with pytest.raises(InputError, match=match):
        FB.forward_backward(log_B, pi, A, lengths)
