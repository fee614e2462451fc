"""What every mixture estimator shares: fitting through the engine, the scikit-learn
prediction methods, degeneracy warnings and information criteria.

A subclass supplies ``_fit(X, sample_weight)``, ``_log_joint(X, method)`` (``log w_k +
log p(x | k)``, shape (N, K)) and ``_n_parameters()``; the rest is here, once.
"""

from __future__ import annotations

import copy
import math
import warnings

import numpy as np

from .._missing import allow_nan, check_missing, check_missing_mode, nan_mask, warn_all_missing
from .._validation import check_float, check_int, check_sample_weight
from ..backends import resolve_backend
from ..data import is_source_like
from ..data._dask import is_dask, predict_dask
from ..data._stream import n_observed_rows_of, n_rows_of, predict_stream
from ..em.engine import run_restarts
from ..em.stepwise import DEFAULT_ALPHA, DEFAULT_T0, StepwiseState, check_schedule, step_size
from ..em.monitor import ConvergenceMonitor
from ..exceptions import (
    ConvergenceWarning,
    DegenerateComponentWarning,
    InputError,
    sklearn_compatible,
)
from ._base import EstimatorBase

__all__ = ["MixtureEstimator", "logsumexp_rows", "LABEL_ORDERS"]

LABEL_ORDERS = (None, "mean", "weight")
# Beyond this many, one summary warning lists the rest: a fit with 400 collapsed
# components should not print 800 warnings.
MAX_ISSUE_WARNINGS = 5


def logsumexp_rows(L: np.ndarray) -> np.ndarray:
    """``log sum_k exp L[n, k]`` per row, shape (N,); -inf for a row of -inf."""
    m = L.max(axis=1)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return np.log(np.exp(L - m[:, None]).sum(axis=1)) + m


