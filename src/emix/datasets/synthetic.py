"""Samples from a Gaussian mixture with known parameters, for tests and examples.

A fit can only be judged against the truth when the truth is known; this module draws data
from a mixture whose weights, means and covariances the caller chooses, and returns the
component each point came from.
"""

from __future__ import annotations

import numpy as np

from emix.datasets._checks import as_generator, check_count
from emix.exceptions import InputError, NonNumericError

__all__ = ["sample_gaussian_mixture"]

# Weights typed by hand ([0.3, 0.3, 0.4]) or stored in float32 miss 1 by round-off; a gap
# larger than this is a mistake worth reporting rather than silently renormalising.
_WEIGHT_SUM_TOL = 1e-6
# Relative tolerance for symmetry and for negative eigenvalues: covariances computed by
# ``X.T @ X / n`` carry round-off of about this size and are still valid.
_COV_REL_TOL = 1e-10


def _as_float_array(value: object, name: str, ndim: int, expected: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        # NumPy raises ValueError both for text and for ragged lists; either way the
        # argument is not a numeric array of the documented shape.
        raise NonNumericError(
            f"{name} must be a numeric array of shape {expected}: {exc}"
        ) from exc
    if arr.ndim != ndim:
        raise InputError(f"{name} must have shape {expected}, got an array of shape {arr.shape}")
    bad = np.argwhere(~np.isfinite(arr))
    if bad.size:
        where = ", ".join(f"{name}[{', '.join(map(str, b))}]" for b in bad[:10])
        raise InputError(f"{name} contains NaN or infinite values at {where}")
    return arr


def _sqrt_factor(cov: np.ndarray) -> np.ndarray:
    """A matrix ``A`` of shape (D, D) with ``A @ A.T == cov``."""
    try:
        # Cholesky is unique for a positive-definite matrix, so the samples do not depend
        # on how a LAPACK build orders or signs eigenvectors.
        return np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        # Singular but positive semi-definite (a component flat along some direction):
        # still a valid Gaussian, so fall back to the symmetric square root.
        eigval, eigvec = np.linalg.eigh(cov)
        return eigvec * np.sqrt(np.clip(eigval, 0.0, None))


def sample_gaussian_mixture(
    n_samples: int,
    weights: object,
    means: object,
    covariances: object,
    random_state: int | np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw points from a Gaussian mixture with full covariance matrices.

    Each point first picks a component ``k`` with probability ``weights[k]`` and is then
    drawn from N(``means[k]``, ``covariances[k]``), so the number of points per component
    is random (multinomial), as in the model EM assumes.

    Parameters
    ----------
    n_samples : int
        Number of points to draw, at least 1.
    weights : array-like of shape (n_components,)
        Mixing weights: non-negative, summing to 1 (within 1e-6; they are then
        renormalised exactly).
    means : array-like of shape (n_components, n_features)
        Component means.
    covariances : array-like of shape (n_components, n_features, n_features)
        Component covariance matrices: symmetric and positive semi-definite. For
        one-dimensional data pass shape (n_components, 1, 1), e.g. ``[[[4.0]], [[9.0]]]``.
    random_state : int, numpy.random.Generator or None, default=None
        Seed or Generator for the draws; the same integer gives the same sample.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), dtype float64
        The points, in random order.
    labels : ndarray of shape (n_samples,), dtype int64
        The component each point was drawn from, in ``0 .. n_components - 1``.

    Raises
    ------
    InputError
        If a shape does not match the others, a value is NaN or infinite, a weight is
        negative or the weights do not sum to 1, or a covariance matrix is not symmetric
        positive semi-definite (the message names the component). ``InputError``
        subclasses ``ValueError``.
    NonNumericError
        If an argument is not numeric (also a ``TypeError``).

    Examples
    --------
    >>> X, labels = sample_gaussian_mixture(
    ...     500, [0.3, 0.7], [[0.0], [5.0]], [[[1.0]], [[2.0]]], random_state=0)
    >>> X.shape, labels.shape
    ((500, 1), (500,))
    """
    n_samples = check_count(n_samples, "n_samples", minimum=1)
    w = _as_float_array(weights, "weights", 1, "(n_components,)")
    mu = _as_float_array(means, "means", 2, "(n_components, n_features)")
    cov = _as_float_array(
        covariances, "covariances", 3, "(n_components, n_features, n_features)"
    )

    k = w.shape[0]
    if k == 0:
        raise InputError("weights is empty: a mixture needs at least one component")
    if mu.shape[0] != k:
        raise InputError(
            f"weights has {k} components but means has {mu.shape[0]} rows; "
            "means must have shape (n_components, n_features)"
        )
    d = mu.shape[1]
    if d == 0:
        raise InputError("means has 0 columns: points need at least one feature")
    if cov.shape != (k, d, d):
        raise InputError(
            f"covariances must have shape (n_components, n_features, n_features) = "
            f"({k}, {d}, {d}) to match weights and means, got {cov.shape}"
        )
    negative = np.flatnonzero(w < 0)
    if negative.size:
        i = int(negative[0])
        raise InputError(f"weights must be non-negative, but weights[{i}] = {float(w[i])!r}")
    total = float(w.sum())
    if abs(total - 1.0) > _WEIGHT_SUM_TOL:
        raise InputError(f"weights must sum to 1, but they sum to {total:.10g}")
    w = w / total

    factors = np.empty_like(cov)
    for j in range(k):
        c = cov[j]
        scale = float(np.max(np.abs(c)))
        if not np.allclose(c, c.T, rtol=0.0, atol=_COV_REL_TOL * max(scale, 1e-300)):
            raise InputError(f"covariances[{j}] (component {j}) is not symmetric")
        c = 0.5 * (c + c.T)
        smallest = float(np.linalg.eigvalsh(c)[0])
        if smallest < -_COV_REL_TOL * scale:
            raise InputError(
                f"covariances[{j}] (component {j}) is not positive semi-definite: its "
                f"smallest eigenvalue is {smallest!r}"
            )
        factors[j] = _sqrt_factor(c)

    rng = as_generator(random_state)
    labels = rng.choice(k, size=n_samples, p=w).astype(np.int64)
    X = np.empty((n_samples, d), dtype=np.float64)
    for j in range(k):
        rows = labels == j
        z = rng.standard_normal((int(rows.sum()), d))
        X[rows] = mu[j] + z @ factors[j].T
    return X, labels
