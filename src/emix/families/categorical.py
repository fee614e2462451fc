"""Categorical components: one or more columns of category codes, independent given
the component.

Column ``j`` holds integer codes ``0 .. C_j - 1``. Under component ``k``,
``log p(x | k) = sum_j log p_kj[x_j]``: an exponential family whose feature map is the
one-hot code of every column, stacked (``T(x)`` of width ``M = sum_j C_j``), with
``eta = log p`` (``log 0`` clamped to ``LOG_ZERO``), ``A = 0`` and ``log h = 0``.

Layout of the parameters: one array ``probabilities`` of shape (K, sum_j C_j), the
columns' probability vectors side by side (column ``j`` owns entries
``offsets[j] : offsets[j] + C_j``, ``offsets = cumsum([0] + C)``). Keeping one array with
the component axis first makes renumbering, saving and aligning components the same as
for every other family; :meth:`Categorical.split` gives the per-column view.

The M-step is ``p_kj = S_kj / sum(S_kj)`` per column block: the weighted category
shares (each block's sum is ``n_k``; dividing by the block's own sum makes every vector
sum to 1 to round-off).
"""

from __future__ import annotations

import numbers

import numpy as np

from ..exceptions import InputError
from ._base import Family, MixtureStats, empty_components, empty_issues, refuse_outside_support, safe_log

__all__ = ["Categorical"]


