"""emix.explain('casino'): Baum-Welch on the dishonest casino, step by step.

The teaching recursions (plain NumPy, one roll at a time) are checked against brute-force
enumeration of every die path, against the compiled forward-backward of emix.models,
and the whole trace against an ordinary emix.HMM fit from the same start.
"""

from __future__ import annotations

import itertools
import re
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import emix
from emix import cli
from emix.datasets import load_casino
from emix.exceptions import InputError
from emix.explain import (
    CASINO_START,
    HMMTrace,
    expected_counts,
    explain,
    reestimate,
    scaled_backward,
    scaled_forward,
    trace_casino,
)


@pytest.fixture(scope="module")
def casino() -> HMMTrace:
    return explain("casino")


def _random_hmm(rng, K, V=6):
    startprob = rng.dirichlet(np.ones(K))
    transmat = rng.dirichlet(np.ones(K), size=K)
    emissionprob = rng.dirichlet(np.ones(V), size=K)
    return startprob, transmat, emissionprob


def _teaching_estep(codes, startprob, transmat, emissionprob):
    alpha, predicted, scale = scaled_forward(codes, startprob, transmat, emissionprob)
    beta = scaled_backward(codes, transmat, emissionprob, scale)
    gamma, transitions, counts = expected_counts(codes, alpha, beta, scale, transmat, emissionprob)
    return alpha, predicted, scale, beta, gamma, transitions, counts


# --------------------------------------------------------------------------- recursions
@settings(max_examples=25)
@given(seed=st.integers(0, 2**32 - 1), T=st.integers(1, 5), K=st.integers(1, 3))
def test_recursions_equal_brute_force_enumeration_of_every_die_path(seed, T, K):
    rng = np.random.default_rng(seed)
    pi, A, B = _random_hmm(rng, K)
    codes = rng.integers(0, 6, T)
    # P(path, rolls) for all K^T paths.
    paths = np.array(list(itertools.product(range(K), repeat=T)))
    joint = np.array([
        pi[z[0]] * np.prod([A[z[t - 1], z[t]] for t in range(1, T)])
        * np.prod([B[z[t], codes[t]] for t in range(T)])
        for z in paths
    ])
    evidence = joint.sum()
    alpha, predicted, scale, beta, gamma, transitions, counts = _teaching_estep(codes, pi, A, B)
    assert np.sum(np.log(scale)) == pytest.approx(np.log(evidence), rel=1e-12)
    for t in range(T):
        # Smoothed: all rolls. Filtered: the rolls up to t only (marginalise the rest).
        np.testing.assert_allclose(
            gamma[t], [joint[paths[:, t] == k].sum() / evidence for k in range(K)], atol=1e-13)
        upto = np.array([
            pi[z[0]] * np.prod([A[z[s - 1], z[s]] for s in range(1, t + 1)])
            * np.prod([B[z[s], codes[s]] for s in range(t + 1)])
            for z in paths
        ])
        # Each prefix appears K^(T-t-1) times among the full paths; the ratio is unchanged.
        np.testing.assert_allclose(
            alpha[t], [upto[paths[:, t] == k].sum() / upto.sum() for k in range(K)], atol=1e-13)
    want = np.zeros((K, K))
    for t in range(T - 1):
        for j, k in itertools.product(range(K), repeat=2):
            want[j, k] += joint[(paths[:, t] == j) & (paths[:, t + 1] == k)].sum() / evidence
    np.testing.assert_allclose(transitions, want, atol=1e-13)
    np.testing.assert_allclose(counts.sum(axis=0), np.bincount(codes, minlength=6), rtol=1e-12)


