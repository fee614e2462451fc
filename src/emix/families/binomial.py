"""Binomial mixture components: parameters, additive statistics, E-step, M-step.

Row ``i`` records ``h_i`` successes ("heads") in ``n_i`` trials. Under component ``k``
with success probability ``p_k`` and weight ``w_k`` its log-joint is::

    log w_k + log C(n_i, h_i) + h_i log p_k + (n_i - h_i) log(1 - p_k)

The E-step turns these into responsibilities ``r_ik`` (a soft-max over ``k``, whose
log-normaliser is the row's log-likelihood) and sums, per component, the three numbers
the M-step needs: ``sum_i v_i r_ik`` (effective count), ``sum_i v_i r_ik h_i`` and
``sum_i v_i r_ik n_i`` (``v_i`` the sample weight). These sums add across blocks of
rows, so the M-step, ``w_k = N_k / sum N``, ``p_k = H_k / T_k``, never sees the data.

``0 * log 0`` is taken as 0 (``scipy.special.xlogy``), so ``p_k = 0`` or ``1``, a valid
maximum-likelihood answer when a component only ever sees tails or heads, needs no
special case; rows impossible under a component get log-joint ``-inf`` there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln, logsumexp, xlog1py, xlogy

__all__ = [
    "BinomialMixtureParams",
    "BinomialStats",
    "MStepReport",
    "log_binomial_coefficient",
    "log_joint",
    "m_step",
    "n_parameters",
    "responsibilities",
    "suff_stats",
]


@dataclass(frozen=True, eq=False)
class BinomialMixtureParams:
    """Parameters of a binomial mixture (float64).

    Parameters
    ----------
    weights : ndarray of shape (K,)
        Mixing weights, non-negative, summing to 1.
    probs : ndarray of shape (K,)
        Success probability of each component, in [0, 1].
    """

    weights: np.ndarray
    probs: np.ndarray

    @property
    def n_components(self) -> int:
        return int(self.probs.shape[0])


@dataclass(frozen=True, eq=False)
class BinomialStats:
    """Additive sufficient statistics of a binomial mixture over some rows.

    Attributes
    ----------
    nk : ndarray of shape (K,)
        ``sum_i v_i r_ik``: effective number of rows of each component.
    heads : ndarray of shape (K,)
        ``sum_i v_i r_ik h_i``: successes credited to each component.
    trials : ndarray of shape (K,)
        ``sum_i v_i r_ik n_i``: trials credited to each component.
    loglik : float
        ``sum_i v_i log p(h_i)`` under the parameters of the pass.
    weight_sum : float
        ``sum_i v_i``.
    """

    nk: np.ndarray
    heads: np.ndarray
    trials: np.ndarray
    loglik: float
    weight_sum: float

    def __add__(self, other: BinomialStats) -> BinomialStats:
        if not isinstance(other, BinomialStats):
            return NotImplemented
        if other.nk.shape != self.nk.shape:
            raise ValueError(
                f"cannot add statistics of {self.nk.shape[0]} and {other.nk.shape[0]} "
                "components"
            )
        return BinomialStats(
            self.nk + other.nk,
            self.heads + other.heads,
            self.trials + other.trials,
            self.loglik + other.loglik,
            self.weight_sum + other.weight_sum,
        )

    @classmethod
    def zeros(cls, n_components: int) -> BinomialStats:
        """The statistics of no rows (the identity of ``+``)."""
        z = np.zeros(n_components)
        return cls(z, z.copy(), z.copy(), 0.0, 0.0)


@dataclass(frozen=True)
class MStepReport:
    """What the M-step noticed.

    Attributes
    ----------
    empty : tuple of int
        Components with no effective rows (or no trials); they keep their previous
        probability with weight 0.
    """

    empty: tuple[int, ...] = ()


def log_binomial_coefficient(heads: np.ndarray, trials: np.ndarray) -> np.ndarray:
    """``log C(n, h)`` elementwise, shape of the broadcast inputs.

    Through ``gammaln``, so it stays finite and exact to round-off for trials in the
    millions, where ``C(n, h)`` itself overflows.
    """
    heads = np.asarray(heads, dtype=np.float64)
    trials = np.asarray(trials, dtype=np.float64)
    return gammaln(trials + 1.0) - gammaln(heads + 1.0) - gammaln(trials - heads + 1.0)


def log_joint(
    heads: np.ndarray,
    trials: np.ndarray,
    params: BinomialMixtureParams,
    log_coef: np.ndarray | None = None,
) -> np.ndarray:
    """``log w_k + log Binomial(h_i | n_i, p_k)`` for every row and component.

    Parameters
    ----------
    heads : ndarray of shape (N,)
    trials : ndarray of shape (N,)
    params : BinomialMixtureParams
    log_coef : ndarray of shape (N,), optional
        ``log C(n_i, h_i)``; it does not depend on the parameters, so a fit computes it
        once rather than at every iteration.

    Returns
    -------
    ndarray of shape (N, K)
    """
    h = np.asarray(heads, dtype=np.float64)[:, None]
    n = np.asarray(trials, dtype=np.float64)[:, None]
    p = np.asarray(params.probs, dtype=np.float64)[None, :]
    if log_coef is None:
        log_coef = log_binomial_coefficient(heads, trials)
    with np.errstate(divide="ignore"):
        log_w = np.log(np.asarray(params.weights, dtype=np.float64))[None, :]
        # xlogy/xlog1py give 0 for 0 * log 0: a coin of bias 1 explains all-heads rows.
        return log_w + xlogy(h, p) + xlog1py(n - h, -p) + np.asarray(log_coef)[:, None]


def responsibilities(L: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Posterior probabilities from log-joints by a stable soft-max.

    Parameters
    ----------
    L : ndarray of shape (N, K)

    Returns
    -------
    resp : ndarray of shape (N, K)
        Rows sum to 1 (NaN where a row is impossible under every component).
    log_norm : ndarray of shape (N,)
        ``log sum_k exp L_ik``: each row's log-likelihood.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        log_norm = logsumexp(L, axis=1)
        resp = np.exp(L - log_norm[:, None])
    return resp, log_norm


def suff_stats(
    heads: np.ndarray,
    trials: np.ndarray,
    params: BinomialMixtureParams,
    sample_weight: np.ndarray | None = None,
    log_coef: np.ndarray | None = None,
) -> BinomialStats:
    """The E-step over some rows: their additive statistics under ``params``.

    Parameters
    ----------
    heads : ndarray of shape (N,)
    trials : ndarray of shape (N,)
    params : BinomialMixtureParams
    sample_weight : ndarray of shape (N,), optional
        Row weights ``v_i``; an integer weight equals repeating the row.
    log_coef : ndarray of shape (N,), optional
        Precomputed ``log C(n_i, h_i)``.

    Returns
    -------
    BinomialStats
    """
    h = np.asarray(heads, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    L = log_joint(h, n, params, log_coef)
    resp, log_norm = responsibilities(L)
    v = np.ones_like(h) if sample_weight is None else np.asarray(sample_weight, np.float64)
    # A row of weight 0 must add nothing, even when it is impossible under the current
    # parameters (its -inf times 0 would otherwise be NaN).
    live = v > 0
    if not live.all():
        resp = np.where(live[:, None], resp, 0.0)
        log_norm = np.where(live, log_norm, 0.0)
    vr = resp * v[:, None]
    return BinomialStats(
        nk=vr.sum(axis=0),
        heads=h @ vr,
        trials=n @ vr,
        loglik=float(np.dot(v, log_norm)),
        weight_sum=float(v.sum()),
    )


def m_step(
    stats: BinomialStats, previous: BinomialMixtureParams | None = None
) -> tuple[BinomialMixtureParams, MStepReport]:
    """Maximum-likelihood parameters from statistics alone.

    ``w_k = N_k / sum_j N_j`` and ``p_k = H_k / T_k``: the exact maximiser of the
    expected complete-data log-likelihood, so every EM step is monotone.

    Parameters
    ----------
    stats : BinomialStats
    previous : BinomialMixtureParams, optional
        Supplies the probability of a component that received no trials (it keeps its
        value with weight 0); without it such a component gets 0.5.

    Returns
    -------
    params : BinomialMixtureParams
    report : MStepReport
    """
    nk = np.asarray(stats.nk, dtype=np.float64)
    total = float(nk.sum())
    if not total > 0:
        raise ValueError("the statistics hold no rows: nothing to estimate from")
    weights = nk / total
    trials = np.asarray(stats.trials, dtype=np.float64)
    empty = (nk <= 0) | (trials <= 0)
    fallback = np.full(nk.shape, 0.5) if previous is None else np.asarray(previous.probs)
    with np.errstate(divide="ignore", invalid="ignore"):
        probs = np.where(empty, fallback, np.asarray(stats.heads) / trials)
    # Round-off can put H_k / T_k a hair outside [0, 1] when every row is all heads.
    probs = np.clip(probs, 0.0, 1.0)
    return (
        BinomialMixtureParams(weights, probs),
        MStepReport(tuple(int(k) for k in np.flatnonzero(empty))),
    )


def n_parameters(n_components: int) -> int:
    """Free parameters of a ``K``-component binomial mixture.

    ``K - 1`` weights (they sum to 1) and ``K`` probabilities.
    """
    return 2 * int(n_components) - 1

