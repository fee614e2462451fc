"""The Gaussian E-step for rows with missing cells (exact EM for incomplete data).

A row ``z`` (in the frame ``z = (x - c) / s``) with observed cells ``O`` and missing
cells ``M`` has, under component k with mean ``mu`` and precision ``P``:

* log-density: the marginal ``N(z_O | mu_O, Sigma_OO)``. Its precision is the Schur
  complement ``Lambda = Sigma_OO^-1 = P_OO - P_OM P_MM^-1 P_MO`` and
  ``log det Sigma_OO = log det Sigma + log det P_MM``;
* expected statistics: ``E[z_M | z_O] = mu_M + B (z_O - mu_O)`` with ``B = -P_MM^-1
  P_MO``, and ``Cov[z_M | z_O] = C = P_MM^-1``; ``E[z z^T | z_O] = fill fill^T + C``
  (C in the M x M block).

How it stays near the cost of complete data. Rows are grouped by missingness pattern.
With the missing cells set to 0, the complete feature map ``T(z) = [vech(z z^T), z, 1]``
of a row has zeros in every feature that touches a missing cell, so within a pattern

* the log-densities are one product ``eta_p @ T(z)`` with a pattern-specific natural
  parameter matrix ``eta_p`` (K, M) (``Lambda`` and ``Lambda mu`` in the observed slots,
  zeros elsewhere): the same GEMM as complete data, per pattern segment;
* the statistics are the observed ones, ``T(z) @ R^T`` per pattern (the same second
  GEMM), mapped on the host to expected full moments by an affine map per (pattern,
  component): ``s1_M = B s1_O + n c``, ``S2_MO = B S2_OO + c s1_O^T``, ``S2_MM = S2_MO
  B^T + s1_M c^T + n C`` with ``c = mu_M - B mu_O``.

The per-(pattern, component) linear algebra is done on the host in float64, batched
over all patterns with the same number of missing cells. For diagonal and spherical
covariances the columns are independent given the component, so ``B = 0``: a missing
cell's expected square is ``mu_d^2 + 1/p_d`` and no cross terms arise.

Three passes implement this for ``GaussianMixture`` (``missing_pass``):

* full and tied: the *low-rank* pass (``_LowRankKernel``): ``Lambda`` is ``P`` minus a
  rank-m term, so the quadratic product is shared by every row of a block; each pattern
  adds a (K m) x D product with the rows M of P (gathered on the device) and, per row,
  m x m products with ``C = P_MM^-1`` for the rank-m correction and the fills
  ``E[z_M | z_O, k] = mu_M - C y_M``. The observed moments of a block are one product;
  the fills' cross moments are summed per pattern and added into per-component cells
  on the device. A block's pieces of patterns shorter than ``_BIG_SEGMENT`` rows are
  padded (by length bucket) and run as one batched product per bucket. Host work per
  (pattern, component) is an m x m Cholesky factor and inverse, compiled with numba.
* diag and spherical: no patterns at all (``_IndependentKernel``): the complete product
  plus a (K x D) product with the missing-cell indicator.
* the per-pattern natural-parameter pass (``_PatternKernel``), the direct form of the
  above, kept as the reference the others are tested against (``_LOW_RANK = False``).

The Normal and Student-t families' missing-value hooks (used by ``MixtureModel`` and
``HMM``) run the per-pattern form per block.

Everything here that runs on blocks is written against the backend's ``ops``, so it runs
on NumPy and torch alike; everything else is host NumPy float64.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace

import numpy as np

from .gaussian import unpack_upper, upper_indices

__all__ = [
    "PatternGroups",
    "group_patterns",
    "MarginalParams",
    "marginal_params",
    "expected_moments",
    "masked_features",
    "conditional_means",
    "conditional_draw",
    "quad_width",
]

_LOG_2PI = math.log(2.0 * math.pi)
# Patterns processed together on the host: bounds the (patterns, K, D, D) temporaries.
_PATTERN_CHUNK = 512
# Patterns with fewer rows than this are evaluated row by row with gathered parameters
# (one batched product per block) instead of one product per pattern.
_SMALL_PATTERN = 32
# In the low-rank pass, a block's pieces of patterns shorter than this are padded to a
# common length and evaluated by one batched product per number of missing cells.
_BIG_SEGMENT = 1024
# The low-rank pass for full and tied covariances (see _LowRankKernel); False runs the
# per-pattern natural-parameter pass for every type (kept as a reference).
_LOW_RANK = True
# Threads for the per-pattern linear algebra on the host: at most 4 (the pieces are
# small), fewer on a small machine or under EMIX_NUM_THREADS (as the passes).
_POOL = None
_POOL_PID = None


_KERNELS = None


def _numba_kernels():
    """Compile (or load from numba's cache) the host kernels on first use."""
    global _KERNELS
    if _KERNELS is None:
        from . import _missing_numba

        _KERNELS = _missing_numba
    return _KERNELS


def _host_threads() -> int:
    env = os.environ.get("EMIX_NUM_THREADS", "").strip()
    n = int(env) if env.isdigit() and int(env) > 0 else (os.cpu_count() or 1)
    return max(1, min(4, n))


def _host_pool():
    global _POOL, _POOL_PID
    if _POOL is None or _POOL_PID != os.getpid():
        from concurrent.futures import ThreadPoolExecutor

        _POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="emix-missing")
        _POOL_PID = os.getpid()
    return _POOL


def quad_width(layout: str, D: int) -> int:
    """Width of the quadratic part of the feature map: full (vech), diag, spherical."""
    return {"full": D * (D + 1) // 2, "diag": D, "spherical": 1}[layout]


# --------------------------------------------------------------------------- patterns
@dataclass(frozen=True)
class PatternGroups:
    """Rows grouped by missingness pattern.

    Attributes
    ----------
    order : ndarray of shape (n,), int
        Row indices sorted by pattern (stable: rows keep their order within a pattern).
    observed : ndarray of shape (P, D), bool
        Each pattern's observed cells. Patterns are sorted by their number of missing
        cells, so patterns with equal counts are contiguous.
    starts : ndarray of shape (P + 1,), int
        Pattern p holds the sorted rows ``order[starts[p]:starts[p + 1]]``.
    n_missing : ndarray of shape (P,), int
    """

    order: np.ndarray
    observed: np.ndarray
    starts: np.ndarray
    n_missing: np.ndarray

    @property
    def n_patterns(self) -> int:
        return self.observed.shape[0]

    def segment_arrays(self, start: int, stop: int):
        """``(p, a, b)``, int arrays: every pattern p overlapping sorted rows
        ``start:stop``, with ``a:b`` the overlap relative to ``start``."""
        s = self.starts
        p0 = max(int(np.searchsorted(s, start, side="right")) - 1, 0)
        p1 = min(int(np.searchsorted(s, stop, side="left")), self.n_patterns)
        p = np.arange(p0, max(p0, p1))
        a = np.maximum(s[p], start) - start
        b = np.minimum(s[p + 1], stop) - start
        keep = b > a
        return p[keep], a[keep], b[keep]

    def segments(self, start: int, stop: int):
        """:meth:`segment_arrays` as a list of ``(p, a, b)`` int tuples."""
        return list(zip(*(x.tolist() for x in self.segment_arrays(start, stop))))


def split_rows(missing: np.ndarray, exclude=None):
    """The rows without missing cells, and the others sorted by pattern.

    Parameters
    ----------
    missing : ndarray of shape (n, D), bool
    exclude : ndarray of shape (n,), bool, optional
        Rows with missing cells to leave out (those with nothing observed, say).

    Returns
    -------
    complete : ndarray of int, the complete rows
    order : ndarray of int, the rows with missing cells, sorted by pattern
    groups : PatternGroups of ``order``'s rows, numbered in that order (its ``order``
        is the identity)
    """
    has = missing.any(axis=1)
    inc = np.flatnonzero(has if exclude is None else has & ~exclude)
    groups = group_patterns(missing[inc])
    order = inc[groups.order]
    return np.flatnonzero(~has), order, replace(groups, order=np.arange(order.size))


def group_patterns(missing: np.ndarray) -> PatternGroups:
    """Group rows by their missing cells.

    Parameters
    ----------
    missing : ndarray of shape (n, D), bool
        True where a cell is missing.

    Returns
    -------
    PatternGroups
    """
    missing = np.asarray(missing, dtype=bool)
    n, D = missing.shape
    if n == 0:
        return PatternGroups(np.zeros(0, np.intp), np.zeros((0, D), bool),
                             np.zeros(1, np.intp), np.zeros(0, np.intp))
    n_miss_rows = missing.sum(axis=1)
    if D <= 57:
        # One integer per row, the number of missing cells above the cells' bits (the
        # first column highest): a single stable sort orders the rows by pattern, the
        # patterns by number of missing cells and then by their bits. (The same order
        # as the general path below, at a third of its time.)
        key = n_miss_rows.astype(np.uint64)
        for j in range(D):
            key <<= np.uint64(1)
            key |= missing[:, j]
        order = np.argsort(key, kind="stable")
        sk = key[order]
        starts = np.concatenate([[0], np.flatnonzero(sk[1:] != sk[:-1]) + 1, [n]])
        pat_missing = missing[order[starts[:-1]]]
        return PatternGroups(order.astype(np.intp), ~pat_missing, starts.astype(np.intp),
                             pat_missing.sum(axis=1).astype(np.intp))
    packed = np.packbits(missing, axis=1)
    keys = np.ascontiguousarray(packed).view(np.dtype((np.void, packed.shape[1]))).ravel()
    uniq, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    pat_missing = missing[first]  # (P, D)
    n_miss = pat_missing.sum(axis=1)
    # Patterns by number of missing cells (then by key): equal counts are contiguous.
    porder = np.lexsort((np.arange(len(uniq)), n_miss))
    rank = np.empty_like(porder)
    rank[porder] = np.arange(len(porder))
    row_pattern = rank[inverse]
    order = np.argsort(row_pattern, kind="stable")
    counts = np.bincount(row_pattern, minlength=len(porder))
    starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.intp)
    return PatternGroups(order.astype(np.intp), ~pat_missing[porder], starts,
                         n_miss[porder].astype(np.intp))


