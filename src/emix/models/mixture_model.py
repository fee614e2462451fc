"""``MixtureModel``: a mixture of any family (Poisson, Bernoulli, ..., or a product of
families over columns for mixed data) on the generic EM engine.

The model owns what turns log-emissions into weights (a soft-max), restarts, the
scikit-learn face and the mixing weights; the family owns everything about its
distribution; the backend runs the kernels of :mod:`emix.models._kernels` over row
blocks. ``family="gaussian"`` alone is handed to :class:`emix.GaussianMixture`, whose
specialised kernels (frames, anchored statistics, degeneracy screening) it already has.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping

import numpy as np

from .._missing import check_missing, check_missing_mode
from .._validation import allow_nan, check_weights_init
from ..backends import resolve_backend
from ..data import is_source_like
from ..data._dask import is_dask
from ..data._stream import (
    check_support_blocks,
    initial_family_stats,
    is_streaming,
    resolve_data_backend,
)
from ..em.init import KMEANS_MAX_ROWS, as_generator, kmeans, kmeans_plusplus, nearest, random_rows
from ..exceptions import InputError
from ..families import FAMILY_NAMES, family_class
from ..families._base import Family, empty_components, empty_issues, permute_params
from ._mixture_base import MixtureEstimator, logsumexp_rows
from ._kernels import GivenRespKernel, LogJointKernel, MixtureKernel, stats_from_acc

__all__ = [
    "MixtureModel", "column_labels", "observed_summary", "starting_stats", "take_columns",
]

INIT_PARAMS = ("kmeans", "k-means++", "random", "random_from_data")
# The attributes a delegated Gaussian fit exposes, as GaussianMixture names them.
_GAUSSIAN_ATTRS = (
    "weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_",
    "converged_", "n_iter_", "lower_bound_", "lower_bounds_", "degenerate_",
    "degenerate_components_", "best_init_",
)
_COMPONENT = re.compile(r"component (\d+)")


class _FamilyProblem:
    """The EM problem: E-step as one backend pass, M-step on the host.

    Parameters are ``(weights (K,), family params dict)``, float64.
    """

    def __init__(self, backend, X, w, family, K, block_size, missing: bool = True):
        self.backend = backend
        self.X = X
        self.w = w
        self.family = family
        self.K = K
        self.block_size = block_size
        # Whether X may hold NaN: kernels check each block for it only then.
        self.missing = bool(missing)
        self.N = int(X.shape[0])
        self.last_issues: list = []
        self.last_allowance = 0.0

    def _pass(self, kernel):
        acc = self.backend.stats_pass(
            self.X, self.w, kernel, block_size=self.block_size, width=self.family.feature_width()
        )
        return stats_from_acc(acc, self.N, self.family)

    def e_step(self, params):
        weights, fp = params
        return self._pass(MixtureKernel(self.family, fp, weights, missing=self.missing))

    def given_resp_stats(self, resp):
        return self._pass(GivenRespKernel(self.family, resp, self.K, missing=self.missing))

    def m_step(self, stats, params, iteration):
        weights = stats.nk / stats.weight_sum
        empty = empty_components(stats.nk, stats.weight_sum)
        weights[empty] = 0.0
        fp, issues = self.family.m_step(stats, None if params is None else params[1])
        issues = list(issues)
        for k in empty:
            if not any(f"component {int(k)} " in msg and "empty" in msg for msg in issues):
                issues += empty_issues([k])
        self.last_issues = issues
        # A regularised M-step (reg_covar) is not the exact maximiser: the family says
        # how far it may lower the likelihood, so the monitor does not cry wolf.
        gap = getattr(self.family, "reg_gap", None)
        self.last_allowance = 0.0 if gap is None else float(gap(stats))
        return weights, fp


class MixtureModel(MixtureEstimator):
    """Finite mixture of any distribution family, fitted by EM on additive statistics.

    Parameters
    ----------
    family : str, Family, mapping or list of (family, columns), default='poisson'
        The component distribution. A name from :data:`emix.families.FAMILY_NAMES`
        (``'gaussian'``, ``'bernoulli'``, ``'categorical'``, ``'poisson'``,
        ``'exponential'``, ``'binomial'``, ``'student_t'``), a family object, or an
        independent product over column groups for mixed data:
        ``{"gaussian": ["height", "weight"], "poisson": ["visits"]}`` (column names of
        a DataFrame, or integer positions) or ``[("gaussian", [0, 1]), (Poisson(),
        [2])]``. Within a component the groups are independent. ``'gaussian'`` alone
        fits exactly as :class:`emix.GaussianMixture` does.
    n_components : int, default=2
    covariance_type : {'full', 'tied', 'diag', 'spherical'}, default='full'
        Used by the families that have one (Gaussian, Student-t).
    tol : float, default=1e-3
        Converged when the mean log-likelihood per row changes by less than ``tol``.
    max_iter : int, default=100
    n_init : int, default=1
        Restarts; the best run without degenerate components is kept.
    init_params : {'kmeans', 'k-means++', 'random', 'random_from_data'}, default='kmeans'
        ``kmeans``: k-means labels on the standardised data; ``k-means++`` and
        ``random_from_data``: seed rows (k-means++ or uniform by weight), every row
        assigned to its nearest seed; ``random``: random soft responsibilities. The
        first parameters are one M-step on these responsibilities.
    weights_init : array-like of shape (K,), optional
    params_init : dict, optional
        Starting component parameters, keyed as the family's ``param_names`` (e.g.
        ``{"rates": (K, D)}``); for a product, one such dict per part label.
    random_state : int, numpy Generator or RandomState, optional
    warm_start : bool, default=False
        Start the next ``fit`` from the current parameters (``n_init`` is then 1).
    verbose : int, default=0
    block_size : int, optional
        Rows per E-step block. Results do not depend on it beyond round-off.
    device : str, optional
        None for NumPy; ``'cpu'`` or ``'cuda'`` to run on PyTorch.
    callback : callable ``(iteration, log_likelihood, params)``, optional
        Called at every iteration with the mean log-likelihood of ``params`` =
        ``(weights, family params dict)``. Return True to stop.
    label_order : {None, 'mean', 'weight'}, default=None
        ``'mean'``: components numbered by ascending means (first column first);
        ``'weight'``: by descending weight. None keeps EM's order.
    family_options : dict, optional
        Constructor keywords of the family when it is given by name (e.g.
        ``{"n_trials": 10}``); for a product, ``{family name: keywords}``.
    columns : list of str or int, optional
        The columns of X the model reads (all by default; for a product, the columns
        its parts name).
    missing : {'em', 'error'}, default='em'
        What NaN in X means. ``'em'``: a missing value, a hidden variable of the EM
        (exact EM for incomplete data): a row's likelihood is the marginal of its
        observed cells, and its statistics are the expected complete-data ones, so
        every family's M-step is unchanged. Rows whose every used value is missing
        carry no information: ``fit`` ignores them with one
        :class:`emix.MissingDataWarning` that counts them; at prediction they get the
        prior (``predict_proba`` = ``weights_``, ``score_samples`` = 0). ``'error'``:
        NaN is an :class:`emix.InputError`. inf is always an error. With no NaN in X
        the results are those of complete data, bit for bit. Paths, sources and Dask
        arrays are read the same way (an empty CSV cell or a Parquet null is NaN).
        ``partial_fit`` drops a batch's rows with nothing observed without a warning.

    Attributes
    ----------
    weights_ : ndarray of shape (K,)
    <param>_ : ndarray
        One attribute per family parameter, component axis first: ``rates_`` (K, D)
        for Poisson, ``probabilities_`` for Bernoulli, ``df_`` for Student-t, ...
    params_ : dict
        The family parameters; for a product, ``{part label: {name: array}}``.
    family_ : Family
        The family bound to the training data (None for a delegated Gaussian fit,
        whose estimator is ``gaussian_mixture_``).
    converged_ : bool
    n_iter_ : int
    lower_bound_ : float
        Mean log-likelihood (per unit of sample weight) from the last E-step.
    lower_bounds_ : ndarray of shape (n_iter_,)
    degenerate_ : bool
        Whether a fitted component is degenerate (empty, or flagged by the family).
    degenerate_components_ : ndarray of int
    n_features_in_ : int
        Columns of the X passed to ``fit`` (``columns_`` of them are read).
    columns_ : ndarray of shape (D_used,), int
    feature_names_in_ : ndarray of shape (n_features_in_,), when fitted on a DataFrame
    """

    def __init__(
        self,
        family="poisson",
        n_components=2,
        *,
        covariance_type="full",
        tol=1e-3,
        max_iter=100,
        n_init=1,
        init_params="kmeans",
        weights_init=None,
        params_init=None,
        random_state=None,
        warm_start=False,
        verbose=0,
        block_size=None,
        device=None,
        callback=None,
        label_order=None,
        family_options=None,
        columns=None,
        missing="em",
    ):
        self.family = family
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.params_init = params_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.block_size = block_size
        self.device = device
        self.callback = callback
        self.label_order = label_order
        self.family_options = family_options
        self.columns = columns
        self.missing = missing

    # ------------------------------------------------------------------ checks
    def _check_parameters(self):
        self._check_common_parameters(INIT_PARAMS)
        check_missing_mode(self.missing)
        if self.family_options is not None and not isinstance(self.family_options, Mapping):
            raise InputError(
                f"family_options must be a dict of constructor keywords; got "
                f"{type(self.family_options).__name__}"
            )
        if self.params_init is not None and not isinstance(self.params_init, Mapping):
            raise InputError(
                f"params_init must be a dict of the family's parameters; got "
                f"{type(self.params_init).__name__}"
            )

    def _is_delegated_gaussian(self) -> bool:
        return isinstance(self.family, str) and self.family == "gaussian"

    def _named_family(self, name, options):
        cls = family_class(name)
        kw = dict(options or {})
        try:
            sig = inspect.signature(cls.__init__).parameters
        except (TypeError, ValueError):  # pragma: no cover - builtins
            sig = {}
        if "covariance_type" in sig and "covariance_type" not in kw:
            kw["covariance_type"] = self.covariance_type
        try:
            return cls(**kw)
        except TypeError as exc:
            raise InputError(f"family {name!r} does not accept the options {sorted(kw)}: {exc}") from None

    def _make_family(self) -> Family:
        """The unbound family object the parameters describe (a product is unresolved)."""
        spec = self.family
        options = dict(self.family_options or {})
        if isinstance(spec, Family):
            if options:
                raise InputError("family_options apply to a family given by name, not to a family object")
            return spec
        if isinstance(spec, str):
            if spec not in FAMILY_NAMES:
                raise InputError(
                    f"unknown family {spec!r}; choose one of {FAMILY_NAMES}, a family object, "
                    "or a {family: columns} mapping for mixed data"
                )
            return self._named_family(spec, options)
        if isinstance(spec, Mapping):
            pairs = list(spec.items())
        elif isinstance(spec, (list, tuple)):
            pairs = list(spec)
        else:
            raise InputError(
                f"family must be a name, a Family object, a {{family: columns}} mapping or a "
                f"list of (family, columns) pairs; got {type(spec).__name__}"
            )
        from ..families.product import Product

        parts = []
        for i, pair in enumerate(pairs):
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
                raise InputError(f"part {i} of family must be a (family, columns) pair; got {pair!r}")
            fam, cols = pair
            if isinstance(fam, str):
                if fam not in FAMILY_NAMES:
                    raise InputError(f"part {i}: unknown family {fam!r}; choose one of {FAMILY_NAMES}")
                fam = self._named_family(fam, options.get(fam))
            parts.append((fam, cols))
        unused = set(options) - {f for f, _ in pairs if isinstance(f, str)}
        if unused:
            raise InputError(
                f"family_options for a product are keyed by family name; {sorted(unused)} "
                "name no part"
            )
        return Product(parts)

    def _select_columns(self, family, names, D):
        """``(columns, family)``: positions in X the model reads, and the family with
        a product's columns renumbered to positions in that selection."""
        from ..families.product import Product

        def position(c):
            if isinstance(c, str):
                if names is None:
                    raise InputError(f"columns names {c!r}, but X has no column names")
                where = np.flatnonzero(np.asarray(names) == c)
                if not len(where):
                    raise InputError(f"columns names {c!r}, which X does not have; its columns are {list(names)}")
                return int(where[0])
            if isinstance(c, (int, np.integer)) and not isinstance(c, bool) and 0 <= int(c) < D:
                return int(c)
            raise InputError(f"columns must hold names or positions in 0..{D - 1}; got {c!r}")

        if self.columns is not None:
            cols = [position(c) for c in np.atleast_1d(np.asarray(self.columns, dtype=object))]
            if len(set(cols)) != len(cols):
                raise InputError(f"columns repeats a column: {list(self.columns)}")
        else:
            cols = None
        if isinstance(family, Product):
            fam = family.resolve(names, D)
            used = sorted(set(fam.columns))
            if cols is not None:
                missing = sorted(set(used) - set(cols))
                extra = sorted(set(cols) - set(used))
                if missing or extra:
                    raise InputError(
                        "columns and the product's parts disagree: "
                        + (f"columns {missing} are in a part but not in columns; " if missing else "")
                        + (f"columns {extra} are in no part" if extra else "")
                    )
            cols = used
            fam = fam.relabel({c: j for j, c in enumerate(cols)})
            return np.asarray(cols, dtype=np.intp), fam
        if cols is None:
            cols = list(range(D))
        return np.asarray(cols, dtype=np.intp), family

    # ------------------------------------------------------------------ fitting
    def _fit(self, X, sample_weight):
        self._check_parameters()
        if self._is_delegated_gaussian():
            return self._fit_gaussian(X, sample_weight)
        K = self.n_components
        family = self._make_family()
        # A path or emix.data Source is read in blocks (see emix.data).
        backend = resolve_data_backend(X, self.device)
        # A source or Dask array is read with NaN as a missing value too (emix.data).
        with allow_nan(self.missing == "em"):
            Xv, names = backend.validate(X, name="X")
        N, D_in = Xv.shape
        cols, family = self._select_columns(family, names, D_in)
        Xs = take_columns(Xv, cols, D_in)
        D = len(cols)
        labels = column_labels(names, cols)
        any_missing = False
        if self.missing == "em":
            if hasattr(backend, "check_missing"):  # found in a pass over the blocks
                info = backend.check_missing(Xs, name="X", column_names=labels)
            else:
                info = check_missing(Xs, self.missing, name="X", column_names=labels)
            any_missing = info.any_missing
            if info.any_all_missing:
                # Rows with no observed value carry no information about anything.
                keep = np.flatnonzero(~info.all_missing)
                if is_streaming(Xs):
                    Xs = backend.drop_rows(Xs, info.all_missing)
                else:
                    Xs = _take_rows(Xs, keep)
                if sample_weight is not None:
                    sample_weight = np.asarray(backend.to_numpy(sample_weight)).reshape(-1)
                    if sample_weight.shape[0] == N:
                        sample_weight = sample_weight[keep]
                N = Xs.shape[0]
        w = self._checked_weights(backend, sample_weight, N, K)
        if is_streaming(Xs):
            X_host = None
            check_support_blocks(backend, Xs, family, labels)
        else:
            X_host = np.asarray(backend.to_numpy(Xs), dtype=np.float64)
            family.check_support(_zero_missing(X_host) if any_missing else X_host, labels)
        w_dev = None if w is None else backend.asarray_like(w, Xs)
        if any_missing and X_host is not None:
            summary = observed_summary(X_host, w)
        else:  # blocks: over each column's observed values (emix.data._stream)
            summary = backend.column_summary(Xs, w_dev)
        fam = family.bind(summary, D)
        w_init = None if self.weights_init is None else check_weights_init(self.weights_init, K)
        p_init = None
        if self.params_init is not None:
            p_init = fam.validate_params(dict(self.params_init), K)

        problem = _FamilyProblem(backend, Xs, w_dev, fam, K, self.block_size,
                                 missing=any_missing)
        warm = (
            self.warm_start
            and hasattr(self, "_params")
            and getattr(self, "_columns_used", None) is not None
            and len(self._columns_used) == D
            and getattr(self, "family_", None) is not None
            and type(self.family_) is type(fam)
        )
        rng = as_generator(self.random_state)
        n_init = 1 if warm else self.n_init
        dtype = backend.numpy_dtype(Xs)

        def initial(i):
            if warm:
                return self._params
            if w_init is not None and p_init is not None:
                return (w_init, p_init)
            weights, fp = self._initial_params(problem, X_host, summary, w, rng)
            return (w_init if w_init is not None else weights, p_init if p_init is not None else fp)

        result = self._run_em(
            problem, initial, n_init=n_init, dtype=dtype, warm=warm,
            # A family with a regularisation gap may lower the likelihood a little.
            exact=getattr(fam, "reg_gap", None) is None,
        )
        (weights, fp), issues = result.params, list(result.issues)
        if self.label_order is not None:
            perm = self._canonical_order(fam, weights, fp)
            weights, fp = weights[perm], permute_params(fp, perm, fam.shared_param_names)
            inv = np.empty_like(perm)
            inv[perm] = np.arange(len(perm))
            issues = [
                _COMPONENT.sub(lambda m: f"component {int(inv[int(m.group(1))])}", msg)
                for msg in issues
            ]
        self.family_ = fam
        # The data summary the family was bound with (a Gaussian part's frame comes from
        # it): saving it lets a loaded model rebuild the identical bound family.
        self._summary = {
            k: (np.asarray(summary[k], dtype=np.float64) if k != "n" else int(summary[k]))
            for k in ("mean", "var", "min", "max", "n")
        }
        self._columns_used = cols
        self._dtype = np.dtype(dtype)
        self._store(weights, fp)
        self._set_feature_names(names)
        self.n_features_in_ = D_in
        self.columns_ = cols
        self._record_run(result)
        self._issues = tuple(issues)
        self._warn_issues(issues, [int(m) for msg in issues for m in _COMPONENT.findall(msg)])
        return self

    # ------------------------------------------------------------------ stepwise EM
    def _partial_fit(self, X, sample_weight, step_alpha, step_offset, *, warn: bool):
        if self._is_delegated_gaussian():
            self._check_parameters()
            return self._partial_fit_gaussian(X, sample_weight, step_alpha, step_offset, warn=warn)
        return super()._partial_fit(X, sample_weight, step_alpha, step_offset, warn=warn)

    def _partial_fit_gaussian(self, X, sample_weight, step_alpha, step_offset, *, warn=True):
        """``family='gaussian'``: the step runs on ``gaussian_mixture_``."""
        from .mixture import GaussianMixture

        backend = resolve_backend(X, self.device)
        Xv, names = backend.validate(X, name="X")
        N, D_in = Xv.shape
        cols, _ = self._select_columns(None, names, D_in)
        Xs = take_columns(Xv, cols, D_in)
        gm = getattr(self, "gaussian_mixture_", None) if hasattr(self, "_stepwise") else None
        if not isinstance(gm, GaussianMixture):
            gm = GaussianMixture(**self._gaussian_kwargs())
        gm._partial_fit(Xs, sample_weight, step_alpha, step_offset, warn=warn)
        self._stepwise = gm._stepwise
        self._adopt_gaussian(gm, cols, names, D_in)
        for attr in ("n_batches_seen_", "step_size_"):
            setattr(self, attr, getattr(gm, attr))

    def _stepwise_batch(self, X, sample_weight, first: bool):
        """``(problem, params, info)`` for one mini-batch (see ``partial_fit``).

        The first batch fixes the columns and binds the family to its summary."""
        backend = resolve_backend(X, self.device)
        K = self.n_components
        em = self.missing == "em"
        if first:
            family = self._make_family()
            with allow_nan(em):
                Xv, names = backend.validate(X, name="X")
            D_in = Xv.shape[1]
            cols, family = self._select_columns(family, names, D_in)
            labels = column_labels(names, cols)
        else:
            D_in = self.n_features_in_
            with allow_nan(em):
                Xv, names = backend.validate(
                    X, name="X", n_features=D_in, allow_1d=(D_in == 1),
                    estimator_name=type(self).__name__,
                )
            self._check_feature_names(names)
            cols, family = self._columns_used, self.family_
            labels = column_labels(getattr(self, "feature_names_in_", None), cols)
        Xs = take_columns(Xv, cols, D_in)
        any_missing = False
        if em:
            # Per batch, silently: a stream of batches would otherwise warn on each.
            info = check_missing(Xs, "em", name="X", column_names=labels, fitting=False)
            any_missing = info.any_missing
            if info.any_all_missing:
                keep = np.flatnonzero(~info.all_missing)
                if sample_weight is not None:
                    sample_weight = np.asarray(backend.to_numpy(sample_weight)).reshape(-1)
                    if sample_weight.shape[0] == Xs.shape[0]:
                        sample_weight = sample_weight[keep]
                Xs = _take_rows(Xs, keep)
        N, D = Xs.shape
        w = self._checked_weights(backend, sample_weight, N, K if first else 1)
        X_host = np.asarray(backend.to_numpy(Xs), dtype=np.float64)
        family.check_support(_zero_missing(X_host) if any_missing else X_host, labels)
        w_dev = None if w is None else backend.asarray_like(w, Xs)
        summary = None
        if first:
            if any_missing:
                empty = np.flatnonzero(np.isnan(X_host).all(axis=0))
                if empty.size:
                    j = int(empty[0])
                    raise InputError(
                        f"column {labels[j] if labels is not None else j} has no observed "
                        "value in the first batch: nothing can be estimated for it yet"
                    )
                summary = observed_summary(X_host, w)
            else:
                summary = backend.column_summary(Xs, w_dev)
            family = family.bind(summary, D)
        problem = _FamilyProblem(backend, Xs, w_dev, family, K, self.block_size,
                                 missing=any_missing)
        if first:
            w_init = None if self.weights_init is None else check_weights_init(self.weights_init, K)
            p_init = None
            if self.params_init is not None:
                p_init = family.validate_params(dict(self.params_init), K)
            if w_init is not None and p_init is not None:
                params = (w_init, p_init)
            else:
                rng = as_generator(self.random_state)
                weights, fp = self._initial_params(problem, X_host, summary, w, rng)
                params = (w_init if w_init is not None else weights, p_init if p_init is not None else fp)
        else:
            params = self._params
        info = {"first": first, "names": names, "D_in": D_in, "cols": cols, "family": family,
                "summary": summary, "dtype": backend.numpy_dtype(Xs)}
        return problem, params, info

    def _stepwise_store(self, params, issues, info, *, warn: bool) -> None:
        if info["first"]:
            summary = info["summary"]
            self.family_ = info["family"]
            self._summary = {
                k: (np.asarray(summary[k], dtype=np.float64) if k != "n" else int(summary[k]))
                for k in ("mean", "var", "min", "max", "n")
            }
            self._columns_used = info["cols"]
            self._dtype = np.dtype(info["dtype"])
            self._set_feature_names(info["names"])
            self.n_features_in_ = info["D_in"]
            self.columns_ = info["cols"]
        # Labels stay in EM's order: the running statistics are per component.
        self._store(*params)
        self._issues = tuple(issues)
        if warn:
            self._warn_issues(*self._stepwise_issue_report())
        else:
            self.degenerate_ = bool(issues)
            self.degenerate_components_ = np.unique(np.asarray(
                self._stepwise_issue_report()[1], dtype=np.intp))

    def _stepwise_issue_report(self):
        if getattr(self, "family_", None) is None and hasattr(self, "gaussian_mixture_"):
            return self.gaussian_mixture_._stepwise_issue_report()
        issues = list(self._issues)
        return issues, [int(m) for msg in issues for m in _COMPONENT.findall(msg)]

    def _canonical_order(self, fam, weights, fp) -> np.ndarray:
        keys = [np.asarray(k, dtype=np.float64) for k in fam.canonical_keys(fp)]
        # np.lexsort sorts by its last key first.
        keys = keys[::-1]
        if self.label_order == "weight":
            keys.append(-np.asarray(weights))
        return np.lexsort(keys)

    def _initial_params(self, problem, X_host, summary, w, rng):
        """``(weights, params)`` from one M-step on starting responsibilities."""
        K = self.n_components
        method = self.init_params
        stats = starting_stats(problem, X_host, summary, w, rng, method, K)
        empty = empty_components(stats.nk, stats.weight_sum)
        if len(empty):
            raise InputError(
                f"component {int(empty[0])} starts empty: X has fewer than n_components={K} "
                "distinct rows (with positive weight) for this start; use fewer components "
                "or init_params='random'"
            )
        fp, _ = problem.family.m_step(stats, None)
        return stats.nk / stats.weight_sum, fp

    def _store(self, weights, fp):
        from ..families.product import Product

        self._params = (np.asarray(weights, dtype=np.float64), {k: np.asarray(v, dtype=np.float64) for k, v in fp.items()})
        dt = self._dtype
        self.weights_ = self._params[0].astype(dt)
        fam = self.family_
        if isinstance(fam, Product):
            self.params_ = {
                label: {k: v.astype(dt) for k, v in part.items()}
                for label, part in fam.nested(self._params[1]).items()
            }
        else:
            self.params_ = {k: v.astype(dt) for k, v in self._params[1].items()}
            for k, v in self.params_.items():
                setattr(self, f"{k}_", v)

    def _current_params(self):
        """``(weights, params)`` from the public attributes, so that edits are honoured."""
        from ..families.product import Product

        fam = self.family_
        weights = np.asarray(self.weights_, dtype=np.float64)
        if isinstance(fam, Product):
            fp = fam.flatten(self.params_)
        else:
            fp = {k: getattr(self, f"{k}_") for k in fam.param_names}
        return weights, {k: np.asarray(v, dtype=np.float64) for k, v in fp.items()}

    def save(self, path) -> None:
        """Write the fitted model to ``path`` (see :mod:`emix.io`; read it back with
        :func:`emix.load`). A ``family='gaussian'`` fit is saved through its
        ``gaussian_mixture_``."""
        from ..io import save

        save(self, path)

    # ------------------------------------------------------------------ Gaussian
    def _gaussian_kwargs(self) -> dict:
        options = dict(self.family_options or {})
        allowed = {"reg_covar", "verbose_interval"}
        unknown = sorted(set(options) - allowed)
        if unknown:
            raise InputError(
                f"family_options for 'gaussian' may set {sorted(allowed)}; got {unknown}"
            )
        if self.params_init is not None:
            unknown = sorted(set(self.params_init) - {"means", "precisions"})
            if unknown:
                raise InputError(
                    f"params_init for 'gaussian' takes 'means' and 'precisions'; got {unknown}"
                )
        p = self.params_init or {}
        return dict(
            n_components=self.n_components,
            covariance_type=self.covariance_type,
            tol=self.tol,
            max_iter=self.max_iter,
            n_init=self.n_init,
            init_params=self.init_params,
            weights_init=self.weights_init,
            means_init=p.get("means"),
            precisions_init=p.get("precisions"),
            random_state=self.random_state,
            warm_start=self.warm_start,
            verbose=self.verbose,
            block_size=self.block_size,
            device=self.device,
            callback=self.callback,
            label_order=self.label_order,
            **self._gaussian_missing_kwarg(),
            **options,
        )

    def _gaussian_missing_kwarg(self) -> dict:
        """``{"missing": ...}`` when GaussianMixture takes the keyword."""
        from .mixture import GaussianMixture

        if "missing" in inspect.signature(GaussianMixture.__init__).parameters:
            return {"missing": self.missing}
        return {}

    def _fit_gaussian(self, X, sample_weight):
        from .mixture import GaussianMixture

        backend = resolve_data_backend(X, self.device)
        with allow_nan(bool(self._gaussian_missing_kwarg()) and self.missing == "em"):
            Xv, names = backend.validate(X, name="X")
        N, D_in = Xv.shape
        cols, _ = self._select_columns(None, names, D_in)
        Xs = take_columns(Xv, cols, D_in)
        kw = self._gaussian_kwargs()
        gm = getattr(self, "gaussian_mixture_", None)
        if self.warm_start and isinstance(gm, GaussianMixture):
            gm.set_params(**kw)
        else:
            gm = GaussianMixture(**kw)
        gm.fit(Xs, sample_weight=sample_weight)
        self._adopt_gaussian(gm, cols, names, D_in)
        return self

    def _adopt_gaussian(self, gm, cols, names, D_in) -> None:
        """Take a fitted ``gaussian_mixture_``'s attributes as this model's."""
        self.gaussian_mixture_ = gm
        for attr in _GAUSSIAN_ATTRS:
            setattr(self, attr, getattr(gm, attr))
        self.params_ = {"means": gm.means_, "covariances": gm.covariances_}
        self.family_ = None
        self._columns_used = cols
        self._dtype = np.dtype(gm._dtype)
        self._set_feature_names(names)
        self.n_features_in_ = D_in
        self.columns_ = cols
        self._issues = tuple(gm._issue_messages())

    # ------------------------------------------------------------------ prediction
    def _missing_mode(self) -> str:
        # Models saved before missing values existed have no ``missing`` attribute.
        return getattr(self, "missing", "error")

    def _prepare(self, X, method, *, with_mask: bool = False):
        """X validated, its used columns taken, and checked against the support.

        Returns ``(backend, Xs)``, and with ``with_mask`` also whether Xs has NaN.
        """
        self._check_is_fitted(method)
        backend = resolve_backend(X, self.device)
        D = self.n_features_in_
        em = self._missing_mode() == "em"
        with allow_nan(em):
            Xv, names = backend.validate(
                X, name="X", n_features=D, allow_1d=(D == 1), estimator_name=type(self).__name__
            )
        self._check_feature_names(names)
        cols = self._columns_used
        Xs = take_columns(Xv, cols, D)
        fitted_names = getattr(self, "feature_names_in_", None)
        any_missing = False
        if em:
            any_missing = check_missing(
                Xs, "em", name="X", column_names=column_labels(fitted_names, cols), fitting=False
            ).any_missing
        if self.family_ is not None:
            X_host = np.asarray(backend.to_numpy(Xs), dtype=np.float64)
            self.family_.check_support(
                _zero_missing(X_host) if any_missing else X_host,
                column_labels(fitted_names, cols),
            )
        if with_mask:
            return backend, Xs, any_missing
        return backend, Xs

    def _log_joint(self, X, method) -> np.ndarray:
        """``log w_k + log p(x | k)`` of every row, shape (N, K), on the host (a row with
        missing cells: of its observed cells; with none: ``log w_k``)."""
        backend, Xs, any_missing = self._prepare(X, method, with_mask=True)
        if self.family_ is None:  # a Gaussian fit held by gaussian_mixture_
            return self.gaussian_mixture_._log_joint(Xs, method)
        weights, fp = self._current_params()
        kernel = LogJointKernel(self.family_, fp, weights, missing=any_missing)
        L = backend.map_rows(Xs, kernel, block_size=self.block_size, width=self.family_.feature_width())
        return np.asarray(backend.to_numpy(L), dtype=np.float64)

    def _delegated(self, method: str) -> bool:
        """Whether this fitted model is a Gaussian fit held by ``gaussian_mixture_``."""
        self._check_is_fitted(method)
        return self.family_ is None

    def sample(self, n_samples: int = 1):
        """Draw rows from the fitted mixture.

        Returns
        -------
        X : ndarray of shape (n_samples, D_used)
            Columns in the order of ``columns_``.
        y : ndarray of shape (n_samples,), the component of each row
        """
        self._check_is_fitted("sample")
        if self._delegated("sample"):
            return self.gaussian_mixture_.sample(n_samples)
        rng = as_generator(self.random_state)
        weights, fp = self._current_params()
        counts = self._draw_counts(n_samples, weights, rng)
        D = len(self._columns_used)
        parts = [
            np.asarray(self.family_.sample(fp, k, int(n), rng), dtype=np.float64).reshape(int(n), D)
            for k, n in enumerate(counts)
        ]
        X = np.vstack(parts).astype(self._dtype, copy=False)
        y = np.repeat(np.arange(len(counts)), counts)
        return X, y

    def impute(self, X, n_draws=None, random_state=None):
        """Fill the missing values (NaN) of X from the fitted mixture.

        Parameters
        ----------
        X : array-like of shape (N, n_features_in_) or (N,), DataFrame or tensor
            In memory (not a path, source or Dask array).
        n_draws : int, optional
            None: the conditional mean ``sum_k r_k(x_obs) E[x_miss | x_obs, k]``, with
            ``r_k(x_obs)`` the responsibilities given the observed cells. ``m``: ``m``
            multiple imputations, each row's component drawn from its responsibilities
            and its missing cells from that component's conditional distribution.
        random_state : int, numpy Generator or RandomState, optional
            For the draws (default: the model's ``random_state``).

        Returns
        -------
        ndarray of shape (N, n_features_in_), or (n_draws, N, n_features_in_)
            Observed cells unchanged; the missing cells of the columns the model reads
            (``columns_``) filled; other columns as given. A row with no observed value
            gets the mixture's mean (draws: a draw from the mixture). Categorical codes
            are filled with their conditional mean code (draws are codes).
        """
        self._check_is_fitted("impute")
        _refuse_blocks(X, "MixtureModel.impute")
        if self._delegated("impute"):
            return self.gaussian_mixture_.impute(X, n_draws=n_draws, random_state=random_state)
        L = self._log_joint(X, "impute")
        backend = resolve_backend(X, self.device)
        D = self.n_features_in_
        with allow_nan(True):
            Xv, _ = backend.validate(X, name="X", n_features=D, allow_1d=(D == 1),
                                     estimator_name=type(self).__name__)
        X_all = np.array(backend.to_numpy(Xv), dtype=np.float64)
        _, fp = self._current_params()
        resp = np.exp(L - logsumexp_rows(L)[:, None])
        return impute_columns(self.family_, fp, X_all, self._columns_used, resp, n_draws,
                              self.random_state if random_state is None else random_state,
                              self._dtype)

    # ------------------------------------------------------------------ selection
    def _n_parameters(self) -> int:
        if self._delegated("_n_parameters"):
            return self.gaussian_mixture_._n_parameters()
        K = self.n_components
        return int(self.family_.n_parameters(K)) + K - 1


