"""Nonparametric bootstrap of a fitted mixture: standard errors and intervals.

Any fitted :class:`~emix.GaussianMixture` or :class:`~emix.MixtureModel` (every family,
products included) can be bootstrapped; the result names every parameter as the model
does (``weights``, ``means``, ``covariances``, ``rates``, ``probabilities``, ``df``...).

Each replicate resamples the rows of ``X`` with replacement. The resample is never
materialised: it is drawn as multinomial counts, one per row, and handed to ``fit`` as
``sample_weight`` (an integer weight equals repeating the row), so a replicate costs one
count vector of length N and no copy of ``X``.

Every replicate is refitted from the fitted parameters, so it converges to the optimum
next to the original one rather than to whichever optimum a fresh initialisation finds;
its components are then matched to the original ones by an optimal assignment, so that
"component 1" means the same thing in every replicate: by the Gaussians' symmetric KL
divergence for a GaussianMixture, and by the rows the components own (their agreement
in responsibilities on X) for every other family.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple

import numpy as np

from ._missing import take
from ._validation import check_int, check_sample_weight
from .backends import resolve_backend
from .em.init import as_generator
from .families.gaussian import (
    COVARIANCE_TYPES,
    covariance_shape,
    full_covariances,
    permute,
)
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
    """Bootstrap distribution of a mixture's parameters.

    ``K`` is the number of components and ``B`` the number of replicates that were used
    (``n_boot`` minus the failed ones). Every parameter has a name: ``weights`` (K,),
    then the family's parameters: ``means`` (K, D) and ``covariances`` for a
    :class:`~emix.GaussianMixture` (``(K, D, D)`` full, ``(D, D)`` tied, ``(K, D)``
    diag, ``(K,)`` spherical), ``rates`` (K, D) for Poisson and exponential,
    ``probabilities`` for Bernoulli, categorical and binomial, ``means``, ``scales`` and
    ``df`` for Student-t, ``"<part>.<name>"`` (e.g. ``"poisson.rates"``) for a part of
    a product. For every name ``p`` the result has ``p`` (the estimate),
    ``p_boot`` (B, *shape), ``p_se``, ``p_lower`` and ``p_upper`` (of the estimate's
    shape) as attributes where ``p`` is an identifier, and in the dicts ``estimates``,
    ``replicates``, ``se``, ``lower`` and ``upper`` always. Every array is float64 and
    read-only.

    Attributes
    ----------
    covariance_type : str or None
        The model's covariance type (None for a family without one).
    n_boot : int
        Replicates requested, failed ones included.
    level : float
        Coverage of the percentile intervals, e.g. 0.95.
    estimates : mapping of str -> ndarray
        The fitted model's parameters (the point estimates), ``weights`` first.
    replicates : mapping of str -> ndarray of shape (B, *shape)
        Every used replicate's parameters, components aligned with the estimates.
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
    family : str, default='gaussian'
        The component family's name, for the summary.
    column_labels : mapping of str -> tuple of str, optional
        For a parameter whose last axis runs over data columns, their labels.
    shared : tuple of str
        Parameters shared by every component, without a component axis (a tied
        covariance or scatter), listed under component ``'all'`` in the summary.
    se, lower, upper : mapping of str -> ndarray
        Bootstrap standard errors (standard deviation over replicates, ``ddof=1``) and
        percentile intervals (the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles
        of the replicates), each of the estimate's shape.
    """

    covariance_type: str | None
    n_boot: int
    level: float
    estimates: Mapping
    replicates: Mapping
    converged: np.ndarray
    permutations: np.ndarray
    failures: tuple = ()
    feature_names: tuple | None = None
    family: str = "gaussian"
    column_labels: Mapping | None = None
    shared: tuple = ()
    se: Mapping = field(init=False, repr=False)
    lower: Mapping = field(init=False, repr=False)
    upper: Mapping = field(init=False, repr=False)

    def __post_init__(self) -> None:
        _check_level(self.level)

        def locked(a, dtype=np.float64):
            a = np.array(a, dtype=dtype, copy=True)
            a.setflags(write=False)
            return a

        def put(name, value):
            object.__setattr__(self, name, value)

        if set(self.estimates) != set(self.replicates):
            raise ValueError(
                f"estimates and replicates must name the same parameters; got "
                f"{sorted(self.estimates)} and {sorted(self.replicates)}"
            )
        est = {k: locked(v) for k, v in self.estimates.items()}
        boot = {k: locked(self.replicates[k]) for k in est}
        put("estimates", MappingProxyType(est))
        put("replicates", MappingProxyType(boot))
        put("converged", locked(self.converged, bool))
        put("permutations", locked(self.permutations, np.intp))
        put("failures", tuple((int(i), str(r)) for i, r in self.failures))
        if self.feature_names is not None:
            put("feature_names", tuple(str(n) for n in self.feature_names))
        labels = {k: tuple(str(c) for c in v) for k, v in (self.column_labels or {}).items()}
        put("column_labels", MappingProxyType(labels))
        put("shared", tuple(str(n) for n in self.shared))
        B = boot["weights"].shape[0] if "weights" in boot else 0
        for name in est:
            if boot[name].shape != (B, *est[name].shape):
                raise ValueError(
                    f"{name}_boot must have shape {(B, *est[name].shape)}; got {boot[name].shape}"
                )
        if B < 2:
            raise ValueError(f"a standard error needs at least 2 replicates; got {B}")
        q = ((1.0 - self.level) / 2.0, (1.0 + self.level) / 2.0)
        se, lower, upper = {}, {}, {}
        for name in est:
            se[name] = locked(boot[name].std(axis=0, ddof=1))
            lo, hi = np.quantile(boot[name], q, axis=0)
            lower[name], upper[name] = locked(lo), locked(hi)
        put("se", MappingProxyType(se))
        put("lower", MappingProxyType(lower))
        put("upper", MappingProxyType(upper))

    def __getattr__(self, name):
        # Only reached when ordinary lookup fails: ``rates_se`` reads se["rates"].
        if name.startswith("__"):
            raise AttributeError(name)
        d = self.__dict__
        for suffix, key in (("_boot", "replicates"), ("_se", "se"), ("_lower", "lower"),
                            ("_upper", "upper")):
            if name.endswith(suffix) and name[: -len(suffix)] in d.get(key, {}):
                return d[key][name[: -len(suffix)]]
        if name in d.get("estimates", {}):
            return d["estimates"][name]
        raise AttributeError(
            f"{type(self).__name__} has no attribute {name!r}; its parameters are "
            f"{list(d.get('estimates', {}))}"
        )

    @property
    def parameter_names(self) -> tuple:
        """The names of the parameters, ``weights`` first."""
        return tuple(self.estimates)

    @property
    def n_replicates(self) -> int:
        """Replicates used (``B``): ``n_boot - n_failed``."""
        return int(self.replicates["weights"].shape[0])

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

    def _gaussian(self) -> bool:
        return self.family == "gaussian" and set(self.estimates) == {
            "weights", "means", "covariances"
        } and self.covariance_type in COVARIANCE_TYPES

    def summary(self) -> str:
        """A text table: component, parameter, estimate, standard error, interval.

        Full and tied covariances (and full Student-t scales) list the upper triangle
        only (the matrix is symmetric).

        Returns
        -------
        str
            The table and a few lines on replicates used, failed, relabelled and not
            converged; no trailing newline.
        """
        K = self.estimates["weights"].shape[0]
        if self._gaussian():
            labelled = [
                (comp, label, {"weight": "weights", "mean": "means"}.get(
                    label.split("[")[0], "covariances"), idx)
                for comp, label, idx in _parameter_labels(
                    self.covariance_type, K, self.estimates["means"].shape[1],
                    self.feature_names,
                )
            ]
        else:
            labelled = _generic_labels(self.estimates, self.column_labels, K, self.shared)
        rows = []
        for comp, label, name, idx in labelled:
            est, se = self.estimates[name], self.se[name]
            lo, hi = self.lower[name], self.upper[name]
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

        if self._gaussian():
            what = (f"{K}-component Gaussian mixture ({self.covariance_type} covariance)")
        else:
            cov = "" if self.covariance_type is None else f" ({self.covariance_type})"
            what = f"{K}-component {self.family} mixture{cov}"
        lines = [
            (
                f"Nonparametric bootstrap of a {what}: {self.n_replicates} of "
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


def _generic_labels(estimates, column_labels, K, shared=()):
    """``(component, label, name, index)`` for every table row of a non-Gaussian family."""

    def entries(c, name, est, lead):
        shape = est.shape[len(lead):]
        cols = column_labels.get(name)
        lab = (lambda j: cols[j]) if cols else str  # noqa: E731
        if not shape:
            return [(c, name, name, lead)]
        if len(shape) == 1:
            return [(c, f"{name}[{lab(j)}]", name, (*lead, j)) for j in range(shape[0])]
        if len(shape) == 2 and shape[0] == shape[1]:
            # A scatter matrix is symmetric: its upper triangle says it all.
            return [
                (c, f"{name}[{lab(a)},{lab(b)}]", name, (*lead, a, b))
                for a in range(shape[0]) for b in range(a, shape[1])
            ]
        return [
            (c, f"{name}[{','.join(map(str, i))}]", name, (*lead, *i)) for i in np.ndindex(*shape)
        ]

    out = []
    for k in range(K):
        out.append((str(k), "weight", "weights", (k,)))
        for name, est in estimates.items():
            if name != "weights" and name not in shared:
                out.extend(entries(str(k), name, est, (k,)))
    for name in shared:
        out.extend(entries("all", name, estimates[name], ()))
    return out


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
    s_ref = full_covariances(covariances_ref, covariance_type, K, D)
    s_new = full_covariances(covariances, covariance_type, K, D)
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

    params: dict | None = None  # name -> array, components aligned with the model's
    perm: np.ndarray | None = None
    converged: bool = False
    reason: str | None = None
    other_warnings: tuple = ()


def _fit_quietly(est, X, weights):
    """``(caught warnings, failure reason or None)`` of one refit."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            est.fit(X, sample_weight=weights)
        except (ValueError, ArithmeticError) as exc:
            # EmixError and LinAlgError are ValueErrors: data-driven failures of this
            # resample. Anything else (TypeError, MemoryError, ...) is a bug or an
            # environment problem and must not be counted as a bootstrap statistic.
            return list(caught), f"{type(exc).__name__}: {exc}"
    return list(caught), None