# --------------------------------------------------------------------------- marginals
@dataclass(frozen=True)
class MarginalParams:
    """Each pattern's marginal Gaussian and conditional of its missing cells, per
    component, in the frame (float64, host).

    Attributes
    ----------
    layout : {'full', 'diag', 'spherical'}
    eta : ndarray of shape (P, K, Q + D)
        The quadratic and linear natural parameters of the observed part:
        ``eta . [quad(z), z] = -z_O^T Lambda z_O / 2 + mu_O^T Lambda z_O`` (z_M = 0).
    mlm : ndarray of shape (P, K)
        ``mu_O^T Lambda mu_O``.
    logdet_mm : ndarray of shape (P, K)
        ``log det P_MM`` in the frame (0 for a complete pattern).
    n_missing : ndarray of shape (P,)
    observed : ndarray of shape (P, D), bool
    groups : list of (lo, hi, mis, B, c, C)
        Full layout only: patterns ``lo:hi`` have ``m`` missing cells ``mis`` (hi-lo,
        m); ``B`` (hi-lo, K, m, D) with zeros in the missing columns, ``c`` (hi-lo, K,
        m), ``C`` (hi-lo, K, m, m): ``E[z_M | z_O] = B z + c`` and ``Cov = C``.
    """

    layout: str
    eta: np.ndarray
    mlm: np.ndarray
    logdet_mm: np.ndarray
    n_missing: np.ndarray
    observed: np.ndarray
    groups: list

    def log_const(self, log_scale: float) -> np.ndarray:
        """``-|O|/2 log 2 pi - 1/2 log det Sigma_OO`` relative to the complete-data
        ``-D/2 log 2 pi - 1/2 log det Sigma`` (data units), shape (P, K)::

            m/2 log 2 pi - 1/2 (log det P_MM(frame) - 2 m log s)
        """
        m = self.n_missing[:, None].astype(np.float64)
        return 0.5 * m * _LOG_2PI - 0.5 * (self.logdet_mm - 2.0 * m * log_scale)


def marginal_params(layout: str, mu: np.ndarray, prec: np.ndarray,
                    observed: np.ndarray) -> MarginalParams:
    """The marginal natural parameters and conditionals of every pattern.

    Parameters
    ----------
    layout : {'full', 'diag', 'spherical'}
    mu : ndarray of shape (K, D)
        Means in the frame.
    prec : ndarray
        Precisions in the frame: (K, D, D) full, (K, D) diag, (K,) spherical.
    observed : ndarray of shape (P, D), bool
        The patterns, sorted by number of missing cells (as :func:`group_patterns`).

    Returns
    -------
    MarginalParams
    """
    mu = np.asarray(mu, dtype=np.float64)
    K, D = mu.shape
    obs = np.asarray(observed, dtype=bool)
    P = obs.shape[0]
    n_miss = (~obs).sum(axis=1)
    of = obs.astype(np.float64)  # (P, D)
    if layout in ("diag", "spherical"):
        p = np.asarray(prec, dtype=np.float64)
        pd = p if layout == "diag" else np.repeat(p[:, None], D, axis=1)  # (K, D)
        po = of[:, None, :] * pd[None]  # (P, K, D)
        lin = po * mu[None]
        quad = -0.5 * po if layout == "diag" else -0.5 * p[None, :, None] * np.ones((P, 1, 1))
        mlm = np.sum(po * mu[None] ** 2, axis=2)
        logdet_mm = ((1.0 - of)[:, None, :] * np.log(pd)[None]).sum(axis=2)
        return MarginalParams(layout, np.concatenate([quad, lin], axis=2), mlm, logdet_mm,
                              n_miss, obs, [])
    Pm = np.asarray(prec, dtype=np.float64)  # (K, D, D)
    iu, ju = upper_indices(D)
    twice = np.where(iu == ju, 1.0, 2.0)
    T = iu.size
    quad_full = -0.5 * Pm[:, iu, ju] * twice  # (K, T)
    vech = iu * D + ju
    Pmu = (Pm @ mu[:, :, None])[..., 0]  # (K, D)
    eta = np.empty((P, K, T + D))
    mlm = np.empty((P, K))
    logdet_mm = np.zeros((P, K))
    groups = []
    lo = 0
    while lo < P:
        m = int(n_miss[lo])
        hi = lo
        while hi < P and n_miss[hi] == m and hi - lo < _PATTERN_CHUNK:
            hi += 1
        np_ = hi - lo
        ofc = of[lo:hi]
        if m == 0:
            eta[lo:hi, :, :T] = quad_full[None]
            lin = np.broadcast_to(Pmu[None], (np_, K, D))
            groups.append((lo, hi, np.zeros((np_, 0), np.intp), np.zeros((np_, K, 0, D)),
                           np.zeros((np_, K, 0)), np.zeros((np_, K, 0, 0))))
        else:
            mis = np.nonzero(~obs[lo:hi])[1].reshape(np_, m)  # (np, m), ascending
            PM = np.moveaxis(Pm[:, mis, :], 0, 1)  # (np, K, m, D): rows M of P
            PMM = np.take_along_axis(PM, mis[:, None, None, :], axis=3)  # (np, K, m, m)
            L = np.linalg.cholesky(PMM)
            logdet_mm[lo:hi] = 2.0 * np.sum(np.log(np.diagonal(L, axis1=2, axis2=3)), axis=2)
            eye = np.broadcast_to(np.eye(m), PMM.shape)
            Linv = np.linalg.solve(L, eye)
            C = np.swapaxes(Linv, 2, 3) @ Linv  # P_MM^-1 (np, K, m, m)
            C = 0.5 * (C + np.swapaxes(C, 2, 3))
            CPM = C @ PM  # (np, K, m, D)
            # Lambda = P - PM^T C PM: its M rows and columns vanish (exactly, after the
            # mask); only its upper triangle and Lambda mu are needed.
            corr = (np.swapaxes(PM, 2, 3) @ CPM).reshape(np_, K, D * D)[..., vech]
            pair = (ofc[:, iu] * ofc[:, ju])[:, None, :]  # (np, 1, T)
            eta[lo:hi, :, :T] = (quad_full[None] + 0.5 * corr * twice) * pair
            v = np.sum(CPM * mu[None, :, None, :], axis=3)  # (np, K, m)
            lin = Pmu[None] - np.sum(PM * v[..., None], axis=2)
            lin = lin * ofc[:, None, :]
            B = -CPM * ofc[:, None, None, :]  # zero in the missing columns
            muM = np.moveaxis(mu[:, mis], 0, 1)  # (np, K, m)
            c = muM - np.sum(B * mu[None, :, None, :], axis=3)
            groups.append((lo, hi, mis, B, c, C))
        eta[lo:hi, :, T:] = lin
        mlm[lo:hi] = np.sum(lin * mu[None], axis=2)
        lo = hi
    return MarginalParams("full", eta, mlm, logdet_mm, n_miss, obs, groups)


