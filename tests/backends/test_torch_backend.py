"""The PyTorch backend gives NumPy's numbers, on tensors, without host syncs in its loop.

Every kernel is compared with :class:`emix.backends.numpy_backend.NumpyBackend` on the
same plan (1e-10 relative in float64, 1e-4 in float32); the estimator is compared end to
end from identical starting parameters. CUDA tests run only where a GPU is present.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import emix  # noqa: E402
from emix._validation import check_array  # noqa: E402
from emix.backends import NumpyBackend, resolve_backend  # noqa: E402
from emix.backends.torch_backend import TorchBackend, _ieee_fp32  # noqa: E402
from emix.families import gaussian as G  # noqa: E402
from emix.families import gaussian_kernel as GK  # noqa: E402


CTS = G.COVARIANCE_TYPES
DTYPES = (np.float64, np.float32)
RTOL = {np.float64: 1e-10, np.float32: 1e-4}
K = 3
MEANS = [[0.0, 0.0, 0.0], [6.0, 6.0, 0.0], [0.0, 7.0, 7.0]]
SDS = [1.0, 1.5, 0.7]

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _data(rng, dtype, n=2500):
    labels = rng.choice(K, size=n, p=[0.3, 0.3, 0.4])
    X = np.asarray(MEANS)[labels] + rng.normal(size=(n, 3)) * np.asarray(SDS)[labels, None]
    # An offset and a scale far from 1 exercise the frame (centre and power-of-two scale).
    return (X * 40.0 + 1000.0).astype(dtype)


def _close(a, b, rtol, what=""):
    """Equal to ``rtol`` relative to the array's largest magnitude."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    scale = max(float(np.max(np.abs(a))), 1e-300)
    err = float(np.max(np.abs(a - b))) / scale
    assert err <= rtol, f"{what}: relative difference {err:.3g} > {rtol:g}"


def _assert_stats_equal(a: G.GaussianStats, b: G.GaussianStats, rtol, check_params=True):
    assert isinstance(b.resp_moments, np.ndarray) and b.resp_moments.dtype == np.float64
    assert b.resp_moments.shape == a.resp_moments.shape
    _close(a.resp_moments, b.resp_moments, rtol, "resp_moments")
    if a.scatter is None:
        assert b.scatter is None
    else:
        assert b.scatter.dtype == np.float64
        _close(a.scatter, b.scatter, rtol, "scatter")
    if a.loglik == 0.0:
        assert b.loglik == 0.0
    else:
        assert abs(a.loglik - b.loglik) <= rtol * abs(a.loglik), (a.loglik, b.loglik)
    assert b.weight_sum == pytest.approx(a.weight_sum, rel=1e-12)
    assert b.n_rows == a.n_rows
    # Moments taken about the same per-component anchors (or both about the origin).
    a_anchors, b_anchors = getattr(a, "anchors", None), getattr(b, "anchors", None)
    assert (a_anchors is None) == (b_anchors is None)
    if a_anchors is not None:
        # Anchors are reference points (the statistics are exact about any of them);
        # means of given responsibilities come out round-off apart.
        np.testing.assert_allclose(b_anchors, a_anchors, rtol=rtol, atol=rtol * 1e-2)
    if check_params:
        # What the M-step reads off both is the same, whatever the representation.
        pa, _ = G.m_step(a, 1e-6)
        pb, _ = G.m_step(b, 1e-6)
        _close(pa.weights, pb.weights, 10 * rtol, "weights")
        _close(pa.means, pb.means, 10 * rtol, "means")
        _close(pa.covariances, pb.covariances, 10 * rtol, "covariances")
    assert isinstance(b.loglik, float) and isinstance(b.weight_sum, float)


