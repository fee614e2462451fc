"""PyTorch kernels of the Gaussian-mixture E-step, for CPU and CUDA tensors.

The interface mirrors :class:`emix.backends.numpy_backend.NumpyBackend` method for
method, and the arithmetic is the same: per block of rows, build the feature map
``T(z)`` once (stored transposed, ``FT`` of shape (M, rows), as in the NumPy backend),
take the log-joint as the single product ``eta^T @ FT``, turn it into responsibilities
with a soft-max, and add ``R^T @ FT^T`` to the statistics. What changes is
where the work happens and when the host waits for it:

* Everything of size N stays on the tensor's device. The statistics (moments, scatter,
  log-likelihood, weight total) are accumulated in float64 *on the device* and come back
  to the host in one transfer at the end of the pass, so the block loop never
  synchronises (no ``.item()``, no ``.cpu()``, no boolean-mask indexing inside it).
* Block temporaries (``FT``, the log-joint/responsibility block, the tied-type product)
  are allocated once per pass (again only for a short last block) and every kernel
  writes into them with ``out=`` or in place. Features are rows, so each elementwise
  kernel reads and writes contiguous memory (coalesced on a GPU).
* On CUDA the default block is large (``FT`` about 256 MiB: ~120k rows at D=32 in
  float32) so that a million-row pass is a handful of big kernels; on CPU it is NumPy's
  cache-sized default.
* Responsibilities below eps^3 of a row's largest are exactly 0 (see ``_exp_floor``):
  it keeps CPU kernels off x86's subnormal slow path and changes no statistic.

Where the expanded quadratic form would cancel (``EStepPlan.needs_anchors``: components
far from the frame's centre relative to their spread, mostly in float32), and for
initial passes from centres or given responsibilities, the pass takes each component's
rows about its own anchor exactly when and as the NumPy backend does
(``GaussianStats.anchors``). There the K components are batched into one (K, rows, D)
product per block (``torch.bmm``) instead of a Python loop over components, so a GPU
still sees a few large kernels per block.

Precision
---------
Products run in the data's dtype; block results are added into float64 accumulators, as
in the NumPy backend. Float32 products are forced to IEEE single precision for the
duration of a kernel: with TF32 enabled (``torch.backends.cuda.matmul.fp32_precision =
'tf32'`` or ``torch.set_float32_matmul_precision('high')``, the default of some
containers and training scripts) cuBLAS rounds the inputs of ``F @ eta`` to a 10-bit
mantissa. The log-joint is a sum of large terms of opposite sign (``-0.5 z^T P z`` and
the constant), so that rounding costs about three decimal digits and makes the float32
log-likelihood disagree with NumPy's far beyond float32 round-off, and can make it fall
between EM iterations (which the convergence monitor reports as a bug). The same applies
to oneDNN's reduced precisions (``'bf16'``/``'tf32'``) on CPU. The user's settings are
restored when the kernel returns.

Sample weights
--------------
:meth:`TorchBackend.asarray_like` keeps sample weights in float64 on the device (weights
are few, N values, and float64 keeps the weighted log-likelihood and weight total
exact); each pass casts them once to the data's dtype for the responsibility product,
exactly as the NumPy backend does.

torch is imported only when this module is, which happens only when a fit asks for it.
"""

from __future__ import annotations

import contextlib
import warnings

import numpy as np

from .._validation import as_2d, check_array, check_shape, raise_nan_inf
from ..exceptions import InputError, NonNumericError
from ..families.gaussian import (
    EStepPlan,
    GaussianStats,
    first_moment_offset,
    n_features_of,
    pass_anchors,
)
from .numpy_backend import default_block_size

try:  # pragma: no cover - exercised through a subprocess test without torch
    import torch
except ImportError:  # pragma: no cover
    torch = None

__all__ = ["TorchBackend", "cuda_block_size"]

# On CUDA the feature block F is sized to about this many bytes: big enough that a
# pass over a million rows is a few large kernels, small enough to leave room on a GPU.
_CUDA_BLOCK_BYTES = 256 << 20
# column_summary's float64 temporaries on CUDA, in elements (256 MiB).
_CUDA_SUMMARY_ELEMENTS = 1 << 25


