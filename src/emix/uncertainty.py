"""Nonparametric bootstrap of a fitted Gaussian mixture: standard errors and intervals.

Each replicate resamples the rows of ``X`` with replacement. The resample is never
materialised: it is drawn as multinomial counts, one per row, and handed to ``fit`` as
``sample_weight`` (an integer weight equals repeating the row), so a replicate costs one
count vector of length N and no copy of ``X``.

Every replicate is refitted from the fitted parameters, so it converges to the optimum
next to the original one rather than to whichever optimum a fresh initialisation finds;
its components are then matched to the original ones by an optimal assignment, so that
"component 1" means the same thing in every replicate.
"""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from ._validation import check_int, check_sample_weight
from .backends import resolve_backend
from .em.init import as_generator
from .families.gaussian import COVARIANCE_TYPES, covariance_shape, permute
from .exceptions import (
    ConvergenceWarning,
    DegenerateComponentWarning,
    EmixError,
    InputError,
)
from .models.mixture import GaussianMixture

__all__ = ["BootstrapResult", "align_components", "bootstrap"]

# A larger share of failed replicates is worth a warning: the excluded replicates are the
# unusual resamples, so the survivors understate the spread.
_FAIL_WARN_SHARE = 0.05


# eq=False: the generated __eq__ would compare arrays with ``==`` and fail with "truth
# value of an array is ambiguous"; identity equality is the honest default.
@dataclass(frozen=True, eq=False)
class BootstrapResult:
    """Bootstrap distribution of a Gaussian mixture's parameters.

    ``K`` is the number of components, ``D`` the number of features and ``B`` the number
    of replicates that were used (``n_boot`` minus the failed ones). Covariance arrays
    have the fitted model's shape: ``(K, D, D)`` for ``'full'``, ``(D, D)`` for
    ``'tied'``, ``(K, D)`` for ``'diag'`` and ``(K,)`` for ``'spherical'``; written
    ``cov_shape`` below. Every array is float64 and read-only.

    Attributes
    ----------
    covariance_type : {'full', 'tied', 'diag', 'spherical'}
    n_boot : int
        Replicates requested, failed ones included.
    level : float
        Coverage of the percentile intervals, e.g. 0.95.
    weights : ndarray of shape (K,)
        The fitted model's weights (the point estimate).
    means : ndarray of shape (K, D)
        The fitted model's means.
    covariances : ndarray of shape cov_shape
        The fitted model's covariances.
    weights_boot : ndarray of shape (B, K)
        Weights of every used replicate, components aligned with ``weights``.
    means_boot : ndarray of shape (B, K, D)
        Means of every used replicate, aligned.
    covariances_boot : ndarray of shape (B, *cov_shape)
        Covariances of every used replicate, aligned.
    converged : ndarray of bool, shape (B,)
        Whether each used replicate's EM met its tolerance before ``max_iter``. Replicates
        that did not are kept (they sit between the fitted optimum and their own) but
        counted in ``n_not_converged``.
    permutations : ndarray of int, shape (B, K)
        ``permutations[b, k]`` is the component of replicate ``b``'s own fit that was
        matched to component ``k`` of the model.
    failures : tuple of (int, str)
        ``(replicate index, reason)`` for every replicate that was excluded.
    feature_names : tuple of str, optional
        Column names used to label the summary, when the model was fitted on a DataFrame.
    weights_se, means_se, covariances_se : ndarray
        Bootstrap standard errors (standard deviation over replicates, ``ddof=1``), of
        shapes (K,), (K, D) and cov_shape.
    weights_lower, weights_upper, means_lower, means_upper, covariances_lower, \
covariances_upper : ndarray
        Percentile intervals: the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles
        of the replicates, of the parameter's shape.
    """

    covariance_type: str
    n_boot: int
    level: float
    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    weights_boot: np.ndarray
    means_boot: np.ndarray
    covariances_boot: np.ndarray
    converged: np.ndarray
    permutations: np.ndarray
    failures: tuple = ()
    feature_names: tuple | None = None
    weights_se: np.ndarray = field(init=False, repr=False)
    means_se: np.ndarray = field(init=False, repr=False)
    covariances_se: np.ndarray = field(init=False, repr=False)
    weights_lower: np.ndarray = field(init=False, repr=False)
    weights_upper: np.ndarray = field(init=False, repr=False)
    means_lower: np.ndarray = field(init=False, repr=False)
    means_upper: np.ndarray = field(init=False, repr=False)
    covariances_lower: np.ndarray = field(init=False, repr=False)
    covariances_upper: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        _check_level(self.level)

        def locked(a, dtype=np.float64):
            a = np.array(a, dtype=dtype, copy=True)
            a.setflags(write=False)
            return a

        def put(name, value):
            object.__setattr__(self, name, value)

        for name in ("weights", "means", "covariances", "weights_boot", "means_boot",
                     "covariances_boot"):
            put(name, locked(getattr(self, name)))
        put("converged", locked(self.converged, bool))
        put("permutations", locked(self.permutations, np.intp))
        put("failures", tuple((int(i), str(r)) for i, r in self.failures))
        if self.feature_names is not None:
            put("feature_names", tuple(str(n) for n in self.feature_names))
        B = self.weights_boot.shape[0]
        for name in ("weights", "means", "covariances"):
            est, boot = getattr(self, name), getattr(self, f"{name}_boot")
            if boot.shape != (B, *est.shape):
                raise ValueError(
                    f"{name}_boot must have shape {(B, *est.shape)}; got {boot.shape}"
                )
        if B < 2:
            raise ValueError(f"a standard error needs at least 2 replicates; got {B}")
        q = ((1.0 - self.level) / 2.0, (1.0 + self.level) / 2.0)
        for name in ("weights", "means", "covariances"):
            boot = getattr(self, f"{name}_boot")
            put(f"{name}_se", locked(boot.std(axis=0, ddof=1)))
            lo, hi = np.quantile(boot, q, axis=0)
            put(f"{name}_lower", locked(lo))
            put(f"{name}_upper", locked(hi))

    @property
    def n_replicates(self) -> int:
        """Replicates used (``B``): ``n_boot - n_failed``."""
        return int(self.weights_boot.shape[0])

    @property
    def n_failed(self) -> int:
        """Replicates excluded because their refit failed; reasons in ``failures``."""
        return len(self.failures)

    @property
    def n_relabelled(self) -> int:
        """Used replicates whose components had to be reordered to match the model's."""
        identity = np.arange(self.permutations.shape[1])
        return int(np.count_nonzero(np.any(self.permutations != identity, axis=1)))

    @property
    def n_not_converged(self) -> int:
        """Used replicates whose EM stopped at ``max_iter`` before meeting its tolerance."""
        return int(np.count_nonzero(~self.converged))

    def summary(self) -> str:
        """A text table: component, parameter, estimate, standard error, interval.

        Full and tied covariances list the upper triangle only (the matrix is symmetric).

        Returns
        -------
        str
            The table and a few lines on replicates used, failed, relabelled and not
            converged; no trailing newline.
        """
        rows = []
        for comp, label, idx in _parameter_labels(
            self.covariance_type, self.means.shape[0], self.means.shape[1], self.feature_names
        ):
            name = label.split("[")[0]
            est = {"weight": self.weights, "mean": self.means}.get(name, self.covariances)
            se = {"weight": self.weights_se, "mean": self.means_se}.get(
                name, self.covariances_se
            )
            lo = {"weight": self.weights_lower, "mean": self.means_lower}.get(
                name, self.covariances_lower
            )
            hi = {"weight": self.weights_upper, "mean": self.means_upper}.get(
                name, self.covariances_upper
            )
            d = _decimals(float(se[idx]))
            rows.append((
                comp,
                label,
                f"{est[idx]:.{d}f}",
                f"{se[idx]:.{d}f}",
                f"[{lo[idx]:.{d}f}, {hi[idx]:.{d}f}]",
            ))
        header = ("component", "parameter", "estimate", "SE", f"{100 * self.level:g}% interval")
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]

        def line(cells):
            # Labels read best left-aligned, numbers right-aligned so the digits line up.
            left = [c.ljust(w) for c, w in zip(cells[:2], widths[:2])]
            right = [c.rjust(w) for c, w in zip(cells[2:], widths[2:])]
            return "  ".join(left + right).rstrip()

        lines = [
            (
                f"Nonparametric bootstrap of a {self.means.shape[0]}-component Gaussian "
                f"mixture ({self.covariance_type} covariance): {self.n_replicates} of "
                f"{self.n_boot} replicates used"
            ),
            line(header),
            *(line(r) for r in rows),
            "SE: standard deviation over replicates; interval: percentile.",
        ]
        if self.n_failed:
            # Reasons differ only in their numbers from one replicate to the next; the
            # first one says what went wrong, ``failures`` lists them all.
            lines.append(
                f"{self.n_failed} replicate(s) failed and were excluded (listed in "
                f"failures); the first: {self.failures[0][1]}"
            )
        if self.n_relabelled:
            lines.append(
                f"{self.n_relabelled} replicate(s) found the components in another order and "
                "were relabelled to match the model"
            )
        if self.n_not_converged:
            lines.append(
                f"{self.n_not_converged} replicate(s) stopped at max_iter before converging"
            )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def _parameter_labels(covariance_type, K, D, names):
    """``(component, label, index into the parameter's array)`` for every table row."""
    col = (lambda j: names[j]) if names is not None else (lambda j: str(j))
    out = []
    for k in range(K):
        c = str(k)
        out.append((c, "weight", (k,)))
        out.extend((c, f"mean[{col(j)}]", (k, j)) for j in range(D))
        if covariance_type == "full":
            out.extend(
                (c, f"cov[{col(a)},{col(b)}]", (k, a, b)) for a in range(D) for b in range(a, D)
            )
        elif covariance_type == "diag":
            out.extend((c, f"var[{col(j)}]", (k, j)) for j in range(D))
        elif covariance_type == "spherical":
            out.append((c, "var", (k,)))
    if covariance_type == "tied":
        out.extend(
            ("all", f"cov[{col(a)},{col(b)}]", (a, b)) for a in range(D) for b in range(a, D)
        )
    return out