class Categorical(Family):
    """Independent categorical columns of integer codes.

    Parameters
    ----------
    n_categories : int or sequence of int, optional
        Categories per column: one number for every column, or one per column. None
        (default): each column's largest code plus one, read from the data at ``bind``.

    Notes
    -----
    Parameters (fitted attribute ``probabilities_``): ``probabilities`` of shape
    (K, sum_j C_j), column ``j``'s category probabilities in entries
    ``offsets[j] : offsets[j] + C_j`` (see the module doc and :meth:`split`).
    """

    name = "categorical"
    param_names = ("probabilities",)
    discrete = True

    def __init__(self, n_categories=None):
        super().__init__()
        if n_categories is not None:
            if _is_int(n_categories):
                values = [n_categories]
            elif isinstance(n_categories, (list, tuple, np.ndarray)):
                values = list(n_categories)
            else:
                values = []
            if not values or not all(_is_int(c) and int(c) >= 1 for c in values):
                raise InputError(
                    "n_categories must be a positive integer or one positive integer per "
                    f"column; got {n_categories!r}"
                )
            n_categories = int(n_categories) if _is_int(n_categories) else [int(c) for c in values]
        self.n_categories = n_categories
        self.sizes = None  # (C_1, ..., C_D) once bound

    def get_config(self) -> dict:
        # A bound family saves the sizes it was fitted with, so a loaded model reads
        # new data with the same layout whatever codes that data happens to contain.
        if self.sizes is not None:
            return {"n_categories": [int(c) for c in self.sizes]}
        return {"n_categories": self.n_categories}

    def bind(self, summary, n_features):
        new = super().bind(summary, n_features)
        D = new.n_features
        if self.n_categories is None:
            top = np.asarray(summary["max"], dtype=np.float64)
            sizes = [max(int(t), 0) + 1 for t in top]
        elif isinstance(self.n_categories, int):
            sizes = [self.n_categories] * D
        else:
            sizes = list(self.n_categories)
            if len(sizes) != D:
                raise InputError(
                    f"n_categories gives {len(sizes)} column(s) but the data have {D}"
                )
        new.sizes = tuple(int(c) for c in sizes)
        return new

    @property
    def offsets(self) -> np.ndarray:
        """Start of every column's block in the parameter array, shape (D + 1,)."""
        return np.concatenate([[0], np.cumsum(self.sizes)]).astype(int)

    def split(self, probabilities) -> list:
        """Per-column views of a (K, sum_j C_j) array: a list of D arrays (K, C_j)."""
        o = self.offsets
        return [np.asarray(probabilities)[:, o[j] : o[j + 1]] for j in range(len(self.sizes))]

    def check_support(self, X, names=None):
        sizes = self.sizes
        if sizes is None and self.n_categories is not None:
            # Before bind, the sizes the user gave (when they fit these columns).
            sizes = self.n_categories
            if isinstance(sizes, int):
                sizes = [sizes] * X.shape[1]
            elif len(sizes) != X.shape[1]:
                sizes = None
        bad = (X < 0) | (X != np.floor(X))
        if sizes is not None:
            bad |= X >= np.asarray(sizes, dtype=np.float64)[None, :]
        limit = " below the column's number of categories (n_categories)" if sizes is not None else ""
        refuse_outside_support(bad, X, names, f"categorical data must be non-negative integer codes{limit}")

    def feature_width(self) -> int:
        return int(sum(self.sizes))

    def features(self, ops, Xb):
        """One-hot codes of every column, stacked: shape (sum_j C_j, rows)."""
        blocks = []
        for j, c in enumerate(self.sizes):
            codes = ops.arange(c)[:, None]  # (C_j, 1)
            blocks.append(ops.cast(ops.equal(codes, Xb[:, j][None, :])))  # (C_j, rows)
        return blocks[0] if len(blocks) == 1 else ops.concat(blocks, axis=0)

    def natural(self, params):
        p = params["probabilities"]
        return safe_log(p), np.zeros(p.shape[0])

    # Missing cells (see Family): a missing code makes every one-hot feature of its
    # column missing; their expectations are the column's probabilities.
    def missing_columns(self):
        return np.repeat(np.arange(len(self.sizes)), self.sizes)

    def expected_features(self, params):
        return np.asarray(params["probabilities"], dtype=np.float64)

    def m_step(self, stats: MixtureStats, previous):
        empty = empty_components(stats.nk, stats.weight_sum, at_start=previous is None)
        p = np.empty_like(stats.S)
        o = self.offsets
        for j in range(len(self.sizes)):
            block = stats.S[:, o[j] : o[j + 1]]
            tot = block.sum(axis=1)
            p[:, o[j] : o[j + 1]] = block / np.where(tot > 0, tot, 1.0)[:, None]
        if empty.size:
            p[empty] = previous["probabilities"][empty]
        return {"probabilities": p}, empty_issues(empty)

    def n_parameters(self, n_components):
        return n_components * int(sum(c - 1 for c in self.sizes))

    def sample(self, params, k, n, rng):
        """``n`` rows of codes (as float64) from component ``k``, shape (n, D)."""
        cols = []
        for pj in self.split(params["probabilities"]):
            q = pj[k] / pj[k].sum()
            cols.append(rng.choice(len(q), size=n, p=q))
        return np.stack(cols, axis=1).astype(np.float64)

    def component_means(self, params):
        """The mean code of every column, shape (K, D)."""
        return np.stack(
            [pj @ np.arange(pj.shape[1], dtype=np.float64) for pj in self.split(params["probabilities"])],
            axis=1,
        )

    def validate_params(self, params, n_components):
        out = super().validate_params(params, n_components)
        p = out["probabilities"]
        M = None if self.sizes is None else self.feature_width()
        if p.ndim != 2 or (M is not None and p.shape[1] != M):
            want = "(K, sum of n_categories)" if M is None else f"(K, {M})"
            raise InputError(f"probabilities must have shape {want}; got {p.shape}")
        if np.any(p < 0):
            k, m = np.argwhere(p < 0)[0]
            raise InputError(f"probabilities must be non-negative; component {k} entry {m} is {p[k, m]}")
        if self.sizes is not None:
            for j, pj in enumerate(self.split(p)):
                s = pj.sum(axis=1)
                off = np.flatnonzero(np.abs(s - 1.0) > 1e-6)
                if off.size:
                    k = int(off[0])
                    raise InputError(
                        f"the probabilities of column {j} must sum to 1 in every component; "
                        f"component {k} sums to {s[k]!r}"
                    )
        return out


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))
