"""Gaussian mixture components: parameters, additive statistics, E-step plan, M-step.

The four covariance types of scikit-learn are supported:

========== =============================== ================================
type       covariances                     precisions_cholesky
========== =============================== ================================
full       (K, D, D)                       (K, D, D), upper triangular
tied       (D, D)                          (D, D), upper triangular
diag       (K, D)                          (K, D)
spherical  (K,)                            (K,)
========== =============================== ================================

How the E-step becomes matrix products
--------------------------------------
A Gaussian log-density is linear in a fixed feature map of ``x``::

    log w_k + log N(x | mu_k, P_k^-1) = eta_k . T(x)

with ``T(x) = [vech(x x^T), x, 1]`` for ``full`` (``vech`` = the upper triangle, row by
row), ``[x*x, x, 1]`` for ``diag`` and ``[|x|^2, x, 1]`` for ``spherical``. For a block of
rows the feature matrix ``F`` (rows x features) is built once, the log-joint of every
component is the single product ``F @ eta`` and, after the soft-max, the sufficient
statistics of every component are the single product ``R^T @ F``. ``tied`` shares
``x^T P x`` between components, so it needs only ``[x, 1]`` plus one D x D product.

The data enter in a fixed affine *frame*: ``z = (x - center) / scale``. Centring keeps
the second moments from cancelling catastrophically; the scalar scale keeps data at
1e-12 or 1e12 inside float32's range while leaving ``reg_covar`` isotropic. Statistics of
different blocks add only when taken in the same frame; ``GaussianStats.__add__``
checks that.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import linalg
from scipy.linalg import lapack

from ..exceptions import DegenerateComponentError, InputError

__all__ = [
    "COVARIANCE_TYPES",
    "covariance_shape",
    "Frame",
    "GaussianMixtureParams",
    "GaussianStats",
    "EStepPlan",
    "estep_plan",
    "pass_anchors",
    "m_step",
    "MStepReport",
    "ComponentIssue",
    "COLLAPSE_RATIO",
    "screen_components",
    "component_parameters",
    "n_parameters",
    "canonical_order",
    "permute",
    "permute_issues",
    "precisions_cholesky_from_covariances",
    "precisions_from_cholesky",
    "covariances_from_precisions",
    "n_features_of",
    "first_moment_offset",
]

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
_LOG_2PI = math.log(2.0 * math.pi)


# --------------------------------------------------------------------------- frame
@dataclass(frozen=True)
class Frame:
    """The affine frame ``z = (x - center) / scale`` in which statistics are taken.

    Parameters
    ----------
    center : ndarray of shape (D,)
    scale : float
    """

    center: np.ndarray
    scale: float

    @classmethod
    def identity(cls, n_features: int) -> Frame:
        return cls(np.zeros(n_features), 1.0)

    @classmethod
    def from_data(cls, center: np.ndarray, variances: np.ndarray) -> Frame:
        """Frame from per-column means (D,) and variances (D,) of the data.

        The scale is the root of the mean column variance (one scalar, so that an
        isotropic ``reg_covar`` stays isotropic); a constant data set gets scale 1.

        Raises
        ------
        InputError
            When a mean or a variance is not finite: the data are finite (checked
            before), so computing them overflowed float64.
        """
        variances = np.asarray(variances, dtype=np.float64)
        bad = np.flatnonzero(~(np.isfinite(variances) & np.isfinite(center)))
        if bad.size:
            cols = ", ".join(str(int(j)) for j in bad[:5]) + (" ..." if bad.size > 5 else "")
            raise InputError(
                f"X is too large for float64 arithmetic: computing the variance of column(s) "
                f"{cols} overflows, and covariances on that scale reach float64's limit "
                "(about 1.8e308). Divide X by a large power of ten (e.g. 1e200) before "
                "fitting, and scale the fitted means and covariances back"
            )
        with np.errstate(over="ignore"):
            v = float(np.mean(variances))
        if math.isinf(v):
            # Finite variances near the float64 limit can overflow their sum; each divided
            # by D first, the sum is at most the largest of them.
            v = float(np.sum(variances / variances.size))
        scale = math.sqrt(v) if v > 0.0 else 1.0
        # A power of two makes scaling exact in binary floating point.
        scale = 2.0 ** round(math.log2(scale))
        return cls(np.asarray(center, dtype=np.float64), float(scale))

    def same_as(self, other: Frame) -> bool:
        return self.scale == other.scale and np.array_equal(self.center, other.center)


# --------------------------------------------------------------------------- params
@dataclass(frozen=True)
class GaussianMixtureParams:
    """Parameters of a Gaussian mixture, in the data's own units (float64).

    Parameters
    ----------
    weights : ndarray of shape (K,)
    means : ndarray of shape (K, D)
    covariances : ndarray, shape by covariance type (see module docstring)
    precisions_cholesky : ndarray, same shape as ``covariances``
    covariance_type : {'full', 'tied', 'diag', 'spherical'}
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    precisions_cholesky: np.ndarray
    covariance_type: str

    @property
    def n_components(self) -> int:
        return self.means.shape[0]

    @property
    def n_features(self) -> int:
        return self.means.shape[1]

    @property
    def precisions(self) -> np.ndarray:
        return precisions_from_cholesky(self.precisions_cholesky, self.covariance_type)


