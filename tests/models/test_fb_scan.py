"""The parallel-scan forward-backward (emix.models._fb_scan) against the compiled host
recursions (themselves checked against enumeration of every path in
test_forward_backward.py), in float64 and float32, and emix.HMM on it against the NumPy
fit. Runs on torch's CPU build; the same code runs on a GPU."""

from __future__ import annotations

import types
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import logsumexp

torch = pytest.importorskip("torch")

import emix  # noqa: E402
from emix import HMM  # noqa: E402
from emix.models import _fb_scan, _fb_torch, hmm as hmm_module  # noqa: E402
from emix.models import forward_backward as fb  # noqa: E402

# The same code runs on a GPU where there is one (the lead's device run).
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(autouse=True)
def _one_cpu_thread():
    """These tensors are tiny: a second intra-op thread only adds its wake-up, which on a
    busy 2-core machine costs ~15 ms per operation (measured), thousands of times."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _problem(seed, T, K, zeros, extreme, n_seq):
    rng = np.random.default_rng(seed)
    log_B = 3.0 * rng.normal(size=(T, K))
    pi = rng.dirichlet(np.ones(K))
    A = rng.dirichlet(np.ones(K), size=K)
    if zeros and K > 1:
        A = np.triu(A)  # left-right: structural zeros below the diagonal
        A /= A.sum(axis=1, keepdims=True)
        pi[-1] = 0.0  # and a state no sequence starts in
        pi /= pi.sum()
    if extreme and K > 1:
        t = int(rng.integers(T))
        log_B[t] = 0.0
        log_B[t, int(rng.integers(K))] = 1e3  # -1e3 log-probability differences at one step
    cuts = np.sort(rng.choice(np.arange(1, T), size=min(n_seq - 1, T - 1), replace=False))
    lengths = np.diff(np.concatenate([[0], cuts, [T]])).astype(np.int64)
    return log_B, pi, A, lengths


def _log_space(log_B, pi, A, lengths):
    """The recursions in log space (float64 logsumexp, no scaling): exact where the host's
    scaled recursions underflow, which start from ``exp(log_B - row max)`` and so lose a
    state whose emission is e^-1000 below the best when no other state is reachable."""
    T, K = log_B.shape
    with np.errstate(divide="ignore", invalid="ignore"):
        lpi, lA = np.log(pi), np.log(A)
        filt, post, step = np.zeros((T, K)), np.zeros((T, K)), np.full(T, -np.inf)
        start, trans, ll = np.zeros(K), np.zeros((K, K)), np.empty(len(lengths))
        a = 0
        for s, n in enumerate(lengths):
            lb = log_B[a:a + n]
            la = np.empty((n, K))
            la[0] = lpi + lb[0]
            for t in range(1, n):
                la[t] = logsumexp(la[t - 1][:, None] + lA, axis=0) + lb[t]
            norm = logsumexp(la, axis=1)
            ok = np.isfinite(norm)
            step[a:a + n][ok] = np.diff(np.concatenate([[0.0], norm]))[ok]
            filt[a:a + n][ok] = np.exp(la[ok] - norm[ok, None])
            ll[s] = norm[-1]
            if np.isfinite(ll[s]):
                lbeta = np.zeros((n, K))
                for t in range(n - 2, -1, -1):
                    lbeta[t] = logsumexp(lA + lb[t + 1] + lbeta[t + 1], axis=1)
                g = np.exp(la + lbeta - ll[s])
                post[a:a + n] = g
                start += g[0]
                for t in range(n - 1):
                    trans += np.exp(la[t][:, None] + lA + lb[t + 1] + lbeta[t + 1] - ll[s])
            a += n
    host = types.SimpleNamespace(loglik=ll, posteriors=post, start=start, transitions=trans)
    return host, types.SimpleNamespace(loglik=ll, filtered=filt, step_loglik=step)


def test_log_space_reference_equals_host_recursions():
    for seed in range(6):
        log_B, pi, A, lengths = _problem(seed, 15, 3, zeros=seed % 2 == 0, extreme=False, n_seq=3)
        ref, ref_f = _log_space(log_B, pi, A, lengths)
        host, host_f = fb.forward_backward(log_B, pi, A, lengths), fb.forward(log_B, pi, A, lengths)
        np.testing.assert_allclose(ref.loglik, host.loglik, rtol=1e-12)
        for name in ("posteriors", "start", "transitions"):
            np.testing.assert_allclose(getattr(ref, name), getattr(host, name), atol=1e-12)
        np.testing.assert_allclose(ref_f.filtered, host_f.filtered, atol=1e-12)
        np.testing.assert_allclose(ref_f.step_loglik, host_f.step_loglik, rtol=1e-12)


def _check(log_B, pi, A, lengths, dtype, exact=False, device="cpu"):
    """The scan's results in ``dtype`` on ``device`` against the host's float64 ones
    (``exact``: the log-space reference, for emissions that underflow the host's
    scaling)."""
    f64 = dtype == torch.float64
    tol = dict(rtol=1e-10, atol=1e-10) if f64 else dict(rtol=2e-4, atol=2e-5)
    if exact:
        ref, ref_f = _log_space(log_B, pi, A, lengths)
    else:
        ref = fb.forward_backward(log_B, pi, A, lengths)
        ref_f = fb.forward(log_B, pi, A, lengths)
    t = torch.tensor(log_B, dtype=dtype, device=device)
    ll, post, start, trans = _fb_scan.forward_backward(t, pi, A, lengths)
    fll, filt, step = _fb_scan.forward(t, pi, A, lengths)
    assert post.dtype == filt.dtype == dtype and step.dtype == torch.float64
    assert post.device == filt.device == step.device == t.device
    post, filt, step = post.cpu(), filt.cpu(), step.cpu()
    assert isinstance(ll, np.ndarray) and isinstance(trans, np.ndarray)
    np.testing.assert_array_equal(np.isfinite(ll), np.isfinite(ref.loglik))
    ok = np.isfinite(ref.loglik)
    # Log-likelihoods: relative to their size (float32 log-emissions carry ~1e-7 each).
    np.testing.assert_allclose(ll[ok], ref.loglik[ok], rtol=tol["rtol"], atol=tol["atol"] * 10)
    np.testing.assert_allclose(fll[ok], ref_f.loglik[ok], rtol=tol["rtol"], atol=tol["atol"] * 10)
    np.testing.assert_allclose(post.double().numpy(), ref.posteriors, rtol=0, atol=tol["atol"])
    np.testing.assert_allclose(filt.double().numpy(), ref_f.filtered, rtol=0, atol=tol["atol"])
    fin = np.isfinite(ref_f.step_loglik)
    np.testing.assert_array_equal(np.isfinite(step.numpy()), fin)
    np.testing.assert_allclose(step.numpy()[fin], ref_f.step_loglik[fin], **tol)
    np.testing.assert_allclose(start, ref.start, rtol=0, atol=tol["atol"])
    np.testing.assert_allclose(trans, ref.transitions, rtol=tol["rtol"], atol=tol["atol"] * 10)
    # Structural zeros get exactly no expected transitions.
    assert np.all(trans[A == 0] == 0.0)
    assert not np.isnan(post.numpy()).any() and not np.isnan(filt.numpy()).any()
    # Viterbi by the max-plus scan: the host's path (its log-domain loop is exact), or in
    # float32, where near-ties may go either way, a path as good to float32 round-off.
    ref_lp, ref_path = fb.viterbi(log_B, pi, A, lengths)
    lp, path = _fb_scan.viterbi(t, pi, A, lengths)
    assert path.device == t.device and path.dtype == torch.int64
    np.testing.assert_array_equal(np.isfinite(lp), np.isfinite(ref_lp))
    fin = np.isfinite(ref_lp)
    if f64:
        np.testing.assert_array_equal(path.cpu().numpy(), ref_path)
        np.testing.assert_allclose(lp[fin], ref_lp[fin], rtol=1e-10, atol=1e-10)
    else:
        np.testing.assert_allclose(lp[fin], ref_lp[fin], rtol=1e-5, atol=1e-3)
        # The float32 path scored in float64: no better than the best, nearly as good.
        score = _path_logprob(log_B, pi, A, lengths, path.cpu().numpy())
        assert np.all(score[fin] <= ref_lp[fin] + 1e-9 * np.abs(ref_lp[fin]) + 1e-12)
        np.testing.assert_allclose(score[fin], ref_lp[fin], rtol=1e-5, atol=1e-3)


def _path_logprob(log_B, pi, A, lengths, path):
    """``log p(x, z)`` of each sequence for the state path ``path`` (T,), float64."""
    with np.errstate(divide="ignore"):
        lpi, lA = np.log(pi), np.log(A)
    out, a = [], 0
    for n in lengths:
        z = path[a:a + n]
        out.append(lpi[z[0]] + log_B[a + np.arange(n), z].sum() + lA[z[:-1], z[1:]].sum())
        a += n
    return np.array(out)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10**6), T=st.integers(1, 40), K=st.integers(1, 4),
       zeros=st.booleans(), extreme=st.booleans(), n_seq=st.integers(1, 4))
def test_scan_equals_host_recursions(seed, T, K, zeros, extreme, n_seq):
    log_B, pi, A, lengths = _problem(seed, T, K, zeros, extreme, n_seq)
    _check(log_B, pi, A, lengths, torch.float64, exact=extreme and zeros)
    if not extreme:
        # Extreme steps' probabilities differ by e^-1000: float32 keeps ~e^-87 at most,
        # so they are compared in float64 only; float32 gets the ordinary cases.
        _check(log_B, pi, A, lengths, torch.float32)


def test_extreme_emission_in_float32_keeps_its_posteriors():
    # A full transition matrix: the step where one state's log-emission is 1e3 above the
    # rest pins the state; neighbours are unaffected beyond float32 round-off.
    log_B, pi, A, lengths = _problem(7, 30, 3, zeros=False, extreme=False, n_seq=1)
    log_B[12] = [-1e3, 0.0, -1e3]
    _check(log_B, pi, A, lengths, torch.float32)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("T, K, n_seq", [(700, 3, 1), (301, 8, 3)])
def test_long_sequences_in_chunks(T, K, n_seq, device, monkeypatch):
    # Chunks of a few pairs exercise the chunked combines and fill-ins of every level.
    monkeypatch.setattr(_fb_scan, "_CHUNK_ELEMENTS", 5 * K ** 3)
    log_B, pi, A, lengths = _problem(T, T, K, zeros=(K == 3), extreme=(K == 8), n_seq=n_seq)
    _check(log_B, pi, A, lengths, torch.float64, device=device)
    if K == 8:
        # Not the left-right chain: over 700 steps its filtered probability of a state
        # the data later require falls to 1e-42, below float32's range (see _fb_scan).
        _check(log_B, pi, A, lengths, torch.float32, device=device)


@pytest.mark.parametrize("device", DEVICES)
def test_broadcast_products_equal_batched_gemm(device, monkeypatch):
    monkeypatch.setattr(_fb_scan, "PRODUCT", "broadcast")
    monkeypatch.setattr(_fb_scan, "_CHUNK_ELEMENTS", 7 * 4 ** 3)
    log_B, pi, A, lengths = _problem(11, 200, 4, zeros=False, extreme=True, n_seq=3)
    _check(log_B, pi, A, lengths, torch.float64, device=device)
    _check(log_B, pi, A, lengths, torch.float32, device=device)


def test_float32_long_sequence_keeps_float32_precision():
    # 20,000 steps of log-emissions near -40: a running float32 sum of the step
    # normalisers would be off by ~1e-3 relative per 10^4 terms; the scan keeps none.
    log_B, pi, A, lengths = _problem(3, 20_000, 4, zeros=False, extreme=False, n_seq=1)
    log_B = log_B - 40.0
    ref = fb.forward_backward(log_B, pi, A, lengths)
    ll, post, _, trans = _fb_scan.forward_backward(torch.tensor(log_B, dtype=torch.float32),
                                                   pi, A, lengths)
    np.testing.assert_allclose(ll, ref.loglik, rtol=1e-6)
    np.testing.assert_allclose(post.double().numpy(), ref.posteriors, atol=5e-5)
    np.testing.assert_allclose(trans, ref.transitions, rtol=1e-4, atol=1e-2)


def test_impossible_sequence_adds_nothing():
    log_B, pi, A, _ = _problem(2, 16, 2, zeros=False, extreme=False, n_seq=1)
    lengths = np.array([5, 8, 3])
    log_B[5 + 4] = -np.inf  # row 4 of sequence 1: no state can emit it
    ref = fb.forward_backward(log_B, pi, A, lengths)
    ll, post, start, trans = _fb_scan.forward_backward(torch.tensor(log_B), pi, A, lengths)
    assert np.isneginf(ll[1]) and np.all(np.isfinite(ll[[0, 2]]))
    np.testing.assert_allclose(ll[[0, 2]], ref.loglik[[0, 2]], rtol=1e-12)
    post = post.numpy()
    assert np.all(np.isfinite(post)) and np.all(post[5:13] == 0.0)
    np.testing.assert_allclose(post, ref.posteriors, atol=1e-12)
    np.testing.assert_allclose(trans, ref.transitions, rtol=1e-10)
    np.testing.assert_allclose(start, ref.start, atol=1e-12)
    # The sequence after the impossible one starts afresh.
    _, filt, step = _fb_scan.forward(torch.tensor(log_B), pi, A, lengths)
    assert np.all(np.isneginf(step.numpy()[9:13])) and np.all(np.isfinite(step.numpy()[13:]))
    np.testing.assert_allclose(filt.numpy(), fb.forward(log_B, pi, A, lengths).filtered, atol=1e-12)


def test_policy():
    cuda = types.SimpleNamespace(type="cuda")
    cpu = torch.device("cpu")
    assert fb.use_scan(cuda, np.array([10_000_000]))
    assert fb.use_scan(cuda, np.full(1000, 10_000))  # long sequences: log2 T levels win
    assert not fb.use_scan(cuda, np.full(10_000, 50))  # short ones: the batched time loop
    assert not fb.use_scan(cuda, np.array([20_000]))  # small: the compiled host loop
    assert not fb.use_scan(cpu, np.array([10_000_000]))
    backend = types.SimpleNamespace(name="torch", device=cuda)
    assert hmm_module._device_recursions(backend, np.array([10_000_000]))


def test_flag_routes_tensors(monkeypatch, rng):
    log_B = rng.normal(size=(50, 3))
    pi, A = np.full(3, 1 / 3), rng.dirichlet(np.ones(3), size=3)
    lengths = np.array([20, 30])
    t = torch.tensor(log_B)
    calls = []
    monkeypatch.setattr(_fb_scan, "forward_backward",
                        lambda *a, _f=_fb_scan.forward_backward: calls.append("scan") or _f(*a))
    monkeypatch.setattr(_fb_torch, "forward_backward",
                        lambda *a, _f=_fb_torch.forward_backward: calls.append("batched") or _f(*a))
    fb.forward_backward(t, pi, A, lengths)
    monkeypatch.setattr(fb, "SCAN", True)
    got = fb.forward_backward(t, pi, A, lengths)
    assert calls == ["batched", "scan"]
    assert isinstance(got.posteriors, torch.Tensor) and isinstance(got.start, np.ndarray)
    # Viterbi where the scan runs (the max-plus scan): the host's path, on the device.
    lp, path = fb.viterbi(t, pi, A, lengths)
    ref_lp, ref_path = fb.viterbi(log_B, pi, A, lengths)
    assert isinstance(path, torch.Tensor) and path.device == t.device
    np.testing.assert_array_equal(path.numpy(), ref_path)
    np.testing.assert_allclose(lp, ref_lp, rtol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("lengths", [None, [150, 90, 60]])
def test_hmm_fit_on_the_scan_equals_numpy(lengths, device, rng, monkeypatch):
    A = np.array([[0.9, 0.05, 0.05], [0.1, 0.85, 0.05], [0.05, 0.15, 0.8]])
    T = 300
    z = np.empty(T, dtype=int)
    z[0] = 0
    for t in range(1, T):
        z[t] = rng.choice(3, p=A[z[t - 1]])
    means = np.array([[0.0, 0.0], [2.5, 1.0], [-1.0, 3.0]])
    X = rng.normal(size=(T, 2)) @ np.array([[1.0, 0.3], [0.0, 0.8]]) + means[z]
    calls = []
    original = _fb_scan.forward_backward

    def spy(*args):
        calls.append(args[0].device.type)
        return original(*args)

    kw = dict(covariance_type="full", random_state=0, max_iter=6, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", emix.ConvergenceWarning)
        ref = HMM(3, **kw).fit(X, lengths)
        monkeypatch.setattr(fb, "SCAN", True)
        monkeypatch.setattr(_fb_scan, "forward_backward", spy)
        got = HMM(3, device=device, **kw).fit(X, lengths)
    assert calls and set(calls) == {device}  # the scan ran, on the device's tensors
    np.testing.assert_allclose(got.lower_bounds_, ref.lower_bounds_, rtol=1e-10)
    np.testing.assert_allclose(got.startprob_, ref.startprob_, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(got.transmat_, ref.transmat_, rtol=1e-8, atol=1e-12)
    for k in ref.params_:
        np.testing.assert_allclose(got.params_[k], ref.params_[k], rtol=1e-8, atol=1e-12)
    np.testing.assert_array_equal(got.predict(X, lengths), ref.predict(X, lengths))
    np.testing.assert_allclose(got.predict_proba(X, lengths), ref.predict_proba(X, lengths), atol=1e-10)
    np.testing.assert_allclose(got.filter(X, lengths), ref.filter(X, lengths), atol=1e-10)
    np.testing.assert_allclose(got.score_samples(X, lengths), ref.score_samples(X, lengths),
                               rtol=1e-10, atol=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_hmm_on_a_gpu_takes_the_scan_by_default(rng, monkeypatch):
    # One sequence of 70,000 rows on CUDA: the scan by the default policy, equal to NumPy.
    T = fb.SCAN_MIN_ROWS + 4_464
    z = np.repeat(rng.integers(0, 2, size=T // 50 + 1), 50)[:T]
    X = rng.normal(size=(T, 2)) + 2.0 * z[:, None]
    calls = []
    original = _fb_scan.forward_backward
    monkeypatch.setattr(_fb_scan, "forward_backward",
                        lambda *a: calls.append(a[0].device.type) or original(*a))
    kw = dict(covariance_type="diag", random_state=0, max_iter=3, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", emix.ConvergenceWarning)
        ref = HMM(2, **kw).fit(X)
        got = HMM(2, device="cuda", **kw).fit(X)
    assert calls and set(calls) == {"cuda"}
    np.testing.assert_allclose(got.lower_bounds_, ref.lower_bounds_, rtol=1e-10)
    np.testing.assert_allclose(got.transmat_, ref.transmat_, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(got.means_, ref.means_, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(got.predict_proba(X), ref.predict_proba(X), atol=1e-9)
    np.testing.assert_array_equal(got.predict(X), ref.predict(X))