def expected_moments(marg: MarginalParams, mu: np.ndarray, prec: np.ndarray,
                     G: np.ndarray, n_cov: np.ndarray | None = None):
    """Expected complete-data moments summed over patterns, from the observed ones.

    Parameters
    ----------
    marg : MarginalParams
    mu : ndarray of shape (K, D), frame
    prec : precisions in the frame, as for :func:`marginal_params`
    G : ndarray of shape (P, K, Q + D + 1)
        Per pattern and component: ``sum_n r_nk [quad(z_n), z_n, 1]`` over the pattern's
        rows with missing cells set to 0 (the observed statistics).
    n_cov : ndarray of shape (P, K), optional
        The responsibility mass multiplying the conditional covariance (default: the
        last column of ``G``). Differs for the Student-t, whose ``G`` is weighted by the
        latent scales ``u`` while ``E[u z_M z_M^T] = u fill fill^T + C``.

    Returns
    -------
    ndarray of shape (K, Q + D + 1)
        ``sum_n r_nk E[[quad(z), z, 1] | z_O, k]``.
    """
    mu = np.asarray(mu, dtype=np.float64)
    K, D = mu.shape
    layout = marg.layout
    Q = quad_width(layout, D)
    G = np.asarray(G, dtype=np.float64)
    n = G[:, :, -1]  # (P, K)
    nc = n if n_cov is None else np.asarray(n_cov, dtype=np.float64)
    out = G.sum(axis=0)
    if layout in ("diag", "spherical"):
        p = np.asarray(prec, dtype=np.float64)
        pd = p if layout == "diag" else np.repeat(p[:, None], D, axis=1)
        return _independent_moments(out, marg, mu, pd, n, nc, layout, Q)
    iu, ju = upper_indices(D)
    S2x = np.zeros((K, D, D))
    S2m = np.zeros((K, D, D))
    S1 = np.zeros((K, D))
    scatter = _numba_kernels().scatter_fills
    for lo, hi, mis, B, c, C in marg.groups:
        m = mis.shape[1]
        if m == 0:
            continue
        Gp = G[lo:hi]
        np_ = hi - lo
        S2o = unpack_upper(Gp[:, :, :Q].reshape(np_ * K, Q), D).reshape(np_, K, D, D)
        s1o = Gp[:, :, Q : Q + D]
        nn = n[lo:hi]
        X1 = np.einsum("pkmd,pkde->pkme", B, S2o, optimize=True)
        X1 += c[..., :, None] * s1o[..., None, :]  # (np, K, m, D)
        s1M = np.sum(B * s1o[..., None, :], axis=3) + nn[..., None] * c
        MM = X1 @ np.swapaxes(B, 2, 3) + s1M[..., :, None] * c[..., None, :] \
            + nc[lo:hi, :, None, None] * C
        # Scatter-add over patterns into the (d, e) cells they fill: rows M of X1 (and
        # by symmetry columns M), the M x M block of MM.
        scatter(mis.astype(np.int64), np.ascontiguousarray(X1), np.ascontiguousarray(MM),
                np.ascontiguousarray(s1M), S2x, S2m, S1)
    # X1 filled the rows M (its M columns are 0); their mirror images are the columns M.
    S2 = S2x + np.swapaxes(S2x, 1, 2) + S2m
    out[:, :Q] += S2[:, iu, ju]
    out[:, Q : Q + D] += S1
    return out


def _independent_moments(out, marg, mu, pd, n, nc, layout, Q):
    """Diagonal and spherical: a missing cell's expected value is ``mu_d`` and its
    expected square ``mu_d^2 + 1/p_d`` (the columns are independent given k)."""
    K, D = mu.shape
    miss = (~marg.observed).astype(np.float64)  # (P, D)
    mass = np.einsum("pk,pd->kd", n, miss)
    mass_c = np.einsum("pk,pd->kd", nc, miss)
    sq = mass * mu**2 + mass_c / pd
    if layout == "diag":
        out[:, :D] += sq
    else:
        out[:, 0] += sq.sum(axis=1)
    out[:, Q : Q + D] += mass * mu
    return out


def masked_features(ops, FT, Xb, center, inv_scale: float, layout: str, D: int, zero):
    """Write ``[quad(z), z, ...]`` of a block into ``FT`` (at least Q + D rows), with
    every missing cell's z set to 0 (so every feature touching it is 0).

    Parameters
    ----------
    FT : array of shape (M, rows), the data's dtype
    Xb : array of shape (rows, D), NaN where missing
    center : array of shape (D,)
    zero : a scalar array 0 of the data's dtype

    Returns
    -------
    z : view of shape (D, rows)
    """
    Q = quad_width(layout, D)
    z = FT[Q : Q + D]
    ops.subtract(Xb.T, center[:, None], out=z)
    if inv_scale != 1.0:
        z *= inv_scale
    z[...] = ops.where(ops.isfinite(z), z, zero)
    if layout == "full":
        row = 0
        for d in range(D):
            ops.multiply(z[d], z[d:], out=FT[row : row + D - d])
            row += D - d
    elif layout == "diag":
        ops.multiply(z, z, out=FT[:D])
    else:
        ops.sumsq(z, axis=0, out=FT[0])
    return z


# --------------------------------------------------------------------------- imputation
def conditional_means(mu: np.ndarray, cov: np.ndarray, X: np.ndarray, O: np.ndarray) -> np.ndarray:
    """X with each row's missing cells replaced by ``E[x_M | x_O, k]``, per component.

    Parameters
    ----------
    mu : ndarray of shape (K, D), data units
    cov : ndarray of shape (K, D, D), data units (diagonal ones as full matrices)
    X : ndarray of shape (N, D), NaN where missing
    O : ndarray of shape (N, D), bool, True where observed

    Returns
    -------
    ndarray of shape (K, N, D)
    """
    mu = np.asarray(mu, dtype=np.float64)
    K, D = mu.shape
    X = np.asarray(X, dtype=np.float64)
    out = np.repeat(np.where(O, X, 0.0)[None], K, axis=0)
    rows = np.flatnonzero(~O.all(axis=1))
    if not rows.size:
        return out
    groups = group_patterns(~O[rows])
    prec = np.linalg.inv(np.asarray(cov, dtype=np.float64))
    marg = marginal_params("full", np.zeros((K, D)), prec, groups.observed)
    for lo, hi, mis, B, c, C in marg.groups:
        if mis.shape[1] == 0:
            continue
        for j, p in enumerate(range(lo, hi)):
            idx = rows[groups.order[groups.starts[p]:groups.starts[p + 1]]]
            ms = mis[j]
            dz = out[:, idx, :] - np.where(O[idx], mu[:, None, :], 0.0)  # z_O - mu_O, 0 at M
            fill = mu[:, None, ms] + np.einsum("kmd,knd->knm", B[j], dz)
            out[:, idx[:, None], ms[None, :]] = fill
    return out


