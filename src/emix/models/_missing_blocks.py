"""``GaussianMixture`` with missing values on data read in blocks (sources, Dask).

In memory (:meth:`emix.GaussianMixture._missing_problems`) the complete rows take the
ordinary pass and the rows with missing cells, sorted by pattern once per fit, take
:func:`emix.families.gaussian_missing.missing_pass`. Over a file or a dask array the
same split is made within each block, at every pass: the block's complete rows and its
rows grouped by pattern go through the in-memory problem's own E-step
(:class:`emix.models.mixture._MissingGaussianProblem`), on the block's backend (on a
Dask worker for a dask array), and the blocks' statistics, moved to the pass's common
anchors, add up (``backend.block_pass``). The statistics are the expected complete-data
ones, so the sums equal the in-memory pass up to round-off.
"""

from __future__ import annotations


import numpy as np

from .._missing import nan_mask, take
from ..families import gaussian as G
from ..families import gaussian_missing as GM

__all__ = ["BlockMissingGaussianProblem", "block_missing_problems"]


class _BlockStats:
    """One block's expected statistics under ``params`` (picklable: runs on workers).

    Parameters
    ----------
    params : GaussianMixtureParams
    anchors : ndarray of shape (K, D) or None
        The anchors every block's statistics are moved to, so that they add.
    """

    def __init__(self, params, covariance_type, frame, reg_covar, block_size, K, anchors):
        self.params = params
        self.covariance_type = covariance_type
        self.frame = frame
        self.reg_covar = reg_covar
        self.block_size = block_size
        self.K = K
        self.anchors = anchors

    def _problem(self, cls, inner, *args):
        return cls(inner, *args, self.covariance_type, self.frame, self.reg_covar,
                   self.block_size, self.K)

    def __call__(self, inner, Xb, wb, offset) -> G.GaussianStats:
        from .mixture import _GaussianProblem, _MissingGaussianProblem

        comp, order, groups = GM.split_rows(nan_mask(Xb))
        if not order.size:
            stats = self._problem(_GaussianProblem, inner, Xb, wb).e_step(self.params)
        else:

            def rows(idx):
                return None if wb is None else take(wb, idx)

            stats = self._problem(
                _MissingGaussianProblem, inner, take(Xb, comp), rows(comp), take(Xb, order),
                rows(order), groups,
            ).e_step(self.params)
        if not _same(stats.anchors, self.anchors):
            stats = stats.reanchor(self.anchors)
        return stats


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return bool(np.array_equal(a, b))


class BlockMissingGaussianProblem:
    """The EM problem of a GaussianMixture over data with missing cells read in blocks.

    The M-step is the in-memory problem's; the E-step is one ``block_pass``.
    """

    def __init__(self, base, X, w):
        self._base = base  # an in-memory _GaussianProblem: M-step, frame, settings
        self.backend = base.backend
        self.X = X
        self.w = w
        self.frame = base.frame

    @property
    def last_issues(self):
        return self._base.last_issues

    @property
    def last_allowance(self):
        return self._base.last_allowance

    def e_step(self, params) -> G.GaussianStats:
        b = self._base
        plan = G.estep_plan(params, b.frame)
        dtype = self.backend.numpy_dtype(self.X)
        anchors = G.pass_anchors(plan, dtype, None, None)
        fn = _BlockStats(params, b.covariance_type, b.frame, b.reg_covar, b.block_size, b.K,
                         anchors)
        return self.backend.block_pass(self.X, self.w, fn)

    def m_step(self, stats, params, iteration):
        return self._base.m_step(stats, params, iteration)

    def first_params(self, stats):
        return self._base.first_params(stats)


def block_missing_problems(est, backend, Xv, w, info, names):
    """:meth:`emix.GaussianMixture._missing_problems` for a source or Dask array.

    Rows with every value missing are left out (``backend.drop_rows``; the warning was
    given), the frame comes from the observed values' summary, and the start runs on
    the data with each missing cell at its column's observed mean
    (``backend.fill_missing``), as in memory.

    Returns
    -------
    problem, init_problem, X_init, w (n,) or None, frame
    """
    from .mixture import _GaussianProblem

    K = est.n_components
    if info.any_all_missing:
        Xv = backend.drop_rows(Xv, info.all_missing)
        w = None if w is None else np.asarray(w)[~info.all_missing]
        est._checked_weights(backend, w, Xv.shape[0], K)
    summary = backend.column_summary(Xv, w)
    est._screen_data(summary, names, K)
    frame = G.Frame.from_data(summary["mean"], summary["var"])
    base = _GaussianProblem(backend, Xv, w, est.covariance_type, frame, float(est.reg_covar),
                            est.block_size, K)
    problem = BlockMissingGaussianProblem(base, Xv, w)
    X_init = backend.fill_missing(Xv, frame.center)
    init_problem = _GaussianProblem(backend, X_init, w, est.covariance_type, frame,
                                    float(est.reg_covar), est.block_size, K)
    return problem, init_problem, X_init, w, frame
