"""The torch backend's GPU logic, run on a CPU: memory-sized blocks, the few-kernel
Gaussian pass, and host-held data streamed to the device in double-buffered blocks.

``TorchBackend("cpu", memory=...)`` (or a replaced ``device_free_bytes``) makes a CPU
backend plan as a GPU would: blocks from the memory figure, the GPU form of the kernels,
and data larger than the figure kept "on the host" and copied block by block through two
buffers. Everything is compared with the NumPy backend; kernel launches are counted with
``torch.profiler`` (counts are deterministic).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import emix  # noqa: E402
from emix.backends import NumpyBackend  # noqa: E402
from emix.backends import torch_backend as TB  # noqa: E402
from emix.backends._torch_stream import host_blocks  # noqa: E402
from emix.backends.torch_backend import TorchBackend  # noqa: E402
from emix.families import gaussian as G  # noqa: E402
from emix.families import gaussian_kernel as GK  # noqa: E402

RTOL = {np.float64: 1e-10, np.float32: 1e-4}
K, D = 3, 4
BIG = 1 << 40  # a memory figure under which everything fits in one block


def _data(rng, dtype, n=1500):
    means = np.array([[0.0, 0, 0, 0], [6, 6, 0, 1], [0, 7, 7, -2]])
    labels = rng.choice(K, size=n, p=[0.3, 0.3, 0.4])
    X = means[labels] + rng.normal(size=(n, D)) * (1.0 + labels[:, None] * 0.3)
    return (X * 30.0 + 500.0).astype(dtype)


def _close(a, b, rtol, what=""):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    err = float(np.max(np.abs(a - b))) / max(float(np.max(np.abs(a))), 1e-300)
    assert err <= rtol, f"{what}: relative difference {err:.3g} > {rtol:g}"


def _same_stats(a, b, rtol):
    _close(a.resp_moments, b.resp_moments, rtol, "resp_moments")
    if a.scatter is not None:
        _close(a.scatter, b.scatter, rtol, "scatter")
    assert abs(a.loglik - b.loglik) <= rtol * max(abs(a.loglik), 1.0), (a.loglik, b.loglik)
    assert b.weight_sum == pytest.approx(a.weight_sum, rel=1e-12)
    assert b.n_rows == a.n_rows


def _problem(rng, ct, dtype, weighted, n=1500):
    nb = NumpyBackend()
    X = _data(rng, dtype, n)
    w = rng.random(n) * 2.0 if weighted else None
    s = nb.column_summary(X, w)
    frame = G.Frame.from_data(s["mean"], s["var"])
    centers = X[rng.choice(n, K, replace=False)].astype(np.float64)
    kw = dict(covariance_type=ct, frame=frame, n_components=K)
    stats = GK.mixture_pass(nb, X, w, None, centers=centers, **kw)
    plan = G.estep_plan(G.m_step(stats, 1e-6)[0], frame)
    return X, w, kw, plan, centers


# --------------------------------------------------------------------------- GPU form
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64-weighted", "f32"])
@pytest.mark.parametrize("ct", G.COVARIANCE_TYPES)
def test_gpu_form_pass_matches_numpy(rng, ct, dtype):
    weighted = dtype == np.float64  # both paths of the weights, half the cases
    X, w, kw, plan, centers = _problem(rng, ct, dtype, weighted)
    nb, tb = NumpyBackend(), TorchBackend("cpu", memory=BIG)
    assert tb.ops(np.float32).gpu_form
    Xt, _ = tb.validate(X)
    assert not tb.is_host_held(Xt)
    wt = None if w is None else tb.asarray_like(w, Xt)
    for kwargs in (dict(plan=plan), dict(plan=None, centers=centers)):
        ref = GK.mixture_pass(nb, X, w, **kwargs, **kw)
        # One block (memory-sized) and many blocks of a given size give the same sums.
        for bs in (None, 256):
            got = GK.mixture_pass(tb, Xt, wt, **kwargs, block_size=bs, **kw)
            _same_stats(ref, got, RTOL[dtype])
    _close(GK.log_joint(nb, X, plan), GK.log_joint(tb, Xt, plan), RTOL[dtype], "log_joint")


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_gpu_form_softmax_matches_cpu_form_on_edge_rows(dtype):
    from emix.backends.torch_backend import _exp_floor, _softmax_cols_

    inf = np.inf
    LT = np.array(
        [[0.0, -3.0, -inf, -1e4, -200.0],
         [-1.0, -3.0, -inf, -inf, -100.0],
         [-1e3, -inf, -inf, -1e4 + 30.0, -160.0]], dtype=dtype)
    floor = _exp_floor(torch.from_numpy(LT).dtype)
    a, b = torch.from_numpy(LT.copy()), torch.from_numpy(LT.copy())
    la = _softmax_cols_(a, floor, gpu_form=False)
    lb = _softmax_cols_(b, floor, gpu_form=True)
    # Exactly the same arithmetic: responsibilities and log-normalisers are bitwise equal
    # (NaN responsibilities in the zero-density column in both; its -inf says so).
    torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)
    torch.testing.assert_close(la, lb, rtol=0, atol=0)
    assert lb[2] == -inf and b[1, 3] == 0.0 and b[2, 0] == 0.0


def test_block_sizes_follow_the_memory_figure(rng):
    X = _data(rng, np.float32, 5000)
    kern = GK._Kernel(None, G.Frame.identity(D), "full", K, D, np.float32, None, None, None)
    per_row = kern.row_bytes(4, True)
    seen = []

    class Spy:
        acc_shapes = {"n": ()}
        row_bytes = kern.row_bytes

        def setup(self, ops):
            return None

        def block(self, ops, st, Xb, wb, acc, start, stop):
            seen.append((start, stop))
            acc["n"] += Xb.shape[0]

    for memory, blocks in ((BIG, 1), (2 * per_row * 1700, 3)):
        seen.clear()
        tb = TorchBackend("cpu", memory=memory)
        out = tb.stats_pass(tb.validate(X)[0], None, Spy())
        assert out["n"] == 5000
        assert len(seen) == blocks and seen[0][0] == 0 and seen[-1][1] == 5000
        sizes = [b - a for a, b in seen]
        assert max(sizes) - min(sizes) <= 1  # evened out
    # Without a memory figure a CPU keeps NumPy's cache-sized blocks.
    from emix.backends import default_block_size

    seen.clear()
    TorchBackend("cpu").stats_pass(torch.from_numpy(X), None, Spy(), width=kern.M)
    assert seen[0] == (0, min(5000, default_block_size(5000, 1, kern.M, 4)))


# --------------------------------------------------------------------------- streaming
@pytest.mark.parametrize("weights", ["none", "host", "device"])
def test_host_blocks_deliver_every_row_once_in_order(rng, weights):
    N, rows = 1037, 100  # ten full blocks and a short last one
    X = torch.from_numpy(rng.normal(size=(N, 3)))
    w = None if weights == "none" else torch.from_numpy(rng.random(N))
    got_x, got_w, spans = [], [], []
    for a, z, Xb, wb in host_blocks(X, w, rows, torch.device("cpu"), torch.float32):
        spans.append((a, z))
        got_x.append(Xb.clone())  # a view of a reused buffer: valid until the next block
        if w is not None:
            assert wb.dtype == torch.float32
            got_w.append(wb.clone())
    assert spans == [(a, min(a + rows, N)) for a in range(0, N, rows)]
    assert torch.equal(torch.cat(got_x), X)
    if w is not None:
        assert torch.equal(torch.cat(got_w), w.to(torch.float32))
    # Buffers alternate: a block is not overwritten by the copy of the next one.
    assert list(host_blocks(X[:0], None, rows, torch.device("cpu"))) == []


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("ct", ["full", "diag", "tied"])
def test_streamed_pass_equals_in_memory_pass(rng, ct, weighted):
    dtype = np.float64
    X, w, kw, plan, centers = _problem(rng, ct, dtype, weighted, n=2100)
    nb = NumpyBackend()
    # Room for a few blocks but not for the data: X stays on the host and streams.
    tb = TorchBackend("cpu", memory=X.nbytes)
    Xh, _ = tb.validate(X)
    assert tb.is_host_held(Xh)
    wh = None if w is None else tb.asarray_like(w, Xh)
    seen = []
    real = TB.TorchBackend._blocks

    def spy(self, *a, **k):
        for item in real(self, *a, **k):
            seen.append(item[:2])
            yield item

    TB.TorchBackend._blocks = spy
    try:
        for kwargs in (dict(plan=plan), dict(plan=None, centers=centers)):
            seen.clear()
            got = GK.mixture_pass(tb, Xh, wh, **kwargs, **kw)
            assert len(seen) > 2 and seen[-1][1] == len(X)
            _same_stats(GK.mixture_pass(nb, X, w, **kwargs, **kw), got, RTOL[dtype])
        summary = tb.column_summary(Xh, wh)
    finally:
        TB.TorchBackend._blocks = real
    ref = nb.column_summary(X, w)
    for key in ("mean", "var", "min", "max"):
        _close(ref[key], summary[key], 1e-12, key)
    _close(GK.log_joint(nb, X, plan), GK.log_joint(tb, Xh, plan), RTOL[dtype], "log_joint")


def test_fit_of_data_larger_than_the_device_streams(rng, monkeypatch):
    """A fit whose data exceed the device's memory keeps them on the host, streams them
    every pass, and ends where NumPy's fit ends."""
    X = _data(rng, np.float64, 3000)
    monkeypatch.setattr(TB, "device_free_bytes", lambda device: X.nbytes // 2)
    streamed = []
    real = TB.TorchBackend.is_host_held

    def spy(self, Xv):
        out = real(self, Xv)
        streamed.append(out)
        return out

    monkeypatch.setattr(TB.TorchBackend, "is_host_held", spy)
    kw = dict(covariance_type="full", random_state=0, max_iter=15, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", emix.exceptions.ConvergenceWarning
                              if hasattr(emix.exceptions, "ConvergenceWarning") else Warning)
        ref = emix.GaussianMixture(K, **kw).fit(X)
        got = emix.GaussianMixture(K, device="cpu", **kw).fit(X)
    assert any(streamed)
    assert got.lower_bound_ == pytest.approx(ref.lower_bound_, rel=1e-10)
    np.testing.assert_allclose(got.means_, ref.means_, rtol=1e-8)
    np.testing.assert_allclose(got.predict_proba(X), ref.predict_proba(X), atol=1e-8)


# --------------------------------------------------------------------------- launches
def _ops_per_iteration(rng, sizes, device):
    """``ops_per_iteration`` of a full-covariance fit on ``n`` rows for each n in sizes."""
    from emix.backends._torch_launches import ops_per_iteration

    counts = {}
    for n in sizes:
        X = torch.from_numpy(_data(rng, np.float32, n)).to(device)
        means = np.array([[500.0] * D, [680, 680, 500, 530], [500, 710, 710, 440]])

        def fit(it, X=X, means=means):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                emix.GaussianMixture(K, covariance_type="full", means_init=means,
                                     weights_init=np.full(K, 1 / K),
                                     precisions_init=np.tile(np.eye(D) / 900.0, (K, 1, 1)),
                                     tol=0.0, max_iter=it, device=device).fit(X)

        counts[n] = ops_per_iteration(fit, n_iter=2)
    return counts


def test_launches_per_iteration_do_not_grow_with_n(rng, monkeypatch):
    """With memory-sized blocks an iteration is a fixed, small number of device
    operations, whatever N (the GPU's launch overhead does not grow with the data)."""
    monkeypatch.setattr(TB, "device_free_bytes", lambda device: 64 << 30)
    counts = {n: c["ops"] for n, c in _ops_per_iteration(rng, (800, 4000), "cpu").items()}
    assert counts[800] == counts[4000], counts
    assert 10 <= counts[800] <= 40, counts  # the target is <= 100


# --------------------------------------------------------------------------- host M-step
@pytest.mark.parametrize("ct", ["full", "tied"])
def test_screening_shortcut_flags_what_the_eigenvalues_flag(rng, ct):
    """The M-step's screen skips its eigendecompositions when Cholesky factorisations
    prove nothing can be flagged (it runs every GPU iteration); the components it flags
    are exactly those of the rule computed by brute force, with and without collapses."""
    Dm, Km, reg = 5, 6, 1e-3
    data_var = rng.uniform(0.5, 2.0, Dm)
    for case in range(12):
        A = rng.normal(size=(Km, Dm, Dm))
        raw = A @ A.transpose(0, 2, 1) + 0.5 * np.eye(Dm)
        if case % 3 == 1:  # one collapsed component: a direction with no spread
            k = case % Km
            lam, vec = np.linalg.eigh(raw[k])
            lam[0] = 1e-12
            raw[k] = (vec * lam) @ vec.T
        if case % 3 == 2:  # one regularisation-dominated component
            k = (case + 1) % Km
            lam, vec = np.linalg.eigh(raw[k])
            lam[0] = 0.5 * reg
            raw[k] = (vec * lam) @ vec.T
        mats = raw if ct == "full" else raw[:1]
        nk = np.full(Km, 100.0)
        eig = np.linalg.eigvalsh(mats)
        got = G.screen_components(mats if ct == "full" else mats[0], nk, data_var, ct, reg,
                                  raw_eigvals=eig)
        sd = np.sqrt(data_var)
        ratio = np.linalg.eigvalsh(mats / np.outer(sd, sd))[:, 0]
        want = {(k if ct == "full" else -1) for k in range(len(mats))
                if ratio[k] < G.COLLAPSE_RATIO or eig[k, 0] <= reg}
        assert {i.component for i in got if i.kind == "collapsed"} == want, case
        if case % 3 and ct == "full":
            assert want  # the constructed cases are flagged


# --------------------------------------------------------------------------- CUDA
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_cuda_streamed_pass_and_fit_equal_numpy(rng, dtype, monkeypatch):
    """Pinned host data streamed through two device buffers on a side stream give
    NumPy's statistics, log-joint, fit and predictions."""
    X, w, kw, plan, centers = _problem(rng, "full", dtype, True, n=5000)
    nb = NumpyBackend()
    tb = TorchBackend("cuda", memory=X.nbytes)  # the data do not "fit": they stream
    Xh, _ = tb.validate(X)
    assert Xh.device.type == "cpu" and tb.is_host_held(Xh) and Xh.is_pinned()
    wh = tb.asarray_like(w, Xh)
    got = GK.mixture_pass(tb, Xh, wh, plan, **kw)
    _same_stats(GK.mixture_pass(nb, X, w, plan, **kw), got, RTOL[dtype])
    many = GK.mixture_pass(tb, Xh, wh, plan, block_size=333, **kw)  # 16 blocks, short last
    _same_stats(got, many, RTOL[dtype])
    _close(GK.log_joint(nb, X, plan), GK.log_joint(tb, Xh, plan), RTOL[dtype], "log_joint")
    summary, ref = tb.column_summary(Xh, wh), nb.column_summary(X, w)
    for key in ("mean", "var", "min", "max"):
        _close(ref[key], summary[key], 1e-12, key)

    monkeypatch.setattr(TB, "device_free_bytes", lambda device: X.nbytes // 2)
    fit_kw = dict(covariance_type="full", random_state=0, max_iter=10, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref_fit = emix.GaussianMixture(K, **fit_kw).fit(X)
        got_fit = emix.GaussianMixture(K, device="cuda", **fit_kw).fit(X)
    assert got_fit.lower_bound_ == pytest.approx(ref_fit.lower_bound_, rel=RTOL[dtype])
    np.testing.assert_allclose(got_fit.predict_proba(X), ref_fit.predict_proba(X),
                               atol=100 * RTOL[dtype])


@pytest.mark.cuda
@needs_cuda
def test_cuda_kernels_per_iteration_do_not_grow_with_n(rng):
    counts = _ops_per_iteration(rng, (2000, 40000), "cuda")
    assert counts[2000]["ops"] == counts[40000]["ops"], counts
    # cuBLAS and reductions may pick a split (two-kernel) algorithm for longer rows: a
    # few kernels, not a block loop's ~25 per block.
    assert abs(counts[2000]["cuda_kernels"] - counts[40000]["cuda_kernels"]) <= 6, counts
    assert counts[40000]["cuda_kernels"] <= 100, counts
    # One download of the statistics per pass; uploads do not synchronise.
    assert counts[2000]["cuda_syncs"] <= 2, counts


def test_plan_reuses_the_m_step_eigenvalues(rng):
    """estep_plan takes lambda_max(P) from the M-step's eigenvalues (one eigendecomposition
    fewer per iteration): the same plan as from parameters that do not carry them."""
    X, w, kw, plan, centers = _problem(rng, "full", np.float64, True)
    stats = GK.mixture_pass(NumpyBackend(), X, w, plan, **kw)
    params, _ = G.m_step(stats, 1e-6)
    assert getattr(params, "_cov_eig_min", None) is not None
    bare = G.GaussianMixtureParams(params.weights, params.means, params.covariances,
                                   params.precisions_cholesky, "full")
    a, b = G.estep_plan(params, kw["frame"]), G.estep_plan(bare, kw["frame"])
    np.testing.assert_array_equal(a.eta, b.eta)
    assert a.cancellation == pytest.approx(b.cancellation, rel=1e-12)
    import dataclasses

    assert "_cov_eig_min" not in {f.name for f in dataclasses.fields(params)}  # not saved


@pytest.mark.parametrize("width", [3, 8, 16])
def test_gpu_form_full_covariance_at_other_widths(rng, width):
    """Widths that are powers of two take the level order (1 + log2 D products), others
    the row loop; both give NumPy's statistics."""
    from emix.families.gaussian_kernel import level_order

    order = level_order(8)
    assert sorted(order) == list(range(36)) and list(order[:8]) == [
        int(k) for k in np.flatnonzero(np.triu_indices(8)[0] == np.triu_indices(8)[1])]
    n = 1200
    means = rng.normal(scale=4.0, size=(K, width))
    X = means[rng.integers(0, K, n)] + rng.normal(size=(n, width))
    nb, tb = NumpyBackend(), TorchBackend("cpu", memory=BIG)
    s = nb.column_summary(X, None)
    frame = G.Frame.from_data(s["mean"], s["var"])
    kw = dict(covariance_type="full", frame=frame, n_components=K)
    stats = GK.mixture_pass(nb, X, None, None, centers=means, **kw)
    plan = G.estep_plan(G.m_step(stats, 1e-6)[0], frame)
    Xt, _ = tb.validate(X)
    for kwargs in (dict(plan=plan), dict(plan=None, centers=means)):
        _same_stats(GK.mixture_pass(nb, X, None, **kwargs, **kw),
                    GK.mixture_pass(tb, Xt, None, **kwargs, **kw), 1e-10)
    _close(GK.log_joint(nb, X, plan), GK.log_joint(tb, Xt, plan), 1e-10, "log_joint")
