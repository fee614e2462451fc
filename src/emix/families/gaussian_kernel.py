"""The Gaussian mixture's pass, written once for every backend.

The expanded form (see :mod:`emix.families.gaussian`): per block of rows, the feature
map ``T(z)`` (M, rows) is written into a reused buffer, the log-joint of every component
is the product ``eta^T @ T(z)``, a soft-max turns it into responsibilities, and the
statistics are the product ``R @ T(z)^T``. The anchored form, for components whose
expansion would cancel (``EStepPlan.needs_anchors``) and for initial passes, takes each
component's rows about its own anchor, batched over components into (K, rows, D)
products. Both are written against the backend's array namespace ``ops``
(:class:`emix.backends.numpy_backend.NumpyOps` or ``TorchOps``); the backend runs the
blocks (threads on NumPy, the device on torch) and returns float64 accumulators. No
backend imports this module: the model hands the kernel to ``backend.stats_pass``.
"""

from __future__ import annotations

import functools

import numpy as np

from ..exceptions import InputError
from .gaussian import (
    EStepPlan,
    GaussianStats,
    first_moment_offset,
    n_features_of,
    pass_anchors,
    upper_indices,
)

__all__ = ["mixture_pass", "log_joint"]

# Anchored blocks hold (K, rows, D) temporaries; their rows are capped so that one of
# them stays near the expanded form's block budget (a cache-sized 4 MiB on a CPU, a
# large block on a GPU, where fewer kernels matter more).
_CPU_ANCHORED_BYTES = 4 << 20
_GPU_ANCHORED_BYTES = 256 << 20


