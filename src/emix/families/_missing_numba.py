"""numba kernels of the low-rank missing-value pass's host algebra (imported on first
use only, see :mod:`emix.families.gaussian_missing`).

Per (pattern, component) the work is an m x m Cholesky factor, its inverse and a few
m-vectors, with m the pattern's number of missing cells (mostly 1 to 8). Vectorised
NumPy pays a temporary array per step of those loops, which made this algebra a fifth of
an iteration at 1,000,000 x 16, K=8; compiled loops keep each matrix in registers.
Compiled once per machine and cached on disk, as :mod:`emix.models._fb_numba`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_LOG_2PI = math.log(2.0 * math.pi)


@njit(cache=True, nogil=True)
def _cholesky(A, m):
    """Overwrite the lower triangle of ``A[:m, :m]`` (a symmetric positive definite
    matrix, read from that triangle) with its Cholesky factor L; return log det A, NaN
    if A is not positive definite (L then holds NaN from the failing column on)."""
    ld = 0.0
    for j in range(m):
        s = A[j, j]
        for q in range(j):
            s -= A[j, q] * A[j, q]
        if s > 0.0:
            d = math.sqrt(s)
            ld += 2.0 * math.log(d)
        else:
            d = np.nan
            ld = np.nan
        A[j, j] = d
        for i in range(j + 1, m):
            s = A[i, j]
            for q in range(j):
                s -= A[i, q] * A[j, q]
            A[i, j] = s / d
    return ld


@njit(cache=True, nogil=True)
def pattern_params(prec, mu, Pmu, muPmu, const, log_scale, mis, T, logdet):
    """Fill the low-rank pass's parameters of patterns with the missing columns ``mis``.

    Parameters
    ----------
    prec : (K, D, D) C-contiguous frame precisions; mu, Pmu : (K, D) frame means and
        ``P mu``; muPmu : (K,) ``mu^T P mu``; const : (K,) constants of the
        log-densities (see :func:`emix.families.gaussian_missing.lowrank_params`)
    log_scale : float, the frame's log-scale
    mis : (n, m) int64, each pattern's missing columns (m >= 1)
    T : (n, K (m^2 + 2 m + 1)) written: ``C = P_MM^-1``, ``h = (P mu)_M - P_MM mu_M``,
        ``mu_M`` and the constant ``const + m/2 log 2 pi - 1/2 (log det P_MM - 2 m log_scale)
        - 1/2 mu_o^T P mu_o - mu_M . h``, side by side, component-major
    logdet : (n, K) written: ``log det P_MM``, NaN where P_MM is not positive definite
    """
    n, m = mis.shape
    K = prec.shape[0]
    A = np.empty((m, m))
    Li = np.zeros((m, m))
    off_h = K * m * m
    off_mu = off_h + K * m
    off_c = off_mu + K * m
    for p in range(n):
        for k in range(K):
            for i in range(m):
                for j in range(m):
                    A[i, j] = prec[k, mis[p, i], mis[p, j]]
            # h, mu_M and mu_o^T P mu_o = mu^T P mu - mu_M . (2 h + P_MM mu_M), before
            # A is overwritten by its factor.
            qo = muPmu[k]
            mh = 0.0
            for i in range(m):
                a = mis[p, i]
                pm = 0.0
                for j in range(m):
                    pm += A[i, j] * mu[k, mis[p, j]]
                h = Pmu[k, a] - pm
                qo -= mu[k, a] * (2.0 * h + pm)
                mh += mu[k, a] * h
                T[p, off_h + k * m + i] = h
                T[p, off_mu + k * m + i] = mu[k, a]
            ld = _cholesky(A, m)
            logdet[p, k] = ld
            # Linv = L^-1 (lower), then C = Linv^T Linv.
            for i in range(m):
                Li[i, i] = 1.0 / A[i, i]
                for j in range(i):
                    s = 0.0
                    for q in range(j, i):
                        s += A[i, q] * Li[q, j]
                    Li[i, j] = -s * Li[i, i]
            for i in range(m):
                for j in range(i + 1):
                    s = 0.0
                    for q in range(i, m):
                        s += Li[q, i] * Li[q, j]
                    T[p, k * m * m + i * m + j] = s
                    T[p, k * m * m + j * m + i] = s
            T[p, off_c + k] = (const[k] + 0.5 * m * _LOG_2PI
                               - 0.5 * (ld - 2.0 * m * log_scale) - 0.5 * qo - mh)


@njit(cache=True, nogil=True)
def scatter_fills(mis, X1, MM, s1, S2x, S2m, S1):
    """Add per-pattern sums of the fills into per-component cells, in place.

    Parameters
    ----------
    mis : (P, m) int64, each pattern's missing columns
    X1 : (P, K, m, D) sums of fill x z^T (the rows M of the D x D cells)
    MM : (P, K, m, m) sums of fill x fill^T (+ the conditional covariance)
    s1 : (P, K, m) sums of the fills
    S2x, S2m : (K, D, D) added into (the rows M, and the M x M block)
    S1 : (K, D) added into
    """
    P, K, m, D = X1.shape
    for p in range(P):
        for k in range(K):
            for i in range(m):
                a = mis[p, i]
                S1[k, a] += s1[p, k, i]
                for d in range(D):
                    S2x[k, a, d] += X1[p, k, i, d]
                for j in range(m):
                    S2m[k, a, mis[p, j]] += MM[p, k, i, j]


@njit(cache=True, nogil=True)
def scatter_cov(mis, C, n, S2m):
    """``S2m[k, M, M] += n[p, k] C[p, k]`` for every pattern p and component k.

    Parameters
    ----------
    mis : (P, m) int64; C : (P, K, m, m); n : (P, K) responsibility sums
    S2m : (K, D, D) added into
    """
    P, K, m, _ = C.shape
    for p in range(P):
        for k in range(K):
            w = n[p, k]
            for i in range(m):
                for j in range(m):
                    S2m[k, mis[p, i], mis[p, j]] += w * C[p, k, i, j]


@njit(cache=True, nogil=True)
def observed_mahalanobis(X, O, z, means, covs, rows, out):
    """``out[i] = d^T Sigma_OO^-1 d`` with ``d = x_O - mu_O`` for each row ``rows[i]``
    under its component ``z``: the observed cells' squared Mahalanobis distance.

    Parameters
    ----------
    X : (N, D) float64; O : (N, D) bool, observed cells; z : (N,) int64 components
    means : (K, D); covs : (K, D, D) C-contiguous covariances
    rows : (n,) int64, rows with at least one observed cell
    out : (n,) written
    """
    D = X.shape[1]
    idx = np.empty(D, dtype=np.int64)
    A = np.empty((D, D))
    y = np.empty(D)
    for i in range(rows.shape[0]):
        n = rows[i]
        k = z[n]
        p = 0
        for j in range(D):
            if O[n, j]:
                idx[p] = j
                p += 1
        for a in range(p):
            for b in range(a + 1):
                A[a, b] = covs[k, idx[a], idx[b]]
        _cholesky(A, p)  # then the forward solve L y = d
        total = 0.0
        for j in range(p):
            s = X[n, idx[j]] - means[k, idx[j]]
            for q in range(j):
                s -= A[j, q] * y[q]
            y[j] = s / A[j, j]
            total += y[j] * y[j]
        out[i] = total