def _screen(caught, weights, params):
    """``(other warnings, failure reason or None)`` from a finished refit."""
    degenerate = [w for w in caught if issubclass(w.category, DegenerateComponentWarning)]
    if degenerate:
        return (), str(degenerate[0].message)
    # Non-convergence is read from converged_ and counted; the warning itself would be
    # repeated for every replicate.
    other = tuple(w for w in caught if not issubclass(w.category, ConvergenceWarning))
    if not all(np.all(np.isfinite(a)) for a in (weights, *params)):
        return other, "the refit produced non-finite parameters"
    if np.any(weights <= 0):
        k = int(np.flatnonzero(weights <= 0)[0])
        return other, f"component {k} is empty"
    return other, None


class _GaussianRefits:
    """Refits of a GaussianMixture, aligned by the Gaussians' symmetric KL divergence."""

    family = "gaussian"

    def __init__(self, model, Xv, max_iter, tol):
        self.model_type = type(model)
        self.X = Xv
        self.covariance_type = model.covariance_type
        # The public attributes are the documented interface (and what a user may have
        # edited), so a subclass that adjusts them is bootstrapped as it presents itself.
        self.ref = model._current_params()
        self.template = model.get_params(deep=False)
        self.template.update(
            n_init=1, warm_start=False, max_iter=max_iter, tol=tol, verbose=0, callback=None,
            random_state=None,
        )
        self.estimates = {
            "weights": self.ref.weights, "means": self.ref.means,
            "covariances": self.ref.covariances,
        }
        self.column_labels = None
        self.shared_names = ()
        self.start_from(self.estimates)

    def start_from(self, params: dict) -> None:
        self.start = dict(self.template)
        w = params["weights"]
        self.start.update(
            weights_init=w / w.sum(), means_init=params["means"],
            precisions_init=_precisions(params["covariances"], self.covariance_type),
        )

    def refit(self, weights) -> _Replicate:
        est = self.model_type(**self.start)
        caught, failed = _fit_quietly(est, self.X, weights)
        if failed:
            return _Replicate(reason=failed)
        p = est._current_params()
        other, failed = _screen(caught, p.weights, (p.means, p.covariances))
        if failed:
            return _Replicate(reason=failed, other_warnings=other)
        ref = self.ref
        try:
            perm = align_components(
                ref.means, ref.covariances, p.means, p.covariances, p.covariance_type
            )
        except InputError as exc:
            return _Replicate(reason=str(exc), other_warnings=other)
        p = permute(p, perm)
        return _Replicate(
            params={"weights": p.weights, "means": p.means, "covariances": p.covariances},
            perm=perm,
            converged=bool(est.converged_),
            other_warnings=other,
        )


