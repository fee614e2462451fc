"""The batched torch recursions (emix.models._fb_torch) against the compiled host ones
and against enumeration of every state path; emix.HMM on them equals the NumPy fit."""

from __future__ import annotations

import itertools
import types
import warnings

import numpy as np
import pytest
from scipy.special import logsumexp

torch = pytest.importorskip("torch")

import emix  # noqa: E402
from emix import HMM  # noqa: E402
from emix.exceptions import InputError  # noqa: E402
from emix.models import _fb_torch, hmm as hmm_module  # noqa: E402
from emix.models import forward_backward as fb  # noqa: E402

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _chain(rng, K, zeros=False):
    pi = rng.dirichlet(np.ones(K))
    A = rng.dirichlet(np.ones(K), size=K)
    if zeros and K > 2:
        A[0, 1] = A[2, 0] = 0.0  # forbidden transitions
        A /= A.sum(axis=1, keepdims=True)
        pi[1] = 0.0
        pi /= pi.sum()
    return pi, A


def _case(rng, K, S, max_len, zeros=False):
    lengths = rng.integers(1, max_len + 1, size=S)
    log_B = 3.0 * rng.normal(size=(int(lengths.sum()), K))
    return (log_B, *_chain(rng, K, zeros), lengths)


def _host(a):
    return a.cpu().numpy() if isinstance(a, torch.Tensor) else a


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("K, S, max_len, zeros", [(1, 7, 5, False), (2, 40, 30, False),
                                                  (3, 60, 25, True), (5, 25, 60, False)])
def test_equals_host_recursions(device, K, S, max_len, zeros, rng):
    log_B, pi, A, lengths = _case(rng, K, S, max_len, zeros)
    lengths[:3] = [max_len, 1, max_len]  # ties and a one-row sequence
    log_B = 3.0 * rng.normal(size=(int(lengths.sum()), K))
    t = torch.from_numpy(log_B).to(device)

    ref = fb.forward_backward(log_B, pi, A, lengths)
    got = fb.forward_backward(t, pi, A, lengths)
    assert isinstance(got.posteriors, torch.Tensor) and got.posteriors.device.type == device
    assert isinstance(got.start, np.ndarray) and isinstance(got.loglik, np.ndarray)
    np.testing.assert_allclose(got.loglik, ref.loglik, rtol=1e-12)
    np.testing.assert_allclose(_host(got.posteriors), ref.posteriors, rtol=0, atol=1e-10)
    np.testing.assert_allclose(got.start, ref.start, rtol=0, atol=1e-10)
    np.testing.assert_allclose(got.transitions, ref.transitions, rtol=1e-10, atol=1e-10)
    if zeros:
        assert got.transitions[0, 1] == got.transitions[2, 0] == got.start[1] == 0.0

    ref_f = fb.forward(log_B, pi, A, lengths)
    got_f = fb.forward(t, pi, A, lengths)
    np.testing.assert_allclose(got_f.loglik, ref_f.loglik, rtol=1e-12)
    np.testing.assert_allclose(_host(got_f.filtered), ref_f.filtered, rtol=0, atol=1e-10)
    np.testing.assert_allclose(_host(got_f.step_loglik), ref_f.step_loglik, rtol=1e-12, atol=1e-12)

    ref_lp, ref_path = fb.viterbi(log_B, pi, A, lengths)
    got_lp, got_path = fb.viterbi(t, pi, A, lengths)
    np.testing.assert_allclose(got_lp, ref_lp, rtol=1e-12)
    np.testing.assert_array_equal(_host(got_path), ref_path)