def cuda_block_size(n_rows: int, n_components: int, n_feature_cols: int, itemsize: int) -> int:
    """Rows per block on a GPU so that the widest block temporary is ~256 MiB."""
    width = max(n_components, n_feature_cols, 1)
    rows = max(1024, _CUDA_BLOCK_BYTES // (width * itemsize))
    return int(min(n_rows, rows)) if n_rows > 0 else 1


# --------------------------------------------------------------------------- precision
def _legacy_matmul_precision():
    try:
        return torch.get_float32_matmul_precision()
    except RuntimeError:
        # torch raises when the legacy and the new (fp32_precision) settings disagree.
        return None


@contextlib.contextmanager
def _ieee_fp32():
    """Run float32 matrix products in IEEE single precision (no TF32 or bf16).

    Uses torch's ``fp32_precision`` settings (cuBLAS and oneDNN) and keeps the legacy
    ``float32_matmul_precision`` consistent with them, because torch refuses to run a
    cuBLAS product when the two disagree. Restores both on exit. Does nothing (and costs
    nothing) in the default configuration, where both already say IEEE.
    """
    subs = []
    for owner in ("cuda", "mkldnn"):
        mod = getattr(torch.backends, owner, None)
        mm = getattr(mod, "matmul", None)
        prec = getattr(mm, "fp32_precision", None)
        if prec is not None and prec not in ("ieee", "none"):
            subs.append((mm, prec))
    legacy = _legacy_matmul_precision()
    fix_legacy = legacy not in (None, "highest")
    if not subs and not fix_legacy:
        yield
        return
    if fix_legacy:
        torch.set_float32_matmul_precision("highest")
    for mm, _ in subs:
        mm.fp32_precision = "ieee"
    try:
        yield
    finally:
        if fix_legacy:
            torch.set_float32_matmul_precision(legacy)
        # set_float32_matmul_precision also rewrites the per-backend settings; put back
        # exactly what the user had.
        for mm, prec in subs:
            mm.fp32_precision = prec


def _from_numpy(a: np.ndarray):
    """A CPU tensor sharing ``a``'s memory (emix never writes into it)."""
    if any(s < 0 for s in a.strides):
        a = np.ascontiguousarray(a)
    with warnings.catch_warnings():
        # Read-only arrays (pandas copy-on-write, memory maps) are fine: we only read.
        warnings.filterwarnings("ignore", message=".*not writable.*", category=UserWarning)
        return torch.from_numpy(a)


# --------------------------------------------------------------------------- kernels
def _build_features(FT, Xb, center, inv_scale: float, ct: str, D: int):
    """Write the feature map ``T(z)`` of a block, transposed, into ``FT`` (M, rows).

    Features are rows of ``FT`` (the NumPy backend's layout): every elementwise kernel
    below reads and writes contiguous rows, which is what a GPU's memory system wants
    (coalesced) as much as a CPU's vector units. Both products take ``FT`` directly.

    The packed upper triangle of ``z z^T`` is written one triangle row at a time (D
    broadcast products straight into slices of ``FT``). Measured on CPU this beats
    gathering with triangle indices (``z[iu] * z[ju]``) 3-5x for D = 8..64, and on a
    GPU it writes each feature once with no (D^2 x rows) temporaries.

    Returns the view ``z`` (D, rows).
    """
    off = first_moment_offset(ct, D)
    z = FT[off : off + D]
    torch.sub(Xb.T, center[:, None], out=z)
    if inv_scale != 1.0:
        z.mul_(inv_scale)
    if ct == "full":
        row = 0
        for d in range(D):
            torch.mul(z[d], z[d:], out=FT[row : row + D - d])
            row += D - d
    elif ct == "diag":
        torch.mul(z, z, out=FT[:D])
    elif ct == "spherical":
        torch.sum(z * z, dim=0, out=FT[0])
    return z


# Responsibilities below eps^3 of the row's largest are set to exactly 0 (``exp`` of the
# log-joint minus the row maximum below 3 log(eps): -47.8 in float32, -108.1 in float64).
# Summed over even 1/eps^2 rows they stay under one ulp of a responsibility of 1, so no
# statistic moves, and an empty component's total is still far under the M-step's
# "empty" threshold. Why bother: left alone, those values are tiny or subnormal, and
# torch's CPU exp and MKL's GEMM (multiplying them by the features) take x86's
# subnormal slow path; measured 3-30x slower per kernel on well-separated clusters,
# the common case. GPUs have no such penalty and get the identical arithmetic.
def _exp_floor(dtype) -> float:
    return 3.0 * float(np.log(torch.finfo(dtype).eps))


def _softmax_cols_(LT, floor: float):
    """Turn a log-joint block (K, rows) into responsibilities in place.

    Returns log p(x) of every row, shape (rows,). No host synchronisation: non-finite
    maxima are masked with ``masked_fill`` rather than boolean indexing.
    """
    m = LT.amax(dim=0, keepdim=True)
    # A row with zero density under every component has m = -inf; keep the arithmetic
    # finite and let its log-likelihood (-inf, from m itself) tell the caller.
    LT.sub_(m.masked_fill(~torch.isfinite(m), 0.0))
    far = LT < floor
    LT.clamp_(min=floor)  # exp never sees the underflow range ...
    LT.exp_()
    LT.masked_fill_(far, 0.0)  # ... and what it would have underflowed is exactly 0
    s = LT.sum(dim=0, keepdim=True)
    LT.div_(s)
    return s.log_().add_(m)[0]


class _Buffers:
    """Per-pass block temporaries on the device, reallocated only for a short last block
    (so that every view handed to a kernel is contiguous)."""

    def __init__(self, shapes: dict, rows: int, dtype, device):
        self.shapes, self.dtype, self.device = shapes, dtype, device
        self._make(rows)

    def _make(self, rows: int):
        self.rows = rows
        self.arrays = {
            key: torch.empty((lead, rows), dtype=self.dtype, device=self.device)
            for key, lead in self.shapes.items()
        }
        self.arrays["FT"][-1] = 1.0

    def get(self, rows: int) -> dict:
        if rows != self.rows:
            self._make(rows)
        return self.arrays


class TorchBackend:
    """Runs mixture passes on torch tensors, on the CPU or a GPU.

    Parameters
    ----------
    device : str or torch.device
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``.

    Raises
    ------
    InputError
        When torch is not installed, or the device does not exist on this machine.
    """

    name = "torch"

    def __init__(self, device="cpu"):
        if torch is None:
            raise InputError(f"device={str(device)!r} needs PyTorch: pip install 'emix[torch]'")
        try:
            dev = torch.device(device)
        except (RuntimeError, TypeError, ValueError) as exc:
            raise InputError(
                f"device={device!r} is not a device torch knows ({exc}); use None (NumPy), "
                "'cpu' or 'cuda'"
            ) from None
        if dev.type == "cuda":
            available = torch.cuda.is_available()
            if not available:
                raise InputError(
                    f"device={str(device)!r} needs a CUDA GPU, but torch.cuda.is_available() "
                    f"is False (torch {torch.__version__}, CUDA build "
                    f"{torch.version.cuda or 'none'}); use device='cpu' or None"
                )
            count = torch.cuda.device_count()
            if dev.index is not None and dev.index >= count:
                raise InputError(
                    f"device={str(device)!r} does not exist: torch.cuda.is_available() is "
                    f"True but only {count} CUDA device(s) are visible "
                    f"(cuda:0..cuda:{count - 1})"
                )
        elif dev.type != "cpu":
            # MPS (Apple) has no float64, in which every statistic is accumulated; other
            # device types are untested.
            raise InputError(
                f"device={str(device)!r} is not supported: emix's torch backend runs on "
                "'cpu' and 'cuda' devices (statistics are accumulated in float64, which "
                f"{dev.type!r} may not provide); use device='cpu' or None"
            )
        self.device = dev

    def __repr__(self) -> str:
        return f"TorchBackend(device={str(self.device)!r})"

    # ------------------------------------------------------------------ arrays
    def validate(
        self,
        X,
        *,
        name: str = "X",
        min_rows: int = 1,
        allow_1d: bool = True,
        n_features: int | None = None,
        estimator_name: str = "the model",
    ):
        """Checked float32/float64 tensor (N, D) on this backend's device, and names.

        Tensors (any device) are checked where they are and moved to ``self.device``;
        anything else goes through :func:`emix._validation.check_array` first. The
        messages are those of ``check_array``.

        Returns
        -------
        X : torch.Tensor of shape (N, D), float32 or float64, on ``self.device``
        names : ndarray of str or None
            Column names of a DataFrame (tensors have none).
        """
        if isinstance(X, torch.Tensor):
            X = self._validate_tensor(X, name, min_rows, allow_1d, n_features, estimator_name)
            return X, None
        arr, names = check_array(
            X,
            name=name,
            min_rows=min_rows,
            allow_1d=allow_1d,
            n_features=n_features,
            estimator_name=estimator_name,
        )
        return _from_numpy(arr).to(self.device), names

    def _validate_tensor(self, X, name, min_rows, allow_1d, n_features, estimator_name):
        X = X.detach()
        dt = X.dtype
        if dt.is_complex:
            raise InputError(f"Complex data not supported: {name} has complex dtype {dt}")
        if dt in (torch.float32, torch.float64):
            target = dt
        elif dt.is_floating_point:
            # float16, bfloat16 and 8-bit floats compute in float32; wider ones in float64.
            target = torch.float32 if dt.itemsize < 4 else torch.float64
        elif dt == torch.bool or _is_integer(dt):
            target = torch.float64
        else:
            raise NonNumericError(f"{name} has dtype {dt}, which is not numeric")
        one_d = X.ndim == 1
        X = as_2d(X, name, allow_1d)
        check_shape(
            X.shape, name=name, min_rows=min_rows, n_features=n_features,
            estimator_name=estimator_name, one_d=one_d,
        )
        X = X.to(device=self.device, dtype=target)
        _check_finite_tensor(X, name)
        return X

    def to_numpy(self, X) -> np.ndarray:
        """A host NumPy array of ``X`` (tensors from any device; others via asarray)."""
        if isinstance(X, torch.Tensor):
            X = X.detach()
            if X.dtype == torch.bfloat16 or (X.dtype.is_floating_point and X.dtype.itemsize == 1):
                X = X.float()  # types NumPy does not have
            return X.cpu().numpy()
        return np.asarray(X)

    def asarray_like(self, a, X):
        """``a`` as a tensor on ``X``'s device.

        Floating arrays keep their precision (sample weights stay float64, see the module
        notes); others become float64.
        """
        if isinstance(a, torch.Tensor):
            t = a.detach()
        else:
            t = _from_numpy(np.asarray(a))
        if not t.dtype.is_floating_point:
            t = t.to(torch.float64)
        return t.to(X.device)

    def numpy_dtype(self, X) -> np.dtype:
        return np.dtype(np.float32) if X.dtype == torch.float32 else np.dtype(np.float64)

    def take_rows(self, X, idx) -> np.ndarray:
        """Rows ``idx`` of X as a float64 host array (k, D)."""
        idx_t = torch.as_tensor(np.asarray(idx, dtype=np.int64), device=X.device)
        return X.index_select(0, idx_t).to(torch.float64).cpu().numpy()

    def column_summary(self, X, w, block: int | None = None) -> dict:
        """Weighted column means, variances, minima and maxima in one blocked pass.

        Computed on X's device, returned in one transfer.

        Returns
        -------
        dict with ``mean``, ``var``, ``min``, ``max`` (each (D,), float64 ndarrays) and ``n``.
        """
        N, D = X.shape
        dev = X.device
        if w is not None and not isinstance(w, torch.Tensor):
            w = self.asarray_like(w, X)
        if w is not None:
            w = w.to(device=dev, dtype=torch.float64)
        if block is None:
            block = 65536
            if dev.type == "cuda":
                block = max(block, _CUDA_SUMMARY_ELEMENTS // max(D, 1))
        f64 = torch.float64
        with torch.no_grad():
            # A first block's mean as shift keeps the one-pass variance from cancelling.
            shift = X[: min(N, 1024)].mean(dim=0, dtype=f64)
            s1 = torch.zeros(D, dtype=f64, device=dev)
            s2 = torch.zeros(D, dtype=f64, device=dev)
            lo = torch.full((D,), float("inf"), dtype=f64, device=dev)
            hi = torch.full((D,), float("-inf"), dtype=f64, device=dev)
            for a in range(0, N, block):
                Xb = X[a : a + block]
                Z = Xb.to(f64) - shift
                if w is None:
                    s1 += Z.sum(dim=0)
                    s2 += (Z * Z).sum(dim=0)
                else:
                    wb = w[a : a + block]
                    s1 += wb @ Z
                    s2 += wb @ (Z * Z)
                torch.minimum(lo, Xb.amin(dim=0).to(f64), out=lo)
                torch.maximum(hi, Xb.amax(dim=0).to(f64), out=hi)
            if w is None:
                W = torch.full((1,), float(N), dtype=f64, device=dev)
            else:
                W = w.sum().reshape(1)
            host = torch.cat([s1, s2, lo, hi, shift, W]).cpu().numpy()  # one transfer
        s1, s2, lo, hi, shift = (host[i * D : (i + 1) * D].copy() for i in range(5))
        Wf = float(host[5 * D])
        m = s1 / Wf
        var = np.maximum(s2 / Wf - m * m, 0.0)
        return {"mean": m + shift, "var": var, "min": lo, "max": hi, "n": N}

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _block_size(block_size, N, K, M, dtype, device) -> int:
        if block_size is None:
            if device.type == "cpu":
                block_size = default_block_size(N, K, M, dtype.itemsize)
            else:
                block_size = cuda_block_size(N, K, M, dtype.itemsize)
        return max(1, min(int(block_size), max(N, 1)))

    def _as_device_tensor(self, X):
        if isinstance(X, torch.Tensor):
            return X if X.device == self.device else X.to(self.device)
        return _from_numpy(np.asarray(X)).to(self.device)

    # ------------------------------------------------------------------ passes
    def mixture_pass(
        self,
        X,
        sample_weight,
        plan: EStepPlan | None,
        *,
        covariance_type: str,
        frame,
        n_components: int,
        block_size: int | None = None,
        resp=None,
        centers=None,
    ) -> GaussianStats:
        """One pass over ``X``: responsibilities, statistics and log-likelihood.

        Parameters
        ----------
        X : torch.Tensor of shape (N, D), float32 or float64
        sample_weight : torch.Tensor or ndarray of shape (N,), or None
        plan : EStepPlan or None
            Parameters to compute responsibilities from. None when ``resp`` or
            ``centers`` is given.
        resp : callable (start, stop) -> ndarray of shape (stop - start, K), optional
            Responsibilities supplied by the caller (initialisation); each block is copied
            to the device.
        centers : ndarray of shape (K, D), optional
            Hard responsibilities: every row belongs to its nearest centre (computed on
            the device, in float64, as :func:`emix.em.init.nearest` does).

        Returns
        -------
        GaussianStats
            Float64 NumPy arrays, brought to the host in one transfer.
        """
        X = self._as_device_tensor(X)
        dev = X.device
        N, D = X.shape
        K = n_components
        ct = covariance_type
        dtype = X.dtype
        np_dtype = self.numpy_dtype(X)
        M = n_features_of(ct, D)
        block_size = self._block_size(block_size, N, K, M, dtype, dev)
        cz_np = None
        if plan is None and centers is not None:
            cz_np = (np.asarray(centers, dtype=np.float64) - frame.center) / frame.scale
        anchors = pass_anchors(
            plan, np_dtype, cz_np,
            lambda: self._resp_means(X, sample_weight, resp, frame, K, block_size),
        )
        with torch.no_grad(), _ieee_fp32():
            st = _PassState(self, X, sample_weight, frame, K, ct, block_size)
            cz = cz_sq = None
            if cz_np is not None:
                cz = torch.as_tensor(cz_np, device=dev)
                cz_sq = (cz * cz).sum(dim=1)

            def fill_given(LT, start, stop, zr64):
                """Responsibilities from the centres or the callable, into LT (K, rows)."""
                if centers is not None:
                    # The expression of emix.em.init._sq_dist, for the same labels.
                    d2 = (zr64 * zr64).sum(dim=1, keepdim=True) - 2.0 * (zr64 @ cz.T) + cz_sq
                    d2.clamp_(min=0.0)
                    labels = d2.argmin(dim=1)
                    LT.zero_()
                    LT.scatter_(0, labels[None, :], 1.0)
                else:
                    LT.copy_(_resp_block(resp, start, stop, K, np_dtype).T)

            if anchors is None:
                st.expanded_loop(plan, fill_given)
            else:
                st.anchored_loop(plan, anchors, fill_given)
            host = st.download()  # the pass's one device-to-host transfer
        n_mom = K * M
        moments = host[:n_mom].reshape(K, M).copy()
        ll = float(host[n_mom]) if plan is not None else 0.0
        wsum_f = float(host[n_mom + 1])
        scatter_np = host[n_mom + 2 :].reshape(D, D).copy() if ct == "tied" else None
        return GaussianStats(ct, frame, moments, scatter_np, ll, wsum_f, N, anchors)

    def _resp_means(self, X, sample_weight, resp, frame, K, block_size) -> np.ndarray:
        """Weighted component means (K, D) in the frame from given responsibilities.

        One extra pass at initialisation, as in the NumPy backend: the statistics are
        then taken about these means, exact wherever the components lie.
        """
        N, D = X.shape
        dev = X.device
        f64 = torch.float64
        with torch.no_grad():
            w = None
            if sample_weight is not None:
                w = self.asarray_like(sample_weight, X).to(f64)
            center = torch.as_tensor(frame.center, device=dev)
            n = torch.zeros(K, dtype=f64, device=dev)
            s1 = torch.zeros((K, D), dtype=f64, device=dev)
            for start in range(0, N, block_size):
                stop = min(start + block_size, N)
                R = _resp_block(resp, start, stop, K, np.float64).to(dev)
                if w is not None:
                    R = R * w[start:stop, None]
                Z = (X[start:stop].to(f64) - center) * (1.0 / frame.scale)
                n += R.sum(dim=0)
                s1 += R.T @ Z
            out = torch.cat([n, s1.reshape(-1)]).cpu().numpy()
        n_np, s1_np = out[:K], out[K:].reshape(K, D)
        return s1_np / np.where(n_np > 0, n_np, 1.0)[:, None]

    def log_joint(self, X, plan: EStepPlan, *, block_size: int | None = None) -> np.ndarray:
        """``log w_k + log N(x_n | k)`` for every row and component.

        Returns
        -------
        ndarray of shape (N, K), in X's dtype (computed on the device, one transfer)
        """
        X = self._as_device_tensor(X)
        dev = X.device
        N, D = X.shape
        ct = plan.covariance_type
        dtype = X.dtype
        np_dtype = self.numpy_dtype(X)
        M = n_features_of(ct, D)
        K = plan.n_components
        block_size = self._block_size(block_size, N, K, M, dtype, dev)
        anchored = plan.needs_anchors(np_dtype)
        with torch.no_grad(), _ieee_fp32():
            out = torch.empty((N, K), dtype=dtype, device=dev)
            if anchored:
                kern = _AnchoredKernel(plan, np.asarray(plan.anchors), dtype, dev)
                rows_cap = _anchored_rows(block_size, N, K, D, dtype, dev)
                center = torch.as_tensor(plan.frame.center, device=dev)
                for start in range(0, N, rows_cap):
                    stop = min(start + rows_cap, N)
                    Z = (X[start:stop].to(torch.float64) - center) * (1.0 / plan.frame.scale)
                    Dk = kern.offsets(Z)
                    out[start:stop].copy_(kern.log_joint(Dk).T)
                return out.cpu().numpy()
            kern = _ExpandedKernel(
                plan, plan.frame, ct, D, K, M, np_dtype, dtype, dev, block_size
            )
            for start in range(0, N, block_size):
                stop = min(start + block_size, N)
                b, z = kern.block(X[start:stop])
                # eta^T @ FT, then a small transposing copy: FT^T @ eta is 7x slower in MKL.
                kern.log_joint(b, z)
                LT = b["LT"]
                out[start:stop].copy_(LT.T)
            return out.cpu().numpy()


# --------------------------------------------------------------------------- pass state
# Anchored blocks hold (K, rows, D) temporaries; their rows are capped so that one of
# them stays near the expanded form's block budget.
_CPU_ANCHORED_BYTES = 4 << 20


def _anchored_rows(block_size, N, K, D, dtype, device) -> int:
    per_row = 3 * K * D * dtype.itemsize + 2 * D * 8  # Dk, Y/Ds, squares + float64 Z
    budget = _CUDA_BLOCK_BYTES if device.type == "cuda" else _CPU_ANCHORED_BYTES
    return max(1, min(block_size, max(256, budget // per_row), max(N, 1)))


def _resp_block(resp, start, stop, K, np_dtype):
    """The caller's responsibilities for rows start:stop as a CPU tensor (rows, K)."""
    block = np.asarray(resp(start, stop), dtype=np_dtype)
    if block.shape != (stop - start, K):
        raise InputError(
            f"resp({start}, {stop}) returned shape {block.shape}; expected ({stop - start}, {K})"
        )
    return _from_numpy(block)


class _ExpandedKernel:
    """The expanded form's per-block steps, shared by passes and ``log_joint``: the
    feature map ``T(z)`` written into a reused buffer, and the log-joint ``eta^T @ T(z)``
    (plus the shared quadratic term for tied)."""

    def __init__(self, plan, frame, ct, D, K, M, np_dtype, dtype, dev, block_size):
        self.ct, self.D = ct, D
        self.center = torch.as_tensor(frame.center.astype(np_dtype), device=dev)
        self.inv_scale = float(np_dtype.type(1.0 / frame.scale))
        self.etaT = self.tcT = None
        if plan is not None:
            eta_np, tc_np, _ = plan.cast(np_dtype)
            self.etaT = torch.as_tensor(np.ascontiguousarray(eta_np.T), device=dev)
            if ct == "tied":
                self.tcT = torch.as_tensor(np.ascontiguousarray(tc_np.T), device=dev)
        shapes = {"FT": M, "LT": K}
        if ct == "tied" and plan is not None:
            shapes["Y"] = D
        self.buf = _Buffers(shapes, block_size, dtype, dev)

    def block(self, Xb):
        """Buffers for these rows, with ``T(z)`` written: ``(b, z)``; b holds FT, LT."""
        b = self.buf.get(Xb.shape[0])
        z = _build_features(b["FT"], Xb, self.center, self.inv_scale, self.ct, self.D)
        return b, z

    def log_joint(self, b, z) -> None:
        """Write the block's log-joint into ``b["LT"]`` (K, rows)."""
        LT = b["LT"]
        torch.mm(self.etaT, b["FT"], out=LT)
        if self.ct == "tied":
            Y = b["Y"]
            torch.mm(self.tcT, z, out=Y)
            Y.mul_(Y)
            LT.add_(Y.sum(dim=0), alpha=-0.5)


class _AnchoredKernel:
    """Log-joint and statistics about per-component anchors, batched over components.

    Mirrors the NumPy backend's anchored form (``const_k - 0.5 |U_k^T (z - a_k)|^2``
    and moments of ``z - a_k``), but with one batched product per block for all K
    components instead of a Python loop over them, so a GPU sees a few big kernels.
    The offsets ``z - a_k`` are formed in float64 and rounded to the data's dtype once
    they are small, as in NumPy.
    """

    def __init__(self, plan, anchors: np.ndarray, dtype, device):
        self.dtype, self.device = dtype, device
        self.anchors = torch.as_tensor(np.asarray(anchors, dtype=np.float64), device=device)
        self.ct = None
        if plan is not None:
            np_dtype = np.float32 if dtype == torch.float32 else np.float64
            _, prec, const = plan.cast_anchored(np_dtype)
            self.ct = plan.covariance_type
            self.prec = torch.as_tensor(np.ascontiguousarray(prec), device=device)
            self.const = torch.as_tensor(np.ascontiguousarray(const), device=device)

    def offsets(self, Z):
        """``(z - a_k)`` for every component: (K, rows, D) in the data's dtype."""
        return (Z[None, :, :] - self.anchors[:, None, :]).to(self.dtype)

    def log_joint(self, Dk):
        """(K, rows) log-joint from the offsets."""
        ct = self.ct
        if ct == "full":
            Y = torch.bmm(Dk, self.prec)
            q = (Y * Y).sum(dim=2)
        elif ct == "tied":
            Y = torch.matmul(Dk, self.prec)
            q = (Y * Y).sum(dim=2)
        elif ct == "diag":
            q = torch.bmm(Dk * Dk, self.prec[:, :, None])[:, :, 0]
        else:
            q = self.prec[:, None] * (Dk * Dk).sum(dim=2)
        q.mul_(-0.5)
        q.add_(self.const[:, None])
        return q


class _PassState:
    """Device buffers and float64 accumulators of one mixture pass."""

    def __init__(self, backend, X, sample_weight, frame, K, ct, block_size):
        self.X, self.frame, self.K, self.ct, self.block_size = X, frame, K, ct, block_size
        self.dev = dev = X.device
        self.dtype = X.dtype
        self.np_dtype = backend.numpy_dtype(X)
        N, D = X.shape
        self.N, self.D = N, D
        self.M = n_features_of(ct, D)
        f64 = torch.float64
        self.w64 = self.wx = None
        if sample_weight is not None:
            self.w64 = backend.asarray_like(sample_weight, X).to(f64)
            self.wx = self.w64.to(self.dtype)
        self.floor = _exp_floor(self.dtype)
        self.acc = torch.zeros((K, self.M), dtype=f64, device=dev)
        self.scatter = torch.zeros((D, D), dtype=f64, device=dev) if ct == "tied" else None
        self.loglik = torch.zeros((), dtype=f64, device=dev)

    def _add_loglik(self, lse, start, stop):
        if self.w64 is None:
            self.loglik += lse.sum(dtype=torch.float64)
        else:
            self.loglik += torch.dot(self.w64[start:stop], lse.to(torch.float64))

    def expanded_loop(self, plan, fill_given):
        """Blocks through the feature map ``T(z)``: two GEMMs per block."""
        X, dev, dtype, ct, D, K, M = self.X, self.dev, self.dtype, self.ct, self.D, self.K, self.M
        f64 = torch.float64
        kern = _ExpandedKernel(
            plan, self.frame, ct, D, K, M, self.np_dtype, dtype, dev, self.block_size
        )
        for start in range(0, self.N, self.block_size):
            stop = min(start + self.block_size, self.N)
            b, z = kern.block(X[start:stop])
            FT, LT = b["FT"], b["LT"]
            wb = None if self.wx is None else self.wx[start:stop]
            if plan is not None:
                kern.log_joint(b, z)
                self._add_loglik(_softmax_cols_(LT, self.floor), start, stop)
            else:
                fill_given(LT, start, stop, z.T.to(f64))
            if wb is not None:
                LT.mul_(wb)
            # (K x rows) @ (rows x M): measured 1.7x faster in MKL than FT @ LT.T.
            self.acc += LT @ FT.T
            if ct == "tied":
                # sqrt(w) on both sides keeps the scatter exactly symmetric.
                zs = z if wb is None else z * wb.sqrt()
                self.scatter += zs @ zs.T

    def anchored_loop(self, plan, anchors, fill_given):
        """Blocks through offsets from per-component anchors: batched GEMMs per block."""
        X, dev, dtype, ct, D, K = self.X, self.dev, self.dtype, self.ct, self.D, self.K
        f64 = torch.float64
        kern = _AnchoredKernel(plan, anchors, dtype, dev)
        center = torch.as_tensor(self.frame.center, device=dev)
        inv_scale = 1.0 / self.frame.scale
        rows_cap = _anchored_rows(self.block_size, self.N, K, D, dtype, dev)
        off = first_moment_offset(ct, D)
        iu = ju = None
        if ct == "full":
            iu, ju = torch.triu_indices(D, D, device=dev)
        LTbuf = torch.empty((K, rows_cap), dtype=dtype, device=dev)
        for start in range(0, self.N, rows_cap):
            stop = min(start + rows_cap, self.N)
            rows = stop - start
            Z = (X[start:stop].to(f64) - center) * inv_scale  # (rows, D), float64
            Dk = kern.offsets(Z)  # (K, rows, D)
            wb = None if self.wx is None else self.wx[start:stop]
            if plan is not None:
                LT = kern.log_joint(Dk)
                self._add_loglik(_softmax_cols_(LT, self.floor), start, stop)
            else:
                LT = LTbuf[:, :rows] if rows == rows_cap else LTbuf[:, :rows].contiguous()
                fill_given(LT, start, stop, Z)
            if wb is not None:
                LT.mul_(wb)
            # The anchored path serves ill-conditioned components, whose covariances
            # lose eps times the condition number: statistics in float64, as in NumPy.
            LT = LT.to(f64)
            Dk = Z[None, :, :] - kern.anchors[:, None, :]
            acc = self.acc
            acc[:, -1] += LT.sum(dim=1, dtype=f64)
            acc[:, off : off + D] += torch.bmm(LT[:, None, :], Dk)[:, 0]
            if ct in ("full", "tied"):
                # sqrt(r) on both sides keeps each Gram matrix exactly symmetric.
                Ds = Dk * LT.sqrt()[:, :, None]
                G = torch.bmm(Ds.transpose(1, 2), Ds)  # (K, D, D)
                if ct == "full":
                    acc[:, :off] += G[:, iu, ju]
                else:
                    self.scatter += G.sum(dim=0, dtype=f64)
            elif ct == "diag":
                acc[:, :D] += torch.bmm(LT[:, None, :], Dk * Dk)[:, 0]
            else:
                acc[:, 0] += (LT * (Dk * Dk).sum(dim=2)).sum(dim=1)

    def download(self) -> np.ndarray:
        f64 = torch.float64
        if self.w64 is None:
            wsum = torch.full((1,), float(self.N), dtype=f64, device=self.dev)
        else:
            wsum = self.w64.sum().reshape(1)
        parts = [self.acc.reshape(-1), self.loglik.reshape(1), wsum]
        if self.scatter is not None:
            parts.append(self.scatter.reshape(-1))
        return torch.cat(parts).cpu().numpy()


# --------------------------------------------------------------------------- checks
def _is_integer(dt) -> bool:
    try:
        torch.iinfo(dt)
    except TypeError:
        return False
    return True


def _check_finite_tensor(X, name: str) -> None:
    """``check_array``'s NaN/inf error, computed on X's device (one sync if all finite)."""
    if bool(torch.isfinite(X).all()):
        return
    found = []
    for mask, what in ((torch.isnan(X), "NaN"), (torch.isinf(X), "inf")):
        count = int(mask.sum())
        if count:
            rows = torch.nonzero(mask.any(dim=1)).flatten().cpu().numpy()
            cols = torch.nonzero(mask.any(dim=0)).flatten().cpu().numpy()
            found.append((what, count, rows, cols))
    raise_nan_inf(name, found)


# --------------------------------------------------------------------------- generic
def _torch_dtype(dtype):
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    dt = np.dtype(dtype)
    return {
        "f": torch.float32, "d": torch.float64, "l": torch.int64, "q": torch.int64,
        "i": torch.int32, "?": torch.bool,
    }[dt.char]


class TorchOps:
    """The array namespace a kernel computes with on the torch backend.

    The same methods, with the same meaning, as
    :class:`emix.backends.numpy_backend.NumpyOps`; arrays are tensors on ``device`` and
    ``dtype`` is the data's. Nothing here synchronises with the host except
    :meth:`to_host`.
    """

    name = "torch"
    f64 = torch.float64 if torch is not None else None

    def __init__(self, dtype, device):
        self.dtype = _torch_dtype(dtype)
        self.device = device
        self.floor = _exp_floor(self.dtype)
        self._scratch: dict = {}
        self.xp = torch

    def _dt(self, dtype):
        return self.dtype if dtype is None else _torch_dtype(dtype)

    def asarray(self, a, dtype=None):
        if isinstance(a, torch.Tensor):
            return a.to(device=self.device, dtype=self._dt(dtype))
        a = np.asarray(a)
        return _from_numpy(np.ascontiguousarray(a)).to(device=self.device, dtype=self._dt(dtype))

    def cast(self, a, dtype=None):
        return a.to(self._dt(dtype))

    def to_host(self, a) -> np.ndarray:
        return a.detach().cpu().numpy()

    def zeros(self, shape, dtype=None):
        return torch.zeros(shape, dtype=self._dt(dtype), device=self.device)

    def empty(self, shape, dtype=None):
        return torch.empty(shape, dtype=self._dt(dtype), device=self.device)

    def scratch(self, key, shape, dtype=None):
        dt = self._dt(dtype)
        buf = self._scratch.get(key)
        if buf is None or tuple(buf.shape) != tuple(shape) or buf.dtype != dt:
            buf = torch.empty(tuple(shape), dtype=dt, device=self.device)
            self._scratch[key] = buf
        return buf

    def arange(self, n, dtype=None):
        return torch.arange(n, dtype=self._dt(dtype), device=self.device)

    def concat(self, arrays, axis=0):
        return torch.cat(list(arrays), dim=axis)

    def stack(self, arrays, axis=0):
        return torch.stack(list(arrays), dim=axis)

    def matmul(self, a, b, out=None):
        if out is not None and a.ndim == 2 and b.ndim == 2:
            return torch.mm(a, b, out=out)
        r = torch.matmul(a, b)
        if out is not None:
            out.copy_(r)
            return out
        return r

    def multiply(self, a, b, out=None):
        return torch.mul(a, b, out=out) if out is not None else torch.mul(a, b)

    def sum(self, a, axis=None, dtype=None):
        dt = _torch_dtype(dtype)
        if axis is None:
            return a.sum(dtype=dt)
        return a.sum(dim=axis, dtype=dt)

    def sum64(self, a, axis=None):
        return self.sum(a, axis, torch.float64)

    def dot64(self, w, v):
        return torch.dot(w.to(torch.float64), v.to(torch.float64))

    def exp(self, a):
        return torch.exp(a)

    def log(self, a):
        return torch.log(a)

    def log1p(self, a):
        return torch.log1p(a)

    def sqrt(self, a):
        return torch.sqrt(a)

    def lgamma(self, a):
        return torch.lgamma(a)

    def digamma(self, a):
        return torch.digamma(a)

    def where(self, cond, a, b):
        return torch.where(cond, a, b)

    def isfinite(self, a):
        return torch.isfinite(a)

    def equal(self, a, b):
        return torch.eq(a, b)

    def take(self, a, idx, axis=0):
        return torch.index_select(a, axis, idx)

    def softmax_cols_(self, LT, dead=None):
        # Dead components have a -inf log-joint, which the floor turns into exactly 0.
        return _softmax_cols_(LT, self.floor)


def _torch_stats_pass(self, X, sample_weight, kernel, *, block_size=None, width=None):
    """One pass of ``kernel`` over ``X`` on the device; accumulators come back in one
    transfer. See :mod:`emix.backends._generic` and ``NumpyBackend.stats_pass``.

    Returns
    -------
    dict of name -> float64 ndarray
    """
    X = self._as_device_tensor(X)
    N = X.shape[0]
    bs = self._block_size(block_size, N, 1, width or X.shape[1], X.dtype, X.device)
    with torch.no_grad(), _ieee_fp32():
        ops = TorchOps(X.dtype, X.device)
        w = None
        if sample_weight is not None:
            w = self.asarray_like(sample_weight, X).to(X.dtype)
        acc = {k: torch.zeros(shape, dtype=torch.float64, device=X.device)
               for k, shape in kernel.acc_shapes.items()}
        state = kernel.setup(ops)
        for start in range(0, N, bs):
            stop = min(start + bs, N)
            wb = None if w is None else w[start:stop]
            kernel.block(ops, state, X[start:stop], wb, acc, start, stop)
        names = list(acc)
        host = torch.cat([acc[k].reshape(-1) for k in names]).cpu().numpy()  # one transfer
    out, pos = {}, 0
    for k in names:
        shape = kernel.acc_shapes[k]
        size = int(np.prod(shape)) if len(shape) else 1
        out[k] = host[pos : pos + size].reshape(shape).copy()
        pos += size
    return out


def _torch_map_rows(self, X, kernel, *, block_size=None, width=None, out_dtype=None):
    """``kernel.rows`` over every block, gathered on the device, one transfer.

    Returns
    -------
    ndarray of shape (N, kernel.n_out)
    """
    X = self._as_device_tensor(X)
    N = X.shape[0]
    bs = self._block_size(block_size, N, kernel.n_out, width or X.shape[1], X.dtype, X.device)
    with torch.no_grad(), _ieee_fp32():
        ops = TorchOps(X.dtype, X.device)
        dt = X.dtype if out_dtype is None else _torch_dtype(out_dtype)
        out = torch.empty((N, kernel.n_out), dtype=dt, device=X.device)
        state = kernel.setup(ops)
        for start in range(0, N, bs):
            stop = min(start + bs, N)
            out[start:stop].copy_(kernel.rows(ops, state, X[start:stop]))
        return out.cpu().numpy()


TorchBackend.stats_pass = _torch_stats_pass
TorchBackend.map_rows = _torch_map_rows
TorchBackend.ops = lambda self, dtype: TorchOps(dtype, self.device)
