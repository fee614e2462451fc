"""NumPy (CPU) kernels of the Gaussian-mixture E-step.

Each block of rows costs two dense matrix products (``F @ eta`` for the log-joint and
``R^T @ F`` for the statistics), one feature build and a row-wise soft-max, all on
temporaries of block x features size that are allocated once per pass. Block results
are added in float64 so float32 data lose nothing in the sum over many blocks.
"""

from __future__ import annotations

import numpy as np

from .._validation import check_array
from ..em.init import nearest
from ..families.gaussian import EStepPlan, GaussianStats, n_features_of

__all__ = ["NumpyBackend", "default_block_size"]

# About this many elements per block temporary: large enough to keep BLAS efficient,
# small enough (2 MiB in float64) to stay in a 2-core machine's L2/L3 caches.
_BLOCK_ELEMENTS = 1 << 18


def default_block_size(n_rows: int, n_components: int, n_feature_cols: int) -> int:
    """Rows per block so that the largest temporary holds about ``_BLOCK_ELEMENTS``."""
    width = max(n_components, n_feature_cols, 1)
    rows = max(256, _BLOCK_ELEMENTS // width)
    return int(min(n_rows, rows)) if n_rows > 0 else 1


def _build_features(F: np.ndarray, Xb: np.ndarray, center, inv_scale, ct: str, D: int):
    """Write the feature map ``T(z)`` of a block into ``F`` (rows, M) in place."""
    if ct == "full":
        T = D * (D + 1) // 2
        z = F[:, T : T + D]
        np.subtract(Xb, center, out=z)
        if inv_scale != 1.0:
            z *= inv_scale
        off = 0
        for d in range(D):
            np.multiply(z[:, d : d + 1], z[:, d:], out=F[:, off : off + D - d])
            off += D - d
    elif ct == "diag":
        z = F[:, D : 2 * D]
        np.subtract(Xb, center, out=z)
        if inv_scale != 1.0:
            z *= inv_scale
        np.multiply(z, z, out=F[:, :D])
    elif ct == "spherical":
        z = F[:, 1 : D + 1]
        np.subtract(Xb, center, out=z)
        if inv_scale != 1.0:
            z *= inv_scale
        np.einsum("nd,nd->n", z, z, out=F[:, 0])
    else:  # tied
        z = F[:, :D]
        np.subtract(Xb, center, out=z)
        if inv_scale != 1.0:
            z *= inv_scale
    return z


def _softmax_rows(L: np.ndarray) -> np.ndarray:
    """Turn log-joint rows into responsibilities in place; return log p(x) per row."""
    m = L.max(axis=1, keepdims=True)
    # A row whose every component is -inf has zero density; keep it finite here and let
    # the log-likelihood (which will be -inf) tell the caller.
    m[~np.isfinite(m)] = 0.0
    L -= m
    np.exp(L, out=L)
    s = L.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        L /= s
        return (np.log(s) + m)[:, 0]


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
        if block_size is None:
            block_size = default_block_size(N, K, M)
        block_size = max(1, min(int(block_size), max(N, 1)))
        center = frame.center.astype(dtype)
        inv_scale = dtype.type(1.0 / frame.scale)
        if plan is not None:
            eta, tied_chol, _ = plan.cast(dtype)
        if centers is not None:
            cz = (np.asarray(centers, dtype=np.float64) - frame.center) / frame.scale
            eye = np.eye(K, dtype=dtype)
        F = np.empty((block_size, M), dtype=dtype)
        F[:, -1] = 1.0
        moments = np.zeros((K, M))
        scatter = np.zeros((D, D)) if ct == "tied" else None
        loglik = 0.0
        for start in range(0, N, block_size):
            stop = min(start + block_size, N)
            Fb = F[: stop - start]
            z = _build_features(Fb, X[start:stop], center, inv_scale, ct, D)
            wb = None if sample_weight is None else sample_weight[start:stop]
            if plan is not None:
                L = Fb @ eta
                if ct == "tied":
                    Y = z @ tied_chol
                    L -= 0.5 * np.einsum("nd,nd->n", Y, Y)[:, None]
                lse = _softmax_rows(L)
                loglik += float(lse.sum() if wb is None else wb @ lse)
            elif centers is not None:
                labels, _ = nearest(z.astype(np.float64, copy=False), cz)
                L = eye[labels]
            else:
                L = np.asarray(resp(start, stop), dtype=dtype)
            if wb is not None:
                L = L * wb.astype(dtype, copy=False)[:, None]
            moments += L.T @ Fb
            if ct == "tied":
                zw = z if wb is None else z * wb.astype(dtype, copy=False)[:, None]
                scatter += zw.T @ z
        wsum = float(N if sample_weight is None else np.sum(sample_weight, dtype=np.float64))
        return GaussianStats(ct, frame, moments, scatter, loglik, wsum, N)

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
        if block_size is None:
            block_size = default_block_size(N, K, M)
        block_size = max(1, min(int(block_size), max(N, 1)))
        eta, tied_chol, center = plan.cast(dtype)
        inv_scale = dtype.type(1.0 / plan.frame.scale)
        out = np.empty((N, K), dtype=dtype)
        F = np.empty((block_size, M), dtype=dtype)
        F[:, -1] = 1.0
        for start in range(0, N, block_size):
            stop = min(start + block_size, N)
            Fb = F[: stop - start]
            z = _build_features(Fb, X[start:stop], center, inv_scale, ct, D)
            np.matmul(Fb, eta, out=out[start:stop])
            if ct == "tied":
                Y = z @ tied_chol
                out[start:stop] -= 0.5 * np.einsum("nd,nd->n", Y, Y)[:, None]
        return out