def impute_columns(family, fp, X_all, cols, weights, n_draws, random_state, dtype,
                   draw_states=None):
    """Missing cells of the used columns filled given each row's latent-class weights.

    Parameters
    ----------
    family : bound Family
    fp : dict, the family's parameters
    X_all : ndarray of shape (N, D_in), float64 with NaN
    cols : ndarray of int of shape (D,), the columns the family reads
    weights : ndarray of shape (N, K)
        ``p(z_n = k | data)``: a mixture's responsibilities or an HMM's smoothed
        state probabilities.
    n_draws : int or None
    random_state : seed for the draws
    dtype : the output's dtype
    draw_states : callable ``(rng, n_draws) -> ndarray of int of shape (n_draws, N)``,
        optional
        Draws every row's latent class jointly (an HMM's state paths); by default each
        row's is drawn independently from ``weights``.

    Returns
    -------
    ndarray of shape (N, D_in) or (n_draws, N, D_in)
    """
    from .._validation import check_int

    Xu = X_all[:, cols]
    O = ~np.isnan(Xu)
    if n_draws is None:
        cm = family.conditional_means(fp, Xu, O)  # (K, N, D)
        filled = np.einsum("nk,knd->nd", weights, cm)
        out = X_all.copy()
        # Exactly the observed values (a weighted sum of copies rounds).
        out[:, cols] = np.where(O, Xu, filled)
        return out.astype(dtype, copy=False)
    n_draws = check_int(n_draws, "n_draws", low=1)
    rng = as_generator(random_state)
    cum = np.cumsum(weights, axis=1)
    cum /= cum[:, -1:]
    N = weights.shape[0]
    if draw_states is not None:
        z = np.asarray(draw_states(rng, n_draws)).reshape(-1)
    else:
        u = rng.random((n_draws, N))
        z = np.minimum((u[:, :, None] > cum[None]).sum(axis=2), weights.shape[1] - 1).reshape(-1)
    # All imputations in one call: the rows repeated n_draws times.
    drawn = family.conditional_draw(fp, np.tile(Xu, (n_draws, 1)), np.tile(O, (n_draws, 1)), z, rng)
    outs = np.repeat(X_all[None], n_draws, axis=0)
    outs[:, :, cols] = drawn.reshape(n_draws, N, -1)
    return outs.astype(dtype, copy=False)


