"""Bernoulli components: binary columns, independent given the component.

``log p(x | p) = sum_d [x_d log p_d + (1 - x_d) log(1 - p_d)]`` for ``x_d`` in {0, 1}.

The feature map is ``T(x) = [x, 1 - x]`` (width 2D) with ``eta = [log p, log(1 - p)]``,
``A = 0`` and ``log h = 0``, rather than the minimal ``T(x) = x``, ``eta = logit p``,
``A = -sum log(1 - p)``. Both give the same numbers in exact arithmetic, but a
probability of exactly 0 or 1 (the maximum-likelihood answer for a component that sees
only zeros or only ones in a column) clamps ``log 0`` to ``LOG_ZERO = -1e4``; in the
logit form that puts a 1e4 into both ``eta . T(x)`` and ``A``, which then cancel in the
data's dtype and leave an error of 1e4 * eps (a thousandth in float32) in every row's
log-density. In the two-sided form every product is exactly ``log p``, ``log(1 - p)`` or
``LOG_ZERO``, so nothing cancels, at the cost of a feature map twice as wide.

The M-step is ``p_k = S_k[:D] / n_k``: the weighted share of ones.
"""

from __future__ import annotations

import numpy as np

from ..exceptions import InputError
from ._base import Family, MixtureStats, empty_components, empty_issues, refuse_outside_support, safe_log

__all__ = ["Bernoulli"]


class Bernoulli(Family):
    """Independent binary (0/1) columns.

    Parameters (fitted attribute ``probabilities_``): ``probabilities`` of shape (K, D),
    the probability of a 1 in every column under every component.
    """

    name = "bernoulli"
    param_names = ("probabilities",)
    discrete = True

    def check_support(self, X, names=None):
        bad = (X != 0) & (X != 1)
        refuse_outside_support(bad, X, names, "Bernoulli data must be 0 or 1")

    def feature_width(self) -> int:
        return 2 * self.n_features

    def features(self, ops, Xb):
        """``[x, 1 - x]`` transposed: shape (2D, rows), the data's dtype."""
        return ops.concat([Xb.T, 1.0 - Xb.T], axis=0)

    def natural(self, params):
        p = params["probabilities"]
        eta = np.concatenate([safe_log(p), safe_log(1.0 - p)], axis=1)  # (K, 2D)
        return eta, np.zeros(p.shape[0])

    # Missing cells (see Family): feature rows d and D + d read column d.
    def missing_columns(self):
        D = self.n_features
        return np.concatenate([np.arange(D), np.arange(D)])

    def expected_features(self, params):
        """``E_k[x, 1 - x] = [p, 1 - p]``, shape (K, 2D)."""
        p = np.asarray(params["probabilities"], dtype=np.float64)
        return np.concatenate([p, 1.0 - p], axis=1)

    def m_step(self, stats: MixtureStats, previous):
        nk = stats.nk
        D = self.n_features
        empty = empty_components(nk, stats.weight_sum, at_start=previous is None)
        safe = np.where(nk > 0, nk, 1.0)
        # Round-off can put the share of ones a hair outside [0, 1].
        p = np.clip(stats.S[:, :D] / safe[:, None], 0.0, 1.0)
        if empty.size:
            p[empty] = previous["probabilities"][empty]
        return {"probabilities": p}, empty_issues(empty)

    def n_parameters(self, n_components):
        return n_components * self.n_features

    def sample(self, params, k, n, rng):
        """``n`` rows of 0.0 and 1.0 from component ``k``, shape (n, D)."""
        p = params["probabilities"][k]
        return (rng.random((n, self.n_features)) < p).astype(np.float64)

    def component_means(self, params):
        return params["probabilities"]

    def validate_params(self, params, n_components):
        out = super().validate_params(params, n_components)
        p = out["probabilities"]
        if p.ndim != 2 or (self.n_features is not None and p.shape[1] != self.n_features):
            raise InputError(f"probabilities must have shape (K, D); got {p.shape}")
        bad = (p < 0) | (p > 1)
        if bad.any():
            k, d = np.argwhere(bad)[0]
            raise InputError(
                f"probabilities must lie in [0, 1]; component {k}, column {d} is {p[k, d]}"
            )
        return out