def conditional_draw(mu, cov, X, O, z, rng, scale_draws=None) -> np.ndarray:
    """X with each row's missing cells drawn from ``N(E[x_M | x_O, z_n], Cov[x_M | x_O,
    z_n])`` (divided by ``sqrt(scale_draws)`` per row when given, for scale mixtures).

    Parameters
    ----------
    mu : (K, D), cov : (K, D, D), data units
    X : (N, D), O : (N, D) bool, z : (N,) int components
    rng : numpy Generator
    scale_draws : ndarray of shape (N,), optional

    Returns
    -------
    ndarray of shape (N, D)
    """
    mu = np.asarray(mu, dtype=np.float64)
    K, D = mu.shape
    X = np.asarray(X, dtype=np.float64)
    out = np.where(O, X, 0.0)
    rows = np.flatnonzero(~O.all(axis=1))
    if not rows.size:
        return out
    z = np.asarray(z)
    groups = group_patterns(~O[rows])
    prec = np.linalg.inv(np.asarray(cov, dtype=np.float64))
    marg = marginal_params("full", np.zeros((K, D)), prec, groups.observed)
    for lo, hi, mis, B, c, C in marg.groups:
        if mis.shape[1] == 0:
            continue
        m = mis.shape[1]
        for j, p in enumerate(range(lo, hi)):
            idx = rows[groups.order[groups.starts[p]:groups.starts[p + 1]]]
            ms = mis[j]
            kk = z[idx]
            dz = out[idx] - np.where(O[idx], mu[kk], 0.0)
            fill = mu[kk][:, ms] + np.einsum("nmd,nd->nm", B[j][kk], dz)
            Lc = np.linalg.cholesky(C[j][kk])  # (n, m, m)
            e = np.einsum("nij,nj->ni", Lc, rng.standard_normal((idx.size, m)))
            if scale_draws is not None:
                e = e / np.sqrt(scale_draws[idx])[:, None]
            out[idx[:, None], ms[None, :]] = fill + e
    return out


# --------------------------------------------------------------------------- GaussianMixture pass
def _layout(covariance_type: str) -> str:
    return "full" if covariance_type in ("full", "tied") else covariance_type


def plan_marginals(plan, groups: PatternGroups):
    """``(marg, mu, prec, eta)`` of an :class:`emix.families.gaussian.EStepPlan` for the
    patterns of ``groups``: ``eta`` (P, K, M) is the full natural-parameter matrix of
    each pattern in the GaussianMixture feature layout ``[quad, z, 1]`` (log weights
    and normalisers in the last column), so that ``eta[p] @ T(z)`` is ``log w_k + log
    N(x_O | k)`` for a row of pattern p."""
    ct = plan.covariance_type
    mu = np.asarray(plan.anchors, dtype=np.float64)
    K, D = mu.shape
    if ct == "full":
        U = np.asarray(plan.prec, dtype=np.float64)
        prec = U @ np.swapaxes(U, 1, 2)
    elif ct == "tied":
        U = np.asarray(plan.prec, dtype=np.float64)
        prec = np.broadcast_to(U @ U.T, (K, D, D))
    else:
        prec = np.asarray(plan.prec, dtype=np.float64)
    layout = _layout(ct)
    marg = marginal_params(layout, mu, prec, groups.observed)
    with np.errstate(invalid="ignore"):
        const = plan.const[None, :] + marg.log_const(math.log(plan.frame.scale)) - 0.5 * marg.mlm
    eta = np.concatenate([marg.eta, const[:, :, None]], axis=2)
    return marg, mu, prec, eta


class _MaskedKernel:
    """What the missing-value kernels share: the frame's state on the device, the
    masked feature map of a block and its responsibilities (``frame``, ``np_dtype``,
    ``layout``, ``M``, ``D``, ``dead`` set by each)."""

    def _frame_state(self, ops):
        dt = self.np_dtype
        return {"inv_scale": float(dt.type(1.0 / self.frame.scale)),
                "center": ops.asarray(self.frame.center, dtype=dt),
                "zero": ops.zeros((), dtype=dt)}

    def _features(self, ops, st, Xb, key):
        """``(Xb, FT, z)``: the block in the kernel's dtype, its features ``[quad(z), z,
        ..., 1]`` (M, rows) in the scratch buffer ``key`` and the view z (D, rows), with
        missing cells' z set to 0 (:func:`masked_features`)."""
        if self.np_dtype != ops.dtype:
            Xb = ops.cast(Xb, self.np_dtype)
        FT = ops.scratch(key, (self.M, Xb.shape[0]), dtype=self.np_dtype)
        FT[-1] = 1.0
        z = masked_features(ops, FT, Xb, st["center"], st["inv_scale"], self.layout, self.D,
                            st["zero"])
        return Xb, FT, z

    def _responsibilities(self, ops, LT, wb, acc) -> None:
        """Turn a block's log-joint LT (K, rows) into weighted responsibilities in
        place, adding its log-likelihood to ``acc["loglik"]`` (``dead``: components
        with no weight)."""
        lse = ops.softmax_cols_(LT, self.dead)
        if wb is not None and self.np_dtype != ops.dtype:
            wb = ops.cast(wb, self.np_dtype)
        acc["loglik"] += ops.sum64(lse) if wb is None else ops.dot64(wb, lse)
        if wb is not None:
            LT *= wb


class _PatternKernel(_MaskedKernel):
    """One pass over rows with missing cells, sorted by pattern: log-likelihood and
    observed statistics per (pattern, component); or (``rows``) the log-joint."""

    def __init__(self, groups, eta, frame, layout, K, D, np_dtype, dead, f64=False):
        self.groups, self.eta, self.frame, self.layout = groups, eta, frame, layout
        self.K, self.D = K, D
        self.np_dtype = np.dtype(np.float64 if f64 else np_dtype)
        self.M = eta.shape[2]
        self.dead = dead
        self.acc_shapes = {"obs": (groups.n_patterns, K, self.M), "loglik": ()}

    def setup(self, ops):
        return {**self._frame_state(ops),
                "eta": ops.asarray(np.ascontiguousarray(self.eta), dtype=self.np_dtype)}

    def _split(self, start, stop):
        """The block's pattern segments: large ones (one product each) and the rows of
        small ones, gathered: ``(big, small)`` with ``small`` None or ``(rows, pids,
        rounds)`` (host arrays: local row indices, each row's pattern, and the
        (positions in rows, patterns) of each summation round)."""
        segs = self.groups.segments(start, stop)
        counts = np.diff(self.groups.starts)
        big = [(p, a, b) for p, a, b in segs if counts[p] >= _SMALL_PATTERN or b - a >= _SMALL_PATTERN]
        few = [(p, a, b) for p, a, b in segs if not (counts[p] >= _SMALL_PATTERN or b - a >= _SMALL_PATTERN)]
        if not few:
            return big, None
        rows = np.concatenate([np.arange(a, b) for _, a, b in few])
        pids = np.concatenate([np.full(b - a, p) for p, a, b in few])
        # Rows summed per pattern in rounds: round j adds the j-th row of every pattern
        # that has one, so the patterns of a round are distinct (an indexed add is then
        # exact) and there are fewer than _SMALL_PATTERN rounds.
        offsets = np.concatenate([[0], np.cumsum([b - a for _, a, b in few])])
        sizes = np.diff(offsets)
        rounds = []
        for j in range(int(sizes.max())):
            have = np.flatnonzero(sizes > j)
            rounds.append((offsets[have] + j, np.array([few[i][0] for i in have])))
        return big, (rows, pids, rounds)

    def _log_joint(self, ops, st, Xb, start, stop):
        rows = stop - start
        _, FT, _ = self._features(ops, st, Xb, "mFT")
        LT = ops.scratch("mLT", (self.K, rows), dtype=self.np_dtype)
        big, small = self._split(start, stop)
        eta = st["eta"]
        for p, a, b in big:
            LT[:, a:b] = ops.matmul(eta[p], FT[:, a:b])
        dev = None
        if small is not None:
            # Rows of rare patterns: a product per pattern would cost more in calls than
            # in arithmetic, so each row is multiplied by its pattern's parameters,
            # gathered (rows, K, M), in one batched product.
            ri = ops.asarray(small[0], dtype=np.int64)
            pi = ops.asarray(small[1], dtype=np.int64)
            Fs = ops.take(FT, ri, axis=1)  # (M, n)
            Eg = ops.take(eta, pi, axis=0)  # (n, K, M)
            LT[:, ri] = ops.matmul(Eg, Fs.T[:, :, None])[:, :, 0].T
            rounds = [(ops.asarray(r, dtype=np.int64), ops.asarray(p, dtype=np.int64))
                      for r, p in small[2]]
            dev = (ri, Fs, rounds)
        return FT, LT, (big, dev)

    def block(self, ops, st, Xb, wb, acc, start, stop):
        FT, LT, (big, small) = self._log_joint(ops, st, Xb, start, stop)
        self._responsibilities(ops, LT, wb, acc)
        obs = acc["obs"]
        for p, a, b in big:
            obs[p] += ops.cast(ops.weighted_stats(LT[:, a:b], FT[:, a:b]), ops.f64)
        if small is not None:
            ri, Fs, rounds = small
            Rs = ops.take(LT, ri, axis=1)  # (K, n)
            contrib = ops.cast(Rs.T[:, :, None] * Fs.T[:, None, :], ops.f64)  # (n, K, M)
            for r, pr in rounds:
                obs[pr] += ops.take(contrib, r, axis=0)