def test_recursions_equal_the_compiled_forward_backward():
    fb = pytest.importorskip("emix.models.forward_backward")
    rng = np.random.default_rng(7)
    for T, K in ((1, 2), (2, 1), (57, 2), (200, 3)):
        pi, A, B = _random_hmm(rng, K)
        codes = rng.integers(0, 6, T)
        log_B = np.log(B[:, codes].T)  # (T, K): log P(roll t | state k)
        alpha, _, scale, _, gamma, transitions, _ = _teaching_estep(codes, pi, A, B)
        f = fb.forward(log_B, pi, A)
        np.testing.assert_allclose(f.filtered, alpha, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(f.step_loglik, np.log(scale), rtol=1e-12, atol=1e-12)
        assert f.loglik[0] == pytest.approx(np.sum(np.log(scale)), rel=1e-12)
        full = fb.forward_backward(log_B, pi, A)
        np.testing.assert_allclose(full.posteriors, gamma, rtol=1e-11, atol=1e-13)
        np.testing.assert_allclose(full.start, gamma[0], rtol=1e-11, atol=1e-13)
        np.testing.assert_allclose(full.transitions, transitions, rtol=1e-11, atol=1e-12)
        assert full.loglik[0] == pytest.approx(np.sum(np.log(scale)), rel=1e-12)


def test_reestimation_keeps_the_row_of_a_state_without_counts():
    prev = {"startprob": np.array([0.5, 0.5]), "transmat": np.array([[0.7, 0.3], [0.4, 0.6]]),
            "emissionprob": np.full((2, 6), 1 / 6)}
    gamma = np.array([[1.0, 0.0], [1.0, 0.0]])
    transitions = np.array([[1.0, 0.0], [0.0, 0.0]])
    counts = np.zeros((2, 6))
    counts[0, [2, 5]] = 1.0
    new = reestimate(gamma, transitions, counts, prev)
    np.testing.assert_array_equal(new["transmat"], [[1.0, 0.0], [0.4, 0.6]])
    np.testing.assert_array_equal(new["emissionprob"][0], [0, 0, 0.5, 0, 0, 0.5])
    np.testing.assert_array_equal(new["emissionprob"][1], prev["emissionprob"][1])
    assert np.all(np.isfinite(new["startprob"]))


# --------------------------------------------------------------------------- the trace
def test_trace_equals_a_plain_hmm_fit_from_the_same_start():
    data = load_casino(300, random_state=0)
    n = 10
    trace = trace_casino(data.rolls, n_iter=n, tol=0.0)
    model = emix.HMM(
        n_states=2, emission="categorical", startprob_init=CASINO_START["startprob"],
        transmat_init=CASINO_START["transmat"],
        emission_init={"probabilities": np.array(CASINO_START["emissionprob"])},
        family_options={"n_categories": 6}, max_iter=n, tol=0.0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", emix.ConvergenceWarning)
        model.fit(data.codes[:, None])
    final = trace.final
    np.testing.assert_allclose(model.startprob_, final["startprob"], atol=1e-10)
    np.testing.assert_allclose(model.transmat_, final["transmat"], rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(model.probabilities_, final["emissionprob"], rtol=1e-8, atol=1e-12)
    # emix.HMM records the mean log-likelihood per roll of every E-step.
    np.testing.assert_allclose(model.lower_bounds_ * data.n_rolls, trace.logliks[:-1], rtol=1e-10)
    assert model.score(data.codes[:, None]) * data.n_rolls == pytest.approx(trace.logliks[-1], rel=1e-10)
    np.testing.assert_allclose(model.predict_proba(data.codes[:, None]), trace.posteriors, atol=1e-9)


def test_records_chain_and_their_counts_add_up(casino):
    T = casino.n
    assert casino.converged and casino.n_iter > 3
    for prev, rec in zip(casino.records, casino.records[1:]):
        for key in casino.parameter_names:
            np.testing.assert_array_equal(rec.before[key], prev.after[key])
        assert rec.loglik == prev.loglik_after
    for rec in casino.records:
        assert rec.transitions.sum() == pytest.approx(T - 1, rel=1e-12)
        assert rec.symbol_counts.sum() == pytest.approx(T, rel=1e-12)
        np.testing.assert_allclose(rec.gamma.sum(axis=1), 1.0, rtol=1e-12)
        np.testing.assert_allclose(rec.alpha.sum(axis=1), 1.0, rtol=1e-12)
        np.testing.assert_array_equal(rec.beta_end[0], 1.0)  # beta_T = 1
        # The first forward step: c_1 = sum_k start_k P(x_1 | k).
        b1 = rec.before["emissionprob"][:, casino.rolls[0] - 1]
        assert rec.scale[0] == pytest.approx(rec.before["startprob"] @ b1, rel=1e-14)
    assert casino.path("transmat").shape == (casino.n_iter + 1, 2, 2)
    np.testing.assert_allclose(casino.posteriors.sum(axis=1), 1.0, rtol=1e-12)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_rolls=st.integers(2, 120))
def test_log_likelihood_never_decreases(seed, n_rolls):
    rng = np.random.default_rng(seed)
    data = load_casino(n_rolls, random_state=seed)
    pi, A, B = _random_hmm(rng, 2)
    trace = trace_casino(data.rolls, startprob_init=pi, transmat_init=A, emissionprob_init=B,
                         n_iter=15, tol=0.0)
    h = trace.logliks
    assert np.all(np.isfinite(h))
    # Round-off only: a tiny sample can be fitted perfectly (log-likelihood 0).
    assert np.all(np.diff(h) >= -1e-10 * np.maximum(np.abs(h[1:]), 1.0)), h


def test_loaded_die_is_recovered_on_a_few_thousand_rolls():
    data = load_casino(3000, random_state=0)
    trace = trace_casino(data.rolls, tol=1e-5, hidden=data.dice)
    B = trace.final["emissionprob"]
    A = trace.final["transmat"]
    # The start that favours six a little makes state 1 the loaded die.
    assert B[1, 5] == pytest.approx(0.5, abs=0.05)
    np.testing.assert_allclose(B[1, :5], 0.1, atol=0.05)
    np.testing.assert_allclose(B[0], 1 / 6, atol=0.04)
    assert A[0, 1] == pytest.approx(0.05, abs=0.02) and A[1, 0] == pytest.approx(0.1, abs=0.04)
    # The posteriors pick the hidden die at most rolls.
    assert np.mean(np.argmax(trace.posteriors, axis=1) == data.dice) > 0.8


def test_text_shows_every_step_with_its_numbers(casino):
    text = casino.to_text(detailed=2)
    for section in ("Starting guess", "Iteration 1", "Iteration 2", "Forward pass",
                    "Backward pass", "Posteriors", "Expected switches", "Expected faces",
                    "M-step", "c_t", "alpha_t", "beta", "gamma", "Final estimates",
                    "generated the rolls", "one line each", "never fell"):
        assert section in text, section
    assert "Iteration 3\n" not in text
    rec = casino.records[0]
    # The re-estimation's arithmetic is printed: count / total = new probability.
    j, k = 0, 1
    line = f"{rec.transitions[j, k]:.2f} / {rec.transitions[j].sum():.2f}"
    assert line in text
    assert f"{rec.after['transmat'][j, k]:.3f}" in text
    assert f"{rec.scale[0]:.4f}" in text  # c_1 in the forward table
    assert f"-> {rec.loglik_after:.3f} after" in text.replace("before, ", "-> ")
    assert max(len(line) for line in text.splitlines()) <= 88
    assert re.search(r"hidden die at \d+\.\d% of the 300 rolls", text)


def test_cli_explain_casino(capsys):
    code = cli.main(["explain", "casino", "--iterations", "2", "--rows", "2"])
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    assert "Iteration 2" in out and "Iteration 3\n" not in out
    assert "Forward pass" in out and "Backward pass" in out and "M-step" in out


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(rolls=[1, 2, 7]), r"roll 3 \(position 2\) is 7"),
        (dict(rolls=[1, 2.5, 3]), r"roll 2 .*whole number"),
        (dict(rolls=[3]), "at least 2 rolls"),
        (dict(rolls=[1, 2, 3], transmat_init=[[0.9, 0.1], [0.5, 0.6]]),
         "row 1 of transmat_init sums to 1.1"),
        (dict(rolls=[1, 2, 3], emissionprob_init=np.full((2, 5), 0.2)), r"shape \(2, 6\)"),
        (dict(rolls=[1, 6, 6], emissionprob_init=[[1, 0, 0, 0, 0, 0]] * 2),
         "roll 2 .*probability 0"),
    ],
)
def test_errors_name_the_problem(kwargs, message):
    rolls = kwargs.pop("rolls")
    with pytest.raises(InputError, match=message):
        trace_casino(rolls, **kwargs)
