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

import numbers
from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln, logsumexp, xlog1py, xlogy

from ..exceptions import InputError
from ._base import Family, MixtureStats, empty_components, empty_issues, refuse_outside_support, safe_log

__all__ = [
    "Binomial",
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



class Binomial(Family):
    """Binomial counts: successes ("heads") out of a number of trials, per component.

    ``log p(h | n, p) = log C(n, h) + h log p + (n - h) log(1 - p)``: an exponential
    family with ``T = [h, n - h]``, ``eta = [log p, log(1 - p)]`` (``log 0`` clamped to
    ``LOG_ZERO``, so ``p = 0`` or ``1`` is exact, as in the functions above), ``A = 0``
    and ``log h(x) = log C(n, h)``. The M-step is ``p_k = H_k / (H_k + F_k)``: heads
    credited to the component over trials credited to it.

    Parameters
    ----------
    n_trials : int, optional
        Trials behind every count. Given, every column of the data is a count of heads
        out of ``n_trials`` (columns independent given the component). None (default):
        the data are two columns, ``(heads, trials)``, so every row has its own number
        of trials.

    Notes
    -----
    Parameters (fitted attribute ``probabilities_``): ``probabilities`` of shape
    (K, C), the success probability of every count under every component, with C the
    number of data columns when ``n_trials`` is given and 1 for ``(heads, trials)``
    data. ``validate_params`` also accepts shape (K,) when C is 1.
    """

    name = "binomial"
    param_names = ("probabilities",)
    discrete = True

    def __init__(self, n_trials=None):
        super().__init__()
        if n_trials is not None:
            if (
                isinstance(n_trials, (bool, np.bool_))
                or not isinstance(n_trials, numbers.Real)
                or not np.isfinite(float(n_trials))
                or float(n_trials) != np.floor(float(n_trials))
                or float(n_trials) < 0
            ):
                raise InputError(f"n_trials must be a non-negative integer or None; got {n_trials!r}")
            n_trials = int(n_trials)
        self.n_trials = n_trials
        self.mean_trials = None  # (heads, trials) data: the mean number of trials

    def get_config(self) -> dict:
        return {"n_trials": self.n_trials}

    @property
    def n_counts(self) -> int:
        """C: the number of binomial counts in a row."""
        return 1 if self.n_trials is None else self.n_features

    def bind(self, summary, n_features):
        if self.n_trials is None and int(n_features) != 2:
            raise InputError(
                f"binomial data without n_trials must be two columns (heads, trials); got "
                f"{int(n_features)} column(s). Give n_trials=... for columns of heads"
            )
        new = super().bind(summary, n_features)
        if self.n_trials is None:
            new.mean_trials = float(np.asarray(summary["mean"], dtype=np.float64)[1])
        return new

    def check_support(self, X, names=None):
        if self.n_trials is None and X.shape[1] != 2:
            raise InputError(
                f"binomial data without n_trials must be two columns (heads, trials); got "
                f"{X.shape[1]} column(s). Give n_trials=... for columns of heads"
            )
        what = "binomial counts must be whole numbers"
        refuse_outside_support(X != np.floor(X), X, names, what)
        refuse_outside_support(X < 0, X, names, "binomial counts must be non-negative")
        if self.n_trials is not None:
            bad = X > self.n_trials
            trials = f"n_trials={self.n_trials}"
        else:
            bad = np.zeros(X.shape, bool)
            bad[:, 0] = X[:, 0] > X[:, 1]
            trials = "the row's trials (column 1)"
        refuse_outside_support(bad, X, names, f"heads exceed the number of trials ({trials})")

    def feature_width(self) -> int:
        return 2 * self.n_counts

    def features(self, ops, Xb):
        """``[h, n - h]`` transposed: shape (2C, rows), the data's dtype."""
        if self.n_trials is None:
            h = Xb[:, 0]
            return ops.stack([h, Xb[:, 1] - h], axis=0)
        return ops.concat([Xb.T, float(self.n_trials) - Xb.T], axis=0)

    def log_base(self, ops, Xb):
        """``sum log C(n, h)`` per row, shape (rows,)."""
        if self.n_trials is None:
            h, n = Xb[:, 0], Xb[:, 1]
            return ops.lgamma(n + 1.0) - ops.lgamma(h + 1.0) - ops.lgamma(n - h + 1.0)
        n = float(self.n_trials)
        const = self.n_features * float(gammaln(n + 1.0))
        return const - ops.sum(ops.lgamma(Xb + 1.0) + ops.lgamma(n - Xb + 1.0), axis=1)

    def natural(self, params):
        p = params["probabilities"]
        eta = np.concatenate([safe_log(p), safe_log(1.0 - p)], axis=1)  # (K, 2C)
        return eta, np.zeros(p.shape[0])

    # Missing cells (see Family). With ``n_trials`` every column is its own binomial
    # count: feature rows c and C + c read column c, and a missing count adds its
    # expectation ``n [p, 1 - p]``. For ``(heads, trials)`` rows a missing heads or
    # trials leaves the row without binomial information (trials are a covariate the
    # model does not describe): both features count as missing, with expectation 0,
    # and since the M-step is ``p = H / (H + T)`` (not divided by ``n_k``) that is the
    # exact maximiser for the observed rows.
    def missing_columns(self):
        C = self.n_counts
        if self.n_trials is None:
            return np.array([0, 0])
        return np.concatenate([np.arange(C), np.arange(C)])

    def missing_observed(self, ops, O):
        if self.n_trials is None:
            both = O[:, 0:1] & O[:, 1:2]
            return ops.concat([both, both], axis=1)
        return O

    def expected_features(self, params):
        p = np.asarray(params["probabilities"], dtype=np.float64)
        if self.n_trials is None:
            return np.zeros((p.shape[0], 2))
        return float(self.n_trials) * np.concatenate([p, 1.0 - p], axis=1)

    def log_base_cells(self, ops, Xb):
        """``log C(n, h)`` per cell (rows, C); for ``(heads, trials)`` rows in the first
        column, 0 in the second."""
        if self.n_trials is None:
            lc = self.log_base(ops, Xb)[:, None]
            return ops.concat([lc, lc * 0.0], axis=1)
        n = float(self.n_trials)
        return float(gammaln(n + 1.0)) - ops.lgamma(Xb + 1.0) - ops.lgamma(n - Xb + 1.0)

    def _pair_trials(self, X, O):
        """Trials of ``(heads, trials)`` rows with a missing count filled: the data's
        mean number of trials, at least the heads (float64, (N,))."""
        n_mean = 1.0 if self.mean_trials is None else float(self.mean_trials)
        h = np.where(O[:, 0], X[:, 0], 0.0)
        return np.where(O[:, 1], X[:, 1], np.maximum(h, n_mean))

    def conditional_means(self, params, X, O):
        if self.n_trials is not None:
            return super().conditional_means(params, X, O)
        p = np.asarray(params["probabilities"], dtype=np.float64)[:, 0]  # (K,)
        n = self._pair_trials(X, O)
        out = np.repeat(np.asarray(X, dtype=np.float64)[None], p.shape[0], axis=0)
        out[:, :, 1] = n[None, :]
        out[:, :, 0] = np.where(O[None, :, 0], X[None, :, 0], n[None, :] * p[:, None])
        return out

    def conditional_draw(self, params, X, O, z, rng):
        if self.n_trials is not None:
            return super().conditional_draw(params, X, O, z, rng)
        p = np.asarray(params["probabilities"], dtype=np.float64)[:, 0]
        out = np.array(X, dtype=np.float64, copy=True)
        n = np.rint(self._pair_trials(X, O))
        out[:, 1] = n
        miss = ~O[:, 0]
        out[miss, 0] = rng.binomial(n[miss].astype(np.int64), p[z[miss]])
        return out

    def m_step(self, stats: MixtureStats, previous):
        C = self.n_counts
        nk = stats.nk
        empty = empty_components(nk, stats.weight_sum, at_start=previous is None)
        tiny = 10.0 * np.finfo(np.float64).eps * max(stats.weight_sum, 1.0)
        heads = stats.S[:, :C]
        trials = heads + stats.S[:, C:]
        # A component may own rows but no trials (every row it owns has n = 0): its
        # probability is not identified, and it keeps its previous one (1/2 at the start).
        no_trials = trials <= tiny
        no_trials[empty] = False
        with np.errstate(divide="ignore", invalid="ignore"):
            p = np.clip(heads / np.where(trials > 0, trials, 1.0), 0.0, 1.0)
        keep = no_trials.copy()
        keep[empty] = True
        fallback = np.full_like(p, 0.5) if previous is None else previous["probabilities"]
        p = np.where(keep, fallback, p)
        issues = empty_issues(empty)
        for k in np.flatnonzero(no_trials.any(axis=1)):
            issues.append(
                f"component {int(k)} received no trials (its rows have 0 trials), so its "
                "success probability is not identified; use fewer components"
            )
        return {"probabilities": p}, issues

    def n_parameters(self, n_components):
        return n_components * self.n_counts

    def sample(self, params, k, n, rng):
        """``n`` rows of heads from component ``k``, shape (n, C) (needs ``n_trials``)."""
        if self.n_trials is None:
            raise InputError(
                "sampling (heads, trials) rows needs a number of trials: use a binomial "
                "family with n_trials=..."
            )
        p = params["probabilities"][k]
        return rng.binomial(self.n_trials, p, size=(n, self.n_counts)).astype(np.float64)

    def component_means(self, params):
        """Mean of every column: ``n p`` (K, C), or ``[n p, n]`` (K, 2) with ``n`` the
        data's mean number of trials for (heads, trials) data."""
        p = params["probabilities"]
        if self.n_trials is not None:
            return self.n_trials * p
        n = 1.0 if self.mean_trials is None else self.mean_trials
        return np.concatenate([n * p, np.full_like(p, n)], axis=1)

    def canonical_keys(self, params):
        p = params["probabilities"]
        return [p[:, j] for j in range(p.shape[1])]

    def validate_params(self, params, n_components):
        params = dict(params)
        if "probabilities" in params:
            p = np.asarray(params["probabilities"], dtype=np.float64)
            if p.ndim == 1 and (self.n_trials is None or self.n_features in (None, 1)):
                params["probabilities"] = p[:, None]
        out = super().validate_params(params, n_components)
        p = out["probabilities"]
        C = None if self.n_features is None else self.n_counts
        if p.ndim != 2 or (C is not None and p.shape[1] != C):
            raise InputError(f"probabilities must have shape (K, {C or 'C'}); got {p.shape}")
        bad = (p < 0) | (p > 1)
        if bad.any():
            k, d = np.argwhere(bad)[0]
            raise InputError(
                f"probabilities must lie in [0, 1]; component {k}, count {d} is {p[k, d]}"
            )
        return out