def observed_summary(X: np.ndarray, w: np.ndarray | None) -> dict:
    """The column summary of data with missing cells, from the observed values.

    Parameters
    ----------
    X : ndarray of shape (N, D), float64, NaN where missing
    w : ndarray of shape (N,) or None, sample weights

    Returns
    -------
    dict with ``mean``, ``var``, ``min``, ``max`` (each (D,), float64, over each column's
    observed values, weighted) and ``n`` (N)
    """
    O = ~np.isnan(X)
    W = O * (1.0 if w is None else np.asarray(w, dtype=np.float64)[:, None])
    tot = W.sum(axis=0)
    safe = np.where(tot > 0, tot, 1.0)
    Xz = np.where(O, X, 0.0)
    mean = (W * Xz).sum(axis=0) / safe
    var = (W * np.where(O, X - mean, 0.0) ** 2).sum(axis=0) / safe
    lo = np.where(O, X, np.inf).min(axis=0)
    hi = np.where(O, X, -np.inf).max(axis=0)
    return {"mean": mean, "var": var, "min": lo, "max": hi, "n": int(X.shape[0])}


def _refuse_blocks(X, what: str) -> None:
    """Imputation returns a filled copy of X, so X must be an in-memory array."""
    if is_source_like(X) or is_dask(X):
        raise InputError(
            f"{what} fills an array in memory; read the file or Dask array into memory "
            "first (e.g. numpy.load, pandas.read_csv, .compute()), or impute it in blocks"
        )