def _stats_from_layout(ct, frame, out, loglik, weight_sum, n_rows, D):
    from .gaussian import GaussianStats

    if ct == "tied":
        T = D * (D + 1) // 2
        scatter = unpack_upper(out[:, :T], D).sum(axis=0)
        return GaussianStats(ct, frame, np.ascontiguousarray(out[:, T:]), scatter, loglik,
                             weight_sum, n_rows, None)
    return GaussianStats(ct, frame, np.ascontiguousarray(out), None, loglik, weight_sum,
                         n_rows, None)


def missing_pass(backend, Xs, ws, groups: PatternGroups, plan, *, block_size=None,
                 weight_sum: float | None = None, cache: dict | None = None):
    """The E-step over rows with missing cells, sorted by pattern.

    Parameters
    ----------
    backend : NumpyBackend or TorchBackend
    Xs : array of shape (n, D) of the backend, rows sorted as ``groups.order``
    ws : array of shape (n,) or None, the sample weights in the same order
    groups : PatternGroups (patterns of ``Xs``, with ``order`` the identity on it)
    plan : EStepPlan
    cache : dict, optional
        Kept by the caller across passes over the same ``Xs``: block plans.

    Returns
    -------
    GaussianStats
        Expected complete-data statistics about the frame's origin (no anchors).
    """
    ct = plan.covariance_type
    n, D = Xs.shape
    K = plan.n_components
    np_dtype = backend.numpy_dtype(Xs)
    dead = np.flatnonzero(np.isneginf(plan.const))
    # Components whose expansion would cancel in the data's dtype (see
    # EStepPlan.needs_anchors) are computed in float64.
    f64 = plan.needs_anchors(np_dtype)
    from .gaussian_kernel import weight_total

    wsum = weight_total(backend, ws, n, weight_sum)
    if ct in ("full", "tied") and _LOW_RANK:
        kernel = _plan_kernel(plan, groups, np_dtype, dead, f64, cache=cache)
        if block_size is None and type(backend).__name__ == "NumpyBackend":
            # On the CPU, blocks three times the complete pass's (~10,000 rows at D=16,
            # K=8): the per-block Python work of the patterns is then paid a third as
            # often (~7% faster at 1,000,000 x 16, K=8). Device backends size blocks
            # from free memory and keep theirs.
            from ..backends.numpy_backend import default_block_size

            block_size = default_block_size(n, K, max(K, kernel.M) // 3,
                                            np.dtype(np_dtype).itemsize)
        acc = backend.stats_pass(Xs, ws, kernel, block_size=block_size,
                                 width=max(K, kernel.M))
        out = lowrank_moments(kernel.lr, acc, K, D)
        return _stats_from_layout(ct, plan.frame, out, float(acc["loglik"]), wsum, n, D)
    if ct in ("diag", "spherical") and _LOW_RANK:
        kernel = _IndependentKernel(plan, np_dtype, f64)
        acc = backend.stats_pass(Xs, ws, kernel, block_size=block_size,
                                 width=max(K, kernel.M))
        return _stats_from_layout(ct, plan.frame, kernel.moments(acc), float(acc["loglik"]),
                                  wsum, n, D)
    marg, mu, prec, eta = plan_marginals(plan, groups)
    kernel = _PatternKernel(groups, eta, plan.frame, _layout(ct), K, D, np_dtype, dead, f64)
    acc = backend.stats_pass(Xs, ws, kernel, block_size=block_size, width=max(K, kernel.M))
    out = expected_moments(marg, mu, prec, acc["obs"])
    return _stats_from_layout(ct, plan.frame, out, float(acc["loglik"]), wsum, n, D)


class _LogJointPass:
    """Gathers the log-joint of sorted rows through ``stats_pass`` (positions known)."""

    def __init__(self, kernel, n):
        self.kernel = kernel
        self.acc_shapes = {"L": (n, kernel.K)}

    def setup(self, ops):
        return self.kernel.setup(ops)

    def block(self, ops, st, Xb, wb, acc, start, stop):
        LT = self.kernel._log_joint(ops, st, Xb, start, stop)[1]
        acc["L"][start:stop] += ops.cast(LT.T, ops.f64)


def log_joint_missing(backend, Xs, groups: PatternGroups, plan, *, block_size=None) -> np.ndarray:
    """``log w_k + log N(x_O | k)`` of rows with missing cells sorted by pattern.

    Returns
    -------
    ndarray of shape (n, K), float64, in the sorted order
    """
    n, D = Xs.shape
    K = plan.n_components
    np_dtype = backend.numpy_dtype(Xs)
    ct = plan.covariance_type
    f64 = plan.needs_anchors(np_dtype)
    dead = np.flatnonzero(np.isneginf(plan.const))
    if ct in ("full", "tied") and _LOW_RANK:
        kernel = _plan_kernel(plan, groups, np_dtype, dead, f64, stats=False)
    elif _LOW_RANK:
        kernel = _IndependentKernel(plan, np_dtype, f64)
    else:
        _, _, _, eta = plan_marginals(plan, groups)
        kernel = _PatternKernel(groups, eta, plan.frame, _layout(ct), K, D, np_dtype, dead,
                                f64)
    acc = backend.stats_pass(Xs, None, _LogJointPass(kernel, n), block_size=block_size,
                             width=max(K, kernel.M))
    return acc["L"]