class _Setup:
    """Data on both backends, a frame, centres and a plan from one M-step."""

    def __init__(self, rng, ct, dtype, weighted):
        self.np = NumpyBackend()
        self.tb = TorchBackend("cpu")
        X = _data(rng, dtype)
        self.Xn, _ = self.np.validate(X)
        self.Xt, _ = self.tb.validate(X)
        assert self.Xt.dtype == (torch.float32 if dtype == np.float32 else torch.float64)
        self.w = rng.random(X.shape[0]) * 2.0 if weighted else None
        self.wt = None if self.w is None else self.tb.asarray_like(self.w, self.Xt)
        summary = self.np.column_summary(self.Xn, self.w)
        self.frame = G.Frame.from_data(summary["mean"], summary["var"])
        self.centers = np.asarray(MEANS) * 40.0 + 1000.0 + rng.normal(size=(K, 3))
        self.ct = ct
        stats = self.pass_np(centers=self.centers)
        params, _ = G.m_step(stats, 1e-6)
        self.plan = G.estep_plan(params, self.frame)

    def kw(self, **extra):
        return dict(covariance_type=self.ct, frame=self.frame, n_components=K, **extra)

    def pass_np(self, plan=None, **kw):
        return GK.mixture_pass(self.np, self.Xn, self.w, plan, **self.kw(**kw))

    def pass_torch(self, plan=None, **kw):
        return GK.mixture_pass(self.tb, self.Xt, self.wt, plan, **self.kw(**kw))


# --------------------------------------------------------------------------- kernels
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("ct", CTS)
def test_mixture_pass_with_plan_matches_numpy(rng, ct, dtype, weighted):
    s = _Setup(rng, ct, dtype, weighted)
    a = s.pass_np(s.plan)
    b = s.pass_torch(s.plan)
    _assert_stats_equal(a, b, RTOL[dtype])
    # Small blocks (not dividing N) give the same statistics as the default blocks.
    c = s.pass_torch(s.plan, block_size=97)
    _assert_stats_equal(b, c, 1e-12 if dtype == np.float64 else 1e-5)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("ct", CTS)
def test_mixture_pass_with_centers_matches_numpy(rng, ct, dtype, weighted):
    s = _Setup(rng, ct, dtype, weighted)
    a = s.pass_np(centers=s.centers)
    b = s.pass_torch(centers=s.centers, block_size=1000)
    _assert_stats_equal(a, b, RTOL[dtype])
    # Hard labels: the counts are whole numbers of rows (weighted: sums of weights).
    if not weighted:
        np.testing.assert_array_equal(b.nk, a.nk)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("ct", CTS)
def test_mixture_pass_with_resp_matches_numpy(rng, ct, dtype, weighted):
    s = _Setup(rng, ct, dtype, weighted)
    resp = rng.random((s.Xn.shape[0], K))
    resp /= resp.sum(axis=1, keepdims=True)
    before = resp.copy()
    a = s.pass_np(resp=lambda i, j: resp[i:j])
    b = s.pass_torch(resp=lambda i, j: resp[i:j], block_size=600)
    _assert_stats_equal(a, b, RTOL[dtype])
    np.testing.assert_array_equal(resp, before)  # the caller's array is not written


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("ct", CTS)
def test_log_joint_matches_numpy(rng, ct, dtype):
    s = _Setup(rng, ct, dtype, False)
    a = GK.log_joint(s.np, s.Xn, s.plan)
    b = GK.log_joint(s.tb, s.Xt, s.plan)
    assert isinstance(b, np.ndarray) and b.dtype == dtype and b.shape == a.shape
    _close(a, b, RTOL[dtype], "log_joint")
    _close(a, GK.log_joint(s.tb, s.Xt, s.plan, block_size=333), RTOL[dtype], "blocked")


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
def test_column_summary_matches_numpy(rng, dtype, weighted):
    s = _Setup(rng, "diag", dtype, weighted)
    a = s.np.column_summary(s.Xn, s.w)
    b = s.tb.column_summary(s.Xt, s.wt, block=700)
    assert b["n"] == a["n"]
    for key in ("mean", "var", "min", "max"):
        assert isinstance(b[key], np.ndarray) and b[key].dtype == np.float64
        np.testing.assert_allclose(b[key], a[key], rtol=1e-12, err_msg=key)


