"""Pass kernels of the generic mixture: how a model turns log-emissions into weights.

The backend runs a kernel over row blocks (``emix.backends._generic``); the kernel asks
the family for the feature map and its natural parameters, takes the log-emissions as
one product ``eta @ T(X)``, turns them into responsibilities with a soft-max and adds
the weighted statistics ``R @ T(X)^T`` (a second product). Neither the backend nor the
family knows the other.
"""

from __future__ import annotations

import numpy as np

from ..families._base import MixtureStats

__all__ = ["MixtureKernel", "GivenRespKernel", "LogJointKernel", "stats_from_acc"]


def _log_weights(weights: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(np.asarray(weights, dtype=np.float64))


class _Base:
    def __init__(self, family, K: int):
        self.family = family
        self.K = K
        self.M = family.feature_width()
        self.acc_shapes = {"S": (K, self.M), "nk": (K,), "loglik": (), "wsum": ()}
        self.acc_shapes.update({name: (K,) for name in family.extra_stats})

    def _accumulate(self, ops, F, R, wb, acc, U, extra):
        """Add the statistics of one block: responsibilities R (K, rows), weighted."""
        if wb is not None:
            R *= wb
            acc["wsum"] += ops.sum64(wb)
        else:
            acc["wsum"] += R.shape[1]
        # Accumulators live where the data do (float64 on the device); the backend
        # brings them to the host once per pass.
        acc["nk"] += ops.sum64(R, axis=1)
        for name, fn in extra.items():
            acc[name] += fn(R)
        RU = R if U is None else ops.multiply(R, U)
        acc["S"] += ops.cast(ops.weighted_stats(RU, F), ops.f64)


class MixtureKernel(_Base):
    """E-step of a mixture with current parameters: log-likelihood and statistics.

    Parameters
    ----------
    family : bound Family
    params : dict, the family's parameters
    weights : ndarray of shape (K,)
    """

    def __init__(self, family, params: dict, weights: np.ndarray):
        super().__init__(family, len(weights))
        eta, A = family.natural(params)
        self.eta = np.ascontiguousarray(eta, dtype=np.float64)  # (K, M)
        self.const = _log_weights(weights) - A  # (K,)
        self.dead = np.flatnonzero(np.isneginf(self.const))
        self.params = params

    def setup(self, ops):
        return {
            "eta": ops.asarray(self.eta),
            "const": ops.asarray(self.const[:, None]),
            "transform": self.family.transform_state(ops, self.params),
        }

    def log_joint(self, ops, st, Xb):
        """``(F, L, U, extra)``: features (M, rows), log-joint (K, rows) and weights."""
        F = self.family.features(ops, Xb)
        L = ops.matmul(st["eta"], F)
        U, extra = self.family.transform(ops, st["transform"], L, Xb)
        L += st["const"]
        return F, L, U, extra

    def block(self, ops, st, Xb, wb, acc, start, stop):
        F, L, U, extra = self.log_joint(ops, st, Xb)
        lse = ops.softmax_cols_(L, self.dead)  # L now holds responsibilities
        h = self.family.log_base(ops, Xb)
        if h is not None:
            lse = lse + h
        acc["loglik"] += ops.sum64(lse) if wb is None else ops.dot64(wb, lse)
        self._accumulate(ops, F, L, wb, acc, U, extra)


class GivenRespKernel(_Base):
    """Statistics from responsibilities given by the caller (initialisation).

    Parameters
    ----------
    family : bound Family
    resp : callable ``(start, stop) -> ndarray of shape (stop - start, K)``
    K : int
    """

    def __init__(self, family, resp, K: int, params=None):
        super().__init__(family, K)
        self.resp = resp
        self.params = params

    def setup(self, ops):
        # Latent-scale families weight initial statistics by their own start values.
        return {"transform": None}

    def block(self, ops, st, Xb, wb, acc, start, stop):
        F = self.family.features(ops, Xb)
        # A copy: the caller's array must not be weighted in place.
        R = ops.asarray(np.array(np.asarray(self.resp(start, stop)).T, dtype=np.float64, order="C"))
        extra = self.family.initial_extra(ops, R) if self.family.extra_stats else {}
        self._accumulate(ops, F, R, wb, acc, None, extra)


class LogJointKernel:
    """``log w_k + log p(x | k)`` of every row (for predict, score_samples).

    Returns rows of shape (rows, K) in the data's dtype.
    """

    def __init__(self, family, params: dict, weights: np.ndarray):
        self.inner = MixtureKernel(family, params, weights)
        self.n_out = self.inner.K

    def setup(self, ops):
        return self.inner.setup(ops)

    def rows(self, ops, st, Xb):
        _, L, _, _ = self.inner.log_joint(ops, st, Xb)
        h = self.inner.family.log_base(ops, Xb)
        if h is not None:
            L += h
        return L.T


def stats_from_acc(acc: dict, n_rows: int, family) -> MixtureStats:
    """The accumulators of a pass as :class:`MixtureStats`."""
    return MixtureStats(
        S=acc["S"],
        nk=acc["nk"],
        loglik=float(acc["loglik"]),
        weight_sum=float(acc["wsum"]),
        n_rows=int(n_rows),
        extra={name: acc[name] for name in family.extra_stats},
    )