def _enumerate(log_B, pi, A):
    """Log-likelihood, filtered and smoothed probabilities and the best path of one
    sequence by summing over all K^T state paths."""
    T, K = log_B.shape
    with np.errstate(divide="ignore"):
        lpi, lA = np.log(pi), np.log(A)
    paths = np.array(list(itertools.product(range(K), repeat=T)))
    lp = lpi[paths[:, 0]] + log_B[0, paths[:, 0]]
    for t in range(1, T):
        lp = lp + lA[paths[:, t - 1], paths[:, t]] + log_B[t, paths[:, t]]
    ll = logsumexp(lp)
    smoothed = np.array([[np.exp(logsumexp(lp[paths[:, t] == k]) - ll) for k in range(K)]
                         for t in range(T)])
    filtered = np.empty((T, K))
    for t in range(T):
        # Paths agree up to t: marginalise the later states out of the prefix sums.
        pre = lpi[paths[:, 0]] + log_B[0, paths[:, 0]]
        for s in range(1, t + 1):
            pre = pre + lA[paths[:, s - 1], paths[:, s]] + log_B[s, paths[:, s]]
        first = np.all(paths[:, t + 1:] == 0, axis=1)  # one copy of each prefix
        f = np.array([logsumexp(pre[first & (paths[:, t] == k)]) for k in range(K)])
        filtered[t] = np.exp(f - logsumexp(f))
    return ll, filtered, smoothed, paths[int(np.argmax(lp))], float(np.max(lp))


def test_brute_force_many_tiny_sequences(rng):
    K = 3
    pi, A = _chain(rng, K, zeros=True)
    lengths = np.array([4, 1, 6, 3, 6, 2])
    log_B = 2.0 * rng.normal(size=(int(lengths.sum()), K))
    t = torch.from_numpy(log_B)
    got = fb.forward_backward(t, pi, A, lengths)
    got_f = fb.forward(t, pi, A, lengths)
    got_lp, got_path = fb.viterbi(t, pi, A, lengths)
    start = np.zeros(K)
    a = 0
    for s, n in enumerate(lengths):
        ll, filt, smooth, path, lp = _enumerate(log_B[a:a + n], pi, A)
        np.testing.assert_allclose(got.loglik[s], ll, rtol=1e-12)
        np.testing.assert_allclose(got_f.filtered[a:a + n].numpy(), filt, atol=1e-12)
        np.testing.assert_allclose(got.posteriors[a:a + n].numpy(), smooth, atol=1e-12)
        np.testing.assert_array_equal(got_path[a:a + n].numpy(), path)
        np.testing.assert_allclose(got_lp[s], lp, rtol=1e-12)
        start += smooth[0]
        a += n
    np.testing.assert_allclose(got.start, start, atol=1e-12)
    # Expected transitions: the smoothed pair marginals summed, checked through their
    # margins (rows: occupancy of all but each sequence's last step).
    occ = sum(got.posteriors[a - n:a - 1].numpy().sum(axis=0) for a, n in zip(np.cumsum(lengths), lengths))
    np.testing.assert_allclose(got.transitions.sum(axis=1), occ, atol=1e-12)


def test_impossible_sequence_adds_nothing(rng):
    K = 2
    pi, A = _chain(rng, K)
    lengths = np.array([5, 8, 3])
    log_B = rng.normal(size=(16, K))
    log_B[5 + 4] = -np.inf  # row 4 of sequence 1: no state can emit it
    t = torch.from_numpy(log_B)
    ref = fb.forward_backward(log_B, pi, A, lengths)
    got = fb.forward_backward(t, pi, A, lengths)
    assert np.isneginf(got.loglik[1]) and np.all(np.isfinite(got.loglik[[0, 2]]))
    np.testing.assert_allclose(got.loglik[[0, 2]], ref.loglik[[0, 2]], rtol=1e-12)
    post = got.posteriors.numpy()
    assert np.all(np.isfinite(post)) and np.all(post[5:13] == 0.0)
    np.testing.assert_allclose(post, ref.posteriors, atol=1e-12)
    np.testing.assert_allclose(got.transitions, ref.transitions, rtol=1e-10)
    f = fb.forward(t, pi, A, lengths)
    assert np.all(np.isneginf(f.step_loglik.numpy()[9:13])) and np.all(np.isfinite(f.filtered.numpy()))


