"""Pass kernels of the generic mixture: how a model turns log-emissions into weights.

The backend runs a kernel over row blocks (``emix.backends._generic``); the kernel asks
the family for the feature map and its natural parameters, takes the log-emissions as
one product ``eta @ T(X)``, turns them into responsibilities with a soft-max and adds
the weighted statistics ``R @ T(X)^T`` (a second product). Neither the backend nor the
family knows the other.

Missing values (NaN). A block with any NaN goes through the family's missing-value
protocol (``Family.missing_state``, ``missing_log_joint``, ``missing_stats``; see
:mod:`emix.families._base`): the log-emissions are those of each row's observed cells
and the statistics are expected complete-data features, so the M-step is unchanged.
Blocks without NaN take the complete-data path, unchanged bit for bit. A kernel built
with ``missing=False`` (the model knows X has no NaN) skips the per-block check.
"""

from __future__ import annotations

import numpy as np

from ..families._base import MixtureStats

__all__ = ["MixtureKernel", "GivenRespKernel", "LogJointKernel", "stats_from_acc"]


def _log_weights(weights: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(np.asarray(weights, dtype=np.float64))


def missing_mask(ops, Xb):
    """Where a block is observed, (rows, D) bool, or None when it has no NaN.

    inf is refused before any pass, so every non-finite cell is a NaN.
    """
    O = ops.isfinite(Xb)
    if bool(O.all()):
        return None
    return O


class _Base:
    def __init__(self, family, K: int, missing: bool = True):
        self.family = family
        self.K = K
        self.M = family.feature_width()
        self.missing = bool(missing)
        self.acc_shapes = {"S": (K, self.M), "nk": (K,), "loglik": (), "wsum": ()}
        self.acc_shapes.update({name: (K,) for name in family.extra_stats})

    def _mask(self, ops, Xb):
        return missing_mask(ops, Xb) if self.missing else None

    def _weigh(self, ops, R, wb, acc):
        """Multiply R (K, rows) by the sample weights in place; add the counts."""
        if wb is not None:
            R *= wb
            acc["wsum"] += ops.sum64(wb)
        else:
            acc["wsum"] += R.shape[1]
        acc["nk"] += ops.sum64(R, axis=1)

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

    def __init__(self, family, params: dict, weights: np.ndarray, missing: bool = True):
        super().__init__(family, len(weights), missing)
        eta, A = family.natural(params)
        self.eta = np.ascontiguousarray(eta, dtype=np.float64)  # (K, M)
        self.log_w = _log_weights(weights)  # (K,)
        self.const = self.log_w - A  # (K,)
        self.dead = np.flatnonzero(np.isneginf(self.const))
        self.params = params

    def setup(self, ops):
        return {
            "eta": ops.asarray(self.eta),
            "const": ops.asarray(self.const[:, None]),
            "transform": self.family.transform_state(ops, self.params),
        }

    def missing_log_joint(self, ops, st, Xb, O):
        """``(L, ctx)``: ``log w_k + log p(x_obs | k)`` (K, rows) of a block with NaN
        (``log h`` of the observed cells included) and the family's context."""
        if "missing" not in st:
            # Built on the first block with NaN only: a family without missing-value
            # support raises here, and complete data never pay for it.
            st["missing"] = self.family.missing_state(ops, self.params)
            st["log_w"] = ops.asarray(self.log_w[:, None])
        L, ctx = self.family.missing_log_joint(ops, st["missing"], Xb, O)
        L += st["log_w"]
        return L, ctx

    def missing_context(self, ops, st, Xb, O):
        """The family's context for :meth:`missing_stats` of a block with NaN, without
        its log-densities (see ``Family.missing_context``)."""
        if "missing" not in st:
            st["missing"] = self.family.missing_state(ops, self.params)
            st["log_w"] = ops.asarray(self.log_w[:, None])
        return self.family.missing_context(ops, st["missing"], Xb, O)

    def _missing_block(self, ops, st, Xb, O, wb, acc):
        L, ctx = self.missing_log_joint(ops, st, Xb, O)
        lse = ops.softmax_cols_(L, self.dead)  # L now holds responsibilities
        acc["loglik"] += ops.sum64(lse) if wb is None else ops.dot64(wb, lse)
        self._weigh(ops, L, wb, acc)
        S, extra = self.family.missing_stats(ops, st["missing"], ctx, L)
        acc["S"] += S
        for name, value in extra.items():
            acc[name] += value

    def log_joint(self, ops, st, Xb):
        """``(F, L, U, extra)``: features (M, rows), log-joint (K, rows) and weights."""
        F = self.family.features(ops, Xb)
        L = ops.matmul(st["eta"], F)
        U, extra = self.family.transform(ops, st["transform"], L, Xb)
        L += st["const"]
        return F, L, U, extra

    def block(self, ops, st, Xb, wb, acc, start, stop):
        O = self._mask(ops, Xb)
        if O is not None:
            return self._missing_block(ops, st, Xb, O, wb, acc)
        F, L, U, extra = self.log_joint(ops, st, Xb)
        lse = ops.softmax_cols_(L, self.dead)  # L now holds responsibilities
        h = self.family.log_base(ops, Xb)
        if h is not None:
            lse = lse + h
        acc["loglik"] += ops.sum64(lse) if wb is None else ops.dot64(wb, lse)
        self._accumulate(ops, F, L, wb, acc, U, extra)


class GivenRespKernel(_Base):
    """Statistics from responsibilities given by the caller (initialisation).

    With missing cells there are no parameters yet to take expectations under: a
    block with NaN takes the family's ``start_features``, the features of its rows
    with each missing cell at its column's observed mean (see
    :meth:`emix.families._base.Family.start_features`).

    Parameters
    ----------
    family : bound Family
    resp : callable ``(start, stop) -> ndarray of shape (stop - start, K)``
    K : int
    """

    def __init__(self, family, resp, K: int, params=None, missing: bool = True):
        super().__init__(family, K, missing)
        self.resp = resp
        self.params = params

    def setup(self, ops):
        # Latent-scale families weight initial statistics by their own start values.
        return {"transform": None}

    def block(self, ops, st, Xb, wb, acc, start, stop):
        O = self._mask(ops, Xb)
        if O is None:
            F = self.family.features(ops, Xb)
        else:
            F = self.family.start_features(ops, Xb, O)
        # A copy: the caller's array must not be weighted in place.
        R = ops.asarray(np.array(np.asarray(self.resp(start, stop)).T, dtype=np.float64, order="C"))
        extra = self.family.initial_extra(ops, R) if self.family.extra_stats else {}
        self._accumulate(ops, F, R, wb, acc, None, extra)


class LogJointKernel:
    """``log w_k + log p(x | k)`` of every row (for predict, score_samples).

    Returns rows of shape (rows, K) in the data's dtype.
    """

    def __init__(self, family, params: dict, weights: np.ndarray, missing: bool = True):
        self.inner = MixtureKernel(family, params, weights, missing)
        self.n_out = self.inner.K

    def setup(self, ops):
        return self.inner.setup(ops)

    def rows(self, ops, st, Xb):
        O = self.inner._mask(ops, Xb)
        if O is not None:
            # A row with no observed cell gets log w_k: the prior.
            L, _ = self.inner.missing_log_joint(ops, st, Xb, O)
            return L.T
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

