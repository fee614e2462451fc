"""Poisson components: independent counts per column.

``log p(x | lambda) = sum_d [x_d log lambda_d - lambda_d - log x_d!]``: an exponential
family with ``T(x) = x``, ``eta = log lambda``, ``A = sum_d lambda_d`` and ``log h(x) =
-sum_d log x_d!``. The M-step is ``lambda_k = S_k / n_k``: the weighted mean count.
"""

from __future__ import annotations

import numpy as np

from ..exceptions import InputError
from ._base import Family, MixtureStats, empty_components, empty_issues, refuse_outside_support, safe_log

__all__ = ["Poisson"]


class Poisson(Family):
    """Independent Poisson counts in every column.

    Parameters (fitted attribute ``rates_``): ``rates`` of shape (K, D), the mean count
    of every column under every component.
    """

    name = "poisson"
    param_names = ("rates",)
    discrete = True

    def check_support(self, X, names=None):
        bad = (X < 0) | (X != np.floor(X))
        refuse_outside_support(bad, X, names, "Poisson data must be non-negative integer counts")

    def feature_width(self) -> int:
        return self.n_features

    def features(self, ops, Xb):
        return Xb.T

    def log_base(self, ops, Xb):
        return -ops.sum(ops.lgamma(Xb + 1.0), axis=1)

    def natural(self, params):
        rates = params["rates"]
        return safe_log(rates), rates.sum(axis=1)

    # Missing cells (see Family): feature row d reads column d.
    def missing_columns(self):
        return np.arange(self.n_features)

    def column_log_partition(self, params):
        """``A`` per column: the rates, shape (K, D)."""
        return np.asarray(params["rates"], dtype=np.float64)

    def expected_features(self, params):
        return np.asarray(params["rates"], dtype=np.float64)

    def log_base_cells(self, ops, Xb):
        """``-log x!`` per cell, shape (rows, D)."""
        return -ops.lgamma(Xb + 1.0)

    def m_step(self, stats: MixtureStats, previous):
        nk = stats.nk
        empty = empty_components(nk, stats.weight_sum, at_start=previous is None)
        safe = np.where(nk > 0, nk, 1.0)
        rates = stats.S / safe[:, None]
        if empty.size:
            rates[empty] = previous["rates"][empty]
        return {"rates": rates}, empty_issues(empty)

    def n_parameters(self, n_components):
        return n_components * self.n_features

    def sample(self, params, k, n, rng):
        return rng.poisson(params["rates"][k], size=(n, self.n_features)).astype(np.float64)

    def component_means(self, params):
        return params["rates"]

    def validate_params(self, params, n_components):
        out = super().validate_params(params, n_components)
        r = out["rates"]
        if r.ndim != 2 or (self.n_features is not None and r.shape[1] != self.n_features):
            raise InputError(f"rates must have shape (K, D); got {r.shape}")
        if np.any(r < 0):
            k, d = np.argwhere(r < 0)[0]
            raise InputError(f"rates must be non-negative; component {k}, column {d} is {r[k, d]}")
        return out