def _anchored_rows(K: int, D: int, itemsize: int, on_gpu: bool) -> int:
    per_row = 3 * K * D * itemsize + 2 * D * 8  # Dk, Y/Ds, squares + float64 Z
    budget = _GPU_ANCHORED_BYTES if on_gpu else _CPU_ANCHORED_BYTES
    return max(256, budget // per_row)


@functools.lru_cache(maxsize=16)
def level_order(D: int) -> np.ndarray:
    """The GPU form's order of the upper triangle of ``z z^T`` (D a power of two).

    The diagonal first, then, for square sizes ``s = D/2, D/4, ..., 1``, the ``D/(2s)``
    squares ``z[a:a+s] x z[a+s:a+2s]`` (``a = 0, 2s, 4s, ...``) row by row. Each size is
    one broadcast product over all its squares, so the triangle takes ``1 + log2(D)``
    kernels, each writing its features once (a gather by triangle indices writes them
    three times; a loop over triangle rows takes D kernels).

    Returns
    -------
    ndarray of int, shape (D*(D+1)/2,)
        For each position in this order, the index of the same pair in the ``vech``
        (row-by-row) order of :func:`emix.families.gaussian.upper_indices`.
    """
    pairs = [(d, d) for d in range(D)]
    s = D // 2
    while s >= 1:
        for i in range(D // (2 * s)):
            a = 2 * s * i
            pairs.extend((a + r, a + s + c) for r in range(s) for c in range(s))
        s //= 2
    iu, ju = upper_indices(D)
    where = {(int(i), int(j)): k for k, (i, j) in enumerate(zip(iu, ju))}
    out = np.array([where[p] for p in pairs], dtype=np.int64)
    out.flags.writeable = False  # cached: every pass of every fit shares it
    return out


@functools.lru_cache(maxsize=16)
def _level_maps(D: int) -> tuple[np.ndarray, np.ndarray]:
    """``(order, to_vech)`` over all M features of the full map: the level order of the
    triangle followed by z and 1, and its inverse permutation (cached per D)."""
    T = D * (D + 1) // 2
    order = np.concatenate([level_order(D), np.arange(T, T + D + 1)])
    to_vech = np.argsort(order)
    order.flags.writeable = False
    to_vech.flags.writeable = False
    return order, to_vech


def _levels_apply(D: int) -> bool:
    """Whether the GPU form's level order applies: D a power of two (2 or more)."""
    return D >= 2 and (D & (D - 1)) == 0


def _build_features(ops, FT, Xb, center, inv_scale: float, ct: str, D: int, levels=False):
    """Write the feature map ``T(z)`` of a block, transposed, into ``FT`` (M, rows).

    Features are rows of ``FT``, so every elementwise kernel reads and writes contiguous
    memory (vector units on a CPU, coalesced accesses on a GPU) and both products take
    ``FT`` as it is. The packed upper triangle of ``z z^T``:

    * by default, in ``vech`` order, one triangle row at a time: D broadcast products
      straight into slices of ``FT``, no (D^2 x rows) temporary (measured 3-5x faster
      on a CPU than gathering with triangle indices);
    * with ``levels`` (the GPU form, D a power of two), in :func:`level_order`: 1 +
      log2(D) broadcast products (6 kernels instead of 32 at D=32), each feature
      written once. The caller multiplies by coefficients in the same order and maps
      the statistics back to ``vech`` order.

    Returns the view ``z`` (D, rows).
    """
    off = first_moment_offset(ct, D)
    z = FT[off : off + D]
    ops.subtract(Xb.T, center[:, None], out=z)
    if inv_scale != 1.0:
        z *= inv_scale
    if ct == "full" and levels:
        rows = FT.shape[1]
        ops.multiply(z, z, out=FT[:D])
        pos, s = D, D // 2
        while s >= 1:
            n = D // (2 * s)
            zr = z.reshape(n, 2, s, rows)
            ops.multiply(zr[:, 0, :, None, :], zr[:, 1, None, :, :],
                         out=FT[pos : pos + n * s * s].reshape(n, s, s, rows))
            pos += n * s * s
            s //= 2
    elif ct == "full":
        row = 0
        for d in range(D):
            ops.multiply(z[d], z[d:], out=FT[row : row + D - d])
            row += D - d
    elif ct == "diag":
        ops.multiply(z, z, out=FT[:D])
    elif ct == "spherical":
        ops.sumsq(z, axis=0, out=FT[0])
    return z


class _Kernel:
    """One Gaussian pass: statistics ``acc`` (K, M), ``scatter`` (tied) and log-likelihood.

    Exactly one of ``plan`` (responsibilities from parameters), ``centers_in_frame``
    (hard labels to the nearest centre) and ``resp`` (given responsibilities) drives it.
    ``anchors`` (K, D) in the frame selects the anchored form.
    """

    def __init__(self, plan, frame, ct, K, D, np_dtype, anchors, resp, cz):
        self.plan, self.frame, self.ct, self.K, self.D = plan, frame, ct, K, D
        self.np_dtype = np.dtype(np_dtype)
        self.M = n_features_of(ct, D)
        self.anchors, self.resp, self.cz = anchors, resp, cz
        self.acc_shapes = {"acc": (K, self.M), "loglik": ()}
        if ct == "tied":
            self.acc_shapes["scatter"] = (D, D)
        self.dead = None if plan is None else np.flatnonzero(np.isneginf(plan.const))

    def row_bytes(self, itemsize: int, gpu_form: bool) -> int:
        """Bytes of block temporaries per row (for backends that size blocks by memory):
        the feature block, the log-joint and responsibilities (and the product's
        output), and per-row vectors."""
        return (self.M + 3 * self.K + self.D + 4) * itemsize + 16

    # ------------------------------------------------------------------ set-up
    def setup(self, ops):
        st = {"inv_scale": float(self.np_dtype.type(1.0 / self.frame.scale))}
        st["center"] = ops.asarray(self.frame.center.astype(self.np_dtype))
        if self.anchors is not None:
            st["anchors"] = ops.asarray(self.anchors, dtype=np.float64)
            st["center64"] = ops.asarray(self.frame.center, dtype=np.float64)
            st["rows_cap"] = _anchored_rows(self.K, self.D, self.np_dtype.itemsize,
                                            getattr(ops, "gpu_form", ops.on_gpu))
            if self.ct == "full":
                iu, ju = np.triu_indices(self.D)
                st["iu"] = ops.asarray(iu, dtype=np.int64)
                st["ju"] = ops.asarray(ju, dtype=np.int64)
            if self.plan is not None:
                _, prec, const = self.plan.cast_anchored(self.np_dtype)
                st["prec"] = ops.asarray(prec)
                st["const"] = ops.asarray(const)
        st["levels"] = bool(self.ct == "full" and self.anchors is None
                            and getattr(ops, "gpu_form", False) and _levels_apply(self.D))
        order = None
        if st["levels"]:
            # Features in level order: coefficients permuted to it, statistics mapped
            # back to vech order (one small gather per block).
            order, to_vech = _level_maps(self.D)
            st["to_vech"] = ops.asarray(to_vech, dtype=np.int64)
        if self.anchors is None and self.plan is not None:
            eta, tied_chol, _ = self.plan.cast(self.np_dtype)
            etaT = eta.T if order is None else eta.T[:, order]
            st["etaT"] = ops.asarray(np.ascontiguousarray(etaT))
            if self.ct == "tied":
                st["tcT"] = ops.asarray(np.ascontiguousarray(tied_chol.T))
        if self.cz is not None:
            st["cz"] = ops.asarray(self.cz, dtype=np.float64)
            st["cz_sq"] = ops.sum(st["cz"] * st["cz"], axis=1)
        return st

    # ------------------------------------------------------------------ pieces
    def _given(self, ops, st, LT, start, stop, Z64):
        """Responsibilities from the centres or the caller, into LT (K, rows)."""
        if self.cz is not None:
            # emix.em.init.nearest's expression, so both give the same labels.
            d2 = ops.sumsq(Z64, axis=1)[:, None] - 2.0 * ops.matmul(Z64, st["cz"].T) + st["cz_sq"]
            ops.one_hot_cols_(LT, ops.argmin(d2, axis=1))
            return LT
        block = np.asarray(self.resp(start, stop), dtype=self.np_dtype)
        if block.shape != (stop - start, self.K):
            raise InputError(
                f"resp({start}, {stop}) returned shape {block.shape}; expected "
                f"({stop - start}, {self.K})"
            )
        # A copy: the caller's array must not be weighted in place.
        return ops.asarray(np.array(block.T, order="C"))

    def _add_loglik(self, ops, acc, lse, wb):
        acc["loglik"] += ops.sum64(lse) if wb is None else ops.dot64(wb, lse)

    def expanded_log_joint(self, ops, st, FT, z, LT):
        """Write the block's log-joint into ``LT`` (K, rows): ``eta^T @ T(z)``."""
        ops.matmul(st["etaT"], FT, out=LT)
        if self.ct == "tied":
            Y = ops.matmul(st["tcT"], z)
            LT -= 0.5 * ops.sumsq(Y, axis=0)

    def anchored_log_joint(self, ops, st, Dk):
        """(K, rows) log-joint from the offsets ``Dk = z - a_k`` (K, rows, D)."""
        ct, prec = self.ct, st["prec"]
        if ct in ("full", "tied"):
            Y = ops.matmul(Dk, prec)
            q = ops.sum(Y * Y, axis=2)
        elif ct == "diag":
            q = ops.matmul(Dk * Dk, prec[:, :, None])[:, :, 0]
        else:
            q = prec[:, None] * ops.sum(Dk * Dk, axis=2)
        q *= -0.5
        q += st["const"][:, None]
        return q

    def _in_frame64(self, ops, st, Xb):
        return (ops.cast(Xb, ops.f64) - st["center64"]) * (1.0 / self.frame.scale)

    # ------------------------------------------------------------------ blocks
    def block(self, ops, st, Xb, wb, acc, start, stop):
        if self.anchors is None:
            self._expanded_block(ops, st, Xb, wb, acc, start, stop)
            return
        cap = st["rows_cap"]
        for a in range(0, stop - start, cap):
            b = min(a + cap, stop - start)
            self._anchored_block(
                ops, st, Xb[a:b], None if wb is None else wb[a:b], acc, start + a, start + b
            )

    def _expanded_block(self, ops, st, Xb, wb, acc, start, stop):
        rows = stop - start
        FT = ops.scratch("FT", (self.M, rows))
        FT[-1] = 1.0
        z = _build_features(ops, FT, Xb, st["center"], st["inv_scale"], self.ct, self.D,
                            st["levels"])
        if self.plan is not None:
            LT = ops.scratch("LT", (self.K, rows))
            self.expanded_log_joint(ops, st, FT, z, LT)
            self._add_loglik(ops, acc, ops.softmax_cols_(LT, self.dead), wb)
        else:
            LT = self._given(ops, st, ops.scratch("LT", (self.K, rows)), start, stop,
                             ops.cast(z.T, ops.f64))
        if wb is not None:
            LT *= wb
        # Added into the float64 accumulators with promotion (no separate cast kernel).
        S = ops.weighted_stats(LT, FT)
        acc["acc"] += S if not st["levels"] else ops.take(S, st["to_vech"], axis=1)
        if self.ct == "tied":
            # sqrt(w) on both sides keeps the scatter exactly symmetric.
            zs = z if wb is None else z * ops.sqrt(wb)
            acc["scatter"] += ops.matmul(zs, zs.T)

    def _anchored_block(self, ops, st, Xb, wb, acc, start, stop):
        ct, D = self.ct, self.D
        Z = self._in_frame64(ops, st, Xb)  # (rows, D), float64
        # Offsets from far-away anchors are formed exactly in float64, then rounded to
        # the data's dtype once they are small.
        Dk64 = Z[None, :, :] - st["anchors"][:, None, :]  # (K, rows, D)
        if self.plan is not None:
            LT = self.anchored_log_joint(ops, st, ops.cast(Dk64))
            self._add_loglik(ops, acc, ops.softmax_cols_(LT, self.dead), wb)
        else:
            LT = self._given(ops, st, ops.empty((self.K, stop - start)), start, stop, Z)
        if wb is not None:
            LT *= wb
        # The anchored path serves ill-conditioned components (thin or far-off), whose
        # covariances lose eps times the condition number: statistics in float64.
        R = ops.cast(LT, ops.f64)
        out = acc["acc"]
        off = first_moment_offset(ct, D)
        out[:, -1] += ops.sum(R, axis=1)
        out[:, off : off + D] += ops.matmul(R[:, None, :], Dk64)[:, 0]
        if ct in ("full", "tied"):
            # sqrt(r) on both sides keeps each Gram matrix exactly symmetric.
            Ds = Dk64 * ops.sqrt(R)[:, :, None]
            G = ops.matmul(Ds.swapaxes(1, 2), Ds)  # (K, D, D)
            if ct == "full":
                out[:, :off] += G[:, st["iu"], st["ju"]]
            else:
                acc["scatter"] += ops.sum(G, axis=0)
        elif ct == "diag":
            out[:, :D] += ops.matmul(R[:, None, :], Dk64 * Dk64)[:, 0]
        else:
            out[:, 0] += ops.sum(R * ops.sum(Dk64 * Dk64, axis=2), axis=1)


class _RespMeans:
    """Weighted component means (K, D) in the frame from given responsibilities."""

    def __init__(self, resp, frame, K, D):
        self.resp, self.frame, self.K = resp, frame, K
        self.acc_shapes = {"n": (K,), "s1": (K, D)}

    def setup(self, ops):
        return {"center": ops.asarray(self.frame.center, dtype=np.float64)}

    def block(self, ops, st, Xb, wb, acc, start, stop):
        R = ops.asarray(np.asarray(self.resp(start, stop), dtype=np.float64), dtype=np.float64)
        if wb is not None:
            R = R * ops.cast(wb, ops.f64)[:, None]
        Z = (ops.cast(Xb, ops.f64) - st["center"]) * (1.0 / self.frame.scale)
        acc["n"] += ops.sum(R, axis=0)
        acc["s1"] += ops.matmul(R.T, Z)


def weight_total(backend, sample_weight, n: int, weight_sum: float | None = None) -> float:
    """``sum_n w_n`` of a pass: n without weights, ``weight_sum`` when the caller knows
    it (computed once per fit), else summed from the weights in float64."""
    if sample_weight is None:
        return float(n)
    if weight_sum is not None:
        return float(weight_sum)
    return float(np.sum(backend.to_numpy(sample_weight), dtype=np.float64))


def mixture_pass(
    backend,
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
    weight_sum: float | None = None,
) -> GaussianStats:
    """One pass over ``X`` on ``backend``: responsibilities, statistics, log-likelihood.

    Parameters
    ----------
    backend : NumpyBackend or TorchBackend
    X : array of shape (N, D), float32 or float64, of the backend
    sample_weight : array of shape (N,) or None
    plan : EStepPlan or None
        Parameters to compute responsibilities from. None when ``resp`` or ``centers``
        is given.
    resp : callable (start, stop) -> ndarray of shape (stop - start, K), optional
        Responsibilities supplied by the caller (initialisation).
    centers : ndarray of shape (K, D), optional
        Hard responsibilities: every row belongs to its nearest centre.
    weight_sum : float, optional
        ``sum(sample_weight)`` when the caller knows it (it is the same on every pass,
        and reading device weights back to the host each pass would cost a transfer).

    Returns
    -------
    GaussianStats
    """
    N, D = X.shape
    K, ct = n_components, covariance_type
    np_dtype = backend.numpy_dtype(X)
    M = n_features_of(ct, D)
    cz = None
    if plan is None and centers is not None:
        cz = (np.asarray(centers, dtype=np.float64) - frame.center) / frame.scale

    def resp_means():
        acc = backend.stats_pass(
            X, sample_weight, _RespMeans(resp, frame, K, D), block_size=block_size, width=max(K, M)
        )
        return acc["s1"] / np.where(acc["n"] > 0, acc["n"], 1.0)[:, None]

    # Decided once per pass, so every block's (and thread's) statistics are about the
    # same anchors and add up.
    anchors = pass_anchors(plan, np_dtype, cz, resp_means)
    kernel = _Kernel(plan, frame, ct, K, D, np_dtype, anchors, resp, cz)
    acc = backend.stats_pass(X, sample_weight, kernel, block_size=block_size, width=max(K, M))
    wsum = weight_total(backend, sample_weight, N, weight_sum)
    return GaussianStats(
        ct,
        frame,
        np.ascontiguousarray(acc["acc"]),
        acc.get("scatter"),
        float(acc["loglik"]) if plan is not None else 0.0,
        wsum,
        N,
        anchors,
    )


class _LogJoint:
    def row_bytes(self, itemsize: int, gpu_form: bool) -> int:
        return self.kernel.row_bytes(itemsize, gpu_form) + self.n_out * itemsize

    def __init__(self, plan, D, np_dtype, anchored):
        self.kernel = _Kernel(
            plan, plan.frame, plan.covariance_type, plan.n_components, D, np_dtype,
            plan.anchors if anchored else None, None, None,
        )
        self.n_out = plan.n_components

    def setup(self, ops):
        return self.kernel.setup(ops)

    def rows(self, ops, st, Xb):
        k = self.kernel
        if k.anchors is not None:
            Z = k._in_frame64(ops, st, Xb)
            return k.anchored_log_joint(ops, st, ops.cast(Z[None, :, :] - st["anchors"][:, None, :])).T
        rows = Xb.shape[0]
        FT = ops.scratch("FT", (k.M, rows))
        FT[-1] = 1.0
        z = _build_features(ops, FT, Xb, st["center"], st["inv_scale"], k.ct, k.D,
                            st["levels"])
        LT = ops.scratch("LT", (k.K, rows))
        k.expanded_log_joint(ops, st, FT, z, LT)
        return LT.T


def log_joint(backend, X, plan: EStepPlan, *, block_size: int | None = None) -> np.ndarray:
    """``log w_k + log N(x_n | k)`` for every row and component.

    Returns
    -------
    ndarray of shape (N, K), in X's dtype
    """
    N, D = X.shape
    np_dtype = backend.numpy_dtype(X)
    anchored = plan.needs_anchors(np_dtype)
    M = n_features_of(plan.covariance_type, D)
    K = plan.n_components
    if anchored:
        # The anchored form's (K, rows, D) temporaries need smaller blocks.
        cap = _anchored_rows(K, D, np_dtype.itemsize, getattr(backend, "device", None) is not None
                             and str(backend.device).startswith("cuda"))
        block_size = cap if block_size is None else min(block_size, cap)
    return backend.map_rows(X, _LogJoint(plan, D, np_dtype, anchored), block_size=block_size,
                            width=max(K, M))