def _decimals(se: float) -> int:
    # Digits beyond the standard error's third significant figure are noise; one number of
    # decimals per row keeps estimate, error and interval comparable.
    if not math.isfinite(se) or se <= 0.0:
        return 6
    return min(10, max(0, 2 - math.floor(math.log10(se))))


# --------------------------------------------------------------------------------------
# Label alignment
# --------------------------------------------------------------------------------------


def _full_covariances(cov, covariance_type: str, K: int, D: int) -> np.ndarray:
    """Any covariance layout as (K, D, D) matrices."""
    cov = np.asarray(cov, dtype=np.float64)
    if covariance_type == "full":
        return cov
    if covariance_type == "tied":
        return np.broadcast_to(cov, (K, D, D))
    if covariance_type == "diag":
        return cov[:, :, None] * np.eye(D)
    if covariance_type == "spherical":
        return cov[:, None, None] * np.eye(D)
    raise InputError(
        f"covariance_type must be 'full', 'tied', 'diag' or 'spherical'; got "
        f"{covariance_type!r}"
    )


def align_components(
    means_ref, covariances_ref, means, covariances, covariance_type: str = "full"
) -> np.ndarray:
    """Match the components of one fit to those of a reference fit.

    The cost of pairing reference component ``i`` with component ``j`` is the symmetric
    Kullback-Leibler (Jeffreys) divergence between the two Gaussians,

    ``0.5 * [tr(P_j S_i) + tr(P_i S_j) - 2 D + (m_i - m_j)^T (P_i + P_j) (m_i - m_j)]``

    (``S`` covariances, ``P`` their inverses), and the pairing minimises the total cost
    (:func:`scipy.optimize.linear_sum_assignment`). Unlike a distance between means, it
    tells apart components with nearly the same mean and different spreads (a narrow
    peak on a wide background); with tied covariances it reduces to the Mahalanobis
    distance between means.

    Parameters
    ----------
    means_ref : array-like of shape (K, D)
    covariances_ref : array-like
        Shape (K, D, D) full, (D, D) tied, (K, D) diag, (K,) spherical.
    means : array-like of shape (K, D)
        Means of the fit to be aligned.
    covariances : array-like
        Its covariances, in the same layout as ``covariances_ref``.
    covariance_type : {'full', 'tied', 'diag', 'spherical'}, default='full'

    Returns
    -------
    perm : ndarray of int, shape (K,)
        ``perm[k]`` is the component of the second fit matched to reference component
        ``k``, so ``means[perm]`` lines up with ``means_ref``. The identity when the
        components are already in the reference's order.

    Raises
    ------
    InputError
        If the shapes disagree, a covariance matrix is singular, or a value is not
        finite.
    """
    # scipy.optimize is a slow import that only the bootstrap needs.
    from scipy.optimize import linear_sum_assignment

    m_ref = np.asarray(means_ref, dtype=np.float64)
    m_new = np.asarray(means, dtype=np.float64)
    if m_ref.ndim != 2 or m_new.shape != m_ref.shape:
        raise InputError(
            f"means_ref and means must both have shape (K, D); got {m_ref.shape} and "
            f"{m_new.shape}"
        )
    K, D = m_ref.shape
    if covariance_type not in COVARIANCE_TYPES:
        raise InputError(
            f"covariance_type must be one of {COVARIANCE_TYPES}; got {covariance_type!r}"
        )
    # Checked before expanding: a wrong shape would otherwise fail inside NumPy.
    expected = covariance_shape(covariance_type, K, D)
    for cov in (covariances_ref, covariances):
        if np.shape(cov) != expected:
            raise InputError(
                f"covariances of shape {np.shape(cov)} do not match means of shape "
                f"({K}, {D}) for covariance_type={covariance_type!r}"
            )
    s_ref = _full_covariances(covariances_ref, covariance_type, K, D)
    s_new = _full_covariances(covariances, covariance_type, K, D)
    try:
        p_ref = np.linalg.inv(s_ref)
        p_new = np.linalg.inv(s_new)
    except np.linalg.LinAlgError:
        raise InputError(
            "a covariance matrix is singular; components cannot be aligned"
        ) from None
    trace = np.einsum("jab,iba->ij", p_new, s_ref) + np.einsum("iab,jba->ij", p_ref, s_new)
    diff = m_ref[:, None, :] - m_new[None, :, :]
    quad = np.einsum("ija,iab,ijb->ij", diff, p_ref, diff) + np.einsum(
        "ija,jab,ijb->ij", diff, p_new, diff
    )
    cost = 0.5 * (trace - 2 * D + quad)
    if not np.all(np.isfinite(cost)):
        raise InputError("parameters are not finite; components cannot be aligned")
    _, perm = linear_sum_assignment(cost)
    return perm.astype(np.intp)


