"""Exponential components: non-negative durations, independent columns.

``log p(x | lambda) = sum_d [log lambda_d - lambda_d x_d]`` for ``x_d >= 0``: an
exponential family with ``T(x) = x``, ``eta = -lambda``, ``A = -sum_d log lambda_d`` and
``log h = 0``. The M-step is ``lambda_k = n_k / S_k``: one over the weighted mean.

Zero is in the support (the density ``lambda`` is finite there), so durations rounded
down to 0 are accepted. A component whose weighted mean in some column is 0 (it sees
only zeros there) has no finite maximum-likelihood rate; its mean is held at
``COLLAPSE_RATIO`` times the column's mean in the data and the M-step reports it as
collapsed, so that restarts and model selection avoid it.
"""

from __future__ import annotations

import numpy as np

from ..exceptions import InputError
from ._base import Family, MixtureStats, empty_components, empty_issues, refuse_outside_support

__all__ = ["Exponential", "COLLAPSE_RATIO"]

# A component whose mean is this small a fraction of its column's mean is a spike at 0,
# not a duration scale the data support.
COLLAPSE_RATIO = 1e-8


class Exponential(Family):
    """Independent exponential durations in every column.

    Parameters (fitted attribute ``rates_``): ``rates`` of shape (K, D), the rate (one
    over the mean) of every column under every component.
    """

    name = "exponential"
    param_names = ("rates",)

    def __init__(self):
        super().__init__()
        self.data_mean = None  # (D,) column means, fixed at bind

    def bind(self, summary, n_features):
        new = super().bind(summary, n_features)
        new.data_mean = np.asarray(summary["mean"], dtype=np.float64).reshape(-1)
        return new

    def check_support(self, X, names=None):
        bad = X < 0
        refuse_outside_support(bad, X, names, "exponential data must be non-negative")

    def feature_width(self) -> int:
        return self.n_features

    def features(self, ops, Xb):
        return Xb.T

    def natural(self, params):
        rates = params["rates"]
        with np.errstate(divide="ignore"):
            return -rates, -np.log(rates).sum(axis=1)

    # Missing cells (see Family): feature row d reads column d.
    def missing_columns(self):
        return np.arange(self.n_features)

    def column_log_partition(self, params):
        """``A`` per column: ``-log lambda``, shape (K, D)."""
        with np.errstate(divide="ignore"):
            return -np.log(np.asarray(params["rates"], dtype=np.float64))

    def expected_features(self, params):
        """The means ``1 / lambda``, shape (K, D)."""
        return 1.0 / np.asarray(params["rates"], dtype=np.float64)

    def _floor(self) -> np.ndarray:
        """Smallest component mean per column that is not a collapse, shape (D,)."""
        scale = np.ones(self.n_features) if self.data_mean is None else self.data_mean
        # A column of zeros has no scale of its own; 1 keeps the rate finite.
        return COLLAPSE_RATIO * np.where(scale > 0, scale, 1.0)

    def m_step(self, stats: MixtureStats, previous):
        nk = stats.nk
        empty = empty_components(nk, stats.weight_sum, at_start=previous is None)
        safe = np.where(nk > 0, nk, 1.0)
        mean = stats.S / safe[:, None]
        floor = self._floor()
        low = mean < floor[None, :]
        low[empty] = False
        issues = empty_issues(empty)
        for k in np.flatnonzero(low.any(axis=1)):
            d = int(np.flatnonzero(low[k])[0])
            issues.append(
                f"component {int(k)} collapsed onto 0 in column {d}: its mean there is "
                f"{mean[k, d]:.3g}, below {COLLAPSE_RATIO:g} of the column's mean; its rate is "
                "capped. Use fewer components"
            )
        rates = 1.0 / np.maximum(mean, floor[None, :])
        if empty.size:
            rates[empty] = previous["rates"][empty]
        return {"rates": rates}, issues

    def n_parameters(self, n_components):
        return n_components * self.n_features

    def sample(self, params, k, n, rng):
        """``n`` durations from component ``k``, shape (n, D)."""
        return rng.exponential(1.0 / params["rates"][k], size=(n, self.n_features))

    def component_means(self, params):
        return 1.0 / params["rates"]

    def validate_params(self, params, n_components):
        out = super().validate_params(params, n_components)
        r = out["rates"]
        if r.ndim != 2 or (self.n_features is not None and r.shape[1] != self.n_features):
            raise InputError(f"rates must have shape (K, D); got {r.shape}")
        if np.any(r <= 0):
            k, d = np.argwhere(r <= 0)[0]
            raise InputError(f"rates must be positive; component {k}, column {d} is {r[k, d]}")
        return out