def test_small_helpers(rng):
    tb = TorchBackend("cpu")
    X = rng.normal(size=(50, 3)).astype(np.float32)
    Xt, names = tb.validate(X)
    assert names is None
    assert tb.numpy_dtype(Xt) == np.float32
    rows = tb.take_rows(Xt, np.array([4, 0, 49]))
    assert rows.dtype == np.float64 and rows.shape == (3, 3)
    np.testing.assert_array_equal(rows, X[[4, 0, 49]].astype(np.float64))
    back = tb.to_numpy(Xt)
    assert isinstance(back, np.ndarray) and back.dtype == np.float32
    np.testing.assert_array_equal(back, X)
    w = tb.asarray_like(np.arange(50), Xt)
    assert w.dtype == torch.float64 and w.device == Xt.device


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("ct", CTS)
def test_far_apart_components_use_the_anchored_form_like_numpy(rng, ct, dtype, weighted):
    """Clusters 1e4 standard deviations apart: the expanded form would cancel, so both
    backends take each component's rows about its own mean, with the same numbers."""
    if not hasattr(G.EStepPlan, "needs_anchors"):
        pytest.skip("this version of the Gaussian family has no anchored E-step")
    n = 3000
    labels = rng.choice(2, size=n)
    X = (np.array([[0.0, 0.0], [1e4, -1e4]])[labels] + rng.normal(size=(n, 2))).astype(dtype)
    nb, tb = NumpyBackend(), TorchBackend("cpu")
    w = rng.random(n) * 2.0 if weighted else None
    Xt, _ = tb.validate(X)
    wt = None if w is None else tb.asarray_like(w, Xt)
    summary = nb.column_summary(X, w)
    frame = G.Frame.from_data(summary["mean"], summary["var"])
    kw = dict(covariance_type=ct, frame=frame, n_components=2)
    centers = np.array([[0.5, 0.5], [1e4 - 0.5, -1e4 + 0.5]])
    a = GK.mixture_pass(nb, X, w, None, centers=centers, **kw)
    b = GK.mixture_pass(tb, Xt, wt, None, centers=centers, block_size=700, **kw)
    _assert_stats_equal(a, b, RTOL[dtype])
    params, _ = G.m_step(a, 1e-6)
    plan = G.estep_plan(params, frame)
    assert plan.needs_anchors(dtype)
    a = GK.mixture_pass(nb, X, w, plan, **kw)
    b = GK.mixture_pass(tb, Xt, wt, plan, block_size=700, **kw)
    _assert_stats_equal(a, b, RTOL[dtype])
    np.testing.assert_array_equal(b.anchors, plan.anchors)
    # The covariances the M-step reads off them are right to the dtype's precision.
    new_np, _ = G.m_step(a, 1e-6)
    new_t, _ = G.m_step(b, 1e-6)
    np.testing.assert_allclose(new_t.covariances, new_np.covariances, rtol=RTOL[dtype] * 10)
    _close(GK.log_joint(nb, X, plan), GK.log_joint(tb, Xt, plan, block_size=500), RTOL[dtype], "lj")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("ct", CTS)
def test_zero_weight_component_gets_exactly_zero(rng, ct, dtype):
    """log w = -inf: responsibilities exactly 0 on both backends, as the M-step expects."""
    s = _Setup(rng, ct, dtype, False)
    params, _ = G.m_step(s.pass_np(centers=s.centers), 1e-6)
    w = params.weights.copy()
    w[1] = 0.0
    params = G.GaussianMixtureParams(
        w / w.sum(), params.means, params.covariances, params.precisions_cholesky, ct
    )
    plan = G.estep_plan(params, s.frame)
    with np.errstate(invalid="ignore"):
        # OpenBLAS may multiply the -inf by padding zeros internally and raise the
        # invalid flag, though the result it returns is right; not this backend's concern.
        a = s.pass_np(plan)
    b = s.pass_torch(plan)
    assert a.nk[1] == 0.0 and b.nk[1] == 0.0
    _assert_stats_equal(a, b, RTOL[dtype], check_params=False)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