def canonical_order(params: GaussianMixtureParams, order: str) -> np.ndarray:
    """The permutation that numbers components canonically.

    Parameters
    ----------
    params : GaussianMixtureParams
    order : {'mean', 'weight'}
        ``'mean'``: ascending means, compared on the first feature, ties on the next...;
        ``'weight'``: descending weights, ties by mean.

    Returns
    -------
    perm : ndarray of shape (K,)
        New component ``j`` is old component ``perm[j]``.
    """
    means = params.means
    # np.lexsort sorts by its last key first.
    keys = [means[:, d] for d in range(means.shape[1] - 1, -1, -1)]
    if order == "weight":
        keys.append(-params.weights)
    elif order != "mean":
        raise InputError(f"label order must be 'mean' or 'weight'; got {order!r}")
    return np.lexsort(keys)


def permute(params: GaussianMixtureParams, perm: np.ndarray) -> GaussianMixtureParams:
    """``params`` with its components renumbered: new ``j`` is old ``perm[j]``."""
    if params.covariance_type == "tied":
        cov, pc = params.covariances, params.precisions_cholesky
    else:
        cov, pc = params.covariances[perm], params.precisions_cholesky[perm]
    return GaussianMixtureParams(
        params.weights[perm], params.means[perm], cov, pc, params.covariance_type
    )


def permute_issues(issues, perm: np.ndarray) -> list:
    """Issues renumbered by the same permutation as :func:`permute`."""
    new_index = np.empty(len(perm), dtype=np.intp)
    new_index[perm] = np.arange(len(perm))
    out = [
        i if i.component < 0 else replace(i, component=int(new_index[i.component]))
        for i in issues
    ]
    return sorted(out, key=lambda i: (i.component, i.kind))


def full_covariances(cov, covariance_type: str, K: int, D: int) -> np.ndarray:
    """Covariances of any type as every component's (D, D) matrix.

    Parameters
    ----------
    cov : ndarray of the type's shape (see :func:`covariance_shape`)
    covariance_type : {'full', 'tied', 'diag', 'spherical'}
    K, D : int

    Returns
    -------
    ndarray of shape (K, D, D), float64 (a new array unless ``cov`` is already full)
    """
    cov = np.asarray(cov, dtype=np.float64)
    if covariance_type == "full":
        return cov
    if covariance_type == "tied":
        return np.broadcast_to(cov, (K, D, D)).copy()
    if covariance_type == "diag":
        return cov[:, :, None] * np.eye(D)
    if covariance_type == "spherical":
        return cov[:, None, None] * np.eye(D)
    raise InputError(
        f"covariance_type must be 'full', 'tied', 'diag' or 'spherical'; got "
        f"{covariance_type!r}"
    )


def covariance_shape(covariance_type: str, n_components: int, n_features: int) -> tuple:
    """Shape of the covariances (and precisions) of a mixture, per covariance type.

    Parameters
    ----------
    covariance_type : {'full', 'tied', 'diag', 'spherical'}
    n_components, n_features : int

    Returns
    -------
    tuple of int
        ``(K, D, D)`` full, ``(D, D)`` tied, ``(K, D)`` diag, ``(K,)`` spherical.

    Raises
    ------
    InputError
        For an unknown covariance type.
    """
    K, D = n_components, n_features
    shapes = {"full": (K, D, D), "tied": (D, D), "diag": (K, D), "spherical": (K,)}
    if covariance_type not in shapes:
        raise InputError(f"unknown covariance_type {covariance_type!r}")
    return shapes[covariance_type]


# --------------------------------------------------------------------------- statistics
def n_features_of(covariance_type: str, n_features: int) -> int:
    """Width of the feature map ``T(x)`` for a covariance type (columns of ``F``)."""
    D = n_features
    if covariance_type == "full":
        return D * (D + 1) // 2 + D + 1
    if covariance_type == "diag":
        return 2 * D + 1
    if covariance_type == "spherical":
        return D + 2
    if covariance_type == "tied":
        return D + 1
    raise InputError(f"unknown covariance_type {covariance_type!r}")


def first_moment_offset(covariance_type: str, n_features: int) -> int:
    """Column of the feature map ``T(z)`` where ``z`` itself starts (after the squares)."""
    D = n_features
    if covariance_type == "full":
        return D * (D + 1) // 2
    if covariance_type == "diag":
        return D
    if covariance_type == "spherical":
        return 1
    return 0