# --------------------------------------------------------------------------------------
# The bootstrap
# --------------------------------------------------------------------------------------


def _check_level(level) -> float:
    number = isinstance(level, numbers.Real) and not isinstance(level, bool)
    if not number or not 0.0 < float(level) < 1.0:
        raise InputError(f"level must be a number strictly between 0 and 1; got {level!r}")
    return float(level)


class _Replicate(NamedTuple):
    """The outcome of one refit: aligned parameters, or the reason it was excluded."""

    params: tuple | None = None  # (weights, means, covariances), aligned
    perm: np.ndarray | None = None
    converged: bool = False
    reason: str | None = None
    other_warnings: tuple = ()


def _refit(template: dict, model_type, Xv, weights, ref) -> _Replicate:
    """Fit one replicate from the template's starting point and align it to ``ref``."""
    est = model_type(**template)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            est.fit(Xv, sample_weight=weights)
        except (ValueError, ArithmeticError) as exc:
            # EmixError and LinAlgError are ValueErrors: data-driven failures of this
            # resample. Anything else (TypeError, MemoryError, ...) is a bug or an
            # environment problem and must not be counted as a bootstrap statistic.
            return _Replicate(reason=f"{type(exc).__name__}: {exc}")
    degenerate = [w for w in caught if issubclass(w.category, DegenerateComponentWarning)]
    if degenerate:
        return _Replicate(reason=str(degenerate[0].message))
    # Non-convergence is read from converged_ and counted; the warning itself would be
    # repeated for every replicate.
    other = tuple(w for w in caught if not issubclass(w.category, ConvergenceWarning))
    p = est._current_params()
    if not (
        np.all(np.isfinite(p.weights)) and np.all(np.isfinite(p.means))
        and np.all(np.isfinite(p.covariances))
    ):
        return _Replicate(reason="the refit produced non-finite parameters", other_warnings=other)
    if np.any(p.weights <= 0):
        k = int(np.flatnonzero(p.weights <= 0)[0])
        return _Replicate(reason=f"component {k} is empty", other_warnings=other)
    try:
        perm = align_components(
            ref.means, ref.covariances, p.means, p.covariances, p.covariance_type
        )
    except InputError as exc:
        return _Replicate(reason=str(exc), other_warnings=other)
    p = permute(p, perm)
    return _Replicate(
        params=(p.weights, p.means, p.covariances),
        perm=perm,
        converged=bool(est.converged_),
        other_warnings=other,
    )


