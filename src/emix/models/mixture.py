"""``GaussianMixture``: scikit-learn's estimator, on emix's additive-statistics engine."""

from __future__ import annotations

import warnings

import numpy as np

from .._missing import (
    allow_nan,
    check_missing,
    nan_column_summary,
    nan_mask,
    take,
)
from .._validation import check_float, check_int, check_weights_init
from ..backends import resolve_backend
from ..data._stream import is_streaming, random_resp, resolve_data_backend
from ..em.init import (
    KMEANS_MAX_ROWS,
    as_generator,
    kmeans,
    kmeans_plusplus,
    random_rows,
    ward,
)
from ..exceptions import DataScaleWarning, InputError
from ..families import gaussian as G
from ..families import gaussian_kernel as GK
from ..families import gaussian_missing as GM
from ._mixture_base import MixtureEstimator

__all__ = ["GaussianMixture"]

INIT_PARAMS = ("kmeans", "k-means++", "random", "random_from_data", "ward")


class _GaussianProblem:
    """The EM problem for one data set: E-step on the backend, M-step on the host."""

    def __init__(self, backend, X, w, covariance_type, frame, reg_covar, block_size, K):
        self.backend = backend
        self.X = X
        self.w = w
        self.covariance_type = covariance_type
        self.frame = frame
        self.reg_covar = reg_covar
        self.block_size = block_size
        self.K = K
        # The same on every pass: summed once, not read back from the device each time.
        self.weight_sum = None if w is None else float(np.sum(backend.to_numpy(w), dtype=np.float64))
        self.last_issues: list = []
        self.last_allowance = 0.0

    def pass_(self, plan=None, resp=None, centers=None) -> G.GaussianStats:
        return GK.mixture_pass(
            self.backend,
            self.X,
            self.w,
            plan,
            covariance_type=self.covariance_type,
            frame=self.frame,
            n_components=self.K,
            block_size=self.block_size,
            resp=resp,
            centers=centers,
            weight_sum=self.weight_sum,
        )

    def e_step(self, params: G.GaussianMixtureParams) -> G.GaussianStats:
        return self.pass_(plan=G.estep_plan(params, self.frame))

    def m_step(self, stats, params, iteration):
        new, report = G.m_step(stats, self.reg_covar, previous=params, iteration=iteration)
        self.last_allowance = report.reg_gap
        self.last_issues = list(report.issues)
        return new

    def first_params(self, stats) -> G.GaussianMixtureParams:
        params, report = G.m_step(stats, self.reg_covar, previous=None)
        return params


class _MissingGaussianProblem(_GaussianProblem):
    """The EM problem for data with missing cells (exact EM for incomplete data).

    Complete rows ``X`` take the ordinary pass; rows with missing cells ``Xs``, sorted
    by missingness pattern once per fit, take :func:`emix.families.gaussian_missing.
    missing_pass`, whose statistics are the expected complete-data ones. The two add up
    (moved to the same anchors), so the M-step is unchanged.
    """

    def __init__(self, backend, Xc, wc, Xs, ws, groups, covariance_type, frame, reg_covar,
                 block_size, K):
        super().__init__(backend, Xc, wc, covariance_type, frame, reg_covar, block_size, K)
        self.Xs, self.ws, self.groups = Xs, ws, groups
        self.block_plans: dict = {}
        self.ws_sum = None if ws is None else float(np.sum(backend.to_numpy(ws), dtype=np.float64))

    def e_step(self, params: G.GaussianMixtureParams) -> G.GaussianStats:
        plan = G.estep_plan(params, self.frame)
        stats = GM.missing_pass(self.backend, self.Xs, self.ws, self.groups, plan,
                                block_size=self.block_size, weight_sum=self.ws_sum,
                                cache=self.block_plans)
        if self.X.shape[0]:
            complete = self.pass_(plan=plan)
            stats = complete + stats.reanchor(complete.anchors)
        return stats