class MixtureEstimator(EstimatorBase):
    """Shared behaviour of :class:`emix.GaussianMixture` and :class:`emix.MixtureModel`."""

    # ------------------------------------------------------------------ checks
    def _check_common_parameters(
        self, init_params: tuple, *, count: str = "n_components", label_orders=LABEL_ORDERS
    ) -> None:
        """The parameters every mixture estimator has, checked with named errors.

        ``count`` names the number of components (an HMM's ``n_states``) and
        ``label_orders`` the orders the estimator offers.
        """
        check_int(getattr(self, count), count, low=1)
        check_float(self.tol, "tol", low=0.0)
        check_int(self.max_iter, "max_iter", low=0)
        check_int(self.n_init, "n_init", low=1)
        if self.init_params not in init_params:
            raise InputError(f"init_params must be one of {init_params}; got {self.init_params!r}")
        check_int(self.verbose, "verbose", low=0)
        if self.block_size is not None:
            check_int(self.block_size, "block_size", low=1)
        if self.callback is not None and not callable(self.callback):
            raise InputError("callback must be callable (iteration, log_likelihood, params)")
        if self.label_order not in label_orders:
            raise InputError(f"label_order must be one of {label_orders}; got {self.label_order!r}")
        if hasattr(self, "missing"):
            check_missing_mode(self.missing)

    def _validate_missing(self, backend, X, *, name: str = "X", fitting: bool = True,
                          stacklevel: int = 5, **kwargs):
        """``backend.validate`` with the estimator's ``missing`` rule.

        With ``missing="em"`` on an in-memory backend (NumPy, torch) NaN passes the
        checks and :func:`emix._missing.check_missing` reports where it is (when
        fitting, rows with every value missing are warned about once; the caller drops
        them); a source or Dask array is read with NaN as a missing value and its
        backend's ``check_missing`` reports the same. With ``"error"`` NaN stays an error.

        Returns
        -------
        X : the validated array (N, D), NaN where missing
        names : column names or None
        info : emix._missing.MissingInfo or None (None: NaN was refused)
        """
        em = getattr(self, "missing", "error") == "em"
        with allow_nan(em):
            Xv, names = backend.validate(X, name=name, **kwargs)
        if not em:
            return Xv, names, None
        if hasattr(backend, "check_missing"):
            # Sources and Dask: found in a pass over the blocks (emix.data._stream).
            info = backend.check_missing(Xv, name=name, column_names=names, fitting=fitting,
                                         stacklevel=stacklevel)
            return Xv, names, info
        # The warning points at the caller of fit (check_missing, this, _fit, fit).
        info = check_missing(Xv, "em", name=name, column_names=names, fitting=fitting,
                             stacklevel=stacklevel)
        return Xv, names, info

    @staticmethod
    def _checked_weights(backend, sample_weight, N: int, K: int):
        """Sample weights (N,) float64 or None, with at least K rows of positive weight."""
        w = check_sample_weight(None if sample_weight is None else backend.to_numpy(sample_weight), N)
        n_pos = N if w is None else int(np.count_nonzero(w))
        if n_pos < K:
            raise InputError(
                f"X has {n_pos} sample(s) (rows{' with positive weight' if w is not None else ''}) "
                f"but n_components={K}: need at least as many rows as components"
            )
        return w

    # ------------------------------------------------------------------ fitting
    def fit(
        self, X, y=None, sample_weight=None, *, algorithm="em", batch_rows=None, n_epochs=1,
        step_alpha=DEFAULT_ALPHA, step_offset=DEFAULT_T0,
    ):
        """Fit the mixture by EM (or by mini-batch EM over the data's blocks).

        Parameters
        ----------
        X : array-like of shape (N, D) or (N,), DataFrame, torch tensor, path or Source
            1-D input is one column. float32 data are fitted in float32. A path or
            :class:`emix.data.Source` is read in blocks.
        y : ignored
        sample_weight : array-like of shape (N,), optional
            Non-negative weights; an integer weight equals repeating the row.
        algorithm : {'em', 'minibatch'}, default='em'
            ``'em'``: full-batch EM (every iteration reads all the data).
            ``'minibatch'``: stepwise EM (:mod:`emix.em.stepwise`): the data are read
            ``n_epochs`` times in blocks of ``batch_rows`` rows, in their order, with
            one :meth:`partial_fit` per block. Blocks should be representative of the
            whole (shuffle data sorted by cluster first). ``tol``, ``max_iter`` and
            ``n_init`` do not apply.
        batch_rows : int, optional
            Rows per mini-batch (default: the source's block size; a Source keeps its own).
        n_epochs : int, default=1
            Passes over the data for ``'minibatch'``.
        step_alpha, step_offset : float, default=0.6 and 2
            The step sizes ``(t + step_offset) ** -step_alpha`` of ``'minibatch'``;
            ``step_alpha`` in (0.5, 1].

        Returns
        -------
        self
        """
        if algorithm == "em":
            self._fit(X, sample_weight)
            # A later partial_fit starts a new stream rather than mixing into an old one.
            self.__dict__.pop("_stepwise", None)
            return self
        if algorithm != "minibatch":
            raise InputError(f"algorithm must be 'em' or 'minibatch'; got {algorithm!r}")
        self._fit_minibatch(X, sample_weight, batch_rows, n_epochs, step_alpha, step_offset)
        return self

    def partial_fit(self, X, y=None, sample_weight=None, *, step_alpha=None, step_offset=None):
        """One step of mini-batch (stepwise) EM on the rows ``X``.

        The first call starts from ``init_params`` on this batch (k-means by default)
        and fixes the columns (and a Gaussian's frame); every call then runs an E-step
        on the batch under the current parameters, mixes its statistics per unit weight
        into the running ones with step ``(t + step_offset) ** -step_alpha`` and runs
        the M-step on the result (Cappé & Moulines 2009; see :mod:`emix.em.stepwise`).
        The estimator can predict after every call. A failed call changes nothing.

        Parameters
        ----------
        X : array-like of shape (n, D) or (n,)
        y : ignored
        sample_weight : array-like of shape (n,), optional
        step_alpha : float in (0.5, 1], optional
            Default 0.6 on the first call, then the value in use.
        step_offset : float >= 0, optional
            Default 2 on the first call, then the value in use.

        Returns
        -------
        self
        """
        self._partial_fit(X, sample_weight, step_alpha, step_offset, warn=True)
        return self

    def _partial_fit(self, X, sample_weight, step_alpha, step_offset, *, warn: bool):
        self._check_parameters()
        state = getattr(self, "_stepwise", None)
        first = state is None
        if first:
            state = StepwiseState(
                DEFAULT_ALPHA if step_alpha is None else step_alpha,
                DEFAULT_T0 if step_offset is None else step_offset,
            )
        else:
            state = copy.copy(state)  # committed only when the whole step succeeds
            if step_alpha is not None or step_offset is not None:
                state.alpha, state.t0 = check_schedule(
                    state.alpha if step_alpha is None else step_alpha,
                    state.t0 if step_offset is None else step_offset,
                )
        problem, params, info = self._stepwise_batch(X, sample_weight, first)
        state.update(problem.e_step(params))
        new = problem.m_step(state.for_m_step(), params, state.t + 1)
        self._stepwise_store(new, list(problem.last_issues), info, warn=warn)
        self._stepwise = state
        history = [] if first else list(getattr(self, "lower_bounds_", []))
        history.append(state.mean_loglik())
        self.lower_bounds_ = np.asarray(history)
        self.lower_bound_ = float(history[-1])
        # Stepwise EM has no convergence test: it follows the stream.
        self.converged_ = False
        self.n_iter_ = state.t + 1
        self.best_init_ = 0
        self.n_batches_seen_ = state.t + 1
        self.step_size_ = float(step_size(state.t, state.alpha, state.t0)) if state.t else 1.0

    def _fit_minibatch(self, X, sample_weight, batch_rows, n_epochs, step_alpha, step_offset):
        from ..data import source
        from ..data._stream import _NamedBlock

        check_int(n_epochs, "n_epochs", low=1)
        if batch_rows is not None:
            check_int(batch_rows, "batch_rows", low=1)
        check_schedule(step_alpha, step_offset)
        src = source(X, block_rows=batch_rows) if batch_rows is not None or not is_source_like(X) else source(X)
        sw = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64).reshape(-1)
        names = src.column_names
        before = dict(self.__dict__)
        try:
            if not (self.warm_start and getattr(self, "_stepwise", None) is not None):
                self.__dict__.pop("_stepwise", None)
            em = getattr(self, "missing", "error") == "em"
            dropped: list = []
            for epoch in range(n_epochs):
                offset = 0
                # NaN reaches _partial_fit, which applies the estimator's missing rule;
                # rows with every value missing are dropped here, to be counted once
                # (numbered in the whole data) rather than per batch.
                for block in src.blocks(allow_nan=em):
                    stop = offset + block.shape[0]
                    wb = None
                    if sw is not None:
                        if stop > sw.shape[0]:
                            raise InputError(
                                f"sample_weight has {sw.shape[0]} entries but {src.label} has "
                                f"more rows"
                            )
                        wb = sw[offset:stop]
                    if em and block.ndim == 2 and block.shape[1]:
                        empty = np.isnan(block).all(axis=1)
                        if empty.any():
                            if epoch == 0:
                                dropped.append(offset + np.flatnonzero(empty))
                            block = block[~empty]
                            wb = None if wb is None else wb[~empty]
                            if block.shape[0] == 0:
                                offset = stop
                                continue
                    Xb = _NamedBlock(block, names) if names is not None else block
                    self._partial_fit(Xb, wb, step_alpha, step_offset, warn=False)
                    offset = stop
                if sw is not None and offset != sw.shape[0]:
                    raise InputError(
                        f"sample_weight has {sw.shape[0]} entries but {src.label} has {offset} rows"
                    )
            if getattr(self, "_stepwise", None) is None:
                raise InputError(f"every value of {src.label} is missing (NaN): there is "
                                 "nothing to fit")
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(before)
            raise
        if dropped:
            # The caller of fit (warn_all_missing, this, fit).
            warn_all_missing(np.concatenate(dropped), stacklevel=3)
        self._warn_issues(*self._stepwise_issue_report())

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit, then return the most likely component of every row, shape (N,)."""
        self._fit(X, sample_weight)
        return self.predict(X)

    def _run_em(self, problem, initial, *, n_init: int, dtype, warm: bool, exact: bool):
        """Run EM from ``n_init`` starts through the engine and warn if it did not converge.

        Parameters
        ----------
        problem : an EM problem (``e_step``, ``m_step``)
        initial : callable ``i -> params``
        dtype : the data's dtype (sets the round-off a likelihood drop may have)
        warm : whether this fit continues the previous one (scikit-learn's warm start:
            its first change is measured from where that fit ended)
        exact : whether every M-step is an exact maximiser (no regularisation), so a
            warm start's first step cannot legitimately lower the likelihood

        Returns
        -------
        EMResult
        """
        # Round-off in the mean log-likelihood: float32 sums are float64, but each row's
        # log-density carries the float32 E-step's error.
        drop_rtol = 1e-9 if np.dtype(dtype) == np.float64 else 1e-4

        def make_monitor(i):
            return ConvergenceMonitor(
                self.tol,
                self.max_iter,
                drop_rtol=drop_rtol,
                verbose=self.verbose,
                verbose_interval=getattr(self, "verbose_interval", 10),
                label=f"init {i}" if n_init > 1 else "",
                previous=getattr(self, "lower_bound_", None) if warm else None,
                # How far the previous fit's last regularised M-step may have lowered
                # the likelihood is not kept.
                previous_allowance=0.0 if exact else math.inf,
            )

        result = run_restarts(
            problem,
            initial,
            n_init=n_init,
            tol=self.tol,
            max_iter=self.max_iter,
            callback=self.callback,
            make_monitor=make_monitor,
        )
        if not result.converged and not result.stopped_by_callback and self.max_iter > 0:
            warnings.warn(
                f"EM did not converge in max_iter={self.max_iter} iterations (best of "
                f"{n_init} init(s); last change {result.last_change:.3g} >= tol={self.tol}). "
                "Increase max_iter or tol, try other init_params, or check for degenerate "
                "data.",
                sklearn_compatible(ConvergenceWarning, "ConvergenceWarning"),
                stacklevel=4,
            )
        return result

    def _record_run(self, result) -> None:
        """The fitted attributes every mixture reports about its best EM run."""
        self.converged_ = bool(result.converged)
        self.n_iter_ = int(result.n_iter)
        self.lower_bound_ = float(result.lower_bound)
        self.lower_bounds_ = result.history
        self.best_init_ = int(result.init)

    def _warn_issues(self, messages: list, components: list) -> None:
        """One warning per degenerate component (at most five, then a summary)."""
        self.degenerate_ = bool(messages)
        self.degenerate_components_ = np.unique(np.asarray(components, dtype=np.intp))
        for msg in messages[:MAX_ISSUE_WARNINGS]:
            warnings.warn(msg, DegenerateComponentWarning, stacklevel=4)
        if len(messages) > MAX_ISSUE_WARNINGS:
            warnings.warn(
                f"... and {len(messages) - MAX_ISSUE_WARNINGS} more problems with components "
                f"{self.degenerate_components_.tolist()}; see degenerate_components_ and use "
                "fewer components",
                DegenerateComponentWarning,
                stacklevel=4,
            )

    # ------------------------------------------------------------------ prediction
    # X may be a path or an emix.data Source: it is then read block by block
    # (emix.data._stream.predict_stream), and ``out=`` writes per-row results to a file.
    def score_samples(self, X, out=None) -> np.ndarray:
        """Log density of every row, shape (N,) (or the path ``out`` written)."""
        if out is None and is_dask(X):
            return predict_dask(self, X, "score_samples")
        if out is not None or is_source_like(X):
            return predict_stream(self, X, "score_samples", out)
        return logsumexp_rows(self._log_joint(X, "score_samples"))

    def score(self, X, y=None, sample_weight=None) -> float:
        """Mean log-likelihood per row (weighted when ``sample_weight`` is given)."""
        if sample_weight is None and is_dask(X):
            return predict_dask(self, X, "score")
        if is_source_like(X):
            return predict_stream(self, X, "score", sample_weight=sample_weight)
        s = self.score_samples(X)
        if sample_weight is None:
            return float(np.mean(s, dtype=np.float64))
        sw = check_sample_weight(resolve_backend(sample_weight).to_numpy(sample_weight), s.shape[0])
        return float(np.dot(sw, s) / sw.sum())

    def predict_proba(self, X, out=None) -> np.ndarray:
        """Responsibilities: posterior probability of each component, shape (N, K).

        With ``out`` (a ``.csv``, ``.npy`` or ``.parquet`` path) they are written there
        block by block, atomically, and the path is returned.
        """
        if out is None and is_dask(X):
            return predict_dask(self, X, "predict_proba")
        if out is not None or is_source_like(X):
            return predict_stream(self, X, "predict_proba", out)
        L = self._log_joint(X, "predict_proba")
        return np.exp(L - logsumexp_rows(L)[:, None])

    def predict(self, X, out=None) -> np.ndarray:
        """Most likely component of every row, shape (N,).

        With ``out`` (a ``.csv``, ``.npy`` or ``.parquet`` path) the labels are written
        there block by block, atomically, and the path is returned.
        """
        if out is None and is_dask(X):
            return predict_dask(self, X, "predict")
        if out is not None or is_source_like(X):
            return predict_stream(self, X, "predict", out)
        return np.argmax(self._log_joint(X, "predict"), axis=1)

    def _draw_counts(self, n_samples: int, weights: np.ndarray, rng) -> np.ndarray:
        """How many of ``n_samples`` draws come from each component, shape (K,)."""
        check_int(n_samples, "n_samples", low=1)
        return rng.multinomial(n_samples, weights / weights.sum())

    # ------------------------------------------------------------------ selection
    def _loglik_and_n(self, X) -> tuple[float, int]:
        """Total log-likelihood of X and its number of observations.

        With missing values (``missing="em"``) the observations are the rows with at
        least one observed value, and the log-likelihood is that of the observed cells.
        """
        if getattr(self, "missing", "error") == "em" and not is_source_like(X) and not is_dask(X):
            nan = _nan_mask_or_none(X)
            if nan is not None and nan.any():
                s = self.score_samples(X)
                n_obs = int(nan.shape[0] - nan.reshape(nan.shape[0], -1).all(axis=1).sum())
                return float(np.sum(s, dtype=np.float64)), n_obs
        n = n_rows_of(X)
        if getattr(self, "missing", "error") == "em" and (is_source_like(X) or is_dask(X)):
            # Read in blocks: the rows with an observed value counted in one more pass.
            return self.score(X) * n, n_observed_rows_of(X, self)
        return self.score(X) * n, n

    def bic(self, X) -> float:
        """Bayesian information criterion on X; lower is better.

        With missing values, ``n`` is the number of rows with an observed value.
        """
        self._check_is_fitted("bic")
        ll, n = self._loglik_and_n(X)
        return -2.0 * ll + self._n_parameters() * math.log(n)

    def aic(self, X) -> float:
        """Akaike information criterion on X; lower is better."""
        self._check_is_fitted("aic")
        ll, n = self._loglik_and_n(X)
        return -2.0 * ll + 2.0 * self._n_parameters()


def _nan_mask_or_none(X):
    """``isnan(X)`` on the host for in-memory data, or None when X cannot be read as
    numbers (the prediction methods then give their own error)."""
    if type(X).__module__.startswith("torch"):
        return nan_mask(X)
    try:
        arr = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return np.isnan(arr)
