"""Forward-backward and Viterbi on torch tensors, many sequences batched.

The same scaled recursions as the numba kernels (:mod:`emix.models._fb_numba`), written
as one Python loop over time steps whose body treats every sequence still running at
that step at once: ``(n, K) @ (K, K)`` products on the device. The loop runs ``max(lengths)``
times whatever the number of sequences, so this pays when there are many sequences
(it is slower than the compiled host loop for one long sequence: see
``emix.models.hmm.DEVICE_FB_MIN_BATCH``).

Layout. The sequences are ranked by length, longest first, and the rows are packed
*time-major*: step ``tau`` of every sequence longer than ``tau``, in rank order, then step
``tau + 1``, ... Because the ranks are sorted by length, the sequences running at step
``tau`` are the first ``n_tau`` ranks, and their rows at ``tau`` are the contiguous slice
``offs[tau]:offs[tau] + n_tau``: no padding, no masks, no gathers inside the loop (the
same packing as ``torch.nn.utils.rnn.PackedSequence``). One permutation packs the
log-emissions and one unpacks the results.

Everything is float64 (the log-emissions are cast if they are not); ``startprob`` and
``transmat`` are host arrays moved to the log-emissions' device. Outputs of length T
(posteriors, filtered probabilities, step log-likelihoods, paths) stay on the device in
the original row order; the per-sequence log-likelihoods and the expected start and
transition counts, which the M-step reads on the host, are returned as NumPy float64.

torch is imported by this module, which only :mod:`emix.models.forward_backward` imports,
and only for tensor input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["pack", "forward", "forward_backward", "viterbi"]


@dataclass(frozen=True)
class Packing:
    """Time-major packing of S sequences of lengths ``lengths`` (S,), T rows.

    Attributes
    ----------
    pos : LongTensor of shape (T,)
        Packed position of original row r: ``packed[pos] = rows``.
    offs : list of int, length L + 1
        Step tau occupies packed rows ``offs[tau]:offs[tau + 1]``.
    n : list of int, length L + 1
        ``n[tau]`` sequences run at step tau (the first ranks); ``n[L] = 0``.
    seq_of_rank : ndarray of shape (S,)
        The original index of the sequence of each rank.
    seq_of_row : LongTensor of shape (T,)
        The sequence of each original row.
    """

    pos: torch.Tensor
    offs: list
    n: list
    seq_of_rank: np.ndarray
    seq_of_row: torch.Tensor


def pack(lengths: np.ndarray, device) -> Packing:
    """The time-major packing of sequences of ``lengths`` (S,), computed on the host."""
    lengths = np.asarray(lengths, dtype=np.int64)
    S = lengths.shape[0]
    T = int(lengths.sum())
    L = int(lengths.max())
    # Stable, so that sequences of equal length keep their order.
    seq_of_rank = np.argsort(-lengths, kind="stable")
    rank = np.empty(S, dtype=np.int64)
    rank[seq_of_rank] = np.arange(S)
    sorted_len = lengths[seq_of_rank]
    # n[tau] = number of sequences longer than tau (sorted_len is descending).
    n = np.searchsorted(-sorted_len, -np.arange(L + 1), side="left").astype(np.int64)
    offs = np.concatenate([[0], np.cumsum(n[:L])])
    seq = np.repeat(np.arange(S), lengths)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    tau = np.arange(T) - starts[seq]
    pos = offs[tau] + rank[seq]
    return Packing(torch.as_tensor(pos, device=device), offs.tolist(), n.tolist(), seq_of_rank,
                   torch.as_tensor(seq, device=device))


def _packed(x, pk: Packing):
    out = torch.empty_like(x)
    out[pk.pos] = x
    return out


def _unpacked(x, pk: Packing):
    return x[pk.pos]


def _per_sequence(step, pk: Packing) -> np.ndarray:
    """Sum of the step log-likelihoods ``step`` (T,), original row order, of each
    sequence: (S,), on the host."""
    out = torch.zeros(len(pk.seq_of_rank), dtype=torch.float64, device=step.device)
    return out.index_add_(0, pk.seq_of_row, step).cpu().numpy()


def _scaled_emissions(log_B):
    """``b = exp(log_B - m)`` with ``m`` the row maxima; rows no state can emit get b = 0."""
    m = log_B.max(dim=1).values
    dead = ~(m > -torch.inf)  # -inf, or NaN
    m_safe = torch.where(dead, torch.zeros_like(m), m)
    b = torch.exp(log_B - m_safe[:, None])
    b[dead] = 0.0
    return b, m


def _forward_packed(b, m, pi, A, pk: Packing):
    """Scaled forward pass on packed rows: ``(alpha (T, K), c (T,), step (T,))``."""
    alpha = torch.empty_like(b)
    c = torch.empty_like(m)
    prev = None
    for tau in range(len(pk.n) - 1):
        a0, n = pk.offs[tau], pk.n[tau]
        bt = b[a0 : a0 + n]
        v = pi * bt if prev is None else (prev[:n] @ A) * bt
        ct = v.sum(dim=1)
        # A step no reachable state can emit (c = 0) leaves v = 0: the sequence's
        # remaining alphas stay 0 and its step log-likelihoods -inf, as on the host.
        v = v / torch.where(ct > 0, ct, torch.ones_like(ct))[:, None]
        alpha[a0 : a0 + n] = v
        c[a0 : a0 + n] = ct
        prev = v
    step = torch.where(c > 0, torch.log(c) + m, torch.full_like(c, -torch.inf))
    return alpha, c, step


def _inputs(log_B, startprob, transmat):
    dev = log_B.device
    log_B = log_B.to(torch.float64)
    pi = torch.as_tensor(np.asarray(startprob, dtype=np.float64), device=dev)
    A = torch.as_tensor(np.asarray(transmat, dtype=np.float64), device=dev)
    return log_B, pi, A


def forward(log_B, startprob, transmat, lengths):
    """Filtered probabilities of many sequences at once.

    Parameters
    ----------
    log_B : tensor of shape (T, K)
    startprob : ndarray of shape (K,)
    transmat : ndarray of shape (K, K)
    lengths : ndarray of int of shape (S,)

    Returns
    -------
    loglik : ndarray of shape (S,), host
    filtered : tensor of shape (T, K), float64, log_B's device
    step_loglik : tensor of shape (T,), float64, log_B's device
    """
    log_B, pi, A = _inputs(log_B, startprob, transmat)
    with torch.no_grad():
        pk = pack(lengths, log_B.device)
        b, m = _scaled_emissions(_packed(log_B, pk))
        alpha, _, step = _forward_packed(b, m, pi, A, pk)
        step = _unpacked(step, pk)
        return _per_sequence(step, pk), _unpacked(alpha, pk), step


def forward_backward(log_B, startprob, transmat, lengths):
    """Smoothed posteriors and expected counts of many sequences at once.

    Parameters
    ----------
    log_B : tensor of shape (T, K)
    startprob : ndarray of shape (K,)
    transmat : ndarray of shape (K, K)
    lengths : ndarray of int of shape (S,)

    Returns
    -------
    loglik : ndarray of shape (S,), host
    posteriors : tensor of shape (T, K), float64, log_B's device
    start : ndarray of shape (K,), host
    transitions : ndarray of shape (K, K), host
    """
    log_B, pi, A = _inputs(log_B, startprob, transmat)
    K = log_B.shape[1]
    with torch.no_grad():
        pk = pack(lengths, log_B.device)
        b, m = _scaled_emissions(_packed(log_B, pk))
        post, c, step = _forward_packed(b, m, pi, A, pk)
        # 1 / c, and 0 at an impossible step: every backward quantity of a sequence with
        # likelihood 0 then vanishes, so it adds nothing to the statistics (as on the host).
        inv_c = torch.where(c > 0, 1.0 / torch.where(c > 0, c, torch.ones_like(c)), torch.zeros_like(c))
        bc = b * inv_c[:, None]
        At = A.T.contiguous()
        xi = torch.zeros((K, K), dtype=torch.float64, device=log_B.device)
        L = len(pk.n) - 1
        beta = torch.ones((pk.n[0], K), dtype=torch.float64, device=log_B.device)
        for tau in range(L - 1, -1, -1):
            a0, n = pk.offs[tau], pk.n[tau]
            n1 = pk.n[tau + 1]
            at = post[a0 : a0 + n]
            if n1:
                # Ranks < n1 go on to tau + 1: nxt = b_{t+1} beta_{t+1} / c_{t+1},
                # beta_t = A nxt, and the expected transitions alpha_t (x) nxt, times A.
                a1 = pk.offs[tau + 1]
                nxt = bc[a1 : a1 + n1] * beta[:n1]
                xi += at[:n1].T @ nxt
                beta[:n1] = nxt @ At
            # Ranks n1..n-1 end at tau: their beta is 1 (set at the start, never touched).
            g = at * beta[:n]
            tot = g.sum(dim=1)
            post[a0 : a0 + n] = g / torch.where(tot > 0, tot, torch.ones_like(tot))[:, None]
        start = post[: pk.n[0]].sum(dim=0)
        trans = A * xi
        return (
            _per_sequence(_unpacked(step, pk), pk),
            _unpacked(post, pk),
            start.cpu().numpy(),
            trans.cpu().numpy(),
        )


def viterbi(log_B, startprob, transmat, lengths):
    """The most likely state path of many sequences at once.

    Parameters
    ----------
    log_B : tensor of shape (T, K)
    startprob : ndarray of shape (K,)
    transmat : ndarray of shape (K, K)
    lengths : ndarray of int of shape (S,)

    Returns
    -------
    logprob : ndarray of shape (S,), host
    path : LongTensor of shape (T,), log_B's device
    """
    log_B, pi, A = _inputs(log_B, startprob, transmat)
    with torch.no_grad():
        log_pi = torch.log(pi)
        log_A = torch.log(A)
        pk = pack(lengths, log_B.device)
        lb = _packed(log_B, pk)
        T, K = lb.shape
        L = len(pk.n) - 1
        back = torch.zeros((T, K), dtype=torch.int64, device=lb.device)
        # delta of every rank; rows beyond n[tau] keep their sequence's final delta.
        delta = log_pi + lb[: pk.n[0]]
        for tau in range(1, L):
            a0, n = pk.offs[tau], pk.n[tau]
            # Ties go to the lowest previous state, as in the host kernel.
            best, arg = (delta[:n, :, None] + log_A).max(dim=1)
            delta[:n] = best + lb[a0 : a0 + n]
            back[a0 : a0 + n] = arg
        logprob_rank, last = delta.max(dim=1)
        path = torch.empty(T, dtype=torch.int64, device=lb.device)
        cur = last.clone()
        for tau in range(L - 1, -1, -1):
            a0, n = pk.offs[tau], pk.n[tau]
            path[a0 : a0 + n] = cur[:n]
            if tau:
                cur[:n] = back[a0 : a0 + n].gather(1, cur[:n, None])[:, 0]
        logprob = np.empty(len(pk.seq_of_rank))
        logprob[pk.seq_of_rank] = logprob_rank.cpu().numpy()
        return logprob, _unpacked(path, pk)