class _FamilyRefits:
    """Refits of a MixtureModel of any family, aligned by the rows the components own.

    Replicate component ``j`` is matched to the model's component ``k`` by an optimal
    assignment maximising ``sum_n w_n r_nk r'_nj``: the (weighted) share of the data
    that both assign to the same component. It needs no distance between parameters, so
    it serves every family, products of families included, and tells apart components
    that differ only in spread as far as the data do.
    """

    def __init__(self, model, X, row_weights, max_iter, tol):
        from .families.product import Product

        fam = model.family_
        self.model_type = type(model)
        self.X = X
        self.family = fam.name if not isinstance(fam, Product) else "+".join(fam.labels)
        self.covariance_type = getattr(fam, "covariance_type", None)
        weights, fp = model._current_params()
        self.keys = list(fp)
        # A tied covariance has no component axis: it is not relabelled.
        self.shared = set(getattr(fam, "shared_param_names", ()))
        if isinstance(fam, Product):
            # Flat keys are "<part index>:<name>"; the part's label reads better.
            self.names = [
                f"{fam.labels[int(k.split(':', 1)[0])]}.{k.split(':', 1)[1]}" for k in self.keys
            ]
        else:
            self.names = list(self.keys)
        self.estimates = {"weights": weights, **{n: fp[k] for n, k in zip(self.names, self.keys)}}
        self.column_labels = _family_column_labels(model, fam, self.keys, self.names, fp)
        self.shared_names = tuple(n for n, k in zip(self.names, self.keys) if k in self.shared)
        self.template = model.get_params(deep=False)
        self.template.update(
            n_init=1, warm_start=False, max_iter=max_iter, tol=tol, verbose=0, callback=None,
            random_state=None, label_order=None,
        )
        R = model.predict_proba(X)
        self.R_ref = R if row_weights is None else R * row_weights[:, None]
        self.start_from(self.estimates)

    def start_from(self, params: dict) -> None:
        w = np.asarray(params["weights"], dtype=np.float64)
        self.start = dict(self.template)
        self.start.update(
            weights_init=w / w.sum(),
            params_init={k: params[n] for n, k in zip(self.names, self.keys)},
        )

    def refit(self, weights) -> _Replicate:
        from scipy.optimize import linear_sum_assignment

        est = self.model_type(**self.start)
        caught, failed = _fit_quietly(est, self.X, weights)
        if failed:
            return _Replicate(reason=failed)
        w, fp = est._current_params()
        other, failed = _screen(caught, w, tuple(fp.values()))
        if failed:
            return _Replicate(reason=failed, other_warnings=other)
        agreement = self.R_ref.T @ est.predict_proba(self.X)
        _, perm = linear_sum_assignment(-agreement)
        perm = perm.astype(np.intp)
        params = {"weights": w[perm]}
        params.update(
            {n: fp[k] if k in self.shared else fp[k][perm] for n, k in zip(self.names, self.keys)}
        )
        return _Replicate(
            params=params, perm=perm, converged=bool(est.converged_), other_warnings=other
        )