def test_softmax_matches_numpy_on_edge_rows(dtype):
    """Far components, -inf components and zero-density rows: NumPy's answers."""
    from emix.backends.numpy_backend import _softmax_cols
    from emix.backends.torch_backend import _exp_floor, _softmax_cols_

    inf = np.inf
    LT = np.array(
        [
            [0.0, -3.0, -inf, -1e4, -200.0],
            [-1.0, -3.0, -inf, -inf, -100.0],
            [-1e3, -inf, -inf, -1e4 + 30.0, -100.0 - 60.0],
        ],
        dtype=dtype,
    )
    with np.errstate(invalid="ignore"):
        r_np = LT.copy()
        lse_np = _softmax_cols(r_np)
    r_t = torch.from_numpy(LT.copy())
    lse_t = _softmax_cols_(r_t, _exp_floor(r_t.dtype)).numpy()
    np.testing.assert_array_equal(np.isfinite(lse_t), np.isfinite(lse_np))
    assert lse_t[2] == -inf  # the zero-density row tells the caller through -inf
    ok = np.isfinite(lse_np)
    np.testing.assert_allclose(lse_t[ok], lse_np[ok], rtol=RTOL[dtype])
    # Dropped: only responsibilities under eps^3 of the row's largest (documented bound).
    atol = float(np.exp(_exp_floor(r_t.dtype)))
    np.testing.assert_allclose(r_t.numpy()[:, ok], r_np[:, ok], rtol=RTOL[dtype], atol=atol)
    assert r_t[1, 3] == 0.0 and r_t[2, 0] == 0.0  # -inf and far: exactly zero


def test_read_only_input_is_accepted_without_copy_or_warning(rng):
    X = _data(rng, np.float64, n=300)
    X.setflags(write=False)
    Xt, _ = TorchBackend("cpu").validate(X)
    assert Xt.data_ptr() == X.ctypes.data  # shared, not copied
    w = np.ones(300)
    w.setflags(write=False)
    wt = TorchBackend("cpu").asarray_like(w, Xt)
    assert wt.dtype == torch.float64


