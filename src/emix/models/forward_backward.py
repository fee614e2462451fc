"""Forward-backward and Viterbi for hidden Markov models, compiled with numba.

All functions take log-emissions ``log_B`` (T, K) (``log p(x_t | state k)``, float64),
the initial distribution ``startprob`` (K,) and the transition matrix ``transmat``
(K, K) as probabilities (zeros allowed: fixed structural zeros stay zero), and
``lengths`` (S,) that cut the T rows into S independent sequences (their sum is T).

The recursions are the *scaled* ones (Rabiner 1989): each time step's forward vector
is normalised to sum to one, and the log of the normaliser is that step's conditional
log-likelihood ``log p(x_t | x_1..x_{t-1})``. Emissions enter as ``exp(log_B[t] -
max_k log_B[t, k])`` with the maximum added back to the log-likelihood, so no
probability underflows however long the sequence, and the inner loops are products and
sums rather than log-sum-exps (an order of magnitude fewer transcendental calls than a
log-space recursion).

numba is imported, and the kernels compiled (then cached on disk), on first use only.

A torch tensor ``log_B`` runs the same recursions on its device with all sequences
batched (:mod:`emix.models._fb_torch`): the results of length T (posteriors,
filtered probabilities, step log-likelihoods, the path) are then tensors on that device,
float64 (int64 for the path), while the per-sequence log-likelihoods and the expected
start and transition counts are NumPy float64 on the host, as for NumPy input.

One or a few long sequences on a GPU run instead by a parallel scan
(:mod:`emix.models._fb_scan`, O(T) work in ``log2 T`` levels of batched tensor
operations): see :func:`use_scan` for when, and the module flag :data:`SCAN` to force it
(or forbid it) for any torch tensor, e.g. on torch's CPU build in tests. The scan keeps
the log-emissions' dtype (float32 or float64) for its results of length T; Viterbi
there is the same scan in the max-plus semiring.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..backends import is_torch_tensor
from ..exceptions import InputError

__all__ = ["ForwardResult", "FBResult", "forward", "forward_backward", "viterbi", "check_lengths",
           "use_scan", "SCAN"]

# None: the device decides (use_scan); True: every torch tensor runs the scan (tests on
# torch's CPU build); False: never the scan (the batched recursions, as before it).
SCAN: bool | None = None
# On a GPU the scan replaces the batched time loop when the longest sequence has at least
# SCAN_MIN_LENGTH steps (the batched loop's cost grows with it, some 20 kernel launches a
# step, while the scan's grows with log2 T), and there are at least SCAN_MIN_ROWS rows
# (below that the compiled host loop takes milliseconds, less than the scan's ~1,500
# launches).
SCAN_MIN_ROWS = 65_536
SCAN_MIN_LENGTH = 1_024


@dataclass(frozen=True)
class ForwardResult:
    """Causal (filtered) quantities.

    Attributes
    ----------
    loglik : ndarray of shape (S,)
        ``log p(x)`` of every sequence (-inf where a row is impossible).
    filtered : ndarray of shape (T, K)
        ``p(z_t = k | x_1..x_t)``: uses no row after t.
    step_loglik : ndarray of shape (T,)
        ``log p(x_t | x_1..x_{t-1})``; sums to ``loglik`` over each sequence.
    """

    loglik: np.ndarray
    filtered: np.ndarray
    step_loglik: np.ndarray


@dataclass(frozen=True)
class FBResult:
    """What one E-step of Baum-Welch needs.

    Attributes
    ----------
    loglik : ndarray of shape (S,)
    posteriors : ndarray of shape (T, K)
        Smoothed ``p(z_t = k | x)`` (the whole sequence).
    start : ndarray of shape (K,)
        ``sum over sequences of p(z_1 = k | x)``: the initial-state statistic.
    transitions : ndarray of shape (K, K)
        ``sum_t p(z_t = i, z_{t+1} = j | x)`` over all sequences: expected transition
        counts.
    """

    loglik: np.ndarray
    posteriors: np.ndarray
    start: np.ndarray
    transitions: np.ndarray


def check_lengths(lengths, n_rows: int) -> np.ndarray:
    """``lengths`` as an int64 array (S,) of positive lengths summing to ``n_rows``.

    None means one sequence of all rows.
    """
    if lengths is None:
        return np.array([n_rows], dtype=np.int64)
    arr = np.asarray(lengths)
    if arr.ndim != 1 or arr.size == 0:
        raise InputError(f"lengths must be a 1-D list of sequence lengths; got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.isfinite(arr)) or np.any(arr != np.floor(arr)):
            raise InputError("lengths must be whole numbers")
        arr = arr.astype(np.int64)
    bad = np.flatnonzero(arr < 1)
    if bad.size:
        raise InputError(f"lengths must be positive; sequence {int(bad[0])} has length {int(arr[bad[0]])}")
    if int(arr.sum()) != n_rows:
        raise InputError(f"lengths sum to {int(arr.sum())} but X has {n_rows} rows")
    return arr.astype(np.int64)


_KERNELS = None


def _kernels():
    """Compile (or load from numba's cache) the kernels on first use."""
    global _KERNELS
    if _KERNELS is None:
        from . import _fb_numba

        _KERNELS = _fb_numba
    return _KERNELS


def use_scan(device, lengths) -> bool:
    """Whether torch log-emissions on ``device`` with sequences of ``lengths`` (S,) run
    the parallel scan rather than the batched time loop (or, for an HMM, the host loop).

    :data:`SCAN` decides when it is not None; otherwise the scan runs on a GPU (any
    non-CPU device) for at least :data:`SCAN_MIN_ROWS` rows whose longest sequence has
    at least :data:`SCAN_MIN_LENGTH` steps.
    """
    if SCAN is not None:
        return bool(SCAN)
    if getattr(device, "type", "cpu") == "cpu":
        return False
    lengths = np.asarray(lengths)
    return int(lengths.sum()) >= SCAN_MIN_ROWS and int(lengths.max()) >= SCAN_MIN_LENGTH


def _torch_kernels(log_B, startprob, transmat, lengths):
    """The torch recursions (the scan's or the batched ones) and checked inputs, or None
    for host (NumPy) input."""
    if not is_torch_tensor(log_B):
        return None

    if log_B.ndim != 2:
        raise InputError(f"log-emissions must be (T, K); got shape {tuple(log_B.shape)}")
    T, K = log_B.shape
    pi = np.asarray(startprob, dtype=np.float64)
    A = np.asarray(transmat, dtype=np.float64)
    if pi.shape != (K,) or A.shape != (K, K):
        raise InputError(
            f"startprob must be ({K},) and transmat ({K}, {K}); got {pi.shape} and {A.shape}"
        )
    lengths = check_lengths(lengths, T)
    if use_scan(log_B.device, lengths):
        from . import _fb_scan as module
    else:
        from . import _fb_torch as module
    return module, (log_B, pi, A, lengths)


def _prepare(log_B, startprob, transmat, lengths):
    log_B = np.ascontiguousarray(log_B, dtype=np.float64)
    if log_B.ndim != 2:
        raise InputError(f"log-emissions must be (T, K); got shape {log_B.shape}")
    T, K = log_B.shape
    pi = np.ascontiguousarray(startprob, dtype=np.float64)
    A = np.ascontiguousarray(transmat, dtype=np.float64)
    if pi.shape != (K,) or A.shape != (K, K):
        raise InputError(
            f"startprob must be ({K},) and transmat ({K}, {K}); got {pi.shape} and {A.shape}"
        )
    return log_B, pi, A, check_lengths(lengths, T)


def forward(log_B, startprob, transmat, lengths=None) -> ForwardResult:
    """Filtered state probabilities and log-likelihoods (causal: row t sees rows <= t).

    Parameters
    ----------
    log_B : array of shape (T, K)
    startprob : array of shape (K,)
    transmat : array of shape (K, K)
    lengths : array of shape (S,), optional

    Returns
    -------
    ForwardResult
    """
    dev = _torch_kernels(log_B, startprob, transmat, lengths)
    if dev is not None:
        return ForwardResult(*dev[0].forward(*dev[1]))
    log_B, pi, A, lengths = _prepare(log_B, startprob, transmat, lengths)
    T, K = log_B.shape
    filtered = np.empty((T, K))
    step = np.empty(T)
    loglik = np.empty(len(lengths))
    _kernels().forward(log_B, pi, A, lengths, filtered, step, loglik)
    return ForwardResult(loglik, filtered, step)


def forward_backward(log_B, startprob, transmat, lengths=None) -> FBResult:
    """Smoothed posteriors and expected counts for one Baum-Welch E-step.

    Parameters
    ----------
    log_B : array of shape (T, K)
    startprob : array of shape (K,)
    transmat : array of shape (K, K)
    lengths : array of shape (S,), optional

    Returns
    -------
    FBResult
    """
    dev = _torch_kernels(log_B, startprob, transmat, lengths)
    if dev is not None:
        return FBResult(*dev[0].forward_backward(*dev[1]))
    log_B, pi, A, lengths = _prepare(log_B, startprob, transmat, lengths)
    T, K = log_B.shape
    post = np.empty((T, K))
    loglik = np.empty(len(lengths))
    start = np.zeros(K)
    trans = np.zeros((K, K))
    _kernels().forward_backward(log_B, pi, A, lengths, post, loglik, start, trans)
    return FBResult(loglik, post, start, trans)


def viterbi(log_B, startprob, transmat, lengths=None) -> tuple[np.ndarray, np.ndarray]:
    """The most likely state path of every sequence.

    Returns
    -------
    logprob : ndarray of shape (S,)
        ``log p(x, z*)`` of each sequence's best path (-inf when none is possible).
    path : ndarray of shape (T,), int
    """
    dev = _torch_kernels(log_B, startprob, transmat, lengths)
    if dev is not None:
        return dev[0].viterbi(*dev[1])
    log_B, pi, A, lengths = _prepare(log_B, startprob, transmat, lengths)
    T, K = log_B.shape
    with np.errstate(divide="ignore"):
        log_pi = np.log(pi)
        log_A = np.log(A)
    path = np.empty(T, dtype=np.int64)
    logprob = np.empty(len(lengths))
    _kernels().viterbi(log_B, log_pi, log_A, lengths, path, logprob)
    return logprob, path
