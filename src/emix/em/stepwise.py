"""Mini-batch (stepwise) EM: Cappé & Moulines (2009), "On-line expectation-maximization
algorithm for latent data models", JRSS B 71(3).

EM's M-step reads only additive sufficient statistics. Stepwise EM keeps a running
average of them *per unit weight*,

    s_t = (1 - gamma_t) s_{t-1} + gamma_t * stats(batch_t) / weight(batch_t),

and runs the ordinary M-step on ``s_t`` after every batch. With the step sizes

    gamma_t = (t + t0) ** (-alpha),    t = 1, 2, ... (batches after the first),

``sum gamma_t = inf`` and ``sum gamma_t**2 < inf`` hold exactly when ``0.5 < alpha <= 1``:
the conditions under which the recursion converges to a stationary point of the
likelihood (Cappé & Moulines, Theorem 1). ``alpha = 1`` with ``t0 = 1`` is the plain
running mean of all batches (every batch counts the same, which forgets the poor early
parameters only slowly); smaller ``alpha`` forgets faster. The defaults ``alpha = 0.6``
and ``t0 = 2`` follow Liang & Klein (2009), who found ``alpha`` in 0.6-0.7 best across
tasks; ``t0 = 2`` keeps the second batch from overwriting most of the first (its step is
``3**-0.6 = 0.52`` instead of ``2**-0.6 = 0.66``). The first batch sets ``s`` outright
(``gamma_0 = 1``).

Statistics are rescaled to the total weight seen before the M-step, so that rules
about absolute counts (a component resting on too few rows, an empty component) read
the right numbers; maximum-likelihood parameters do not depend on that scale.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..exceptions import InputError

__all__ = ["DEFAULT_ALPHA", "DEFAULT_T0", "check_schedule", "step_size", "StepwiseState"]

DEFAULT_ALPHA = 0.6
DEFAULT_T0 = 2.0


def check_schedule(alpha, t0) -> tuple[float, float]:
    """``(alpha, t0)`` as floats, checked.

    Raises
    ------
    InputError
        ``alpha`` outside (0.5, 1] (the step sizes would not satisfy the convergence
        conditions) or ``t0`` negative or not finite.
    """
    try:
        a, b = float(alpha), float(t0)
    except (TypeError, ValueError):
        raise InputError(
            f"step_alpha and step_offset must be numbers; got {alpha!r} and {t0!r}"
        ) from None
    if not (0.5 < a <= 1.0):
        raise InputError(
            f"step_alpha must be in (0.5, 1] so that the step sizes (t + t0)**-alpha sum "
            f"to infinity while their squares do not; got {alpha!r}"
        )
    if not (math.isfinite(b) and b >= 0.0):
        raise InputError(f"step_offset must be a finite number >= 0; got {t0!r}")
    return a, b


def step_size(t: int, alpha: float, t0: float) -> float:
    """``gamma_t = (t + t0) ** -alpha`` for the t-th batch after the first (t >= 1)."""
    return float((t + t0) ** (-alpha))


def _scaled(stats, c: float):
    """The statistics times ``c`` (any additive statistics: Gaussian or family)."""
    fields = {f.name for f in dataclasses.fields(stats)}
    changes = {"loglik": stats.loglik * c, "weight_sum": stats.weight_sum * c}
    if "resp_moments" in fields:  # GaussianStats
        changes["resp_moments"] = stats.resp_moments * c
        if stats.scatter is not None:
            changes["scatter"] = stats.scatter * c
    else:  # MixtureStats
        changes["S"] = stats.S * c
        changes["nk"] = stats.nk * c
        changes["extra"] = {k: v * c for k, v in stats.extra.items()}
    return dataclasses.replace(stats, **changes)


def _common_anchors(stats, anchors):
    """Gaussian statistics moved to ``anchors``; other statistics as they are."""
    if hasattr(stats, "reanchor"):
        same = (stats.anchors is None and anchors is None) or (
            stats.anchors is not None and anchors is not None
            and np.array_equal(stats.anchors, anchors)
        )
        return stats if same else stats.reanchor(anchors)
    return stats


class StepwiseState:
    """The running statistics of stepwise EM and its step counter.

    Parameters
    ----------
    alpha, t0 : float
        The schedule ``gamma_t = (t + t0) ** -alpha`` (checked by :func:`check_schedule`).

    Attributes
    ----------
    stats : GaussianStats or MixtureStats
        Running statistics per unit weight (``weight_sum == 1``). Gaussian statistics
        keep the frame of the first batch (every batch must be taken in it) and are
        moved to common anchors before two are mixed.
    t : int
        Batches mixed in after the first.
    weight_seen : float
        Total weight of all batches.
    rows_seen : int
    """

    def __init__(self, alpha: float = DEFAULT_ALPHA, t0: float = DEFAULT_T0):
        self.alpha, self.t0 = check_schedule(alpha, t0)
        self.stats = None
        self.t = 0
        self.weight_seen = 0.0
        self.rows_seen = 0

    def update(self, batch) -> float:
        """Mix one batch's statistics in; return the step size used (1 for the first).

        Raises
        ------
        InputError
            When the batch carries no weight.
        """
        W = float(batch.weight_sum)
        if not W > 0:
            raise InputError("the batch has no rows of positive weight")
        unit = _scaled(batch, 1.0 / W)
        if self.stats is None:
            gamma = 1.0
            self.stats = unit
        else:
            self.t += 1
            gamma = step_size(self.t, self.alpha, self.t0)
            # The batch's anchors are the current means (or the frame's origin): the
            # better reference for both, so the running statistics move to them.
            old = _common_anchors(self.stats, getattr(unit, "anchors", None))
            self.stats = _scaled(old, 1.0 - gamma) + _scaled(unit, gamma)
        self.weight_seen += W
        self.rows_seen += int(batch.n_rows)
        return gamma

    def for_m_step(self):
        """The running statistics scaled to the total weight seen (and rows counted)."""
        s = _scaled(self.stats, self.weight_seen)
        return dataclasses.replace(s, n_rows=self.rows_seen)

    def mean_loglik(self) -> float:
        """The running average of the batches' mean log-likelihoods (per unit weight)."""
        return float(self.stats.loglik)