class GaussianMixture(MixtureEstimator):
    """Gaussian mixture model fitted by EM on additive sufficient statistics.

    A drop-in replacement for :class:`sklearn.mixture.GaussianMixture`: the same
    parameters, methods and fitted attributes, the same answers from the same starting
    point, and in addition sample weights, a per-iteration callback, a PyTorch backend
    and an E-step built from large matrix products.

    Parameters
    ----------
    n_components : int, default=1
    covariance_type : {'full', 'tied', 'diag', 'spherical'}, default='full'
    tol : float, default=1e-3
        Converged when the mean log-likelihood per sample changes by less than ``tol``.
    reg_covar : float, default=1e-6
        Added to every variance (in the data's units), as in scikit-learn.
    max_iter : int, default=100
    n_init : int, default=1
        Restarts; the best non-degenerate run is kept (see ``degenerate_``).
    init_params : {'kmeans', 'k-means++', 'random', 'random_from_data', 'ward'}, default='kmeans'
        ``kmeans``: k-means (k-means++ seeds, then Lloyd) hard labels. ``k-means++`` and
        ``random_from_data``: seed rows (k-means++ or uniform by weight), every row then
        assigned to its nearest seed. ``random``: random soft responsibilities.
        ``ward``: the first start is Ward's hierarchical clustering, which involves no
        randomness (on at most 4,000 rows, a systematic sample beyond that); restarts
        after the first use ``kmeans``.
    weights_init : array-like of shape (K,), optional
    means_init : array-like of shape (K, D), optional
    precisions_init : array-like, optional
        Shape (K, D, D) full, (D, D) tied, (K, D) diag, (K,) spherical.
    random_state : int, numpy Generator or RandomState, optional
    warm_start : bool, default=False
        Start the next ``fit`` from the current parameters (``n_init`` is then 1).
    verbose : int, default=0
    verbose_interval : int, default=10
    block_size : int, optional
        Rows per E-step block; by default chosen so that block temporaries stay near
        256k elements. Results do not depend on it beyond round-off.
    device : str, optional
        None for NumPy; ``"cpu"`` or ``"cuda"`` (``"cuda:1"``...) to run on PyTorch.
    callback : callable ``(iteration, log_likelihood, params)``, optional
        Called at every iteration with the mean log-likelihood of ``params``, a
        :class:`emix.families.gaussian.GaussianMixtureParams`. Return True to stop.
    label_order : {None, 'mean', 'weight'}, default=None
        Number the fitted components canonically, so that restarts and refits that reach
        the same solution give the same labels. ``'mean'``: ascending means, compared on
        the first feature, then the second...; ``'weight'``: descending weights (ties by
        mean). ``None`` keeps EM's own order, which is scikit-learn's.
    missing : {'em', 'error'}, default='em'
        What NaN in X means. ``'em'``: a missing value. The fit is the exact EM for
        incomplete data: a row's likelihood is the marginal of its observed cells and
        the M-step reads the expected statistics of the missing ones given them (rows
        are grouped by missingness pattern, so the cost stays near that of complete
        data). Rows with every value missing are ignored with a
        :class:`emix._missing.MissingDataWarning`; at prediction time they get the
        prior (``predict_proba`` = ``weights_``, ``score_samples`` = 0). See
        :meth:`impute`. ``'error'``: NaN is an :class:`emix.InputError`. inf is always
        an error. Files (NaN in ``.npy``, empty CSV cells, Parquet nulls) and Dask
        arrays are read the same way, and so are the batches of :meth:`partial_fit` and
        ``fit(..., algorithm="minibatch")``.

    Attributes
    ----------
    weights_ : ndarray of shape (K,)
    means_ : ndarray of shape (K, D)
    covariances_ : ndarray, shape as ``precisions_init``
    precisions_ : ndarray, same shape
    precisions_cholesky_ : ndarray, same shape (upper triangular for full and tied)
    converged_ : bool
    n_iter_ : int
    lower_bound_ : float
        Mean log-likelihood from the last E-step of the best run.
    lower_bounds_ : ndarray of shape (n_iter_,)
        Mean log-likelihood at every iteration of the best run.
    degenerate_ : bool
        Whether some fitted component is degenerate: empty, collapsed onto (nearly)
        repeated values, or resting on fewer effective rows than its parameters. The rule
        is :func:`emix.families.gaussian.screen_components`; each case is also warned.
    degenerate_components_ : ndarray of shape (n_flagged,), int
        The flagged components (-1 for a collapsed shared ``tied`` covariance).
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (D,), when fitted on a DataFrame
    """

    def __init__(
        self,
        n_components=1,
        *,
        covariance_type="full",
        tol=1e-3,
        reg_covar=1e-6,
        max_iter=100,
        n_init=1,
        init_params="kmeans",
        weights_init=None,
        means_init=None,
        precisions_init=None,
        random_state=None,
        warm_start=False,
        verbose=0,
        verbose_interval=10,
        block_size=None,
        device=None,
        callback=None,
        label_order=None,
        missing="em",
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.block_size = block_size
        self.device = device
        self.callback = callback
        self.label_order = label_order
        self.missing = missing

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # NaN is a missing value (fitted by EM) unless missing="error".
        tags.input_tags.allow_nan = getattr(self, "missing", "em") == "em"
        return tags

    # ------------------------------------------------------------------ checks
    def _check_parameters(self):
        self._check_common_parameters(INIT_PARAMS)
        if self.covariance_type not in G.COVARIANCE_TYPES:
            raise InputError(
                f"covariance_type must be one of {G.COVARIANCE_TYPES}; got "
                f"{self.covariance_type!r}"
            )
        check_float(self.reg_covar, "reg_covar", low=0.0)
        check_int(self.verbose_interval, "verbose_interval", low=1)

    def _check_initial(self, D: int):
        """Validate user-given starting parameters; return them as float64 or None."""
        K, ct = self.n_components, self.covariance_type
        w = m = p = None
        if self.weights_init is not None:
            w = check_weights_init(self.weights_init, K)
        if self.means_init is not None:
            m = np.asarray(self.means_init, dtype=np.float64)
            if m.shape != (K, D):
                raise InputError(f"means_init must have shape ({K}, {D}); got {m.shape}")
            if not np.all(np.isfinite(m)):
                raise InputError("means_init contains NaN or inf")
        if self.precisions_init is not None:
            p = np.asarray(self.precisions_init, dtype=np.float64)
            shape = G.covariance_shape(ct, K, D)
            if p.shape != shape:
                raise InputError(
                    f"precisions_init must have shape {shape} for covariance_type={ct!r}; "
                    f"got {p.shape}"
                )
            if ct in ("full", "tied"):
                mats = p if ct == "full" else p[None]
                for k, mat in enumerate(mats):
                    if not np.allclose(mat, mat.T):
                        raise InputError(f"precisions_init[{k}] is not symmetric")
                    if np.linalg.eigvalsh(mat)[0] <= 0:
                        raise InputError(f"precisions_init[{k}] is not positive definite")
            elif np.any(p <= 0):
                raise InputError("precisions_init must be positive")
        return w, m, p

    # ------------------------------------------------------------------ fitting
    def _fit(self, X, sample_weight):
        self._check_parameters()
        # A path or emix.data Source is read in blocks (see emix.data).
        backend = resolve_data_backend(X, self.device)
        K = self.n_components
        Xv, names, info = self._validate_missing(backend, X, name="X")
        N, D = Xv.shape
        w = self._checked_weights(backend, sample_weight, N, K)
        w_init, m_init, p_init = self._check_initial(D)
        if info is not None and info.any_missing and is_streaming(Xv):
            # A source or Dask array: the same split per block (models/_missing_blocks).
            from ._missing_blocks import block_missing_problems

            problem, init_problem, Xv, w, frame = block_missing_problems(
                self, backend, Xv, w, info, names
            )
        elif info is not None and info.any_missing:
            problem, init_problem, Xv, w, frame = self._missing_problems(
                backend, Xv, w, info, names
            )
        else:
            w_dev = None if w is None else backend.asarray_like(w, Xv)
            summary = backend.column_summary(Xv, w_dev)
            self._screen_data(summary, names, K)
            frame = G.Frame.from_data(summary["mean"], summary["var"])
            problem = _GaussianProblem(
                backend, Xv, w_dev, self.covariance_type, frame, float(self.reg_covar),
                self.block_size, K,
            )
            init_problem = problem
        warm = self.warm_start and hasattr(self, "converged_") and self.n_features_in_ == D
        rng = as_generator(self.random_state)
        n_init = 1 if warm else self.n_init
        dtype = backend.numpy_dtype(Xv)

        def initial(i):
            if warm:
                return self._params
            if w_init is not None and m_init is not None and p_init is not None:
                # Fully specified: an initialisation pass would be thrown away.
                return self._override(None, w_init, m_init, p_init)
            method = self.init_params
            if method == "ward" and i > 0:
                method = "kmeans"  # Ward has no randomness: a second run would repeat it.
            params = self._initial_params(init_problem, Xv, w, rng, method)
            return self._override(params, w_init, m_init, p_init)

        result = self._run_em(
            problem, initial, n_init=n_init, dtype=dtype, warm=warm,
            exact=float(self.reg_covar) == 0.0,
        )
        params, issues = result.params, result.issues
        if self.label_order is not None:
            perm = G.canonical_order(params, self.label_order)
            params, issues = G.permute(params, perm), G.permute_issues(issues, perm)
        self._store(params, dtype)
        self._set_feature_names(names)
        self._issues = tuple(issues)
        self._warn_issues(self._issue_messages(), [i.component for i in issues])
        self._frame = frame
        self.n_features_in_ = D
        self._record_run(result)
        return self

    def _missing_problems(self, backend, Xv, w, info, names, frame=None):
        """The EM problem for data with missing cells, and the one its start runs on.

        Rows with every value missing are dropped (``check_missing`` warned). The frame
        is centred and scaled by each column's observed values. Starts (k-means,
        random...) run on the data with each missing cell set to its column's observed
        mean: only the starting point depends on that; EM then uses the observed cells
        alone.

        Parameters
        ----------
        frame : Frame, optional
            Fixed (a later mini-batch of ``partial_fit``): the rows need only as many
            rows as one; None: from the data, which must have K rows.

        Returns
        -------
        problem, init_problem, X_init (n, D), w (n,) or None, frame
        """
        K = self.n_components
        if info.any_all_missing:
            keep = np.flatnonzero(~info.all_missing)
            Xv = take(Xv, keep)
            w = None if w is None else w[keep]
            self._checked_weights(backend, w, Xv.shape[0], K if frame is None else 1)
        if frame is None:
            summary = nan_column_summary(Xv, w)
            self._screen_data(summary, names, K)
            frame = G.Frame.from_data(summary["mean"], summary["var"])
        comp, order, groups = GM.split_rows(nan_mask(Xv))

        def dev(idx):
            return None if w is None else backend.asarray_like(w[idx], Xv)

        problem = _MissingGaussianProblem(
            backend, take(Xv, comp), dev(comp), take(Xv, order), dev(order), groups,
            self.covariance_type, frame, float(self.reg_covar), self.block_size, K,
        )
        X_init = _fill_columns(Xv, frame.center)
        w_dev = None if w is None else backend.asarray_like(w, Xv)
        init_problem = _GaussianProblem(
            backend, X_init, w_dev, self.covariance_type, frame, float(self.reg_covar),
            self.block_size, K,
        )
        return problem, init_problem, X_init, w, frame

    # ------------------------------------------------------------------ stepwise EM
    def _stepwise_batch(self, X, sample_weight, first: bool):
        """``(problem, params, info)`` for one mini-batch (see ``partial_fit``).

        The first batch fixes the frame (its centre and scale) in which every later
        batch's statistics are taken, so that all of them can be mixed.
        """
        backend = resolve_backend(X, self.device)
        K = self.n_components
        # The warnings point at the caller of partial_fit (check_missing, _validate_missing,
        # this, _partial_fit, partial_fit).
        if first:
            Xv, names, minfo = self._validate_missing(backend, X, name="X", stacklevel=6)
        else:
            D = self.n_features_in_
            Xv, names, minfo = self._validate_missing(
                backend, X, name="X", stacklevel=6, n_features=D, allow_1d=(D == 1),
                estimator_name=type(self).__name__,
            )
            self._check_feature_names(names)
        N, D = Xv.shape
        w = self._checked_weights(backend, sample_weight, N, K if first else 1)
        if first:
            w_init, m_init, p_init = self._check_initial(D)
        if minfo is not None and minfo.any_missing:
            # Rows with missing cells: the exact E-step for incomplete data, in the first
            # batch's frame; a first batch starts from its mean-filled rows.
            problem, init_problem, X_init, w, frame = self._missing_problems(
                backend, Xv, w, minfo, names, frame=None if first else self._frame
            )
        else:
            w_dev = None if w is None else backend.asarray_like(w, Xv)
            if first:
                summary = backend.column_summary(Xv, w_dev)
                self._screen_data(summary, names, K)
                frame = G.Frame.from_data(summary["mean"], summary["var"])
            else:
                frame = self._frame
            problem = init_problem = _GaussianProblem(
                backend, Xv, w_dev, self.covariance_type, frame, float(self.reg_covar),
                self.block_size, K,
            )
            X_init = Xv
        if first:
            if w_init is not None and m_init is not None and p_init is not None:
                params = self._override(None, w_init, m_init, p_init)
            else:
                rng = as_generator(self.random_state)
                params = self._initial_params(init_problem, X_init, w, rng, self.init_params)
                params = self._override(params, w_init, m_init, p_init)
        else:
            params = self._params
        info = {"first": first, "names": names, "D": D, "frame": frame,
                "dtype": backend.numpy_dtype(Xv)}
        return problem, params, info

    def _stepwise_store(self, params, issues, info, *, warn: bool) -> None:
        # Labels stay in EM's order: the running statistics are per component.
        self._store(params, info["dtype"] if info["first"] else self._dtype)
        if info["first"]:
            self._set_feature_names(info["names"])
            self._frame = info["frame"]
            self.n_features_in_ = info["D"]
        self._issues = tuple(issues)
        if warn:
            self._warn_issues(*self._stepwise_issue_report())
        else:
            self.degenerate_ = bool(issues)
            self.degenerate_components_ = np.unique(
                np.asarray([i.component for i in issues], dtype=np.intp)
            )

    def _stepwise_issue_report(self):
        return self._issue_messages(), [i.component for i in self._issues]

    def _issue_messages(self) -> list[str]:
        """One sentence per degeneracy found in the fit, naming component and column."""
        names = getattr(self, "feature_names_in_", None)
        return [
            issue.describe(None if issue.column is None else _column_label(names, issue.column))
            for issue in getattr(self, "_issues", ())
        ]

    def _screen_data(self, summary, names, K):
        """Warn or fail on data that EM cannot fit sensibly, naming the columns."""
        var, lo, hi = summary["var"], summary["min"], summary["max"]
        def label(j):
            return _column_label(names, j)

        const = np.flatnonzero(lo == hi)
        N = summary["n"]
        if len(const) == len(var):
            if K > 1:
                raise InputError(
                    f"all {N} rows of X are identical: there is nothing to split into "
                    f"n_components={K} components"
                )
            if N > 1 and float(self.reg_covar) > 0:
                warnings.warn(
                    f"all {N} rows of X are identical: the fitted covariance is "
                    f"reg_covar={float(self.reg_covar):g} alone and says nothing about the "
                    "data",
                    DataScaleWarning,
                    stacklevel=4,
                )
        reg = float(self.reg_covar)
        if len(const):
            cols = ", ".join(label(j) for j in const[:5]) + (" ..." if len(const) > 5 else "")
            if reg == 0.0:
                raise InputError(
                    f"{cols} of X is constant and reg_covar=0, so every covariance would "
                    "be singular; drop the column or set reg_covar > 0"
                )
            if len(const) < len(var):
                warnings.warn(
                    f"{cols} of X is constant (value {lo[const[0]]:g}): it carries no "
                    f"information, and every component's variance there is reg_covar={reg:g} "
                    "alone; consider dropping it",
                    DataScaleWarning,
                    stacklevel=4,
                )
        varying = np.flatnonzero(var > 0)
        if reg > 0 and len(varying):
            ratio = reg / var[varying]
            j = int(varying[np.argmax(ratio)])
            if ratio.max() > 0.1:
                warnings.warn(
                    f"reg_covar={reg:g} is {reg / var[j]:.3g} times the variance of "
                    f"{label(j)} ({var[j]:.3g}): regularisation would dominate the fitted "
                    f"covariances. For data on this scale pass reg_covar relative to it, "
                    f"e.g. reg_covar={1e-6 * float(np.min(var[varying])):.3g}",
                    DataScaleWarning,
                    stacklevel=4,
                )

    def _initial_params(self, problem, Xv, w, rng, method) -> G.GaussianMixtureParams:
        """Parameters from one M-step on the initial responsibilities of ``method``."""
        K = self.n_components
        backend = problem.backend
        N = Xv.shape[0]
        if method == "random" and is_streaming(Xv):
            # The same draws, generated per block instead of held as (N, K).
            return problem.first_params(problem.pass_(resp=random_resp(rng, N, K)))
        if method == "random":
            resp = rng.random((N, K))
            resp /= resp.sum(axis=1, keepdims=True)
            stats = problem.pass_(resp=lambda a, b: resp[a:b])
            return problem.first_params(stats)
        if method == "random_from_data":
            weights = np.ones(N) if w is None else w
            centers = backend.take_rows(Xv, random_rows(weights, K, rng))
        else:
            # k-means on at most KMEANS_MAX_ROWS rows: a starting point needs no more.
            if N > KMEANS_MAX_ROWS and method == "ward":
                sub = np.linspace(0, N - 1, KMEANS_MAX_ROWS).round().astype(np.intp)
            elif N > KMEANS_MAX_ROWS:
                sub = np.sort(rng.choice(N, KMEANS_MAX_ROWS, replace=False))
            else:
                sub = np.arange(N)
            Z = backend.take_rows(Xv, sub) - problem.frame.center
            ws = np.ones(len(sub)) if w is None else w[sub]
            if method == "k-means++":
                centers = Z[kmeans_plusplus(Z, ws, K, rng)]
            elif method == "ward":
                centers = ward(Z, ws, K)
            else:
                centers = kmeans(Z, ws, K, rng)
            centers = centers + problem.frame.center
        stats = problem.pass_(centers=centers)
        if np.any(stats.nk <= 0):
            raise InputError(
                f"X has fewer than n_components={K} distinct rows (with positive weight), "
                "so some component starts empty; use fewer components"
            )
        return problem.first_params(stats)

    def _override(self, params, w_init, m_init, p_init):
        """Apply ``weights_init``/``means_init``/``precisions_init`` over the init."""
        if w_init is None and m_init is None and p_init is None:
            return params
        ct = self.covariance_type
        weights = w_init if w_init is not None else params.weights
        means = m_init if m_init is not None else params.means
        if p_init is None:
            cov, pc = params.covariances, params.precisions_cholesky
        else:
            cov = G.covariances_from_precisions(p_init, ct)
            # The stored factor is upper triangular with U U^T = P (scikit-learn's
            # convention for fitted models); cholesky(P) would give L L^T = P instead.
            pc = G.precisions_cholesky_from_covariances(cov, ct)
        return G.GaussianMixtureParams(weights, means, cov, pc, ct)

    def _store(self, params: G.GaussianMixtureParams, dtype) -> None:
        self._params = params
        self._dtype = np.dtype(dtype)
        self.weights_ = params.weights.astype(dtype)
        self.means_ = params.means.astype(dtype)
        self.covariances_ = params.covariances.astype(dtype)
        self.precisions_cholesky_ = params.precisions_cholesky.astype(dtype)
        self.precisions_ = params.precisions.astype(dtype)

    def save(self, path) -> None:
        """Write the fitted model to ``path`` (JSON and arrays in one zip; never pickle).

        See :mod:`emix.io` for the format; read it back with :func:`emix.load`. The file
        appears whole or not at all.
        """
        from ..io import save

        save(self, path)

    @property
    def params_(self) -> G.GaussianMixtureParams:
        """The fitted parameters as one immutable value (float64)."""
        self._check_is_fitted("params_")
        return self._params

    # ------------------------------------------------------------------ prediction
    def _log_joint(self, X, method: str) -> np.ndarray:
        self._check_is_fitted(method)
        backend = resolve_backend(X, self.device)
        D = self.n_features_in_
        Xv, names, info = self._validate_missing(
            backend, X, name="X", n_features=D, allow_1d=(D == 1),
            estimator_name=type(self).__name__, fitting=False,
        )
        self._check_feature_names(names)
        params = self._current_params()
        # The fit's frame (centre and power-of-two scale of the training data) keeps the
        # features in range; it is only a coordinate system, so edited parameters and
        # unpickled models from before it existed are both fine.
        frame = getattr(self, "_frame", None) or G.Frame(params.means.mean(axis=0), 1.0)
        plan = G.estep_plan(params, frame)
        if info is not None and info.any_missing:
            return self._log_joint_missing(backend, Xv, plan, info, params)
        return GK.log_joint(backend, Xv, plan, block_size=self.block_size)

    def _log_joint_missing(self, backend, Xv, plan, info, params) -> np.ndarray:
        """``log w_k + log p(x_obs | k)`` (N, K) of data with missing cells: complete
        rows by the ordinary pass, the others by pattern, rows with nothing observed
        the log weights (the prior)."""
        miss = nan_mask(Xv)
        N, K = miss.shape[0], self.n_components
        L = np.empty((N, K), dtype=np.float64)
        comp, order, groups = GM.split_rows(miss, exclude=info.all_missing)
        if comp.size:
            L[comp] = GK.log_joint(backend, take(Xv, comp), plan, block_size=self.block_size)
        if order.size:
            L[order] = GM.log_joint_missing(backend, take(Xv, order), groups, plan,
                                            block_size=self.block_size)
        allm = np.flatnonzero(info.all_missing)
        if allm.size:
            with np.errstate(divide="ignore"):
                L[allm] = np.log(params.weights)
        return L.astype(backend.numpy_dtype(Xv), copy=False)

    def impute(self, X, n_draws=None, random_state=None):
        """X with its missing values (NaN) filled in under the fitted model.

        Parameters
        ----------
        X : array-like of shape (N, D), NaN where missing
        n_draws : int, optional
            None: each missing cell becomes its conditional mean given the row's
            observed cells, ``sum_k r_k(x_obs) E[x_miss | x_obs, k]`` with ``r`` the
            posterior probabilities of the components (a row with nothing observed gets
            the mixture's mean). An integer m: m multiple imputations, each drawing the
            row's component from its posterior and then the missing cells from their
            conditional normal distribution given the observed ones.
        random_state : int, numpy Generator or RandomState, optional
            For the draws.

        Returns
        -------
        ndarray of shape (N, D), or (n_draws, N, D); observed cells are unchanged.
        """
        self._check_is_fitted("impute")
        backend = resolve_backend(X, None)
        D = self.n_features_in_
        with allow_nan():
            Xv, names = backend.validate(
                X, name="X", n_features=D, allow_1d=(D == 1),
                estimator_name=type(self).__name__,
            )
        self._check_feature_names(names)
        check_missing(Xv, "em", column_names=names, fitting=False)
        dtype = backend.numpy_dtype(Xv)
        Xh = np.asarray(backend.to_numpy(Xv), dtype=np.float64)
        O = ~np.isnan(Xh)
        params = self._current_params()
        covs = G.full_covariances(params.covariances, params.covariance_type,
                                  params.n_components, D)
        resp = np.asarray(self.predict_proba(Xh), dtype=np.float64)
        if n_draws is None:
            cm = GM.conditional_means(params.means, covs, Xh, O)
            out = np.einsum("nk,knd->nd", resp, cm)
            out[O] = Xh[O]
            return out.astype(dtype, copy=False)
        n_draws = check_int(n_draws, "n_draws", low=1)
        rng = as_generator(random_state)
        N = Xh.shape[0]
        cum = np.cumsum(resp, axis=1)
        cum /= cum[:, -1:]
        # All draws in one call: the rows repeated n_draws times, draw-major.
        u = rng.random((n_draws, N))
        z = np.minimum((cum[None, :, :] < u[:, :, None]).sum(axis=2), self.n_components - 1)
        out = GM.conditional_draw(params.means, covs, np.tile(Xh, (n_draws, 1)),
                                  np.tile(O, (n_draws, 1)), z.ravel(), rng)
        return out.reshape((n_draws,) + Xh.shape).astype(dtype, copy=False)

    def _current_params(self) -> G.GaussianMixtureParams:
        """Parameters from the public attributes, so that edits to them are honoured."""
        return G.GaussianMixtureParams(
            np.asarray(self.weights_, dtype=np.float64),
            np.asarray(self.means_, dtype=np.float64),
            np.asarray(self.covariances_, dtype=np.float64),
            np.asarray(self.precisions_cholesky_, dtype=np.float64),
            self.covariance_type,
        )

    def sample(self, n_samples: int = 1):
        """Draw rows from the fitted mixture.

        Returns
        -------
        X : ndarray of shape (n_samples, D)
        y : ndarray of shape (n_samples,), the component of each row
        """
        self._check_is_fitted("sample")
        rng = as_generator(self.random_state)
        params = self._current_params()
        counts = self._draw_counts(n_samples, params.weights, rng)
        D = self.n_features_in_
        ct = self.covariance_type
        parts = []
        for k, n in enumerate(counts):
            z = rng.standard_normal((n, D))
            if ct in ("full", "tied"):
                cov = params.covariances[k] if ct == "full" else params.covariances
                chol = np.linalg.cholesky(cov)
                parts.append(params.means[k] + z @ chol.T)
            else:
                sd = np.sqrt(params.covariances[k])
                parts.append(params.means[k] + z * sd)
        X = np.vstack(parts).astype(self._dtype, copy=False)
        y = np.repeat(np.arange(len(counts)), counts)
        return X, y

    # ------------------------------------------------------------------ selection
    def _n_parameters(self) -> int:
        return G.n_parameters(self.covariance_type, self.n_components, self.n_features_in_)


def _fill_columns(X, values: np.ndarray):
    """X (array or tensor) with each NaN replaced by its column's ``values`` (D,)."""
    if type(X).__module__.startswith("torch"):
        import torch

        v = torch.as_tensor(values, dtype=X.dtype, device=X.device)
        return torch.where(torch.isnan(X), v, X)
    return np.where(np.isnan(X), np.asarray(values, dtype=X.dtype), X)


def _column_label(names, j: int) -> str:
    """How messages name column ``j``: by its DataFrame name when there is one."""
    return f"column {names[j]!r}" if names is not None else f"column {j}"