# --------------------------------------------------------------------------- low-rank pass
# For full (and tied) covariances the per-pattern pass above pays, per pattern, a D x D
# matrix on the host and two (K x M) products on the device. The marginal precision
# differs from the full one by a rank-m term, Lambda = P_OO - P_OM C P_MO with
# C = P_MM^-1, so with the missing cells of z set to 0 and w = z - mu on the observed
# cells (0 on the missing ones), y_M = (P w)_M = P_MO w_O and
#
#   -1/2 w_O^T Lambda w_O = -1/2 w^T P w + 1/2 y_M^T C y_M
#                         = [-1/2 z^T P z + (P mu) . z] - mu_M . Y_M - 1/2 mu_o^T P mu_o
#                           + 1/2 y_M^T C y_M,        Y_M = (P z)_M, y_M = Y_M - h,
#
# with mu_o the mean with its missing cells set to 0 and h = (P mu)_M - P_MM mu_M. The
# bracket is the complete-data product, one GEMM for every row of a block; Y_M is the
# rows M of P times z (a (K m) x D product per pattern, its matrix gathered from P on
# the device), and the rest is m x m per row and component. The fills are
# E[z_M | z_O, k] = mu_M - C y_M. The statistics: the observed moments of all rows are
# one product per block, and the fills give the cross moments sum r fill z^T and
# sum r fill fill^T, added into the rows M (and the M x M block) of per-component
# (D, D) cells on the device; per pattern only the responsibility mass comes back, for
# the conditional covariance C added on the host. Host work per (pattern, component) is
# O(m^3) (the Cholesky factor of P_MM and C, compiled), and what goes to the device per
# pattern is C, h, mu_M and a constant: K (m^2 + 2m + 1) numbers.
def lowrank_params(mu, prec, const, log_scale: float, groups: PatternGroups):
    """Per-pattern parameters of the low-rank pass, grouped by number of missing cells.

    Parameters
    ----------
    mu : (K, D) frame means; prec : (K, D, D) frame precisions
    const : (K,) ``log w_k + log det U_k (data units) - D/2 log 2 pi``
    log_scale : log of the frame's scale
    groups : PatternGroups, patterns sorted by number of missing cells

    Returns
    -------
    list of dict with ``lo``, ``hi`` (the patterns), ``m``, ``mis`` (P_m, m) missing
    columns, ``T`` (P_m, K (m^2 + 2 m + 1)): per pattern, C, h, mu_M (each
    component-major) and the constant of each component's log-density, side by side
    (see :func:`_lowrank_slices`), and ``C`` (P_m, K, m, m), a view of T's conditional
    covariances
    """
    mu = np.asarray(mu, dtype=np.float64)
    prec = np.asarray(prec, dtype=np.float64)
    K, D = mu.shape
    obs = groups.observed
    n_miss = groups.n_missing
    Pmu = (prec @ mu[:, :, None])[..., 0]  # (K, D)
    muPmu = np.sum(mu * Pmu, axis=1)  # (K,)
    # Work items: each run of patterns with equal m, cut into pieces so that the host
    # threads share them (the compiled kernel releases the GIL).
    P = obs.shape[0]
    n_threads = _host_threads()
    items = []
    lo = 0
    while lo < P:
        m = int(n_miss[lo])
        end = int(np.searchsorted(n_miss, m, side="right"))
        step = max(256, -(-(end - lo) // n_threads))
        for a in range(lo, end, step):
            items.append((a, min(a + step, end), m))
        lo = end

    kern = _numba_kernels()
    precC = np.ascontiguousarray(prec)
    const = np.asarray(const, dtype=np.float64)

    def one(item):
        lo, hi, m = item
        np_ = hi - lo
        if m == 0:
            # Complete rows (the families' hooks see them in a block): the full form.
            with np.errstate(invalid="ignore"):
                T = np.broadcast_to(const - 0.5 * muPmu, (np_, K)).copy()
            mis = np.zeros((np_, 0), np.int64)
        else:
            mis = np.nonzero(~obs[lo:hi])[1].reshape(np_, m).astype(np.int64)
            T = np.empty((np_, K * (m * m + 2 * m + 1)))
            logdet = np.empty((np_, K))
            kern.pattern_params(precC, mu, Pmu, muPmu, const, float(log_scale), mis, T,
                                logdet)
            if not np.all(np.isfinite(logdet)):
                # Not positive definite (cannot happen for a valid precision): raise as
                # LAPACK does.
                np.linalg.cholesky(prec[:, mis[:, :, None], mis[:, None, :]])
        return {"lo": lo, "hi": hi, "m": m, "mis": mis, "T": T,
                "C": T[:, : K * m * m].reshape(np_, K, m, m)}

    if len(items) > 1 and n_threads > 1:
        return list(_host_pool().map(one, items))
    return [one(item) for item in items]


def _lowrank_slices(K: int, m: int):
    """Where C, h, mu_M and the constant sit in a row of ``T`` (lowrank_params)."""
    a, b = K * m * m, K * m * (m + 1)
    return slice(0, a), slice(a, b), slice(b, b + K * m), slice(b + K * m, b + K * m + K)


class _LowRankKernel(_MaskedKernel):
    """The low-rank pass (see above) over rows with missing cells sorted by pattern.

    Parameters
    ----------
    groups : PatternGroups
    lr : list of dict, from :func:`lowrank_params`
    lin : ndarray of shape (K, Q + D): the complete-data product's matrix
        ``[-1/2 vech(P) (off-diagonal doubled), P mu]``
    prec : ndarray of shape (K, D, D), frame precisions
    """

    def __init__(self, groups, lr, lin, prec, frame, K, D, np_dtype, dead, f64=False,
                 stats=True, cache=None):
        self.groups, self.lr, self.lin, self.frame = groups, lr, lin, frame
        self.prec = prec
        # Block plans depend only on the patterns, the block bounds and how lr splits
        # the patterns (``split``), which are the same at every iteration: the caller may
        # keep them across passes.
        self.cache = {} if cache is None else cache
        self.split = tuple((g["lo"], g["hi"]) for g in lr)
        self.K, self.D = K, D
        self.np_dtype = np.dtype(np.float64 if f64 else np_dtype)
        self.layout = "full"
        self.Q = D * (D + 1) // 2
        self.M = self.Q + D + 1
        self.dead = dead
        # Each pattern's group and its index within it.
        self.group_of = np.empty(groups.n_patterns, dtype=np.intp)
        for i, g in enumerate(lr):
            self.group_of[g["lo"] : g["hi"]] = i
        self.group_lo = np.array([g["lo"] for g in lr], dtype=np.intp)
        self.group_m = np.array([g["m"] for g in lr], dtype=np.intp)
        self.acc_shapes = {"obs": (K, self.M), "loglik": ()}
        if stats:
            # The fills' moments go straight into per-component cells: sum r fill z^T
            # into the rows M of (K, D, D), sum r fill fill^T into its M x M block, sum
            # r fill into (K, D). Per pattern only sum r (K): the host adds it times the
            # conditional covariance C, in float64.
            self.acc_shapes.update({"S2x": (K * D * D,), "S2m": (K * D * D,),
                                    "S1": (K * D,)})
            for i, g in enumerate(lr):
                self.acc_shapes[f"n{i}"] = (g["hi"] - g["lo"], K)

    def setup(self, ops):
        dt = self.np_dtype
        K, D = self.K, self.D
        # Rows of the stacked precisions (K D, D) that give each pattern's Y_M, component
        # major: k D + mis. They depend on the patterns alone: on the device once per fit.
        key = ("rows", self.split, str(getattr(ops, "device", "host")))
        rows = self.cache.get(key)
        if rows is None:
            rows = self.cache[key] = [
                ops.asarray((np.arange(K)[None, :, None] * D + g["mis"][:, None, :]).reshape(
                    len(g["mis"]), K * g["m"]), dtype=np.int64) for g in self.lr]
        return {
            **self._frame_state(ops),
            "lin": ops.asarray(np.ascontiguousarray(self.lin), dtype=dt),
            "Pst": ops.asarray(np.ascontiguousarray(self.prec).reshape(K * D, D), dtype=dt),
            "T": [ops.asarray(g["T"], dtype=dt) for g in self.lr],
            "rows": rows,
            "ar": ops.asarray(np.arange(K), dtype=np.int64),
            "cols": ops.asarray(np.arange(D), dtype=np.int64),
        }

    def _plan_block(self, start, stop):
        """``(big, padded)``: big segments ``(g, pl, a, b)`` (one product each); the other
        segments of group g, bucketed by length (1, 2, 3-4, 5-8, ...) and padded to the
        longest in their bucket L, ``padded[(g, L)] = (pls, idx, mask, vpos, vrows, S,
        L)``: local pattern ids (S,), block rows (S L,) (padding repeats a segment's
        first row), mask (S, 1, L) of real rows, the real positions vpos in the flat
        (S L) layout and their block rows vrows. The buckets bound the padding to less
        than twice the rows (one length for a whole group padded single-row patterns,
        the most common, to the group's longest piece)."""
        hit = self.cache.get((start, stop, self.split))
        if hit is not None:
            return hit
        p, a, b = self.groups.segment_arrays(start, stop)
        g = self.group_of[p]
        pl = p - self.group_lo[g]
        n = b - a
        is_big = (n >= _BIG_SEGMENT) | (self.group_m[g] == 0)
        big = list(zip(*(x[is_big].tolist() for x in (g, pl, a, b))))
        # The other pieces by (group, length bucket), in pattern order within each.
        few = np.flatnonzero(~is_big)
        nf = n[few]
        bucket = np.zeros(nf.size, dtype=np.int64)
        two = nf > 1
        bucket[two] = np.floor(np.log2(nf[two] - 1)).astype(np.int64) + 1  # (n-1).bit_length()
        key = g[few] * 64 + bucket
        few = few[np.argsort(key, kind="stable")]
        key = np.sort(key, kind="stable")
        cuts = np.flatnonzero(np.diff(key)) + 1
        padded = {}
        for sel in np.split(few, cuts) if few.size else []:
            lens, firsts = n[sel], a[sel]
            S, L = sel.size, int(lens.max())
            j = np.arange(L)
            valid = j[None, :] < lens[:, None]  # (S, L)
            idx = np.where(valid, firsts[:, None] + j[None, :], firsts[:, None]).ravel()
            vpos = np.flatnonzero(valid.ravel())
            padded[(int(g[sel[0]]), L)] = (pl[sel], idx, valid[:, None, :].astype(self.np_dtype),
                                           vpos, idx[vpos], S, L)
        self.cache[(start, stop, self.split)] = (big, padded)
        return big, padded

    def _device_plan(self, ops, start, stop, small):
        """The index arrays of :meth:`_plan_block`'s padded pieces on the pass's device,
        kept with the plan: uploaded once per fit, not per pass (on a GPU each upload
        is a copy and a stall)."""
        key = (start, stop, self.split, "dev", str(getattr(ops, "device", "host")))
        hit = self.cache.get(key)
        if hit is None:
            i64 = np.int64
            hit = {gk: (ops.asarray(pls, dtype=i64), ops.asarray(idx, dtype=i64),
                        ops.asarray(mask), ops.asarray(vpos, dtype=i64),
                        ops.asarray(vrows, dtype=i64))
                   for gk, (pls, idx, mask, vpos, vrows, S, L) in small.items()}
            self.cache[key] = hit
        return hit

    def _log_joint(self, ops, st, Xb, start, stop, log=True):
        """``(FT, LT, (big, fills), small)``: the block's features (M, rows), log-joint
        (K, rows) and what :meth:`accumulate` needs; ``log=False`` skips the log-joint
        (LT is None) and computes the fills alone."""
        K, D, Q = self.K, self.D, self.Q
        rows = stop - start
        _, FT, Z = self._features(ops, st, Xb, "lrFT")  # Z: (D, rows)
        LT = None
        if log:
            LT = ops.scratch("lrLT", (K, rows), dtype=self.np_dtype)
            ops.matmul(st["lin"], FT[: Q + D], out=LT)
        big, small = self._plan_block(start, stop)
        small_dev = self._device_plan(ops, start, stop, small)
        fills = []
        for g, pl, a, b in big:
            m = self.lr[g]["m"]
            n = b - a
            Cs, hs, ms, cs = _lowrank_slices(K, m)
            T = st["T"][g][pl]
            if m == 0:
                if log:
                    LT[:, a:b] += T[cs][:, None]
                fills.append(FT[:0, a:b])
                continue
            PM = ops.take(st["Pst"], st["rows"][g][pl], axis=0)  # (K m, D)
            e = ops.matmul(PM, Z[:, a:b]) - T[hs][:, None]  # y_M, (K m, n)
            e = e.reshape(K, m, n)
            u = ops.matmul(T[Cs].reshape(K, m, m), e)  # C y_M, (K, m, n)
            muM = T[ms].reshape(K, m, 1)
            if log:
                LT[:, a:b] += T[cs][:, None] + _quad_sum(e, u, muM, m)
            fills.append((muM - u).reshape(K * m, n))
        dev = {}
        for (g, _), (pls, idx, mask, vpos, vrows, S, L) in small.items():
            # The segments of rare or split patterns, padded to a common length L: one
            # batched product over the (S) patterns instead of one product each.
            m = self.lr[g]["m"]
            Cs, hs, ms, cs = _lowrank_slices(K, m)
            pi, ix, mask_d, vpos_d, vr = small_dev[(g, L)]
            T = ops.take(st["T"][g], pi, axis=0)  # (S, K (m^2 + 2m + 1))
            Zr = ops.take(Z.T, ix, axis=0).reshape(S, L, D)
            PM = ops.take(st["Pst"], ops.take(st["rows"][g], pi, axis=0).reshape(S * K * m),
                          axis=0).reshape(S, K * m, D)
            e = ops.matmul(PM, Zr.mT) - T[:, hs][:, :, None]  # y_M, (S, K m, L)
            u = ops.matmul(T[:, Cs].reshape(S * K, m, m), e.reshape(S * K, m, L))
            e = e.reshape(S, K, m, L)
            u = u.reshape(S, K, m, L)
            muM = T[:, ms].reshape(S, K, m, 1)
            if log:
                corr = T[:, cs][:, :, None] + _quad_sum(e, u, muM, m)  # (S, K, L)
                corr = ops.take(corr.mT.reshape(S * L, K), vpos_d, axis=0)
                LT[:, vr] = LT[:, vr] + corr.T
            # A bucket's patterns are contiguous unless patterns of other lengths (other
            # buckets, big segments) sit between them: then they are added by index.
            span = slice(int(pls[0]), int(pls[0]) + S) if pls[-1] - pls[0] + 1 == S else None
            dev[(g, L)] = (pi, ix, mask_d, Zr, (muM - u).reshape(S, K * m, L), S, L, span)
        return FT, LT, (big, fills), dev

    def block(self, ops, st, Xb, wb, acc, start, stop):
        FT, LT, (big, fills), small = self._log_joint(ops, st, Xb, start, stop)
        self._responsibilities(ops, LT, wb, acc)
        self.accumulate(ops, st, FT, LT, big, fills, small, acc)

    def accumulate(self, ops, st, FT, LT, big, fills, small, acc):
        """Add the statistics of a block with (weighted) responsibilities ``LT`` (K,
        rows), from what :meth:`_log_joint` returned."""
        K, D, Q = self.K, self.D, self.Q
        acc["obs"] += ops.cast(ops.weighted_stats(LT, FT), ops.f64)
        Z = FT[Q : Q + D]
        ar = st["ar"]
        for (g, pl, a, b), Fm in zip(big, fills):
            m = self.lr[g]["m"]
            R = LT[:, a:b]
            acc[f"n{g}"][pl] += ops.cast(ops.sum(R, axis=1), ops.f64)
            if m == 0:
                continue
            n = b - a
            Rf = (Fm.reshape(K, m, n) * R[:, None, :]).reshape(K * m, n)
            # One product for the cross moments with z and with the fills.
            both = ops.matmul(Rf, ops.concat([Z[:, a:b], Fm], axis=0).T)  # (K m, D + K m)
            MM = both[:, D:].reshape(K, m, K, m)[ar, :, ar, :]  # (K, m, m)
            self._scatter(ops, st, acc, st["rows"][g][pl], m, both[:, :D], MM,
                          ops.sum(Rf, axis=1))
        for (g, _), (pi, idx, mask, Zr, Fm, S, L, span) in small.items():
            m = self.lr[g]["m"]
            R = ops.take(LT, idx, axis=1).T.reshape(S, L, K).mT * mask  # (S, K, L)
            Rf = (Fm.reshape(S, K, m, L) * R[:, :, None, :]).reshape(S, K * m, L)
            XZ = ops.matmul(Rf, Zr)  # (S, K m, D)
            # The fills' cross moments within each component only: (S K) products of
            # (m, L) by (L, m), not (K m) x (K m) ones of which K m m entries are used.
            XF = ops.matmul(Rf.reshape(S * K, m, L), Fm.reshape(S * K, m, L).mT)
            nR = ops.cast(ops.sum(R, axis=2), ops.f64)  # (S, K)
            if span is not None:
                acc[f"n{g}"][span] += nR
            else:
                acc[f"n{g}"][pi] += nR
            self._scatter(ops, st, acc, ops.take(st["rows"][g], pi, axis=0), m, XZ, XF,
                          ops.sum(Rf, axis=2))

    def _scatter(self, ops, st, acc, rows, m, XZ, MM, s1):
        """Add fill moments of patterns into the per-component cells.

        ``rows`` (..., K m): ``k D + d`` of each (component, missing cell) pair; XZ (...,
        K m, D), MM (..., K m, m) or (..., K, m, m), s1 (..., K m)."""
        D = self.D
        rows = rows.reshape(-1)
        n = rows.shape[0] // m
        f64 = ops.f64
        ops.add_at(acc["S2x"], (rows[:, None] * D + st["cols"][None, :]).reshape(-1),
                   ops.cast(XZ.reshape(-1), f64))
        r3 = rows.reshape(n, m)
        cells = r3[:, :, None] * D + (r3 % D)[:, None, :]  # (n, m, m)
        ops.add_at(acc["S2m"], cells.reshape(-1), ops.cast(MM.reshape(-1), f64))
        ops.add_at(acc["S1"], rows, ops.cast(s1.reshape(-1), f64))


def _quad_sum(e, u, muM, m: int):
    """``sum_j e_j (u_j / 2 - mu_j)`` over the axis -2 of length m (e, u: (..., m, n);
    muM: (..., m, 1)): the per-row terms ``1/2 y^T C y - mu_M . y``. In place and one
    slice at a time (a few times faster than a product and a sum over a middle axis)."""
    w = u * 0.5
    w -= muM
    w *= e
    out = w[..., 0, :]
    for j in range(1, m):
        out = out + w[..., j, :]
    return out


def lowrank_moments(lr, acc, K: int, D: int) -> np.ndarray:
    """Expected moments (K, M) in the full layout from the low-rank pass's sums."""
    Q = D * (D + 1) // 2
    obs = np.asarray(acc["obs"], dtype=np.float64)
    iu, ju = upper_indices(D)
    S2 = unpack_upper(obs[:, :Q], D)
    S2x = np.asarray(acc["S2x"], dtype=np.float64).reshape(K, D, D)
    S2m = np.asarray(acc["S2m"], dtype=np.float64).reshape(K, D, D).copy()
    cov = _numba_kernels().scatter_cov
    for i, g in enumerate(lr):
        if g["m"]:
            # E[z_M z_M^T] adds the conditional covariance to fill fill^T.
            cov(g["mis"], g["C"], np.ascontiguousarray(acc[f"n{i}"], dtype=np.float64), S2m)
    # S2x filled the rows M; their mirror images are the columns M.
    S2 = S2 + S2x + np.swapaxes(S2x, 1, 2) + S2m
    out = obs.copy()
    out[:, :Q] = S2[:, iu, ju]
    out[:, Q : Q + D] += np.asarray(acc["S1"], dtype=np.float64).reshape(K, D)
    return out


def lowrank_kernel(mu, prec, const, log_scale: float, groups: PatternGroups, frame, np_dtype,
                   dead, f64: bool = False, stats: bool = True, cache=None):
    """The low-rank pass's kernel for frame means ``mu`` (K, D), precisions ``prec``
    (K, D, D) and constants ``const`` (K,) (as :func:`lowrank_params`)."""
    mu = np.asarray(mu, dtype=np.float64)
    prec = np.asarray(prec, dtype=np.float64)
    K, D = mu.shape
    iu, ju = upper_indices(D)
    lin = np.concatenate([-0.5 * prec[:, iu, ju] * np.where(iu == ju, 1.0, 2.0),
                          (prec @ mu[:, :, None])[..., 0]], axis=1)  # (K, Q + D)
    lr = lowrank_params(mu, prec, np.asarray(const, dtype=np.float64), log_scale, groups)
    return _LowRankKernel(groups, lr, lin, prec, frame, K, D, np_dtype, dead, f64,
                          stats=stats, cache=cache)


def _plan_kernel(plan, groups, np_dtype, dead, f64, **kwargs):
    """:func:`lowrank_kernel` for an E-step plan (full or tied)."""
    mu = np.asarray(plan.anchors, dtype=np.float64)
    K, D = mu.shape
    U = np.asarray(plan.prec, dtype=np.float64)
    if plan.covariance_type == "full":
        prec = U @ np.swapaxes(U, 1, 2)
    else:
        prec = np.broadcast_to(U @ U.T, (K, D, D))
    return lowrank_kernel(mu, prec, plan.const, math.log(plan.frame.scale), groups,
                          plan.frame, np_dtype, dead, f64, **kwargs)


# --------------------------------------------------------------------------- diag/spherical pass
# With independent columns a missing cell simply leaves the row's density: with its z set
# to 0, the complete feature map's terms for the cell vanish, and what remains of the
# complete-data log-density differs from the observed cells' marginal by a sum over the
# missing cells of 1/2 log 2 pi - 1/2 log p_d + 1/2 p_d mu_d^2 (data-unit precision in
# the log, frame units in the square). So a block needs the complete product plus one
# (K x D) product with its missing-cell indicator, and the statistics the complete ones
# plus the responsibility mass of the rows missing each cell, (K, D), times the cell's
# expected feature (mu_d, mu_d^2 + 1/p_d). No grouping by pattern at all.
class _IndependentKernel(_MaskedKernel):
    def __init__(self, plan, np_dtype, f64=False):
        ct = plan.covariance_type
        self.layout = ct
        mu = np.asarray(plan.anchors, dtype=np.float64)
        K, D = mu.shape
        self.K, self.D, self.frame = K, D, plan.frame
        p = np.asarray(plan.prec, dtype=np.float64)
        pd = p if ct == "diag" else np.repeat(p[:, None], D, axis=1)  # frame precisions
        log_s = math.log(plan.frame.scale)
        with np.errstate(divide="ignore"):
            self.V = 0.5 * _LOG_2PI - 0.5 * (np.log(pd) - 2.0 * log_s) + 0.5 * pd * mu**2
        self.eta = np.ascontiguousarray(plan.eta.T)  # (K, M)
        self.mu, self.pd = mu, pd
        self.np_dtype = np.dtype(np.float64 if f64 else np_dtype)
        self.M = self.eta.shape[1]
        self.dead = np.flatnonzero(np.isneginf(plan.const))
        self.acc_shapes = {"obs": (K, self.M), "mass": (K, D), "loglik": ()}

    def setup(self, ops):
        dt = self.np_dtype
        return {**self._frame_state(ops), "eta": ops.asarray(self.eta, dtype=dt),
                "V": ops.asarray(self.V, dtype=dt)}

    def _log_joint(self, ops, st, Xb, start, stop):
        rows = stop - start
        Xb, FT, _ = self._features(ops, st, Xb, "iFT")
        miss = 1.0 - ops.cast(ops.isfinite(Xb), self.np_dtype)  # (rows, D)
        LT = ops.scratch("iLT", (self.K, rows), dtype=self.np_dtype)
        ops.matmul(st["eta"], FT, out=LT)
        LT += ops.matmul(st["V"], miss.T)
        return FT, LT, miss

    def block(self, ops, st, Xb, wb, acc, start, stop):
        FT, LT, miss = self._log_joint(ops, st, Xb, start, stop)
        self._responsibilities(ops, LT, wb, acc)
        acc["obs"] += ops.cast(ops.weighted_stats(LT, FT), ops.f64)
        acc["mass"] += ops.cast(ops.matmul(LT, miss), ops.f64)

    def moments(self, acc) -> np.ndarray:
        out = np.array(acc["obs"], dtype=np.float64)
        mass = np.asarray(acc["mass"], dtype=np.float64)
        D = self.D
        Q = D if self.layout == "diag" else 1
        sq = mass * (self.mu**2 + 1.0 / self.pd)
        if self.layout == "diag":
            out[:, :D] += sq
        else:
            out[:, 0] += sq.sum(axis=1)
        out[:, Q : Q + D] += mass * self.mu
        return out