def _zero_missing(X: np.ndarray) -> np.ndarray:
    """X with NaN set to 0 (in every built-in family's support), for support checks."""
    return np.where(np.isnan(X), 0.0, X)


def _take_rows(X, idx):
    """Rows ``idx`` of an in-memory X (NumPy array or tensor), on its device."""
    from .._missing import take

    return take(X, idx)


def take_columns(Xv, cols, D: int):
    """The columns ``cols`` of X (N, D) that a model reads (X itself when it reads all)."""
    if len(cols) == D and np.array_equal(cols, np.arange(D)):
        return Xv
    return Xv[:, cols.tolist()]


def column_labels(names, cols):
    """Names of the used columns for messages: DataFrame names, X's positions, or None
    when every column is used in order (messages then say 'column j')."""
    if names is not None:
        return np.asarray(names, dtype=object)[cols]
    if np.array_equal(cols, np.arange(len(cols))):
        return None
    return np.asarray([int(c) for c in cols], dtype=object)


def starting_stats(problem, X_host, summary, w, rng, method: str, K: int):
    """Statistics of a start's responsibilities, for one M-step to turn into parameters.

    ``kmeans``/``k-means++``/``random_from_data`` give hard labels (distances on
    standardised columns, so that no column's units dominate); ``random`` soft ones.
    With ``X_host`` None (a source or a Dask array) the same seeded draws are made
    block by block (:func:`emix.data._stream.initial_family_stats`).

    Parameters
    ----------
    problem : an EM problem with ``given_resp_stats(resp)``
    X_host : ndarray of shape (N, D), float64, or None
    summary : dict, the data's column summary
    w : ndarray of shape (N,) or None
    rng : numpy Generator

    Returns
    -------
    MixtureStats
    """
    if X_host is None:
        return initial_family_stats(problem, summary, w, rng, method, K)
    N = X_host.shape[0]
    if method == "random":
        resp = rng.random((N, K))
        resp /= resp.sum(axis=1, keepdims=True)
        return problem.given_resp_stats(lambda a, b: resp[a:b])
    sd = np.sqrt(summary["var"])
    sd = np.where(sd > 0, sd, 1.0)
    Z = (X_host - summary["mean"]) / sd
    if np.isnan(Z).any():
        # Missing cells at their column's mean (0 in standardised units): the distances
        # then come from the observed cells, and the start needs nothing better.
        Z = np.where(np.isnan(Z), 0.0, Z)
    weights = np.ones(N) if w is None else w
    if method == "random_from_data":
        centers = Z[random_rows(weights, K, rng)]
    else:
        if N > KMEANS_MAX_ROWS:
            sub = np.sort(rng.choice(N, KMEANS_MAX_ROWS, replace=False))
        else:
            sub = np.arange(N)
        if method == "k-means++":
            centers = Z[sub][kmeans_plusplus(Z[sub], weights[sub], K, rng)]
        else:
            centers = kmeans(Z[sub], weights[sub], K, rng)
    labels, _ = nearest(Z, centers)
    eye = np.eye(K)
    return problem.given_resp_stats(lambda a, b: eye[labels[a:b]])
