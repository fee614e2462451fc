"""numba kernels of :mod:`emix.models.forward_backward` (imported on first use only).

Compiled once per machine and cached on disk (``cache=True``): later processes load the
machine code instead of compiling. Arrays are C-contiguous float64 (int64 for lengths
and paths); outputs are written into arrays the caller allocates.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_OPTS = dict(cache=True, nogil=True, fastmath=False, error_model="numpy")


@njit(**_OPTS)
def _scaled_emissions(log_B, t0, t1, b, m):
    """``b[t] = exp(log_B[t] - m[t])`` with ``m[t] = max_k log_B[t, k]`` for rows t0:t1."""
    K = log_B.shape[1]
    for t in range(t0, t1):
        mx = -np.inf
        for k in range(K):
            if log_B[t, k] > mx:
                mx = log_B[t, k]
        if mx == -np.inf or mx != mx:
            # No state can emit this row (or a NaN slipped through): zero density.
            m[t] = mx
            for k in range(K):
                b[t, k] = 0.0
        else:
            m[t] = mx
            for k in range(K):
                b[t, k] = math.exp(log_B[t, k] - mx)


@njit(**_OPTS)
def _forward_seq(b, m, pi, A, t0, t1, alpha, step):
    """Scaled forward pass over rows t0:t1; returns the sequence's log-likelihood."""
    K = b.shape[1]
    ll = 0.0
    for t in range(t0, t1):
        c = 0.0
        if t == t0:
            for k in range(K):
                v = pi[k] * b[t, k]
                alpha[t, k] = v
                c += v
        else:
            for j in range(K):
                s = 0.0
                for i in range(K):
                    s += alpha[t - 1, i] * A[i, j]
                v = s * b[t, j]
                alpha[t, j] = v
                c += v
        if c > 0.0:
            inv = 1.0 / c
            for k in range(K):
                alpha[t, k] *= inv
            step[t] = math.log(c) + m[t]
        else:
            # Impossible under every reachable state: the rest of the sequence has
            # probability 0; keep the arithmetic finite and say so with -inf.
            for k in range(K):
                alpha[t, k] = 0.0
            step[t] = -np.inf
        ll += step[t]
    return ll


@njit(**_OPTS)
def forward(log_B, pi, A, lengths, filtered, step, loglik):
    T, K = log_B.shape
    b = np.empty((T, K))
    m = np.empty(T)
    _scaled_emissions(log_B, 0, T, b, m)
    t0 = 0
    for s in range(lengths.shape[0]):
        t1 = t0 + lengths[s]
        loglik[s] = _forward_seq(b, m, pi, A, t0, t1, filtered, step)
        t0 = t1


@njit(**_OPTS)
def forward_backward(log_B, pi, A, lengths, post, loglik, start, trans):
    """Smoothed posteriors into ``post`` (T, K); start (K,) and trans (K, K) are added to."""
    T, K = log_B.shape
    b = np.empty((T, K))
    m = np.empty(T)
    step = np.empty(T)
    _scaled_emissions(log_B, 0, T, b, m)
    beta = np.empty(K)
    nxt = np.empty(K)
    xi = np.empty((K, K))
    t0 = 0
    for s in range(lengths.shape[0]):
        t1 = t0 + lengths[s]
        # post holds the filtered alphas first, then is turned into posteriors in place.
        ll = _forward_seq(b, m, pi, A, t0, t1, post, step)
        loglik[s] = ll
        if not ll > -np.inf:
            # No path explains this sequence: it contributes no statistics.
            for t in range(t0, t1):
                for k in range(K):
                    post[t, k] = 0.0
            t0 = t1
            continue
        for k in range(K):
            beta[k] = 1.0
        for i in range(K):
            for j in range(K):
                xi[i, j] = 0.0
        for t in range(t1 - 1, t0 - 1, -1):
            if t < t1 - 1:
                # nxt = b[t+1] * beta[t+1] / c[t+1]; beta[t] = A @ nxt.
                inv_c = math.exp(-(step[t + 1] - m[t + 1]))
                for j in range(K):
                    nxt[j] = b[t + 1, j] * beta[j] * inv_c
                # One sweep gives both beta_t(i) = sum_j A(i, j) nxt(j) and the expected
                # transitions t -> t+1, xi_t(i, j) = alpha_t(i) A(i, j) nxt(j).
                for i in range(K):
                    a_i = post[t, i]
                    s_ = 0.0
                    for j in range(K):
                        v = A[i, j] * nxt[j]
                        s_ += v
                        xi[i, j] += a_i * v
                    beta[i] = s_
            # gamma_t = alpha_t * beta_t, exactly normalised against round-off.
            tot = 0.0
            for k in range(K):
                post[t, k] *= beta[k]
                tot += post[t, k]
            if tot > 0.0:
                inv = 1.0 / tot
                for k in range(K):
                    post[t, k] *= inv
        for k in range(K):
            start[k] += post[t0, k]
        for i in range(K):
            for j in range(K):
                trans[i, j] += xi[i, j]
        t0 = t1


@njit(**_OPTS)
def viterbi(log_B, log_pi, log_A, lengths, path, logprob):
    T, K = log_B.shape
    delta = np.empty(K)
    new = np.empty(K)
    back = np.empty((T, K), dtype=np.int64)
    t0 = 0
    for s in range(lengths.shape[0]):
        t1 = t0 + lengths[s]
        for k in range(K):
            delta[k] = log_pi[k] + log_B[t0, k]
            back[t0, k] = 0
        for t in range(t0 + 1, t1):
            for j in range(K):
                best = -np.inf
                arg = 0
                for i in range(K):
                    v = delta[i] + log_A[i, j]
                    if v > best:
                        best = v
                        arg = i
                new[j] = best + log_B[t, j]
                back[t, j] = arg
            for k in range(K):
                delta[k] = new[k]
        best = -np.inf
        arg = 0
        for k in range(K):
            if delta[k] > best:
                best = delta[k]
                arg = k
        logprob[s] = best
        path[t1 - 1] = arg
        for t in range(t1 - 1, t0, -1):
            arg = back[t, arg]
            path[t - 1] = arg
        t0 = t1