def test_block_rows_from_device_memory():
    from emix.backends.torch_backend import block_rows

    K, D = 16, 32
    M = G.n_features_of("full", D)
    kern = GK._Kernel(None, G.Frame.identity(D), "full", K, D, np.float32, None, None, None)
    per_row = kern.row_bytes(4, True)
    assert per_row > (M + K) * 4  # the feature block and the log-joint at least
    # A large card: case (b), a million rows, is one block in float32 and in float64.
    assert block_rows(1_000_000, per_row, 139 << 30) == 1_000_000
    assert block_rows(1_000_000, kern.row_bytes(8, True), 139 << 30) == 1_000_000
    # An 8 GiB card: two blocks in float64.
    assert block_rows(1_000_000, kern.row_bytes(8, True), 8 << 30) == 500_000
    # The budget is half the free memory and at most 8 GiB; blocks are evened out.
    rows = block_rows(10_000_000, per_row, 139 << 30)
    assert rows * per_row <= 8 << 30
    assert -(-10_000_000 // rows) == -(-10_000_000 // ((8 << 30) // per_row))
    # A tiny budget still makes blocks of about 1024 rows (ten even blocks here).
    assert block_rows(10_000, per_row, 4 << 20) == 1000
    assert block_rows(0, per_row, 1 << 30) == 1


# --------------------------------------------------------------------------- float32
def _tf32_state():
    out = []
    for get in (
        lambda: torch.backends.cuda.matmul.fp32_precision,
        lambda: torch.backends.mkldnn.matmul.fp32_precision,
        torch.get_float32_matmul_precision,
    ):
        try:
            out.append(get())
        except (RuntimeError, AttributeError):
            out.append(None)
    return out


@pytest.mark.parametrize("setting", ["high", "medium"])
def test_reduced_precision_settings_are_overridden_and_restored(rng, setting):
    """TF32/bf16 matmul settings do not leak into the kernels, and survive them."""
    s = _Setup(rng, "full", np.float32, False)
    expected = s.pass_np(s.plan)
    original = _tf32_state()
    torch.set_float32_matmul_precision(setting)
    try:
        user = _tf32_state()
        with _ieee_fp32():
            inside = _tf32_state()
        got = s.pass_torch(s.plan)
        assert _tf32_state() == user
    finally:
        torch.set_float32_matmul_precision("highest")
        torch.backends.cuda.matmul.fp32_precision = original[0]
        torch.backends.mkldnn.matmul.fp32_precision = original[1]
    assert _tf32_state() == original
    assert inside[0] == "ieee" and inside[2] == "highest"
    assert inside[1] in ("ieee", "none")
    _assert_stats_equal(expected, got, RTOL[np.float32])


# --------------------------------------------------------------------------- end to end
def _initial(ct, D=3, scale=40.0):
    means = np.asarray(MEANS) * scale + 1000.0 + 3.0
    weights = np.array([0.3, 0.3, 0.4])
    p = 1.0 / (1.5 * scale) ** 2
    precisions = {
        "full": np.stack([np.eye(D) * p] * K),
        "tied": np.eye(D) * p,
        "diag": np.full((K, D), p),
        "spherical": np.full(K, p),
    }[ct]
    return dict(means_init=means, weights_init=weights, precisions_init=precisions)


def _fit_pair(X, ct, **kw):
    ref = emix.GaussianMixture(K, covariance_type=ct, random_state=0, **_initial(ct), **kw)
    ref.fit(X)
    return ref


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("ct", CTS)
def test_fit_matches_numpy(rng, ct, dtype):
    X = _data(rng, dtype, n=3000)
    ref = _fit_pair(X, ct)
    got = _fit_pair(X, ct, device="cpu")
    assert got.n_iter_ == ref.n_iter_
    assert got.converged_ == ref.converged_
    assert abs(got.lower_bound_ - ref.lower_bound_) <= RTOL[dtype] * abs(ref.lower_bound_)
    np.testing.assert_allclose(got.lower_bounds_, ref.lower_bounds_, rtol=RTOL[dtype])
    assert got.means_.dtype == dtype
    np.testing.assert_allclose(got.means_, ref.means_, rtol=10 * RTOL[dtype], atol=1e-3)
    for method in ("predict", "predict_proba", "score_samples"):
        a = getattr(ref, method)(X)
        b = getattr(got, method)(X)
        assert isinstance(b, np.ndarray), method
        if method == "predict":
            assert np.mean(a == b) > 0.999
        else:
            np.testing.assert_allclose(b, a, rtol=RTOL[dtype] * 10, atol=RTOL[dtype] * 10)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
def test_fit_far_apart_clusters_matches_numpy(rng, dtype):
    """The anchored E-step end to end (float32 needs it here)."""
    n = 3000
    labels = rng.choice(3, size=n)
    centres = np.array([[0.0, 0.0], [3e3, 0.0], [0.0, -3e3]])
    X = (centres[labels] + rng.normal(size=(n, 2)) * [1.0, 2.0]).astype(dtype)
    init = dict(
        means_init=centres + 0.5,
        weights_init=np.full(3, 1 / 3),
        precisions_init=np.stack([np.eye(2) * 0.5] * 3),
    )
    ref = emix.GaussianMixture(3, random_state=0, **init).fit(X)
    got = emix.GaussianMixture(3, random_state=0, device="cpu", **init).fit(X)
    assert got.n_iter_ == ref.n_iter_
    assert abs(got.lower_bound_ - ref.lower_bound_) <= RTOL[dtype] * abs(ref.lower_bound_)
    np.testing.assert_allclose(got.covariances_, ref.covariances_, rtol=10 * RTOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
def test_tensor_input_selects_torch_backend(rng, dtype):
    X = _data(rng, dtype, n=2000)
    Xt = torch.from_numpy(X)
    backend = resolve_backend(Xt, None)
    assert isinstance(backend, TorchBackend) and backend.device == Xt.device
    assert isinstance(resolve_backend(X, None), NumpyBackend)
    assert isinstance(resolve_backend(X, "cpu"), TorchBackend)

    w = rng.random(X.shape[0]) + 0.5
    ref = _fit_pair(X, "full", device="cpu").fit(X, sample_weight=w)
    got = _fit_pair(X, "full")  # device None: the tensor chooses torch
    got.fit(Xt, sample_weight=torch.from_numpy(w))
    assert got.n_iter_ == ref.n_iter_
    assert got.lower_bound_ == pytest.approx(ref.lower_bound_, rel=RTOL[dtype])
    assert isinstance(got.means_, np.ndarray) and got.means_.dtype == dtype
    for method in ("predict", "predict_proba", "score_samples"):
        out = getattr(got, method)(Xt)
        assert isinstance(out, np.ndarray), method
    assert got.predict_proba(Xt).dtype == dtype
    np.testing.assert_allclose(got.score_samples(Xt), got.score_samples(X), rtol=1e-6)
    assert np.isfinite(got.score(Xt)) and np.isfinite(got.bic(Xt))


def test_fit_on_tensor_with_grad_and_low_precision(rng):
    X = _data(rng, np.float64, n=1500)
    Xt = torch.tensor(X, requires_grad=True)
    gm = _fit_pair(Xt, "diag")
    assert gm.means_.dtype == np.float64
    tb = TorchBackend("cpu")
    for dt, expected in [
        (torch.float16, torch.float32),
        (torch.bfloat16, torch.float32),
        (torch.int32, torch.float64),
        (torch.bool, torch.float64),
        (torch.float32, torch.float32),
    ]:
        out, _ = tb.validate(torch.ones(4, 2, dtype=dt))
        assert out.dtype == expected, dt
    one_d, _ = tb.validate(torch.arange(5.0))
    assert one_d.shape == (5, 1)


# --------------------------------------------------------------------------- bad input
BAD_INPUTS = {
    "nan": lambda: np.array([[1.0, 2.0], [3.0, np.nan], [5.0, 6.0], [np.nan, 1.0]]),
    "inf": lambda: np.array([[1.0, 2.0], [3.0, 4.0], [np.inf, 6.0]]),
    "nan-and-inf": lambda: np.array([[np.nan, 2.0], [3.0, -np.inf]]),
    "many-nan": lambda: np.where(np.eye(12, 8) > 0, np.nan, 1.0),
    "empty": lambda: np.empty((0, 3)),
    "no-columns": lambda: np.empty((4, 0)),
    "3-d": lambda: np.ones((2, 3, 4)),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_tensor_gives_check_array_message(case):
    arr = BAD_INPUTS[case]()
    with pytest.raises(emix.InputError) as expected:
        check_array(arr)
    with pytest.raises(emix.InputError) as got:
        TorchBackend("cpu").validate(torch.from_numpy(arr))
    assert str(got.value) == str(expected.value)


def test_nan_in_tensor_names_the_row(rng):
    X = torch.from_numpy(_data(rng, np.float64, n=200))
    X[17, 1] = float("nan")
    with pytest.raises(emix.InputError, match=r"NaN in 1 cell\(s\): rows 17; column 1"):
        emix.GaussianMixture(2, missing="error").fit(X)


def test_wrong_feature_count_on_tensor(rng):
    X = _data(rng, np.float64, n=500)
    gm = _fit_pair(X, "full", device="cpu")
    with pytest.raises(
        emix.InputError,
        match="X has 1 features, but GaussianMixture is expecting 3 features as input",
    ):
        gm.predict(torch.ones(5, 1, dtype=torch.float64))
    with pytest.raises(emix.InputError, match="1-D with 4 values"):
        gm.predict(torch.ones(4))
    with pytest.raises(emix.InputError) as from_numpy:
        TorchBackend("cpu").validate(np.ones(6), n_features=3, estimator_name="GaussianMixture")
    with pytest.raises(emix.InputError) as from_tensor:
        TorchBackend("cpu").validate(torch.ones(6), n_features=3, estimator_name="GaussianMixture")
    assert str(from_tensor.value) == str(from_numpy.value)


def test_complex_tensor_rejected():
    with pytest.raises(emix.InputError, match="Complex data not supported"):
        TorchBackend("cpu").validate(torch.ones(3, 2, dtype=torch.complex64))


def test_unknown_device_is_an_input_error(rng):
    with pytest.raises(emix.InputError, match="'gpu'"):
        TorchBackend("gpu")
    with pytest.raises(emix.InputError, match="'gpu'"):
        emix.GaussianMixture(2, device="gpu").fit(_data(rng, np.float64, n=100))
    with pytest.raises(emix.InputError, match="'mps' is not supported"):
        TorchBackend("mps")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_requested_without_cuda(rng):
    with pytest.raises(emix.InputError, match=r"torch.cuda.is_available\(\) is False"):
        TorchBackend("cuda")
    with pytest.raises(emix.InputError, match="device='cuda:1'"):
        emix.GaussianMixture(2, device="cuda:1").fit(_data(rng, np.float64, n=100))


# --------------------------------------------------------------------------- imports
def _run_python(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_import_emix_does_not_import_torch():
    r = _run_python(
        """
        import sys
        import emix, emix.backends
        assert 'torch' not in sys.modules, 'importing emix imported torch'
        import numpy as np
        emix.GaussianMixture(2, random_state=0).fit(np.random.default_rng(0).normal(size=(50, 2)))
        assert 'torch' not in sys.modules, 'a NumPy fit imported torch'
        """
    )
    assert r.returncode == 0, r.stderr


def test_missing_torch_gives_install_hint():
    r = _run_python(
        """
        import sys
        sys.modules['torch'] = None  # what `import torch` sees when it is not installed
        import numpy as np
        import emix
        try:
            emix.GaussianMixture(2, device='cuda').fit(np.ones((10, 2)))
        except emix.InputError as exc:
            print(exc)
        else:
            raise SystemExit('no error')
        """
    )
    assert r.returncode == 0, r.stderr
    assert "device='cuda' needs PyTorch: pip install 'emix[torch]'" in r.stdout


# --------------------------------------------------------------------------- CUDA
@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("ct", CTS)
def test_cuda_pass_and_fit_match_numpy(rng, ct, dtype):
    s = _Setup(rng, ct, dtype, True)
    tb = TorchBackend("cuda")
    Xc, _ = tb.validate(s.Xn)
    assert Xc.device.type == "cuda"
    wc = tb.asarray_like(s.w, Xc)
    kw = s.kw()
    _assert_stats_equal(s.pass_np(s.plan), GK.mixture_pass(tb, Xc, wc, s.plan, **kw), RTOL[dtype])
    _assert_stats_equal(
        s.pass_np(centers=s.centers),
        GK.mixture_pass(tb, Xc, wc, None, centers=s.centers, **kw),
        RTOL[dtype],
    )
    _close(GK.log_joint(s.np, s.Xn, s.plan), GK.log_joint(tb, Xc, s.plan), RTOL[dtype], "log_joint")

    X = _data(rng, dtype, n=3000)
    ref = _fit_pair(X, ct)
    got = _fit_pair(X, ct, device="cuda")
    assert got.n_iter_ == ref.n_iter_
    assert abs(got.lower_bound_ - ref.lower_bound_) <= RTOL[dtype] * abs(ref.lower_bound_)
    # A CUDA tensor picks the CUDA backend by itself; outputs are host arrays.
    on_gpu = _fit_pair(torch.from_numpy(X).cuda(), ct)
    assert on_gpu.lower_bound_ == pytest.approx(got.lower_bound_, rel=RTOL[dtype])
    assert isinstance(on_gpu.predict_proba(torch.from_numpy(X).cuda()), np.ndarray)


@pytest.mark.cuda
@needs_cuda
def test_cuda_tf32_does_not_change_float32_results(rng):
    s = _Setup(rng, "full", np.float32, False)
    tb = TorchBackend("cuda")
    Xc, _ = tb.validate(s.Xn)
    expected = s.pass_np(s.plan)
    before = torch.backends.cuda.matmul.fp32_precision
    torch.backends.cuda.matmul.fp32_precision = "tf32"
    try:
        got = GK.mixture_pass(tb, Xc, None, s.plan, **s.kw())
        assert torch.backends.cuda.matmul.fp32_precision == "tf32"
    finally:
        torch.backends.cuda.matmul.fp32_precision = before
    _assert_stats_equal(expected, got, RTOL[np.float32])


@pytest.mark.cuda
@needs_cuda
def test_cuda_pass_does_not_synchronise_per_block(rng):
    """The number of host syncs in a pass does not grow with the number of blocks."""
    import warnings

    s = _Setup(rng, "full", np.float32, True)
    tb = TorchBackend("cuda")
    Xc, _ = tb.validate(s.Xn)
    wc = tb.asarray_like(s.w, Xc)

    def syncs(block_size):
        torch.cuda.synchronize()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                GK.mixture_pass(tb, Xc, wc, s.plan, block_size=block_size, **s.kw())
            finally:
                torch.cuda.set_sync_debug_mode("default")
        return sum("synchroniz" in str(w.message) for w in caught)

    syncs(2000)  # warm-up: lazy initialisation (cuBLAS handles, allocator) may sync once
    few, many = syncs(2000), syncs(50)
    assert many == few, (few, many)
    assert few <= 6  # parameter uploads and the one download of the statistics