def bootstrap(
    model,
    X,
    *,
    n_boot: int = 200,
    random_state=None,
    sample_weight=None,
    level: float = 0.95,
    max_iter: int | None = None,
    tol: float | None = None,
) -> BootstrapResult:
    """Nonparametric bootstrap of a fitted :class:`~emix.GaussianMixture`.

    Each replicate resamples the rows of ``X`` with replacement, refits the mixture
    starting from the fitted parameters, and matches its components to the model's with
    :func:`align_components`. The spread of the replicates gives standard errors and
    percentile intervals for the weights, means and covariances.

    Parameters
    ----------
    model : GaussianMixture
        A fitted mixture. Its settings (``covariance_type``, ``reg_covar``, ``device``,
        ...) are used for every refit; ``n_init`` is 1 and the start is the fitted
        parameters, so no randomness enters the refits.
    X : array-like of shape (N, D) or (N,)
        The data the model was fitted on. 1-D input is one feature.
    n_boot : int, default=200
        Number of replicates, at least 2. The standard errors carry a Monte Carlo
        relative error of about ``1 / sqrt(2 * (n_boot - 1))`` (5% at 200); the tails of
        a 95% interval want 1000 or more.
    random_state : int, numpy Generator or RandomState, optional
        Seed for the resampling; the same seed gives the same result.
    sample_weight : array-like of shape (N,), optional
        The weights the model was fitted with. They are frequencies, as in ``fit``: a
        replicate draws ``round(sum(sample_weight))`` observations, row ``i`` with
        probability ``sample_weight[i] / sum(sample_weight)``, which is exactly the
        bootstrap of the data with every row repeated ``sample_weight[i]`` times.
        Weights scaled to sum to 1 would describe a single observation: scale them to
        the number of observations they stand for.
    level : float, default=0.95
        Coverage of the percentile intervals, strictly between 0 and 1.
    max_iter : int, optional
        EM iterations per replicate; default ``max(model.max_iter, 1000)``.
    tol : float, optional
        Convergence tolerance per replicate (change in mean log-likelihood per
        observation). Default ``min(model.tol, 1e-7 / n)`` with ``n`` observations,
        floored at the data type's round-off. A replicate's optimum lies only about
        ``1 / n`` in mean log-likelihood from the fitted one, so the model's own ``tol``
        (1e-3 by default) would stop replicates of overlapping mixtures after a step or
        two and understate the standard errors several-fold; ``1e-7 / n`` leaves each
        replicate within a few hundredths of a standard error of its optimum even where
        EM gains only 0.1% of the remaining distance per iteration.

    Returns
    -------
    BootstrapResult
        Replicate arrays, standard errors, percentile intervals and counts of failed,
        relabelled and non-converged replicates; ``summary()`` prints a table.

    Raises
    ------
    NotFittedError
        If ``model`` is not fitted.
    InputError
        If ``model`` is not a GaussianMixture, ``n_boot < 2``, ``level`` is outside (0,
        1), ``X`` has a different number of features from the model, ``sample_weight``
        does not have one non-negative weight per row, or ``max_iter``/``tol`` are
        invalid.
    EmixError
        If fewer than 2 replicates could be refitted (the message gives the reasons).

    Warns
    -----
    UserWarning
        When more than 5% of the replicates fail (the survivors then understate the
        spread), when any replicate stops before converging, or when the model's
        parameters are not at the optimum of ``X`` (``X`` is not the fitted data, or
        the fit stopped early), so that the intervals are centred elsewhere.

    Notes
    -----
    Replicates whose refit fails (an empty or collapsed component, too few distinct
    rows, a numerical error) are excluded and listed in ``BootstrapResult.failures``.
    Replicates that do not converge within ``max_iter`` are kept and counted.

    The refits run one after another: each already spreads its E-step over the CPU's
    cores, and the warnings of every refit are inspected, which Python's warning
    machinery allows only in one thread at a time.
    """
    if not isinstance(model, GaussianMixture):
        raise InputError(
            f"bootstrap needs a fitted emix GaussianMixture; got {type(model).__name__}"
        )
    model._check_is_fitted("bootstrap")
    n_boot = check_int(n_boot, "n_boot", low=2)
    level = _check_level(level)
    if max_iter is None:
        max_iter = max(int(model.max_iter), 1000)
    max_iter = check_int(max_iter, "max_iter", low=1)
    if tol is not None and (
        isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not 0 < float(tol) < math.inf
    ):
        raise InputError(f"tol must be a positive number; got {tol!r}")
    rng = as_generator(random_state)

    D = int(model.n_features_in_)
    backend = resolve_backend(X, model.device)
    Xv, names = backend.validate(
        X, name="X", n_features=D, allow_1d=(D == 1), estimator_name=type(model).__name__
    )
    model._check_feature_names(names)
    N = int(Xv.shape[0])
    sw = check_sample_weight(
        None if sample_weight is None else backend.to_numpy(sample_weight), N
    )
    if sw is None:
        n_obs, probs = N, np.full(N, 1.0 / N)
    else:
        n_obs = round(float(sw.sum()))
        if n_obs < 2:
            raise InputError(
                f"sample_weight sums to {sw.sum():.3g}: bootstrap reads weights as "
                "frequencies (an integer weight equals repeating the row), so this is "
                "fewer than 2 observations. Scale the weights to the number of "
                "observations they stand for."
            )
        probs = sw / sw.sum()

    dtype = np.dtype(backend.numpy_dtype(Xv))
    floor = 16 * np.finfo(dtype).eps * max(1.0, abs(float(model.lower_bound_)))
    if tol is None:
        tol = max(min(float(model.tol), 1e-7 / n_obs), floor)
    tol = float(tol)

    ct = model.covariance_type
    # The public attributes are the documented interface (and what a user may have
    # edited), so a subclass that adjusts them is bootstrapped as it presents itself.
    ref = model._current_params()
    template = model.get_params(deep=False)
    template.update(
        n_init=1, warm_start=False, max_iter=max_iter, tol=tol, verbose=0, callback=None,
        random_state=None,
    )
    start = dict(template)
    start.update(
        weights_init=ref.weights / ref.weights.sum(), means_init=ref.means,
        precisions_init=_precisions(ref.covariances, ct),
    )

    # Refit on the data itself first: replicates start from this optimum (the model may
    # have stopped early at its own tol), and a large move means X is not the fitted data.
    center = _refit(start, type(model), Xv, None if sw is None else sw, ref)
    if center.params is None:
        raise EmixError(
            f"refitting the model on X from its own parameters failed ({center.reason}); "
            "X may not be the data the model was fitted on"
        )
    cw, cm, cc = center.params
    start.update(
        weights_init=cw / cw.sum(), means_init=cm, precisions_init=_precisions(cc, ct)
    )

    other: dict = {}
    for w in center.other_warnings:
        other.setdefault(w.category, [0, str(w.message)])[0] += 1
    kept, perms, conv, failures = [], [], [], []
    for b in range(n_boot):
        counts = rng.multinomial(n_obs, probs).astype(np.float64)
        rep = _refit(start, type(model), Xv, counts, ref)
        for w in rep.other_warnings:
            other.setdefault(w.category, [0, str(w.message)])[0] += 1
        if rep.params is None:
            failures.append((b, rep.reason))
            continue
        kept.append(rep.params)
        perms.append(rep.perm)
        conv.append(rep.converged)

    for category, (count, message) in other.items():
        warnings.warn(
            f"{count} bootstrap refit(s) warned, the first: {message}", category, stacklevel=2
        )
    if len(kept) < 2:
        reasons = "; ".join(sorted({r for _, r in failures})[:3])
        raise EmixError(
            f"only {len(kept)} of {n_boot} bootstrap replicates could be refitted; "
            f"reasons: {reasons}"
        )
    if len(failures) > _FAIL_WARN_SHARE * n_boot:
        warnings.warn(
            f"{len(failures)} of {n_boot} bootstrap replicates failed and were excluded "
            f"(first reason: {failures[0][1]}); the excluded resamples are the unusual "
            "ones, so the standard errors and intervals understate the uncertainty. "
            "Consider fewer components or a larger reg_covar.",
            UserWarning,
            stacklevel=2,
        )
    n_not_conv = len(conv) - int(np.count_nonzero(conv))
    if n_not_conv:
        warnings.warn(
            f"{n_not_conv} of {len(kept)} bootstrap replicates reached max_iter={max_iter} "
            f"before converging (tol={tol:.3g}) and stopped short of their own optimum, "
            "which understates the spread; increase max_iter",
            UserWarning,
            stacklevel=2,
        )

    result = BootstrapResult(
        covariance_type=ct,
        n_boot=n_boot,
        level=level,
        weights=ref.weights,
        means=ref.means,
        covariances=ref.covariances,
        weights_boot=np.stack([p[0] for p in kept]),
        means_boot=np.stack([p[1] for p in kept]),
        covariances_boot=np.stack([p[2] for p in kept]),
        converged=np.asarray(conv, dtype=bool),
        permutations=np.stack(perms),
        failures=tuple(failures),
        feature_names=None if names is None else tuple(names),
    )
    _warn_if_off_center(result, center.params)
    return result


