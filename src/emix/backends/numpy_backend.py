"""The NumPy (CPU) backend: family-free passes over row blocks of host arrays.

A pass runs a kernel (see :mod:`emix.backends._generic`) over blocks of rows: the
kernel computes with :class:`NumpyOps` (log-emissions ``eta @ T(X)``, a soft-max,
weighted statistics ``R @ T(X)^T``) and adds into float64 accumulators, so float32 data
lose nothing in the sum over many blocks. The backend owns what is about the machine,
not the model: block sizes (cache-sized), two threads over contiguous halves of the
rows with single-threaded BLAS (see ``_run_chunks``), subnormal-free soft-max, and the
row-order sum of the threads' accumulators. It imports no family.
"""

from __future__ import annotations

import os

import numpy as np

from . import _blas
from .._validation import check_array

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


# Rows per thread below which a pass stays on one thread: thread start-up and the
# switch of BLAS threads cost more than they save on small data.
_MIN_ROWS_PER_THREAD = 32768
_pool = None
_pool_size = 0
_pool_pid = None


def _thread_budget() -> int:
    """Threads a pass may use: every core this process may run on, or
    ``EMIX_NUM_THREADS`` when set (for sharing a machine with other work)."""
    env = os.environ.get("EMIX_NUM_THREADS", "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            raise ValueError(f"EMIX_NUM_THREADS must be a positive integer; got {env!r}") from None
    return _blas.cpu_count()


def _threads_for(N: int, block_size: int) -> int:
    # No fixed ceiling: every thread runs single-threaded BLAS on its own contiguous rows,
    # so the pass scales with the cores it is given (16 on the GPU machine's host).
    n = min(_thread_budget(), N // _MIN_ROWS_PER_THREAD, -(-N // block_size))
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
    def ops(self, dtype) -> "NumpyOps":
        """The array namespace kernels compute with, for data of ``dtype``."""
        return NumpyOps(dtype)

    def stats_pass(self, X, sample_weight, kernel, *, block_size=None, width=None):
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


    def map_rows(self, X, kernel, *, block_size=None, width=None, out_dtype=None):
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
    on_gpu = False

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

    def subtract(self, a, b, out=None):
        return np.subtract(a, b, out=out)

    def sumsq(self, a, axis=0, out=None):
        """Sum of squares along ``axis`` of a 2-D array (one pass, no temporary)."""
        spec = "dn,dn->n" if axis == 0 else "nd,nd->n"
        return np.einsum(spec, a, a, out=out)

    def argmin(self, a, axis):
        return np.argmin(a, axis=axis)

    def one_hot_cols_(self, LT, labels):
        """Set ``LT`` (K, rows) to the one-hot columns of ``labels`` (rows,)."""
        LT[:] = 0.0
        LT[labels, np.arange(LT.shape[1])] = 1.0
        return LT

    def weighted_stats(self, R, F):
        """``R @ F^T``: weighted feature sums (K, M) from weights R (K, rows) and features
        F (M, rows), in the data's dtype.

        OpenBLAS runs ``F @ R^T`` (M x rows times rows x K) faster than the transposed
        form for the short-and-wide blocks of a pass; the result is returned as a view.
        """
        return (F @ R.T).T

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

    def add_at(self, target, idx, values):
        """``target[idx] += values`` with repeated indices summed; target (n,) float64,
        idx and values flat of one length."""
        # bincount beats np.add.at by ~10x here, and the target is small.
        target += np.bincount(idx, values, minlength=target.shape[0])

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