def test_input_checks():
    t = torch.zeros((5, 2), dtype=torch.float64)
    with pytest.raises(InputError, match="lengths sum to 4"):
        fb.forward(t, [0.5, 0.5], np.eye(2), [2, 2])
    with pytest.raises(InputError, match="transmat"):
        fb.forward_backward(t, [0.5, 0.5], np.eye(3), None)
    with pytest.raises(InputError, match=r"\(T, K\)"):
        fb.viterbi(torch.zeros(5, dtype=torch.float64), [1.0], np.eye(1), None)


def test_packing_is_time_major():
    pk = _fb_torch.pack(np.array([2, 3, 1]), "cpu")
    # ranks by length: seq 1 (3), seq 0 (2), seq 2 (1); step 0 holds all three.
    assert pk.n == [3, 2, 1, 0] and pk.offs == [0, 3, 5, 6]
    np.testing.assert_array_equal(pk.seq_of_rank, [1, 0, 2])
    # rows: seq 0 = rows 0,1; seq 1 = rows 2,3,4; seq 2 = row 5.
    np.testing.assert_array_equal(pk.pos.numpy(), [1, 4, 0, 3, 5, 2])


def test_policy_runs_on_a_gpu_with_many_sequences():
    cuda = types.SimpleNamespace(name="torch", device=torch.device("cuda"))
    cpu = types.SimpleNamespace(name="torch", device=torch.device("cpu"))
    many = np.full(1000, 20)
    assert hmm_module._device_recursions(cuda, many)
    assert not hmm_module._device_recursions(cuda, np.array([20_000]))
    assert not hmm_module._device_recursions(cpu, many)
    assert not hmm_module._device_recursions(emix.backends.resolve_backend(None, None), many)


@pytest.mark.parametrize("emission", ["gaussian", "poisson"])
def test_hmm_fit_on_the_batched_recursions_equals_numpy(emission, rng, monkeypatch):
    A = np.array([[0.9, 0.1], [0.15, 0.85]])
    lengths = rng.integers(3, 40, size=30)
    T = int(lengths.sum())
    z = np.empty(T, dtype=int)
    a = 0
    for n in lengths:
        z[a] = rng.integers(2)
        for t in range(a + 1, a + n):
            z[t] = rng.choice(2, p=A[z[t - 1]])
        a += n
    if emission == "gaussian":
        X = rng.normal(size=(T, 2)) + np.array([[0.0, 0.0], [2.0, 1.5]])[z]
    else:
        X = rng.poisson(np.array([[1.0, 4.0], [5.0, 0.5]])[z]).astype(float)
    calls = []
    original = _fb_torch.forward_backward

    def spy(*args):
        calls.append(args[0].device.type)
        return original(*args)

    kw = dict(random_state=0, max_iter=8, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", emix.ConvergenceWarning)
        ref = HMM(2, emission, **kw).fit(X, lengths)
        monkeypatch.setattr(hmm_module, "_device_recursions", lambda backend, lengths: backend.name == "torch")
        monkeypatch.setattr(_fb_torch, "forward_backward", spy)
        got = HMM(2, emission, device="cpu", **kw).fit(X, lengths)
    assert calls and set(calls) == {"cpu"}  # the batched recursions ran
    np.testing.assert_allclose(got.lower_bounds_, ref.lower_bounds_, rtol=1e-10)
    np.testing.assert_allclose(got.startprob_, ref.startprob_, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(got.transmat_, ref.transmat_, rtol=1e-8)
    for k in ref.params_:
        np.testing.assert_allclose(got.params_[k], ref.params_[k], rtol=1e-8)
    np.testing.assert_array_equal(got.predict(X, lengths), ref.predict(X, lengths))
    np.testing.assert_allclose(got.predict_proba(X, lengths), ref.predict_proba(X, lengths), atol=1e-10)
    np.testing.assert_allclose(got.filter(X, lengths), ref.filter(X, lengths), atol=1e-10)
    np.testing.assert_allclose(got.score_samples(X, lengths), ref.score_samples(X, lengths), rtol=1e-10)
    assert isinstance(got.predict_proba(X, lengths), np.ndarray)