def _family_column_labels(model, fam, keys, names, fp) -> dict:
    """Labels of the data columns along the last axis of every parameter that has one."""
    from .families.product import Product

    all_names = getattr(model, "feature_names_in_", None)
    cols = [int(c) for c in model.columns_]
    label = (lambda c: str(all_names[c])) if all_names is not None else str  # noqa: E731
    out = {}
    for key, name in zip(keys, names):
        if isinstance(fam, Product):
            i = int(key.split(":", 1)[0])
            part, part_cols = fam.parts[i]
            used = [cols[int(c)] for c in part_cols]
        else:
            part, used = fam, cols
        a = fp[key]
        # Only where one entry per column is what the family stores (rates, means...).
        if a.ndim >= 2 and a.shape[-1] == len(used) == part.n_features:
            out[name] = tuple(label(c) for c in used)
    return out


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
    """Nonparametric bootstrap of a fitted :class:`~emix.GaussianMixture` or
    :class:`~emix.MixtureModel`.

    Each replicate resamples the rows of ``X`` with replacement, refits the mixture
    starting from the fitted parameters, and matches its components to the model's: with
    :func:`align_components` for a GaussianMixture; for a MixtureModel by the optimal
    assignment that maximises ``sum_n w_n r_nk r'_nj``, the share of X that the model's
    component ``k`` and the replicate's component ``j`` both own (it needs no distance
    between parameters, so it serves every family and product). The spread of the
    replicates gives standard errors and percentile intervals for every parameter:
    weights, means and covariances of a Gaussian mixture; weights and the family's
    parameters (``rates``, ``probabilities``, ``means``/``scales``/``df``, or
    ``"<part>.<name>"`` for a product) of a MixtureModel.

    Parameters
    ----------
    model : GaussianMixture or MixtureModel
        A fitted mixture. Its settings (family, ``covariance_type``, ``reg_covar``,
        ``device``, ...) are used for every refit; ``n_init`` is 1 and the start is the
        fitted parameters, so no randomness enters the refits. A MixtureModel with
        ``family='gaussian'`` is bootstrapped through its ``gaussian_mixture_``.
    X : array-like of shape (N, D) or (N,)
        The data the model was fitted on. 1-D input is one feature. With the model's
        ``missing='em'`` (the default) NaN is a missing value: every refit runs EM for
        incomplete data, and rows with every value missing are left out of the
        resampling (one :class:`~emix.MissingDataWarning`).
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
        If ``model`` is not a GaussianMixture or MixtureModel, ``n_boot < 2``,
        ``level`` is outside (0, 1), ``X`` has a different number of features from the
        model (or values outside its family's support), ``sample_weight`` does not have
        one non-negative weight per row, or ``max_iter``/``tol`` are invalid.
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
    from .models.mixture_model import MixtureModel

    if isinstance(model, MixtureModel):
        model._check_is_fitted("bootstrap")
        if model.family_ is None:
            # family='gaussian' is a GaussianMixture fit held by the model: bootstrap
            # that, on the columns it read.
            _, Xs = model._prepare(X, "bootstrap")
            return bootstrap(
                model.gaussian_mixture_, Xs, n_boot=n_boot, random_state=random_state,
                sample_weight=sample_weight, level=level, max_iter=max_iter, tol=tol,
            )
    elif not isinstance(model, GaussianMixture):
        raise InputError(
            f"bootstrap needs a fitted emix GaussianMixture or MixtureModel; got "
            f"{type(model).__name__}"
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
    # NaN is a missing value when the model says so (its refits then run EM for
    # incomplete data); rows with every value missing are no observation and are left
    # out of the resampling, with one warning (pointing at the caller of bootstrap:
    # check_missing, _validate_missing, bootstrap).
    Xv, names, info = model._validate_missing(
        backend, X, name="X", stacklevel=4, n_features=D, allow_1d=(D == 1),
        estimator_name=type(model).__name__,
    )
    model._check_feature_names(names)
    N = int(Xv.shape[0])
    sw = check_sample_weight(
        None if sample_weight is None else backend.to_numpy(sample_weight), N
    )
    if info is not None:
        if info.any_all_missing:
            keep = np.flatnonzero(~info.all_missing)
            Xv = take(Xv, keep)
            X = X.iloc[keep] if hasattr(X, "iloc") else Xv
            sw = None if sw is None else sw[keep]
            N = int(keep.size)
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

    if isinstance(model, GaussianMixture):
        refits = _GaussianRefits(model, Xv, max_iter, tol)
        feature_names = None if names is None else tuple(names)
    else:
        # The model reads its own columns (by name, for a DataFrame), so refits get X
        # as given.
        refits = _FamilyRefits(model, X, sw, max_iter, tol)
        feature_names = None

    # Refit on the data itself first: replicates start from this optimum (the model may
    # have stopped early at its own tol), and a large move means X is not the fitted data.
    center = refits.refit(sw)
    if center.params is None:
        raise EmixError(
            f"refitting the model on X from its own parameters failed ({center.reason}); "
            "X may not be the data the model was fitted on"
        )
    refits.start_from(center.params)

    other: dict = {}
    for w in center.other_warnings:
        other.setdefault(w.category, [0, str(w.message)])[0] += 1
    kept, perms, conv, failures = [], [], [], []
    for b in range(n_boot):
        counts = rng.multinomial(n_obs, probs).astype(np.float64)
        rep = refits.refit(counts)
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
        covariance_type=refits.covariance_type,
        n_boot=n_boot,
        level=level,
        estimates=refits.estimates,
        replicates={name: np.stack([p[name] for p in kept]) for name in refits.estimates},
        converged=np.asarray(conv, dtype=bool),
        permutations=np.stack(perms),
        failures=tuple(failures),
        feature_names=feature_names,
        family=refits.family,
        column_labels=refits.column_labels,
        shared=refits.shared_names,
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


def _warn_if_off_center(result: BootstrapResult, center: dict) -> None:
    """Warn when the model's parameters are far (in SEs) from the optimum of X."""
    worst, where = 0.0, ""
    for name, refitted in center.items():
        est, se = result.estimates[name], result.se[name]
        ok = se > 0
        if not np.any(ok):
            continue
        z = np.abs(np.asarray(refitted, dtype=np.float64) - est)[ok] / se[ok]
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
