"""NumPy (CPU) kernels of the Gaussian-mixture E-step.

Each block of rows costs two dense matrix products (``F @ eta`` for the log-joint and
``R^T @ F`` for the statistics), one feature build and a row-wise soft-max, all on
temporaries of block x features size that are allocated once per pass. Block results
are added in float64 so float32 data lose nothing in the sum over many blocks.
"""

from __future__ import annotations

import os

import numpy as np

from . import _blas
from .._validation import check_array
from ..em.init import nearest
from ..families.gaussian import (
    EStepPlan,
    GaussianStats,
    first_moment_offset,
    n_features_of,
    pass_anchors,
)

__all__ = ["NumpyBackend", "default_block_size"]

# Block sizing. The feature block (M x rows) is written once and then read by two
# matrix products; about 4 MiB keeps it in the last-level cache of a small machine
# while giving BLAS long enough rows to run near its peak.
_BLOCK_BYTES = 4 << 20
_MIN_ROWS, _MAX_ROWS = 256, 16384


def default_block_size(n_rows: int, n_components: int, n_feature_cols: int, itemsize: int = 8) -> int:
    """Rows per block so that the block's feature matrix holds about 4 MiB."""
    width = max(n_components, n_feature_cols, 1)
    rows = int(np.clip(_BLOCK_BYTES // (width * itemsize), _MIN_ROWS, _MAX_ROWS))
    return int(min(n_rows, rows)) if n_rows > 0 else 1


def _build_features(FT: np.ndarray, Xb: np.ndarray, center, inv_scale, ct: str, D: int):
    """Write the feature map ``T(z)`` of a block, transposed, into ``FT`` (M, rows).

    Features are rows of ``FT`` so that every ufunc below runs over contiguous memory and
    both matrix products take C-ordered operands. Returns the view ``z`` (D, rows).
    """
    off = first_moment_offset(ct, D)
    z = FT[off : off + D]
    np.subtract(Xb.T, center[:, None], out=z)
    if inv_scale != 1.0:
        z *= inv_scale
    if ct == "full":
        row = 0
        for d in range(D):
            np.multiply(z[d], z[d:], out=FT[row : row + D - d])
            row += D - d
    elif ct == "diag":
        np.multiply(z, z, out=FT[:D])
    elif ct == "spherical":
        np.einsum("dn,dn->n", z, z, out=FT[0])
    return z


_EXP_FLOOR = {
    "d": float(np.log(np.finfo(np.float64).tiny)) + 1.0,
    "f": float(np.log(np.finfo(np.float32).tiny)) + 1.0,
}


def _softmax_cols(LT: np.ndarray, dead: np.ndarray | None = None) -> np.ndarray:
    """Turn a log-joint block (K, rows) into responsibilities in place.

    Parameters
    ----------
    LT : ndarray of shape (K, rows)
    dead : ndarray of int, optional
        Components with weight 0 (a -inf constant): their responsibilities are set to
        exactly 0.

    Returns
    -------
    ndarray of shape (rows,): log p(x) of every row (-inf where every component is)
    """
    m = LT.max(axis=0)
    bad = ~np.isfinite(m)
    any_bad = bool(bad.any())
    if any_bad:
        m[bad] = 0.0
    LT -= m
    # exp of anything below this is subnormal, and subnormal arithmetic runs 10-100x
    # slower in exp and in the next matrix product. Raising those entries to the
    # smallest normal number moves each responsibility by < 1e-300 (float64) or 1e-37
    # (float32) absolute: nothing a sum can see. (An unmasked clamp: a masked one costs
    # two more passes over the block.)
    np.maximum(LT, _EXP_FLOOR[LT.dtype.char], out=LT)
    np.exp(LT, out=LT)
    if dead is not None and len(dead):
        LT[dead] = 0.0
    s = LT.sum(axis=0)
    with np.errstate(divide="ignore"):
        LT *= (1.0 / s).astype(LT.dtype, copy=False)
        lse = np.log(s) + m
    if any_bad:
        # Zero density under every component: say so with -inf, and no responsibility.
        lse[bad] = -np.inf
        LT[:, bad] = 0.0
    return lse


def _anchored_log_joint(Z: np.ndarray, plan: EStepPlan, LT: np.ndarray) -> None:
    """Log-joint (K, rows) about each component's own mean: no cancellation.

    Parameters
    ----------
    Z : ndarray of shape (rows, D), float64, the block in the frame
    LT : ndarray of shape (K, rows), written in place, in the data's dtype
    """
    ct = plan.covariance_type
    dtype = LT.dtype
    _, prec, const = plan.cast_anchored(dtype)
    for k in range(plan.anchors.shape[0]):
        # Z is float64: the offsets from a far-away anchor are formed exactly, then
        # rounded to the data's dtype once they are small.
        Dk = (Z - plan.anchors[k]).astype(dtype, copy=False)
        if ct in ("full", "tied"):
            Y = Dk @ (prec[k] if ct == "full" else prec)
            q = np.einsum("nd,nd->n", Y, Y)
        elif ct == "diag":
            q = (Dk * Dk) @ prec[k]
        else:
            q = prec[k] * np.einsum("nd,nd->n", Dk, Dk)
        np.multiply(q, -0.5, out=LT[k])
        LT[k] += const[k]


def _anchored_stats(Z, R, anchors, ct, acc, scatter) -> None:
    """Add component statistics about per-component anchors into ``acc`` (M, K).

    Parameters
    ----------
    Z : ndarray of shape (rows, D), float64, the block in the frame
    R : ndarray of shape (K, rows), weighted responsibilities in the data's dtype
    anchors : ndarray of shape (K, D), float64
    acc : ndarray of shape (M, K), float64, in the packed layout of ``n_features_of``
    scatter : ndarray of shape (D, D) or None (tied)
    """
    D = Z.shape[1]
    off = first_moment_offset(ct, D)
    if ct == "full":
        iu, ju = np.triu_indices(D)
    # The anchored path serves ill-conditioned components (thin or far-off), whose
    # covariances lose eps times the condition number: sum in float64 whatever the data.
    R = R.astype(np.float64, copy=False)
    for k in range(R.shape[0]):
        r = R[k]
        Dk = Z - anchors[k]
        acc[-1, k] += float(r.sum(dtype=np.float64))
        acc[off : off + D, k] += r @ Dk
        if ct in ("full", "tied"):
            # sqrt(r) on both sides keeps the Gram matrix exactly symmetric.
            Ds = Dk * np.sqrt(r)[:, None]
            G = Ds.T @ Ds
            if ct == "full":
                acc[:off, k] += G[iu, ju]
            else:
                scatter += G
        elif ct == "diag":
            acc[:D, k] += r @ (Dk * Dk)
        else:
            acc[0, k] += r @ np.einsum("nd,nd->n", Dk, Dk)


class _Buffers:
    """Per-pass scratch arrays, reallocated only for a short last block."""

    def __init__(self, M: int, K: int, rows: int, dtype):
        self.M, self.K, self.dtype = M, K, dtype
        self._make(rows)

    def _make(self, rows: int):
        self.rows = rows
        self.FT = np.empty((self.M, rows), dtype=self.dtype)
        self.FT[-1] = 1.0
        self.LT = np.empty((self.K, rows), dtype=self.dtype)

    def get(self, rows: int):
        if rows != self.rows:
            self._make(rows)
        return self.FT, self.LT


# Rows per thread below which a pass stays on one thread: thread start-up and the
# switch of BLAS threads cost more than they save on small data.
_MIN_ROWS_PER_THREAD = 32768
_pool = None
_pool_size = 0
_pool_pid = None


def _threads_for(N: int, block_size: int) -> int:
    n = min(_blas.cpu_count(), 8, N // _MIN_ROWS_PER_THREAD, -(-N // block_size))
    if n < 2 or not _blas.available():
        return 1
    return n


def _run_chunks(fn, N: int, block_size: int) -> list:
    """``fn(lo, hi)`` over contiguous row ranges, in parallel where it pays; results in
    row order.

    The ranges are fixed by N, the block size and the machine's core count, and their
    results are combined in row order, so a pass gives the same numbers every time on a
    given machine.
    """
    global _pool, _pool_size, _pool_pid
    n = _threads_for(N, block_size)
    if n == 1:
        return [fn(0, N)]
    n_blocks = -(-N // block_size)
    edges = [min(N, (i * n_blocks // n) * block_size) for i in range(n + 1)]
    edges[-1] = N
    ranges = [(lo, hi) for lo, hi in zip(edges[:-1], edges[1:]) if hi > lo]
    # A forked child inherits the pool object but not its threads: work submitted to
    # it would never run. Each process makes its own.
    if _pool is None or _pool_size < n or _pool_pid != os.getpid():
        from concurrent.futures import ThreadPoolExecutor

        _pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="emix-pass")
        _pool_size = n
        _pool_pid = os.getpid()
    with _blas.single_threaded():
        futures = [_pool.submit(fn, lo, hi) for lo, hi in ranges]
        return [f.result() for f in futures]


def _resolve_block_size(block_size, N: int, K: int, M: int, dtype) -> int:
    if block_size is None:
        block_size = default_block_size(N, K, M, np.dtype(dtype).itemsize)
    return max(1, min(int(block_size), max(N, 1)))


class _BlockKernel:
    """The per-block steps a pass and ``log_joint`` share: put rows in the frame, then
    the log-joint, in the expanded form (two GEMMs on ``T(z)``) or the anchored one."""

    def __init__(self, plan, frame, dtype, anchored: bool, ct: str, D: int):
        self.plan, self.frame, self.anchored, self.ct, self.D = plan, frame, anchored, ct, D
        self.center = frame.center.astype(dtype)
        self.inv_scale = dtype.type(1.0 / frame.scale)
        if plan is not None and not anchored:
            eta, tied_chol, _ = plan.cast(dtype)
            self.etaT = np.ascontiguousarray(eta.T)
            self.tied_cholT = None if tied_chol is None else np.ascontiguousarray(tied_chol.T)

    def rows(self, FT: np.ndarray, Xb: np.ndarray) -> np.ndarray:
        """The block in the frame as ``z`` (D, rows).

        Anchored: float64 (offsets from far anchors are formed exactly). Expanded: the
        ``z`` rows of ``FT``, after writing the whole feature map into ``FT``.
        """
        if self.anchored:
            return ((Xb.astype(np.float64) - self.frame.center) * (1.0 / self.frame.scale)).T
        return _build_features(FT, Xb, self.center, self.inv_scale, self.ct, self.D)

    def log_joint(self, FT: np.ndarray, z: np.ndarray, LT: np.ndarray) -> None:
        """Write ``log w_k + log N(x | k)`` of the block into ``LT`` (K, rows)."""
        if self.anchored:
            _anchored_log_joint(z.T, self.plan, LT)
            return
        # A weight-0 component has a -inf constant; -inf * 1 is exact, but BLAS may flag
        # it as invalid on the way.
        with np.errstate(invalid="ignore"):
            np.matmul(self.etaT, FT, out=LT)
        if self.ct == "tied":
            Y = self.tied_cholT @ z
            LT -= 0.5 * np.einsum("dn,dn->n", Y, Y)


class _PassJob:
    """One mixture pass's inputs; ``run(lo, hi)`` does rows lo:hi block by block.

    Returns
    -------
    acc : ndarray of shape (M, K), float64
    scatter : ndarray of shape (D, D) or None
    loglik : float
    """

    def __init__(self, X, w, plan, ct, frame, K, M, block_size, resp, cz, anchors):
        self.X, self.w, self.plan, self.ct = X, w, plan, ct
        self.K, self.M, self.block_size, self.resp, self.cz = K, M, block_size, resp, cz
        self.anchors = anchors
        self.kernel = _BlockKernel(plan, frame, X.dtype, anchors is not None, ct, X.shape[1])
        self.dead = None if plan is None else np.flatnonzero(np.isneginf(plan.const))

    def run(self, lo: int, hi: int):
        X, ct, plan, K, M = self.X, self.ct, self.plan, self.K, self.M
        D = X.shape[1]
        dtype = X.dtype
        anchored = self.anchors is not None
        block_size = self.block_size
        buf = _Buffers(M, K, min(block_size, hi - lo), dtype)
        acc = np.zeros((M, K))
        scatter = np.zeros((D, D)) if ct == "tied" else None
        loglik = 0.0
        for start in range(lo, hi, block_size):
            stop = min(start + block_size, hi)
            FT, LT = buf.get(stop - start)
            wb = None if self.w is None else self.w[start:stop]
            z = self.kernel.rows(FT, X[start:stop])
            if plan is not None:
                self.kernel.log_joint(FT, z, LT)
                lse = _softmax_cols(LT, self.dead)
                loglik += float(lse.sum(dtype=np.float64) if wb is None else wb @ lse)
            elif self.cz is not None:
                labels, _ = nearest(z.T.astype(np.float64), self.cz)
                LT[:] = 0.0
                LT[labels, np.arange(stop - start)] = 1.0
            else:
                LT[:] = np.asarray(self.resp(start, stop), dtype=dtype).T
            if wb is not None:
                LT *= wb
            if anchored:
                _anchored_stats(z.T, LT, self.anchors, ct, acc, scatter)
                continue
            acc += FT @ LT.T
            if ct == "tied":
                # sqrt(w) on both sides keeps the scatter exactly symmetric.
                zs = z if wb is None else z * np.sqrt(wb)
                scatter += zs @ zs.T
        return acc, scatter, loglik


class NumpyBackend:
    """Runs mixture passes on NumPy arrays held in host memory."""

    name = "numpy"

    def validate(self, X, **kwargs):
        """Checked float32/float64 array (N, D) and column names; see ``check_array``."""
        return check_array(X, **kwargs)

    def to_numpy(self, X) -> np.ndarray:
        return np.asarray(X)

    def asarray_like(self, a: np.ndarray, X: np.ndarray) -> np.ndarray:
        """``a`` on the same device as ``X`` (a no-op for NumPy)."""
        return np.asarray(a)

    def numpy_dtype(self, X) -> np.dtype:
        return X.dtype

    def take_rows(self, X: np.ndarray, idx) -> np.ndarray:
        """Rows ``idx`` of X as a float64 host array (k, D)."""
        return np.asarray(X[np.asarray(idx)], dtype=np.float64)

    def column_summary(self, X: np.ndarray, w: np.ndarray | None, block: int = 65536) -> dict:
        """Weighted column means, variances, minima and maxima in one blocked pass.

        Returns
        -------
        dict with ``mean``, ``var``, ``min``, ``max`` (each (D,), float64) and ``n``.
        """
        N, D = X.shape
        W = float(N if w is None else w.sum())
        # A first block's mean as shift keeps the one-pass variance from cancelling.
        shift = X[: min(N, 1024)].mean(axis=0, dtype=np.float64)
        s1 = np.zeros(D)
        s2 = np.zeros(D)
        lo = np.full(D, np.inf)
        hi = np.full(D, -np.inf)
        for a in range(0, N, block):
            Z = X[a : a + block].astype(np.float64) - shift
            wb = None if w is None else w[a : a + block]
            s1 += Z.sum(axis=0) if wb is None else wb @ Z
            s2 += np.einsum("nd,nd->d", Z, Z) if wb is None else wb @ (Z * Z)
            lo = np.minimum(lo, X[a : a + block].min(axis=0))
            hi = np.maximum(hi, X[a : a + block].max(axis=0))
        m = s1 / W
        var = np.maximum(s2 / W - m * m, 0.0)
        return {"mean": m + shift, "var": var, "min": lo, "max": hi, "n": N}

    # ------------------------------------------------------------------ passes
    def mixture_pass(
        self,
        X: np.ndarray,
        sample_weight: np.ndarray | None,
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
        X : ndarray of shape (N, D), float32 or float64
        sample_weight : ndarray of shape (N,) or None
        plan : EStepPlan or None
            Parameters to compute responsibilities from. None when ``resp`` is given.
        resp : callable (start, stop) -> ndarray of shape (stop - start, K), optional
            Responsibilities supplied by the caller (initialisation).
        centers : ndarray of shape (K, D), optional
            Hard responsibilities: every row belongs to its nearest centre.

        Returns
        -------
        GaussianStats
        """
        N, D = X.shape
        K = n_components
        ct = covariance_type
        dtype = X.dtype
        M = n_features_of(ct, D)
        block_size = _resolve_block_size(block_size, N, K, M, dtype)
        w_dt = None if sample_weight is None else sample_weight.astype(dtype, copy=False)
        cz = None
        if centers is not None:
            cz = (np.asarray(centers, dtype=np.float64) - frame.center) / frame.scale
        # Decided once per pass so that every chunk's statistics are about the same
        # anchors and add up.
        anchors = pass_anchors(
            plan, dtype, cz, lambda: self._resp_means(X, w_dt, resp, frame, K, block_size)
        )
        job = _PassJob(X, w_dt, plan, ct, frame, K, M, block_size, resp, cz, anchors)
        parts = _run_chunks(job.run, N, block_size)
        acc = parts[0][0]
        scatter = parts[0][1]
        loglik = parts[0][2]
        for a_, s_, l_ in parts[1:]:
            acc += a_
            if scatter is not None:
                scatter += s_
            loglik += l_
        wsum = float(N if sample_weight is None else np.sum(sample_weight, dtype=np.float64))
        return GaussianStats(
            ct, frame, np.ascontiguousarray(acc.T), scatter, loglik, wsum, N, anchors
        )

    @staticmethod
    def _resp_means(X, w, resp, frame, K, block_size) -> np.ndarray:
        """Weighted component means (K, D) in the frame from given responsibilities."""
        N, D = X.shape
        n = np.zeros(K)
        s1 = np.zeros((K, D))
        for start in range(0, N, block_size):
            stop = min(start + block_size, N)
            R = np.asarray(resp(start, stop), dtype=np.float64)
            if w is not None:
                R = R * w[start:stop, None]
            Z = (X[start:stop].astype(np.float64) - frame.center) / frame.scale
            n += R.sum(axis=0)
            s1 += R.T @ Z
        return s1 / np.where(n > 0, n, 1.0)[:, None]

    def log_joint(self, X: np.ndarray, plan: EStepPlan, *, block_size: int | None = None):
        """``log w_k + log N(x_n | k)`` for every row and component.

        Returns
        -------
        ndarray of shape (N, K), in X's dtype
        """
        N, D = X.shape
        ct = plan.covariance_type
        dtype = X.dtype
        M = n_features_of(ct, D)
        K = plan.n_components
        block_size = _resolve_block_size(block_size, N, K, M, dtype)
        kernel = _BlockKernel(plan, plan.frame, dtype, plan.needs_anchors(dtype), ct, D)
        out = np.empty((N, K), dtype=dtype)

        def rows(lo, hi):
            buf = _Buffers(M, K, min(block_size, hi - lo), dtype)
            for start in range(lo, hi, block_size):
                stop = min(start + block_size, hi)
                FT, LT = buf.get(stop - start)
                kernel.log_joint(FT, kernel.rows(FT, X[start:stop]), LT)
                out[start:stop] = LT.T

        _run_chunks(rows, N, block_size)
        return out


# --------------------------------------------------------------------------- generic
class NumpyOps:
    """The array namespace a kernel computes with on the NumPy backend.

    Families write their feature map ``T(x)`` and models their weighting once, against
    this interface; :class:`emix.backends.torch_backend.TorchOps` has the same methods.
    ``dtype`` is the data's (float32 or float64); ``f64`` is float64.

    Everything a kernel receives and returns is an array of this namespace. Methods with
    an ``out`` argument write in place, so a kernel can reuse scratch buffers.
    """

    name = "numpy"
    xp = np
    f64 = np.dtype(np.float64)

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)
        self._scratch: dict = {}

    # creation and conversion
    def asarray(self, a, dtype=None):
        """A host array as this namespace's array, in ``dtype`` (default: the data's)."""
        return np.ascontiguousarray(a, dtype=self.dtype if dtype is None else dtype)

    def cast(self, a, dtype=None):
        return a.astype(self.dtype if dtype is None else dtype, copy=False)

    def to_host(self, a) -> np.ndarray:
        return np.asarray(a)

    def zeros(self, shape, dtype=None):
        return np.zeros(shape, dtype=self.dtype if dtype is None else dtype)

    def empty(self, shape, dtype=None):
        return np.empty(shape, dtype=self.dtype if dtype is None else dtype)

    def scratch(self, key, shape, dtype=None):
        """A reusable buffer (contents undefined), reallocated only when the shape changes."""
        dt = self.dtype if dtype is None else dtype
        buf = self._scratch.get(key)
        if buf is None or buf.shape != tuple(shape) or buf.dtype != dt:
            buf = np.empty(shape, dtype=dt)
            self._scratch[key] = buf
        return buf

    def arange(self, n, dtype=None):
        return np.arange(n, dtype=self.dtype if dtype is None else dtype)

    def concat(self, arrays, axis=0):
        return np.concatenate(arrays, axis=axis)

    def stack(self, arrays, axis=0):
        return np.stack(arrays, axis=axis)

    # arithmetic
    def matmul(self, a, b, out=None):
        # A weight-0 component has a -inf constant; -inf * 1 is exact, but BLAS may flag
        # it as invalid on the way.
        with np.errstate(invalid="ignore"):
            return np.matmul(a, b, out=out)

    def multiply(self, a, b, out=None):
        return np.multiply(a, b, out=out)

    def sum(self, a, axis=None, dtype=None):
        return np.sum(a, axis=axis, dtype=dtype)

    def sum64(self, a, axis=None):
        """A sum accumulated in float64."""
        return np.sum(a, axis=axis, dtype=np.float64)

    def dot64(self, w, v):
        """``w @ v`` of two vectors in float64 (a weighted sum of log-likelihoods)."""
        return np.dot(w.astype(np.float64, copy=False), v.astype(np.float64, copy=False))

    def exp(self, a):
        return np.exp(a)

    def log(self, a):
        with np.errstate(divide="ignore"):
            return np.log(a)

    def log1p(self, a):
        with np.errstate(divide="ignore"):
            return np.log1p(a)

    def sqrt(self, a):
        return np.sqrt(a)

    def lgamma(self, a):
        from scipy.special import gammaln

        return gammaln(a)

    def digamma(self, a):
        from scipy.special import digamma

        return digamma(a)

    def where(self, cond, a, b):
        return np.where(cond, a, b)

    def isfinite(self, a):
        return np.isfinite(a)

    def equal(self, a, b):
        return np.equal(a, b)

    def take(self, a, idx, axis=0):
        return np.take(a, idx, axis=axis)

    def softmax_cols_(self, LT, dead=None):
        """Turn a log-joint block (K, rows) into responsibilities in place.

        Returns the log-normaliser of every row, shape (rows,): ``-inf`` where every
        component gives the row zero density (its responsibilities are then 0).
        """
        return _softmax_cols(LT, dead)


def _generic_job(X, w, kernel, block_size, ops_factory):
    """``run(lo, hi)`` for a generic pass: float64 accumulators of rows lo:hi."""

    def run(lo, hi):
        ops = ops_factory()
        state = kernel.setup(ops)
        acc = {k: np.zeros(shape) for k, shape in kernel.acc_shapes.items()}
        for start in range(lo, hi, block_size):
            stop = min(start + block_size, hi)
            wb = None if w is None else w[start:stop]
            kernel.block(ops, state, X[start:stop], wb, acc, start, stop)
        return acc

    return run


def _numpy_stats_pass(self, X, sample_weight, kernel, *, block_size=None, width=None):
    """One pass of ``kernel`` over ``X``; see :mod:`emix.backends._generic`.

    Parameters
    ----------
    X : ndarray of shape (N, D), float32 or float64
    sample_weight : ndarray of shape (N,) or None
    kernel : a pass kernel (``acc_shapes``, ``setup``, ``block``)
    block_size : int, optional
        Rows per block; by default the block's widest temporary holds about 4 MiB.
    width : int, optional
        The widest per-row temporary of the kernel (the feature map's width), for the
        default block size.

    Returns
    -------
    dict of name -> float64 ndarray, the accumulators summed over all rows (in row
    order, so a pass gives the same numbers every time on a given machine).
    """
    N = X.shape[0]
    dtype = X.dtype
    bs = _resolve_block_size(block_size, N, 1, width or X.shape[1], dtype)
    w = None if sample_weight is None else sample_weight.astype(dtype, copy=False)
    parts = _run_chunks(_generic_job(X, w, kernel, bs, lambda: NumpyOps(dtype)), N, bs)
    out = parts[0]
    for p in parts[1:]:
        for k in out:
            out[k] += p[k]
    return out


def _numpy_map_rows(self, X, kernel, *, block_size=None, width=None, out_dtype=None):
    """``kernel.rows`` over every block of ``X``, gathered into one host array.

    Returns
    -------
    ndarray of shape (N, kernel.n_out), in ``out_dtype`` (default: X's dtype)
    """
    N = X.shape[0]
    dtype = X.dtype
    bs = _resolve_block_size(block_size, N, kernel.n_out, width or X.shape[1], dtype)
    out = np.empty((N, kernel.n_out), dtype=dtype if out_dtype is None else out_dtype)

    def rows(lo, hi):
        ops = NumpyOps(dtype)
        state = kernel.setup(ops)
        for start in range(lo, hi, bs):
            stop = min(start + bs, hi)
            out[start:stop] = kernel.rows(ops, state, X[start:stop])

    _run_chunks(rows, N, bs)
    return out


NumpyBackend.stats_pass = _numpy_stats_pass
NumpyBackend.map_rows = _numpy_map_rows
NumpyBackend.ops = lambda self, dtype: NumpyOps(dtype)