@dataclass(frozen=True)
class GaussianStats:
    """Additive sufficient statistics of a Gaussian mixture over some rows.

    All arrays are float64 whatever the data's dtype, so that sums over many blocks do
    not lose precision. ``a + b`` is the statistics of the union of the rows.

    Parameters
    ----------
    covariance_type : str
    frame : Frame
        The frame ``z = (x - center) / scale`` the moments are taken in.
    resp_moments : ndarray of shape (K, M)
        ``sum_n w_n r_nk T(z_n)`` where ``T`` is the covariance type's feature map of
        width M (see :func:`n_features_of`); its last column is ``sum_n w_n r_nk``.
    scatter : ndarray of shape (D, D) or None
        ``sum_n w_n z_n z_n^T``: the total scatter, needed by ``tied`` only.
    loglik : float
        ``sum_n w_n log p(x_n)`` under the parameters that produced the responsibilities
        (0 when the responsibilities were given, as at initialisation).
    weight_sum : float
        ``sum_n w_n``.
    n_rows : int
        Number of rows summarised (weights ignored).
    anchors : ndarray of shape (K, D) or None
        When given, component k's moments are taken about ``anchors[k]`` (in the frame)
        rather than about 0: ``sum r (z - a_k)`` and ``sum r (z - a_k)(z - a_k)^T``, and
        the tied scatter is ``sum_k sum_n r_nk (z - a_k)(z - a_k)^T``. Anchoring at the
        current means removes the cancellation in ``E[zz^T] - mu mu^T`` for components
        far from the frame's centre; see ``EStepPlan.needs_anchors``.
    """

    covariance_type: str
    frame: Frame
    resp_moments: np.ndarray
    scatter: np.ndarray | None
    loglik: float
    weight_sum: float
    n_rows: int
    anchors: np.ndarray | None = None

    def __add__(self, other: GaussianStats) -> GaussianStats:
        if not isinstance(other, GaussianStats):
            return NotImplemented
        if other.covariance_type != self.covariance_type:
            raise InputError("cannot add statistics of different covariance types")
        if not self.frame.same_as(other.frame):
            raise InputError("cannot add statistics taken in different frames")
        if (self.anchors is None) != (other.anchors is None) or (
            self.anchors is not None and not np.array_equal(self.anchors, other.anchors)
        ):
            raise InputError("cannot add statistics taken about different anchors")
        scatter = None if self.scatter is None else self.scatter + other.scatter
        return GaussianStats(
            self.covariance_type,
            self.frame,
            self.resp_moments + other.resp_moments,
            scatter,
            self.loglik + other.loglik,
            self.weight_sum + other.weight_sum,
            self.n_rows + other.n_rows,
            self.anchors,
        )

    def __radd__(self, other):
        # Lets sum() start from 0.
        if other == 0:
            return self
        return NotImplemented

    def reanchor(self, anchors: np.ndarray | None) -> GaussianStats:
        """The same statistics taken about other anchors (None: the frame's origin).

        Exact algebra on the moments: ``sum r (z-b)(z-b)^T = sum r (z-a)(z-a)^T +
        (a-b) s1^T + s1 (a-b)^T + n (a-b)(a-b)^T`` with ``s1 = sum r (z-a)``. Statistics
        from passes with different anchors (stepwise EM, workers of a cluster) can be
        moved to common anchors and added.

        Parameters
        ----------
        anchors : ndarray of shape (K, D) or None
        """
        K, D = self.resp_moments.shape[0], self.n_features
        a = np.zeros((K, D)) if self.anchors is None else self.anchors
        b = np.zeros((K, D)) if anchors is None else np.asarray(anchors, dtype=np.float64)
        delta = a - b
        n, s1 = self.nk, self.first
        new_first = s1 + n[:, None] * delta
        moments = self.resp_moments.copy()
        scatter = self.scatter
        ct = self.covariance_type
        if ct in ("full", "tied"):
            cross = np.einsum("ki,kj->kij", delta, s1)
            extra = cross + np.transpose(cross, (0, 2, 1)) + n[:, None, None] * np.einsum(
                "ki,kj->kij", delta, delta
            )
            if ct == "full":
                iu, ju = upper_indices(D)
                moments[:, : D * (D + 1) // 2] += extra[:, iu, ju]
            else:
                scatter = scatter + extra.sum(axis=0)
        elif ct == "diag":
            moments[:, :D] += 2 * delta * s1 + n[:, None] * delta**2
        else:
            moments[:, 0] += 2 * np.sum(delta * s1, axis=1) + n * np.sum(delta**2, axis=1)
        GaussianStats._first_view(moments, ct, D)[:] = new_first
        return GaussianStats(
            ct, self.frame, moments, scatter, self.loglik, self.weight_sum, self.n_rows,
            None if anchors is None else b,
        )

    @staticmethod
    def _first_view(moments: np.ndarray, ct: str, D: int) -> np.ndarray:
        off = first_moment_offset(ct, D)
        return moments[:, off : off + D]

    # Views of the moments -------------------------------------------------------
    @property
    def n_features(self) -> int:
        return self.frame.center.shape[0]

    @property
    def nk(self) -> np.ndarray:
        """Weighted responsibility totals, shape (K,)."""
        return self.resp_moments[:, -1]

    @property
    def first(self) -> np.ndarray:
        """``sum_n w_n r_nk (z_n - a_k)``, shape (K, D)."""
        return self._first_view(self.resp_moments, self.covariance_type, self.n_features)

    def second(self) -> np.ndarray:
        """Second moments ``sum_n w_n r_nk (z z^T)``, in the shape the type needs.

        Returns
        -------
        ndarray of shape (K, D, D) for full, (D, D) for tied (total scatter),
        (K, D) for diag, (K,) for spherical.
        """
        D = self.n_features
        if self.covariance_type == "full":
            return unpack_upper(self.resp_moments[:, : D * (D + 1) // 2], D)
        if self.covariance_type == "diag":
            return self.resp_moments[:, :D]
        if self.covariance_type == "spherical":
            return self.resp_moments[:, 0]
        return self.scatter

    def column_variances(self) -> np.ndarray:
        """Weighted variance of each data column over all rows, shape (D,).

        Read off the statistics at no extra pass; used to judge whether a component
        has collapsed relative to the data's own spread. ``spherical`` keeps only the
        total squared norm, so every column gets the mean variance.
        """
        W = self.weight_sum
        nk, d1 = self.nk, self.first
        a = np.zeros_like(d1) if self.anchors is None else self.anchors
        s2 = self.second()
        # Per-component squared sums about the anchors, then moved to the frame origin:
        # sum r z^2 = sum r (z - a)^2 + 2 a sum r (z - a) + n a^2.
        if self.covariance_type == "full":
            sq_k = np.diagonal(s2, axis1=1, axis2=2)
        elif self.covariance_type == "diag":
            sq_k = s2
        elif self.covariance_type == "tied":
            sq_k = np.zeros_like(d1)
            sq_k[0] = np.diag(s2)
        else:
            sq_k = None
        first = (d1 + nk[:, None] * a).sum(axis=0) / W
        if sq_k is None:
            tot = np.sum(s2 + 2 * np.sum(a * d1, axis=1) + nk * np.sum(a * a, axis=1))
            var = np.full(self.n_features, max(tot / W - np.sum(first**2), 0.0) / self.n_features)
        else:
            sq = (sq_k + 2 * a * d1 + nk[:, None] * a * a).sum(axis=0) / W
            var = np.maximum(sq - first**2, 0.0)
        return var * self.frame.scale**2


@functools.lru_cache(maxsize=64)
def upper_indices(D: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of the upper triangle, row by row (the ``vech`` order).

    Cached (read-only arrays): the M-step and the E-step plan ask for them several
    times per iteration, and an iteration on a GPU takes a few milliseconds.
    """
    iu, ju = np.triu_indices(D)
    iu.flags.writeable = False
    ju.flags.writeable = False
    return iu, ju


def unpack_upper(packed: np.ndarray, D: int) -> np.ndarray:
    """Symmetric matrices from packed upper triangles.

    Parameters
    ----------
    packed : ndarray of shape (K, D*(D+1)/2)

    Returns
    -------
    ndarray of shape (K, D, D)
    """
    iu, ju = upper_indices(D)
    out = np.zeros((packed.shape[0], D, D), dtype=packed.dtype)
    out[:, iu, ju] = packed
    out[:, ju, iu] = packed
    return out


# --------------------------------------------------------------------------- precision
def precisions_cholesky_from_covariances(
    covariances: np.ndarray, covariance_type: str, *, iteration: int | None = None
) -> np.ndarray:
    """Upper-triangular ``U`` with ``U U^T = covariance^-1``, per component.

    Raises
    ------
    DegenerateComponentError
        Naming the component whose covariance is not positive definite.
    """
    when = "" if iteration is None else f" at iteration {iteration}"
    if covariance_type in ("full", "tied"):
        covs = np.asarray(covariances, dtype=np.float64)
        covs = covs if covariance_type == "full" else covs[None]
        out = np.empty_like(covs)
        for k, cov in enumerate(covs):
            # LAPACK directly: scipy.linalg's wrappers cost more than the work itself at
            # these sizes, and this runs K times per iteration.
            chol, info = lapack.dpotrf(cov, lower=1, clean=1)
            if info == 0:
                inv, info = lapack.dtrtri(chol, lower=1)
            if info != 0:
                who = f"component {k}" if covariance_type == "full" else "the tied covariance"
                raise DegenerateComponentError(
                    f"{who} has a covariance that is not positive definite{when}: it "
                    "collapsed onto repeated or collinear points. Increase reg_covar, "
                    "use fewer components, or remove duplicated rows or columns."
                )
            # U = L^-T is upper triangular with U U^T = (L L^T)^-1.
            out[k] = inv.T
        return out if covariance_type == "full" else out[0]
    cov = np.asarray(covariances, dtype=np.float64)
    bad = np.argwhere(~(cov > 0.0))
    if bad.size:
        k = int(bad[0][0])
        raise DegenerateComponentError(
            f"component {k} has a non-positive variance{when}: it collapsed onto "
            "repeated values. Increase reg_covar or use fewer components."
        )
    return 1.0 / np.sqrt(cov)


def precisions_from_cholesky(prec_chol: np.ndarray, covariance_type: str) -> np.ndarray:
    """Precision matrices ``U U^T`` (full, tied) or precisions ``u^2`` (diag, spherical)."""
    if covariance_type == "full":
        return np.einsum("kij,klj->kil", prec_chol, prec_chol)
    if covariance_type == "tied":
        return prec_chol @ prec_chol.T
    return prec_chol**2


def covariances_from_precisions(precisions: np.ndarray, covariance_type: str) -> np.ndarray:
    """Invert precisions (used when the user supplies ``precisions_init``)."""
    if covariance_type == "full":
        return np.stack([linalg.inv(p) for p in precisions])
    if covariance_type == "tied":
        return linalg.inv(precisions)
    return 1.0 / precisions


def _log_det_cholesky(prec_chol: np.ndarray, covariance_type: str, D: int) -> np.ndarray:
    """log det of the precision's Cholesky factor per component, shape (K,) or scalar."""
    if covariance_type == "full":
        return np.sum(np.log(np.diagonal(prec_chol, axis1=1, axis2=2)), axis=1)
    if covariance_type == "tied":
        return np.sum(np.log(np.diag(prec_chol)))
    if covariance_type == "diag":
        return np.sum(np.log(prec_chol), axis=1)
    return D * np.log(prec_chol)


# --------------------------------------------------------------------------- E-step plan
# Error budgets (relative to the log-density's size, ~D) for the expanded quadratic form.
# Beyond them the E-step takes each component's rows relative to its own mean instead.
_EXPANSION_BUDGET = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-5}


@dataclass(frozen=True)
class EStepPlan:
    """Natural parameters for one E-step, in the statistics' frame.

    ``log w_k + log N(x_n | k) = F_n @ eta[:, k] - 0.5 * |z_n @ chol|^2 (tied only)``
    where ``F_n = T(z_n)`` and ``z_n = (x_n - center) / scale``.

    The same quantity, written about each component's own mean (the *anchored* form),
    is ``const_k - 0.5 |U_k^T (z - anchor_k)|^2``; it costs a product per component but
    does not cancel. The expanded form's terms are as large as ``lambda_max(P_k) (|mu_k|^2
    + tr Sigma_k)`` (a component far from the frame's centre, or elongated) and it loses
    about eps times that; :meth:`needs_anchors` compares it with a per-dtype budget.

    Parameters
    ----------
    covariance_type : str
    frame : Frame
    eta : ndarray of shape (M, K), float64
        Coefficients of the feature map; M = :func:`n_features_of`.
    tied_chol : ndarray of shape (D, D) or None
        Scaled precision Cholesky factor for the shared quadratic term (tied only).
    anchors : ndarray of shape (K, D)
        Component means in the frame.
    prec : ndarray
        Scaled precision factors in the frame: (K, D, D) upper-triangular ``U_k`` for
        full, (D, D) for tied, precisions (K, D) for diag and (K,) for spherical.
    const : ndarray of shape (K,)
        ``log w_k + log det U_k - D/2 log(2 pi)``.
    cancellation : float
        ``max_k lambda_max(P_k) (|mu_k|^2 + tr Sigma_k) / D`` in the frame: the size of
        the expansion's largest terms relative to the log-density's.
    """

    covariance_type: str
    frame: Frame
    eta: np.ndarray
    tied_chol: np.ndarray | None = None
    anchors: np.ndarray | None = None
    prec: np.ndarray | None = None
    const: np.ndarray | None = None
    cancellation: float = 0.0
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def n_components(self) -> int:
        return self.eta.shape[1]

    def needs_anchors(self, dtype) -> bool:
        """True when the expanded form would lose more than the dtype's budget."""
        dt = np.dtype(dtype)
        budget = _EXPANSION_BUDGET.get(dt, 1e-5)
        return bool(np.finfo(dt).eps * self.cancellation > budget)

    def cast(self, dtype) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """``(eta, tied_chol, center)`` in ``dtype``, cached per dtype."""
        key = np.dtype(dtype).str
        if key not in self._cache:
            tc = None if self.tied_chol is None else self.tied_chol.astype(dtype)
            self._cache[key] = (
                np.ascontiguousarray(self.eta, dtype=dtype),
                tc,
                self.frame.center.astype(dtype),
            )
        return self._cache[key]

    def cast_anchored(self, dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(anchors, prec, const)`` in ``dtype``, cached per dtype."""
        key = "anchored" + np.dtype(dtype).str
        if key not in self._cache:
            self._cache[key] = (
                self.anchors.astype(dtype),
                self.prec.astype(dtype),
                self.const.astype(dtype),
            )
        return self._cache[key]


def pass_anchors(plan, dtype, centers_in_frame, resp_means):
    """The anchors a pass takes its statistics about, or None for the expanded form.

    The plan's means when its expansion would cancel in ``dtype``; the initial centres
    for a pass from centres; for given responsibilities, their weighted means, which
    ``resp_means()`` computes (one extra pass, at initialisation only). Every backend
    decides the same way, so their statistics agree.

    Parameters
    ----------
    plan : EStepPlan or None
    centers_in_frame : ndarray of shape (K, D) or None
    resp_means : callable () -> ndarray of shape (K, D)
    """
    if plan is not None:
        return plan.anchors if plan.needs_anchors(dtype) else None
    if centers_in_frame is not None:
        return centers_in_frame
    return resp_means()


def estep_plan(params: GaussianMixtureParams, frame: Frame) -> EStepPlan:
    """Turn parameters into the natural-parameter matrix the E-step multiplies by."""
    ct = params.covariance_type
    K, D = params.means.shape
    s = frame.scale
    mu = (params.means - frame.center) / s  # (K, D) in the frame
    with np.errstate(divide="ignore"):
        log_w = np.log(params.weights)
    const = log_w - 0.5 * D * _LOG_2PI + _log_det_cholesky(params.precisions_cholesky, ct, D)
    pc = params.precisions_cholesky
    tied_chol = None
    if ct == "full":
        P = precisions_from_cholesky(pc, ct) * s**2  # (K, D, D), in the frame
        cov_min = getattr(params, "_cov_eig_min", None)
        if cov_min is not None and np.all(cov_min > 0):
            # lambda_max(P) = s^2 / lambda_min(covariance), known from the M-step
            lam = s**2 / cov_min
        else:
            lam = np.linalg.eigvalsh(P)[:, -1]
        tr = np.trace(params.covariances, axis1=1, axis2=2) / s**2
        iu, ju = upper_indices(D)
        quad = -0.5 * P[:, iu, ju] * np.where(iu == ju, 1.0, 2.0)  # (K, T)
        lin = np.einsum("kij,kj->ki", P, mu)  # (K, D)
        q = np.einsum("ki,ki->k", lin, mu)
        c = const - 0.5 * q
        eta = np.concatenate([quad, lin, c[:, None]], axis=1).T
        prec = pc * s
    elif ct == "diag":
        p = pc**2 * s**2
        q = np.sum(p * mu**2, axis=1)
        c = const - 0.5 * q
        eta = np.concatenate([-0.5 * p, p * mu, c[:, None]], axis=1).T
        prec = p
        lam = p.max(axis=1)
        tr = params.covariances.sum(axis=1) / s**2
    elif ct == "spherical":
        p = pc**2 * s**2  # (K,)
        q = p * np.sum(mu**2, axis=1)
        c = const - 0.5 * q
        eta = np.concatenate([(-0.5 * p)[:, None], p[:, None] * mu, c[:, None]], axis=1).T
        prec = p
        lam = p
        tr = D * params.covariances / s**2
    elif ct == "tied":
        P = precisions_from_cholesky(pc, ct) * s**2
        lam = np.full(K, np.linalg.eigvalsh(P)[-1])
        tr = np.full(K, np.trace(params.covariances) / s**2)
        lin = mu @ P  # (K, D)
        q = np.sum(lin * mu, axis=1)
        c = const - 0.5 * q
        eta = np.concatenate([lin, c[:, None]], axis=1).T
        tied_chol = pc * s
        prec = tied_chol
    else:  # pragma: no cover - validated earlier
        raise InputError(f"unknown covariance_type {ct!r}")
    # Size of the largest terms in the expanded quadratic form, which cancel to O(D)
    # for rows near component k: lambda_max(P_k) * (|mu_k|^2 + tr Sigma_k), frame units.
    size = lam * (np.sum(mu**2, axis=1) + tr)
    size = size[np.isfinite(size) & (params.weights > 0)]
    cancellation = float(size.max() / max(D, 1)) if size.size else 0.0
    return EStepPlan(
        ct, frame, np.ascontiguousarray(eta), tied_chol, mu, prec, const, cancellation
    )


# --------------------------------------------------------------------------- M-step
# A component whose variance in some direction is below this fraction of the data's own
# variance there (sd below 1/10,000 of the data's) is called collapsed; so is one whose
# variance in some direction is mostly reg_covar. See screen_components.
COLLAPSE_RATIO = 1e-8


@dataclass(frozen=True)
class ComponentIssue:
    """One reason why a fitted component cannot be trusted.

    Attributes
    ----------
    component : int
        Index of the component (for ``tied`` covariances, a collapse of the shared
        covariance is reported against component -1, meaning all of them).
    kind : {'empty', 'collapsed', 'too_few_points'}
    column : int or None
        For ``collapsed``: the data column that dominates the collapsed direction.
    value : float
        For ``collapsed``: the variance ratio (component / data) along that direction.
        For ``too_few_points``: the component's effective count. For ``empty``: 0.
    limit : float
        The threshold ``value`` fell below: :data:`COLLAPSE_RATIO`, or the number of the
        component's free parameters.
    variance : float
        For ``collapsed``: the unregularised variance along that direction, data units.
    reg_covar : float
        For ``collapsed``: the regularisation that was added to it.
    """

    component: int
    kind: str
    column: int | None = None
    value: float = 0.0
    limit: float = 0.0
    variance: float = 0.0
    reg_covar: float = 0.0

    def describe(self, column_name=None) -> str:
        """A sentence naming the component and the evidence, for warnings and tables."""
        col = column_name if column_name is not None else f"column {self.column}"
        who = "the shared covariance" if self.component < 0 else f"component {self.component}"
        if self.kind == "empty":
            return (
                f"{who} is empty: no row has any responsibility for it, so it keeps "
                "weight 0; use fewer components"
            )
        if self.kind == "collapsed":
            return (
                f"{who} collapsed onto (nearly) repeated values: before regularisation its "
                f"variance along {col} is {self.variance:.3g}, {self.value:.3g} times "
                f"the data's own, against reg_covar={self.reg_covar:g} added to it; "
                "its density there is spurious. Use fewer components, or check that "
                "reg_covar suits the data's scale"
            )
        return (
            f"{who} rests on {self.value:.3g} rows (effective count), fewer than its "
            f"{int(self.limit)} free parameters, so its covariance is not estimable; "
            "use fewer components or a simpler covariance_type"
        )

    def __str__(self) -> str:
        return self.describe()


@dataclass(frozen=True)
class MStepReport:
    """What the M-step noticed.

    Attributes
    ----------
    empty : tuple of int
        Components with no responsibility at all.
    issues : tuple of ComponentIssue
        Every reason a component of the new parameters is degenerate (empty ones
        included); see :func:`screen_components` for the rule.
    reg_gap : float
        How far (per unit weight) ``reg_covar`` may lower the expected complete-data
        log-likelihood below its maximum: ``sum_k n_k/2 sum_i [log(1 + r/l_ik) -
        r/(l_ik + r)] / W`` over the eigenvalues ``l_ik`` of each unregularised
        covariance. Regularised EM can lower the log-likelihood by at most this, so the
        monitor allows it.
    """

    empty: tuple[int, ...] = ()
    issues: tuple[ComponentIssue, ...] = ()
    reg_gap: float = 0.0


def component_parameters(covariance_type: str, n_features: int) -> int:
    """Free parameters a single component owns: mean, weight and its own covariance."""
    D = n_features
    own_cov = {"full": D * (D + 1) // 2, "tied": 0, "diag": D, "spherical": 1}
    return D + 1 + own_cov[covariance_type]


def screen_components(
    raw: np.ndarray,
    nk: np.ndarray,
    data_var: np.ndarray,
    covariance_type: str,
    reg_covar: float,
    skip=(),
    raw_eigvals: np.ndarray | None = None,
) -> list[ComponentIssue]:
    """Flag degenerate components of a fit. The rule, exactly:

    1. *Collapsed*: the component's **unregularised** covariance ``S_k`` is judged in
       two ways; either suffices.

       a. Standardise every data column by its standard deviation over all rows
          (constant columns are left out). If the smallest eigenvalue of ``S_k`` in those
          units is below :data:`COLLAPSE_RATIO` (1e-8), its spread in some direction is
          under 1/10,000 of the data's. This is what EM produces when a component
          settles on repeated values (a rounded or integer feature): its variance there
          is zero up to round-off and its density grows without bound, so it would win
          any likelihood-based comparison.
       b. If the smallest eigenvalue of ``S_k`` in data units is at most ``reg_covar``,
          the regulariser supplies at least half of the variance in that direction: the
          data no longer determine the component there.

       A genuinely thin component (say sd 1/300 of the data's, and well above
       ``reg_covar``) passes both. Constant columns are left out of both tests: they
       are no component's doing, and fitting them is warned about separately. For
       ``diag`` and ``spherical`` the eigenvalues are the per-column variances; a
       ``tied`` covariance is judged once, as component -1.
    2. *Too few points*: its effective count ``n_k = sum_i w_i r_ik`` is smaller than
       the number of free parameters it owns (mean, weight and own covariance:
       :func:`component_parameters`), so its covariance is fitted to noise.
    3. *Empty*: ``n_k`` is zero (reported by the M-step before this is called).

    Parameters
    ----------
    raw : ndarray
        Unregularised covariances: (K, D, D) full, (D, D) tied, (K, D) diag, (K,)
        spherical.
    nk : ndarray of shape (K,)
        Effective counts.
    data_var : ndarray of shape (D,)
        The data's variance per column (all rows, weighted).
    covariance_type : str
    reg_covar : float
    skip : iterable of int
        Components not to judge (empty ones).
    raw_eigvals : ndarray of shape (K, D) or (1, D), optional
        Ascending eigenvalues of the ``full`` or ``tied`` ``raw`` covariances, when the
        caller has them already (:func:`m_step` does, for the regularisation gap). Used
        only when no column is constant, where they are exactly the eigenvalues this
        rule needs; otherwise they are recomputed without the constant columns.

    Returns
    -------
    list of ComponentIssue
    """
    K = nk.shape[0]
    ct = covariance_type
    live = data_var > 0
    scale = np.sqrt(np.where(live, data_var, 1.0))
    skip = set(int(k) for k in skip)
    issues: list[ComponentIssue] = []
    if live.any():
        idx = np.flatnonzero(live)
        if ct in ("full", "tied"):
            mats = (raw if ct == "full" else raw[None])[:, idx][:, :, idx]
            std_mats = mats / np.outer(scale[idx], scale[idx])
            have_eig = raw_eigvals is not None and len(idx) == len(data_var)
            judged = np.array([(-1 if ct == "tied" else k) not in skip
                               for k in range(len(mats))], dtype=bool)
            if _all_clear(std_mats[judged], mats[judged],
                          np.asarray(raw_eigvals)[judged] if have_eig else None, reg_covar):
                mats = mats[:0]  # nothing to judge: skip the eigendecompositions
                std_mats = std_mats[:0]
            vals, vecs = np.linalg.eigh(std_mats)
            ratio = vals[:, 0]
            column = idx[np.argmax(np.abs(vecs[:, :, 0]), axis=1)]
            if not len(mats):
                raw_min = ratio
            elif have_eig:
                raw_min = np.asarray(raw_eigvals)[:, 0]
            else:
                raw_min = np.linalg.eigvalsh(mats)[:, 0]
        else:
            var = raw if ct == "diag" else np.repeat(raw[:, None], len(data_var), axis=1)
            std = var[:, idx] / data_var[idx]
            arg = np.argmin(std, axis=1)
            rows = np.arange(std.shape[0])
            ratio, column, raw_min = std[rows, arg], idx[arg], var[rows, idx[arg]]
        for k in range(len(ratio)):
            who = -1 if ct == "tied" else k
            if who in skip or not (ratio[k] < COLLAPSE_RATIO or raw_min[k] <= reg_covar):
                continue
            issues.append(
                ComponentIssue(who, "collapsed", int(column[k]), float(max(ratio[k], 0.0)),
                               COLLAPSE_RATIO, float(raw_min[k]), reg_covar)
            )
    p_k = component_parameters(ct, len(data_var))
    for k in range(K):
        if k not in skip and nk[k] < p_k:
            issues.append(ComponentIssue(k, "too_few_points", None, float(nk[k]), p_k))
    issues.sort(key=lambda i: (i.component, i.kind))
    return issues


def _all_clear(std_mats, mats, raw_eigvals, reg_covar: float) -> bool:
    """True when no matrix can be flagged as collapsed: every standardised matrix has
    smallest eigenvalue above :data:`COLLAPSE_RATIO` and every raw one above
    ``reg_covar``.

    Proved by Cholesky factorisations of ``A - t I`` (they exist exactly when every
    eigenvalue exceeds ``t``), batched and several times cheaper than the
    eigendecompositions they stand in for; the M-step runs this every iteration, and an
    iteration on a GPU takes a few milliseconds. False (judge properly) when any
    factorisation fails.
    """
    if not len(std_mats):
        return True
    eye = np.eye(std_mats.shape[-1])
    try:
        np.linalg.cholesky(std_mats - COLLAPSE_RATIO * eye)
        if raw_eigvals is not None:
            return bool(np.all(np.asarray(raw_eigvals)[:, 0] > reg_covar))
        np.linalg.cholesky(mats - reg_covar * eye)
    except np.linalg.LinAlgError:
        return False
    return True


def _reg_gap(eigvals: np.ndarray, n: np.ndarray, r: float) -> float:
    """``sum n/2 sum_i [log1p(r/l) - r/(l+r)]`` with eigenvalues (K, D) and weights (K,)."""
    if r <= 0.0:
        return 0.0
    lam = np.maximum(eigvals, np.finfo(np.float64).tiny)
    per = np.log1p(r / lam) - r / (lam + r)
    return float(np.sum(0.5 * n * per.sum(axis=1)))


def m_step(
    stats: GaussianStats,
    reg_covar: float,
    previous: GaussianMixtureParams | None = None,
    *,
    iteration: int | None = None,
) -> tuple[GaussianMixtureParams, MStepReport]:
    """Maximum-likelihood parameters from additive statistics alone.

    Parameters
    ----------
    stats : GaussianStats
    reg_covar : float
        Added to every variance (the diagonal of every covariance), in data units.
    previous : GaussianMixtureParams, optional
        An empty component (no responsibility at all) keeps its previous mean and
        covariance with weight 0, rather than becoming 0/0.
    iteration : int, optional
        Only for error messages.

    Returns
    -------
    params : GaussianMixtureParams
    report : MStepReport

    Raises
    ------
    DegenerateComponentError
        When a covariance is not positive definite, or a component collapses with
        ``reg_covar=0`` (naming the component).
    """
    ct = stats.covariance_type
    D = stats.n_features
    s = stats.frame.scale
    nk = stats.nk.copy()
    W = stats.weight_sum
    K = nk.shape[0]
    # A component is empty when its responsibility total is round-off relative to the data.
    tiny = 10.0 * np.finfo(np.float64).eps * max(W, 1.0)
    empty = np.flatnonzero(nk <= tiny)
    if empty.size and previous is None:
        raise DegenerateComponentError(
            f"component {int(empty[0])} received no data at initialisation; use fewer "
            "components or another init_params"
        )
    safe = np.where(nk > tiny, nk, 1.0)
    a = np.zeros((K, D)) if stats.anchors is None else stats.anchors
    d = stats.first / safe[:, None]  # (K, D): mean minus anchor, in the frame
    s2 = stats.second()
    s2_units = s * s
    if ct == "full":
        raw = (s2 / safe[:, None, None] - d[:, :, None] * d[:, None, :]) * s2_units
        raw = 0.5 * (raw + np.transpose(raw, (0, 2, 1)))
        cov = raw + reg_covar * np.eye(D)
        raw_diag = np.diagonal(raw, axis1=1, axis2=2)
        eig = np.linalg.eigvalsh(raw) if reg_covar > 0 else None
        gap_n = nk
    elif ct == "tied":
        between = np.einsum("k,ki,kj->ij", nk, d, d)
        raw = (s2 - between) / W * s2_units
        raw = 0.5 * (raw + raw.T)
        cov = raw + reg_covar * np.eye(D)
        raw_diag = None
        eig = np.linalg.eigvalsh(raw)[None] if reg_covar > 0 else None
        gap_n = np.array([W])
    elif ct == "diag":
        raw = (s2 / safe[:, None] - d**2) * s2_units
        cov = raw + reg_covar
        raw_diag = raw
        eig = raw
        gap_n = nk
    else:
        raw = (s2 / safe - np.sum(d**2, axis=1)) / D * s2_units
        cov = raw + reg_covar
        raw_diag = np.repeat(raw[:, None], D, axis=1)
        eig = raw_diag
        gap_n = nk
    means = (a + d) * s + stats.frame.center
    if empty.size:
        means[empty] = previous.means[empty]
        if ct != "tied":
            cov[empty] = previous.covariances[empty]
    weights = nk / W
    weights[empty] = 0.0
    data_var = stats.column_variances()
    if ct != "tied" and reg_covar == 0.0:
        _refuse_unregularised_collapse(stats, raw_diag, data_var, safe, empty, iteration)
    issues = [ComponentIssue(int(k), "empty") for k in empty]
    issues += screen_components(
        raw, nk, data_var, ct, reg_covar, skip=empty,
        raw_eigvals=eig if ct in ("full", "tied") else None,
    )
    pc = precisions_cholesky_from_covariances(cov, ct, iteration=iteration)
    gap = 0.0
    if reg_covar > 0 and eig is not None:
        keep = np.setdiff1d(np.arange(len(gap_n)), empty) if ct != "tied" else [0]
        gap = _reg_gap(np.asarray(eig)[keep], np.asarray(gap_n)[keep], reg_covar) / W
    params = GaussianMixtureParams(weights, means, cov, pc, ct)
    if ct == "full" and eig is not None and not empty.size:
        # The covariances' smallest eigenvalues (cov = raw + reg_covar I), which
        # estep_plan needs and would otherwise compute again by an eigendecomposition
        # per component. Not a field: not compared, saved or shown.
        object.__setattr__(params, "_cov_eig_min", np.asarray(eig)[:, 0] + reg_covar)
    return params, MStepReport(tuple(int(e) for e in empty), tuple(issues), gap)


def _refuse_unregularised_collapse(stats, raw_diag, data_var, safe, empty, iteration):
    """With ``reg_covar=0`` a variance at round-off level has no finite precision.

    Raised here, naming the component, rather than as a failed Cholesky factorisation.
    Judged per column against the round-off floor of each raw variance: it is a
    difference of second moments about the anchors, so indistinguishable from zero below
    ~eps times them.
    """
    ct = stats.covariance_type
    D = stats.n_features
    s2 = stats.second()
    s2_units = stats.frame.scale**2
    if ct == "full":
        m2 = np.diagonal(s2, axis1=1, axis2=2) / safe[:, None]
    elif ct == "diag":
        m2 = s2 / safe[:, None]
    else:
        m2 = np.repeat((s2 / safe / D)[:, None], D, axis=1)
    roundoff = 1e3 * np.finfo(np.float64).eps * np.abs(m2) * s2_units
    for k in range(raw_diag.shape[0]):
        if k in empty:
            continue
        flagged = (raw_diag[k] <= roundoff[k]) & (data_var > 1e3 * roundoff[k])
        if flagged.any():
            cols = np.flatnonzero(flagged)
            col = int(cols[np.argmin(raw_diag[k, cols] / data_var[cols])])
            when = "" if iteration is None else f" at iteration {iteration}"
            raise DegenerateComponentError(
                f"component {k} collapsed onto (nearly) repeated values{when}: its "
                f"variance in column {col} is {raw_diag[k, col]:.3g} and reg_covar=0, so "
                "its likelihood is unbounded. Set reg_covar > 0 (e.g. 1e-6 times the "
                "data's variance) or use fewer components."
            )


def n_parameters(covariance_type: str, n_components: int, n_features: int) -> int:
    """Number of free parameters (for BIC/AIC)."""
    K, D = n_components, n_features
    cov = {
        "full": K * D * (D + 1) // 2,
        "tied": D * (D + 1) // 2,
        "diag": K * D,
        "spherical": K,
    }[covariance_type]
    return cov + K * D + K - 1
