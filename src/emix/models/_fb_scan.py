"""Forward-backward and Viterbi of one or a few long sequences on torch by a parallel
(associative) scan.

The batched recursions (:mod:`emix.models._fb_torch`) take one Python step per time
step, which is fine for thousands of short sequences and hopeless for one sequence of
10^7 rows. Here the time loop itself is parallel: the forward and the backward
recursions are prefix products of K x K matrices, computed by an O(T)-work scan of
depth ``log2 T`` whose every level is a handful of batched tensor operations.

The algebra
-----------
With ``b_t(k) = p(x_t | z_t = k)`` the unnormalised forward vector obeys
``alpha_t = alpha_{t-1} M_t`` with ``M_t = A diag(b_t)`` and ``alpha_0 = pi * b_0``, and
the backward vector ``beta_{t-1} = M_t beta_t`` with ``beta_{T-1} = 1``. Written
transposed, the backward recursion is the forward one run over the reversed steps with
``M_t^T = diag(b_t) A^T`` and head ``1``, so one scan routine serves both.

A matrix is stored as a row-stochastic ``R`` (n, K, K) with per-row log-normalisers
``r`` (n, K), ``M = diag(exp(r + c)) R`` for some constant c that is never needed: every
quantity read off the scan (filtered probabilities, backward vectors up to a factor) is
normalised, so only the *differences* between rows matter, and ``r`` is kept relative to
its row maximum. Two consecutive elements combine as::

    L_ik = log R1_ik + r2_k,   m_i = max_k L_ik,   W_ik = exp(L_ik - m_i)
    R    = rows of (W @ R2) normalised,            r_i = r1_i + m_i + log sum_k W_ik

so no exponential sees a large argument and every row keeps a term equal to 1: no
underflow to a false zero row however long the block or extreme the emissions. The
absolute normalisers (the log-likelihood) are never carried through the scan, so
float32 loses nothing to a running sum of 10^7 terms: the step log-likelihoods
``log p(x_t | x_<t) = logsumexp_k(log (f_{t-1} A)_k + log B_t(k))`` are computed locally
from the filtered probabilities once the scan is done and summed in float64.

A sequence boundary is a *reset* element (the constant map to ``pi * b_t`` forward, to
``1`` backward), flagged so that a combine with it returns it whatever came before,
even a sequence of probability 0: sequences of any lengths run as one scan.

The scan
--------
Elements ``e_0 = v0`` (a vector) and ``E_1..E_{n-1}`` (matrices); outputs ``V_t = V_{t-1}
E_t``. Pairs ``q_0 = v0 E_1`` and ``q_i = E_{2i} E_{2i+1}`` are scanned recursively
(giving the odd outputs), then ``V_{2i} = V_{2i-1} E_{2i}`` fills in the even ones. The
top level's elements are never materialised as a (T, K, K) array: they are built from
the log-emissions a chunk at a time for the pair products, and the fill-in uses the
vector form directly. Work ``O(T K^3)``, memory about ``T K^2`` elements for the levels
below the top, temporaries in chunks of ``_CHUNK_ELEMENTS``.

Viterbi is the same scan in the max-plus semiring, then one more over the back-pointers
(see the comment above :func:`viterbi`).

Smoothing: ``gamma_t`` is ``f_t * beta_t`` normalised (in log space); the expected
transition counts are ``A * (F[:-1]^T U[1:])`` with ``U_t = gamma_t / (f_{t-1} A)``, the
identity ``xi_t(i, j) = f_t(i) A_ij gamma_{t+1}(j) / (f_t A)_j``, as one (K x T)(T x K)
product in float64.

Precision: everything runs in the log-emissions' dtype (float32 or float64; others are
cast to float64), except the step log-likelihoods' sums and the expected counts, which
are float64. float32 products are forced to IEEE single precision (no TF32). The
matrices and vectors are probabilities, not logs, so a probability below the dtype's
smallest normal number *relative to the largest in its row* is 0: about e^-708 in
float64, as in the host's scaled recursions, but e^-87 in float32. That limit matters
only when a posterior depends on such a probability: typically a chain with structural
zeros (left-right) whose filtered probability of a state falls below it while later
data require that state. emix's HMM runs the recursions in float64.

torch is imported by this module, which only :mod:`emix.models.forward_backward` imports,
and only for tensor input.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch

try:
    from ..backends.torch_backend import _ieee_fp32
except ImportError:  # pragma: no cover - the backend's helper moved: user settings apply
    _ieee_fp32 = contextlib.nullcontext

__all__ = ["forward", "forward_backward", "viterbi", "scan_vectors"]

# One combine's temporaries are (chunk, K, K): at most this many elements each, so a
# level of 5 million K = 8 pairs runs in a few chunks of 0.5 GiB (float64).
_CHUNK_ELEMENTS = 1 << 26
# How a batch of small (K, K) products is formed: "bmm" (cuBLAS/MKL batched GEMM) or
# "broadcast" (an elementwise product (n, K, K, K) summed over its middle axis, chunked;
# plain memory-bound kernels, in case batched GEMM of tiny matrices runs well below the
# card's bandwidth). Not yet measured on a GPU: benchmarks/bench_hmm.py --device cuda
# times both, and the faster should be the default.
PRODUCT = "bmm"


def _products(W, R):
    """``W @ R`` for batches W, R (n, K, K)."""
    if PRODUCT == "bmm":
        return torch.bmm(W, R)
    return (W[:, :, :, None] * R[:, None, :, :]).sum(dim=2)


def _product_width(K: int) -> int:
    """Elements of one product's temporaries, for the chunk size."""
    return K * K if PRODUCT == "bmm" else K ** 3