def _precisions(cov: np.ndarray, covariance_type: str) -> np.ndarray:
    """Inverse covariances in the same layout (``precisions_init`` for a refit)."""
    if covariance_type in ("diag", "spherical"):
        return 1.0 / cov
    p = np.linalg.inv(cov)
    # Symmetrise: inv leaves round-off asymmetry that the precisions_init check rejects.
    return 0.5 * (p + np.swapaxes(p, -1, -2))


def _warn_if_off_center(result: BootstrapResult, center) -> None:
    """Warn when the model's parameters are far (in SEs) from the optimum of X."""
    worst, where = 0.0, ""
    for name, refitted in zip(("weights", "means", "covariances"), center):
        est, se = getattr(result, name), getattr(result, f"{name}_se")
        ok = se > 0
        if not np.any(ok):
            continue
        z = np.abs(refitted - est)[ok] / se[ok]
        if z.max() > worst:
            worst, where = float(z.max()), name
    # Half a standard error: well beyond round-off and the tolerance of a converged fit,
    # well within what an early stop or different data produce.
    if worst > 0.5:
        warnings.warn(
            f"refitting the model on X moved its {where} by {worst:.2g} standard errors: "
            "X may not be the data the model was fitted on, or the fit stopped early "
            "(refit with a smaller tol). The intervals are centred on the refitted "
            "optimum, not on the model's estimate.",
            UserWarning,
            stacklevel=3,
        )