def _chunks(n: int, K: int, per=None):
    """Ranges covering 0..n-1 of items of ``per`` (default K * K) elements each, at most
    ``_CHUNK_ELEMENTS`` elements a range."""
    step = max(1, _CHUNK_ELEMENTS // (K * K if per is None else per))
    for a in range(0, n, step):
        yield a, min(n, a + step)


def _safe_max(x, dim):
    """Maximum over ``dim`` (kept); -inf becomes the most negative finite number, so that
    subtracting it leaves a row of -inf at -inf (zeros after exp) without a NaN."""
    return x.amax(dim=dim, keepdim=True).clamp_min(torch.finfo(x.dtype).min)


def _divide_rows(y, dim):
    """``y`` normalised to sum 1 along ``dim``; rows of zeros stay zeros."""
    s = y.sum(dim=dim, keepdim=True)
    return y.div_(s.clamp_min(torch.finfo(y.dtype).tiny)), s


def _normalise_log(lv):
    """Rows of ``exp(lv)`` (n, K) normalised to sum 1; rows all -inf give 0."""
    return _divide_rows(torch.exp(lv - _safe_max(lv, 1)), 1)[0]


# --------------------------------------------------------------------------- operators
def _combine(R1, r1, f1, R2, r2, f2):
    """``E1 E2`` (E1 earlier) of stored elements: R (n, K, K), r (n, K), reset flags (n,)
    (None: no resets)."""
    L = torch.log(R1).add_(r2[:, None, :])
    m = _safe_max(L, 2)
    R, s = _divide_rows(_products(L.sub_(m).exp_(), R2), 2)
    del L
    lr = torch.log(s[..., 0]).add_(r1).add_(m[..., 0])
    r = lr.sub_(_safe_max(lr, 1))
    if f2 is None:
        return R, r, None
    # A reset E2 forgets E1 (even an E1 of probability 0).
    R = torch.where(f2[:, None, None], R2, R)
    r = torch.where(f2[:, None], r2, r)
    return R, r, f1 | f2


def _apply(V, R, r, f):
    """``V E`` of vectors V (n, K) (rows sum to 1, or 0) and stored elements."""
    lv = torch.log(V).add_(r)
    w = lv.sub_(_safe_max(lv, 1)).exp_()
    y = torch.matmul(w[:, None, :], R)[:, 0, :] if PRODUCT == "bmm" else (w[:, :, None] * R).sum(1)
    out = _divide_rows(y, 1)[0]
    return out if f is None else torch.where(f[:, None], R[:, 0, :], out)


def _sl(x, a, b, step=1):
    return None if x is None else x[a:b:step]


def _gather_chunks(parts, h, cls=None):
    """Stored elements 1..h-1 (a ``cls``, default :class:`_Stored`) from the results of
    consecutive chunks, tuples of tensors (or None); no copy for one chunk."""
    cls = _Stored if cls is None else cls
    if len(parts) == 1:
        return cls(*parts[0])
    out = [None if x is None else x.new_empty((h - 1, *x.shape[1:])) for x in parts[0]]
    a = 0
    for part in parts:
        b = a + part[0].shape[0]
        for dst, src in zip(out, part):
            if dst is not None:
                dst[a:b] = src
        a = b
    return cls(*out)


class _Stored:
    """Elements of a level below the top, E_1..E_{n-1}: element i at row i - 1."""

    def __init__(self, R, r, f):
        self.R, self.r, self.f = R, r, f

    def apply(self, V, a, b, step=1):
        a, b = a - 1, b - 1
        return _apply(V, self.R[a:b:step], self.r[a:b:step], _sl(self.f, a, b, step))

    def element_pairs(self, h):
        """Level above: element i = E_{2i} E_{2i+1} for i in 1..h-1."""
        parts = []
        K = self.R.shape[1]
        for a, b in _chunks(h - 1, K, per=_product_width(K)):
            # E_{2i} is row 2i - 1, E_{2i+1} row 2i, for i = a + 1 .. b.
            e0, o0, e1 = 2 * a + 1, 2 * a + 2, 2 * b + 1
            parts.append(_combine(self.R[e0:e1:2], self.r[e0:e1:2], _sl(self.f, e0, e1, 2),
                                  self.R[o0:e1:2], self.r[o0:e1:2], _sl(self.f, o0, e1, 2)))
        return _gather_chunks(parts, h)


class _Steps:
    """The top level's elements, built from the log-emissions on demand.

    Element t (1 <= t < T) uses row t of ``lb`` (T, K) and ``reset`` (T,) (None: no
    resets). Forward: ``A diag(b_t)``, or the reset to ``pi * b_t``. Backward (``lb``
    and ``reset`` the reversed steps): ``diag(b_t) A^T``, or the reset to ``1``.
    """

    def __init__(self, lb, reset, pi, A, backward):
        self.lb, self.reset, self.backward = lb, reset, backward
        self.A = A
        self.logA = torch.log(A.T if backward else A)
        self.log_pi = torch.log(pi)
        self.K = A.shape[0]

    def _reset_rows(self, lb):
        """The vector a reset element maps everything to: (n, K)."""
        if self.backward:
            return torch.full_like(lb, 1.0 / self.K)
        return _normalise_log(self.log_pi + lb)

    def stored(self, a, b, step=1):
        """Elements a, a + step, ... < b in stored form."""
        lb, f = self.lb[a:b:step], _sl(self.reset, a, b, step)
        if self.backward:
            L = lb[:, :, None] + self.logA  # row i: b_t(i) A[:, i]
        else:
            L = self.logA + lb[:, None, :]  # row i: A[i, :] b_t
        m = _safe_max(L, 2)
        R, s = _divide_rows(L.sub_(m).exp_(), 2)
        lr = torch.log(s[..., 0]).add_(m[..., 0])
        r = lr.sub_(_safe_max(lr, 1))
        if f is None:
            return R, r, None
        R = torch.where(f[:, None, None], self._reset_rows(lb)[:, None, :], R)
        r = torch.where(f[:, None], 0.0, r)
        return R, r, f

    def apply(self, V, a, b, step=1):
        lb, f = self.lb[a:b:step], _sl(self.reset, a, b, step)
        if self.backward:
            lv = torch.log(V).add_(lb)
            out = _divide_rows(lv.sub_(_safe_max(lv, 1)).exp_() @ self.A.T, 1)[0]
        else:
            out = _normalise_log(torch.log(V @ self.A).add_(lb))
        return out if f is None else torch.where(f[:, None], self._reset_rows(lb), out)

    def element_pairs(self, h):
        parts = []
        for a, b in _chunks(h - 1, self.K, per=_product_width(self.K)):
            i0, i1 = 1 + a, 1 + b
            parts.append(_combine(*self.stored(2 * i0, 2 * i1, 2),
                                  *self.stored(2 * i0 + 1, 2 * i1, 2)))
        return _gather_chunks(parts, h)


def _scan(v0, elems, n):
    """``V`` (n, K): ``V[0] = v0``, ``V[t] = V[t-1] E_t``."""
    V = v0.new_empty((n, v0.shape[0]))
    V[0] = v0
    if n == 1:
        return V
    h = n // 2
    q0 = elems.apply(v0[None], 1, 2)[0]
    pairs = elems.element_pairs(h) if h > 1 else None
    Q = _scan(q0, pairs, h)  # Q[i] = V[2i + 1]
    del pairs
    V[1 : 2 * h : 2] = Q
    m = (n - 1) // 2  # V[2i] = Q[i - 1] E_{2i}, i = 1..m
    K = v0.shape[0]
    for a, b in _chunks(m, K):
        V[2 + 2 * a : 2 + 2 * b : 2] = elems.apply(Q[a:b], 2 + 2 * a, 2 + 2 * b, 2)
    return V


def scan_vectors(lb, reset, pi, A, backward=False):
    """The normalised forward vectors (filtered probabilities), or the backward vectors
    of the reversed steps, by the scan.

    Parameters
    ----------
    lb : tensor of shape (T, K)
        Log-emissions of the steps in scan order (see :class:`_Steps`).
    reset : bool tensor of shape (T,), or None
        Steps that start a sequence (None: one sequence).
    pi, A : tensors of shape (K,) and (K, K), ``lb``'s dtype and device

    Returns
    -------
    tensor of shape (T, K), rows summing to 1 (or 0 where no state is possible)
    """
    steps = _Steps(lb, reset, pi, A, backward)
    K = A.shape[0]
    v0 = torch.full((K,), 1.0 / K, dtype=lb.dtype, device=lb.device) if backward else \
        _normalise_log((torch.log(pi) + lb[0])[None])[0]
    return _scan(v0, steps, lb.shape[0])


# --------------------------------------------------------------------------- entry points
def _inputs(log_B, startprob, transmat, lengths):
    dt = log_B.dtype if log_B.dtype in (torch.float32, torch.float64) else torch.float64
    lb = log_B.to(dt)
    lb = torch.where(torch.isnan(lb), torch.full_like(lb, -torch.inf), lb)
    dev = lb.device
    pi = torch.as_tensor(np.asarray(startprob, dtype=np.float64), device=dev).to(dt)
    A = torch.as_tensor(np.asarray(transmat, dtype=np.float64), device=dev).to(dt)
    lengths = np.asarray(lengths, dtype=np.int64)
    first = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    start = torch.zeros(lb.shape[0], dtype=torch.bool, device=dev)
    start[torch.as_tensor(first, device=dev)] = True
    return lb, pi, A, lengths, start


def _seq_of_row(lengths, device):
    return torch.repeat_interleave(torch.arange(len(lengths), device=device),
                                   torch.as_tensor(lengths, device=device))


def _forward(lb, pi, A, lengths, start):
    """Filtered F (T, K), the predictions P (T, K) (``f_{t-1} A``, or pi at a start), the
    step log-likelihoods (T,) float64 and the per-sequence log-likelihoods (S,) host."""
    F = scan_vectors(lb, start if len(lengths) > 1 else None, pi, A)
    P = torch.empty_like(F)
    P[1:] = F[:-1] @ A
    P[start] = pi
    step = torch.logsumexp(torch.log(P) + lb, dim=1).to(torch.float64)
    if len(lengths) == 1:
        loglik = step.sum().reshape(1)
    else:
        loglik = torch.zeros(len(lengths), dtype=torch.float64, device=lb.device)
        loglik.index_add_(0, _seq_of_row(lengths, lb.device), step)
    return F, P, step, loglik.cpu().numpy()


def forward(log_B, startprob, transmat, lengths):
    """Filtered probabilities by the scan.

    Parameters
    ----------
    log_B : tensor of shape (T, K)
    startprob : ndarray of shape (K,)
    transmat : ndarray of shape (K, K)
    lengths : ndarray of int of shape (S,)

    Returns
    -------
    loglik : ndarray of shape (S,), host float64
    filtered : tensor of shape (T, K), log_B's (floating) dtype and device
    step_loglik : tensor of shape (T,), float64, log_B's device
    """
    with torch.no_grad(), _ieee_fp32():
        lb, pi, A, lengths, start = _inputs(log_B, startprob, transmat, lengths)
        F, _, step, loglik = _forward(lb, pi, A, lengths, start)
        return loglik, F, step


def forward_backward(log_B, startprob, transmat, lengths):
    """Smoothed posteriors and expected counts by the scan.

    Parameters
    ----------
    log_B : tensor of shape (T, K)
    startprob : ndarray of shape (K,)
    transmat : ndarray of shape (K, K)
    lengths : ndarray of int of shape (S,)

    Returns
    -------
    loglik : ndarray of shape (S,), host float64
    posteriors : tensor of shape (T, K), log_B's (floating) dtype and device
    start : ndarray of shape (K,), host float64
    transitions : ndarray of shape (K, K), host float64
    """
    with torch.no_grad(), _ieee_fp32():
        lb, pi, A, lengths, start = _inputs(log_B, startprob, transmat, lengths)
        T = lb.shape[0]
        F, P, _, loglik = _forward(lb, pi, A, lengths, start)
        # Backward over the reversed steps: element s uses step T - s, a reset where
        # that step starts a sequence (beta of a sequence's last row is 1).
        rev_lb = torch.cat([lb[:1], lb.flip(0)[:-1]])
        rev_start = torch.cat([start[:1], start.flip(0)[:-1]]) if len(lengths) > 1 else None
        Bw = scan_vectors(rev_lb, rev_start, pi, A, backward=True).flip(0)
        gamma = _normalise_log(torch.log(F) + torch.log(Bw))
        del Bw
        dead = ~np.isfinite(loglik)
        if dead.any():
            # A sequence no path explains contributes nothing (as on the host).
            ok = torch.as_tensor(~dead, device=lb.device)[_seq_of_row(lengths, lb.device)]
            gamma = torch.where(ok[:, None], gamma, torch.zeros_like(gamma))
        tiny = torch.finfo(lb.dtype).tiny
        U = torch.where(P > 0, gamma / P.clamp(min=tiny), torch.zeros_like(P))
        U[start] = 0.0  # no transition into a sequence's first row
        A64 = A.to(torch.float64)
        xi = F[:-1].to(torch.float64).T @ U[1:].to(torch.float64) if T > 1 else \
            torch.zeros_like(A64)
        # Where A is 0 the product may hold huge (never used) values: 0, not 0 * inf.
        trans = torch.where(A64 > 0, A64 * xi, torch.zeros_like(xi))
        first = gamma[start].to(torch.float64).sum(dim=0)
        return loglik, gamma, first.cpu().numpy(), trans.cpu().numpy()


# --------------------------------------------------------------------------- Viterbi
# The same scan in the max-plus semiring: an element is a (K, K) matrix of log-values,
# ``D_t[i, j] = log A_ij + log B_t(j)`` (a reset: every row ``log pi + log B_t``), two
# combine as ``C_ij = max_k D1_ik + D2_kj``, and a vector ``delta`` (the best log-joint of
# a path ending in each state) moves as ``max_k delta_k + D_kj``. Elements and vectors
# are kept relative to their maximum (argmaxes and differences are all that is read), so
# their size never grows with the block. The path is then read backwards through the
# back-pointers ``bp_t(j) = argmax_i delta_{t-1}(i) + log A_ij``: ``z_t = bp_{t+1}(z_{t+1})``
# is a composition of maps of {0..K-1} into itself, one more scan (integer gathers; a
# sequence's last step is the constant map to its best final state).
def _relative(x, dims):
    return x - x.amax(dim=dims, keepdim=True).clamp_min(torch.finfo(x.dtype).min)


def _maxplus_combine(D1, f1, D2, f2):
    C = _relative((D1[:, :, :, None] + D2[:, None, :, :]).amax(dim=2), (1, 2))
    if f2 is None:
        return C, None
    return torch.where(f2[:, None, None], D2, C), f1 | f2


def _maxplus_apply(V, D, f):
    out = _relative((V[:, :, None] + D).amax(dim=1), 1)
    return out if f is None else torch.where(f[:, None], D[:, 0, :], out)


class _MaxPlusStored:
    """Max-plus elements of a level below the top: element i at row i - 1."""

    def __init__(self, D, f):
        self.D, self.f = D, f

    def apply(self, V, a, b, step=1):
        a, b = a - 1, b - 1
        return _maxplus_apply(V, self.D[a:b:step], _sl(self.f, a, b, step))

    def element_pairs(self, h):
        parts = []
        for a, b in _chunks(h - 1, self.D.shape[1], per=self.D.shape[1] ** 3):
            e0, o0, e1 = 2 * a + 1, 2 * a + 2, 2 * b + 1
            parts.append(_maxplus_combine(self.D[e0:e1:2], _sl(self.f, e0, e1, 2),
                                          self.D[o0:e1:2], _sl(self.f, o0, e1, 2)))
        return _gather_chunks(parts, h, _MaxPlusStored)


class _MaxPlusSteps:
    """The top level's max-plus elements, from the log-emissions ``lb`` (T, K)."""

    def __init__(self, lb, reset, log_pi, log_A):
        self.lb, self.reset, self.log_pi, self.log_A = lb, reset, log_pi, log_A
        self.K = log_A.shape[0]

    def stored(self, a, b, step=1):
        lb, f = self.lb[a:b:step], _sl(self.reset, a, b, step)
        D = _relative(self.log_A + lb[:, None, :], (1, 2))
        if f is None:
            return D, None
        first = _relative(self.log_pi + lb, 1)[:, None, :].expand_as(D)
        return torch.where(f[:, None, None], first, D), f

    def apply(self, V, a, b, step=1):
        lb, f = self.lb[a:b:step], _sl(self.reset, a, b, step)
        out = _relative((V[:, :, None] + self.log_A).amax(dim=1) + lb, 1)
        return out if f is None else torch.where(f[:, None], _relative(self.log_pi + lb, 1), out)

    def element_pairs(self, h):
        parts = []
        for a, b in _chunks(h - 1, self.K, per=self.K ** 3):
            i0, i1 = 1 + a, 1 + b
            parts.append(_maxplus_combine(*self.stored(2 * i0, 2 * i1, 2),
                                          *self.stored(2 * i0 + 1, 2 * i1, 2)))
        return _gather_chunks(parts, h, _MaxPlusStored)


class _Maps:
    """Maps of states (n, K) int64, element i at row i - 1; ``V`` (n, 1) are states."""

    def __init__(self, M):
        self.M = M

    def apply(self, V, a, b, step=1):
        return torch.gather(self.M[a - 1:b - 1:step], 1, V)

    def element_pairs(self, h):
        # E_{2i} first, then E_{2i+1}: x -> E_{2i+1}[E_{2i}[x]].
        M = self.M
        return _Maps(torch.gather(M[2:2 * h - 1:2], 1, M[1:2 * h - 1:2]))


def viterbi(log_B, startprob, transmat, lengths):
    """The most likely state path of every sequence by the max-plus scan.

    Parameters
    ----------
    log_B : tensor of shape (T, K)
    startprob : ndarray of shape (K,)
    transmat : ndarray of shape (K, K)
    lengths : ndarray of int of shape (S,)

    Returns
    -------
    logprob : ndarray of shape (S,), host float64
        ``log p(x, z*)`` of each sequence's best path, summed along the path in float64
        (-inf when no path is possible).
    path : LongTensor of shape (T,), log_B's device
    """
    with torch.no_grad():
        lb, pi, A, lengths, start = _inputs(log_B, startprob, transmat, lengths)
        T, K = lb.shape
        log_pi, log_A = torch.log(pi), torch.log(A)
        reset = start if len(lengths) > 1 else None
        v0 = _relative((log_pi + lb[0])[None], 1)[0]
        delta = _scan(v0, _MaxPlusSteps(lb, reset, log_pi, log_A), T)
        # Back-pointers into each step from the one before (ties: the lowest state, as
        # on the host); a sequence's last step points to its own best final state.
        maps = torch.empty((T, K), dtype=torch.int64, device=lb.device)
        for a, b in _chunks(T - 1, K):
            maps[a:b] = (delta[a:b, :, None] + log_A).argmax(dim=1)
        last = torch.zeros(T, dtype=torch.bool, device=lb.device)
        last[:-1] = start[1:]
        last[-1] = True
        best = delta[last].argmax(dim=1)
        maps[last] = best[:, None].expand(-1, K)
        # z_t = maps[t](z_{t+1}): a scan over the reversed steps, head z_{T-1}.
        rev = maps.flip(0)
        path = _scan(best[-1:], _Maps(rev[1:]), T).flip(0)[:, 0]
        # The path's log-probability, summed in float64 along it.
        with np.errstate(divide="ignore"):
            lpi64 = torch.as_tensor(np.log(np.asarray(startprob, dtype=np.float64)), device=lb.device)
            lA64 = torch.as_tensor(np.log(np.asarray(transmat, dtype=np.float64)), device=lb.device)
        gain = lb.to(torch.float64).gather(1, path[:, None])[:, 0]
        prev = torch.cat([path[:1], path[:-1]])
        into = torch.where(start, lpi64[path], lA64[prev, path])
        step = gain + into
        if len(lengths) == 1:
            logprob = step.sum().reshape(1)
        else:
            logprob = torch.zeros(len(lengths), dtype=torch.float64, device=lb.device)
            logprob.index_add_(0, _seq_of_row(lengths, lb.device), step)
        return logprob.cpu().numpy(), path
