"""Log-likelihood of data under one family at any parameter values.

:func:`log_likelihood` is what a likelihood curve is drawn from (vary ``p``, keep the data
fixed), so it accepts parameters far from the maximum and answers ``-inf`` outside the
parameter space instead of raising. Data outside the family's support is still an error:
that is a mistake in the data, not a point on the curve.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

import numpy as np

from ..exceptions import InputError
from ..families.binomial import log_binomial_coefficient
from ._input import (
    _as_float_matrix,
    _as_label_vector,
    _check_counts,
    _check_nonnegative,
    _check_positive,
    _check_successes,
    _check_trials,
    _check_weights,
    _check_zero_one,
    _list_some,
    _prepare,
)
from ._result import MLEResult
from ._special import gamma_logpdf, log_ratio_gamma_half

# Canonical names (those of MLEResult.family), then the spellings people also use.
FAMILIES = (
    "normal",
    "multivariate_normal",
    "bernoulli",
    "binomial",
    "poisson",
    "exponential",
    "gamma",
    "lognormal",
    "student_t",
    "categorical",
)
_ALIASES = {
    "gaussian": "normal",
    "norm": "normal",
    "mvn": "multivariate_normal",
    "multivariate_gaussian": "multivariate_normal",
    "binom": "binomial",
    "expon": "exponential",
    "lognorm": "lognormal",
    "log_normal": "lognormal",
    "t": "student_t",
    "student": "student_t",
    "studentt": "student_t",
    "multinoulli": "categorical",
}

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def canonical_family(family: object) -> str:
    """The canonical name of `family` (case, spaces and hyphens do not matter).

    Parameters
    ----------
    family : str
        A family name such as ``"normal"``, ``"Student-t"`` or ``"log-normal"``.

    Returns
    -------
    str
        One of :data:`FAMILIES`.

    Raises
    ------
    InputError
        If `family` is not a string or names no known family.
    """
    if not isinstance(family, str):
        raise InputError(f"family must be a string such as 'normal', got {family!r}")
    key = re.sub(r"[\s\-]+", "_", family.strip().lower())
    key = _ALIASES.get(key, key)
    if key not in FAMILIES:
        raise InputError(
            f"unknown family {family!r}; choose one of {', '.join(FAMILIES)}"
        )
    return key


def _get(params: Mapping[str, object], names: tuple[str, ...], family: str) -> list[float]:
    missing = [n for n in names if n not in params]
    if missing:
        raise InputError(
            f"params for the {family} family need {', '.join(map(repr, names))}; "
            f"missing {', '.join(map(repr, missing))} (got {sorted(map(str, params))})"
        )
    out = []
    for n in names:
        try:
            out.append(float(params[n]))
        except (TypeError, ValueError) as exc:
            raise InputError(f"params[{n!r}] must be a number, got {params[n]!r}") from exc
    return out


def _weighted_sum(w: np.ndarray, terms: np.ndarray) -> float:
    # Rows of weight 0 must not turn a -inf term into nan (0 * -inf).
    used = w > 0
    return float(np.dot(w[used], terms[used]))


def log_likelihood(
    family: str,
    x: object,
    params: Mapping[str, float] | MLEResult,
    sample_weight: object = None,
    *,
    n_trials: object = None,
) -> float:
    """Weighted log-likelihood ``sum_i w_i log f(x_i; params)`` of data under a family.

    Parameters
    ----------
    family : str
        A family name as in ``MLEResult.family``: ``"normal"``, ``"multivariate_normal"``,
        ``"bernoulli"``, ``"binomial"``, ``"poisson"``, ``"exponential"``, ``"gamma"``,
        ``"lognormal"``, ``"student_t"`` or ``"categorical"`` (a few aliases such as
        ``"gaussian"`` and ``"t"`` are accepted).
    x : array-like of shape (n,), or (n, D) for the multivariate normal
        The data, checked exactly as the matching ``fit_*`` function checks it.
    params : mapping of str to float, or MLEResult
        Parameter values, named as in ``MLEResult.params`` (e.g. ``{"p": 0.3}``). For
        the binomial also ``"n_trials"`` unless given as the keyword below. An
        :class:`MLEResult` may be passed instead; its ``fixed`` quantities (binomial
        trials) are then used too. Extra keys are ignored.
    sample_weight : array-like of shape (n,), optional
        Non-negative frequency weights. Defaults to all ones.
    n_trials : int or array-like of shape (n,), optional
        Binomial number of trials, overriding ``params["n_trials"]``.

    Returns
    -------
    float
        The log-likelihood; ``-inf`` when the parameters lie outside the parameter space
        (``p`` outside [0, 1], a non-positive ``sd``, a covariance matrix that is not
        positive definite, probabilities not summing to 1, NaN, ...) or give the data
        zero probability (``p = 0`` with a success observed).

    Raises
    ------
    InputError
        If `family` is unknown, a parameter is missing or not a number, the data lie
        outside the family's support, or the weights are malformed.

    Examples
    --------
    >>> x = [1] * 70 + [0] * 30
    >>> round(log_likelihood("bernoulli", x, {"p": 0.7}), 4)
    -61.0864
    >>> log_likelihood("bernoulli", x, {"p": 1.5})
    -inf
    """
    fam = canonical_family(family)
    fixed: Mapping[str, object] = {}
    if isinstance(params, MLEResult):
        fixed = params.fixed
        params = params.params
    if not isinstance(params, Mapping):
        raise InputError(
            f"params must be a mapping of parameter names to values, got "
            f"{type(params).__name__}"
        )
    if fam == "multivariate_normal":
        return _ll_multivariate_normal(x, params, sample_weight)
    if fam == "categorical":
        return _ll_categorical(x, params, sample_weight)

    xs, w, _ = _prepare(x, sample_weight)
    from scipy import special

    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if fam == "normal":
            mean, sd = _get(params, ("mean", "sd"), fam)
            if not (math.isfinite(mean) and math.isfinite(sd) and sd > 0):
                return -math.inf
            z = (xs - mean) / sd
            terms = -_HALF_LOG_2PI - math.log(sd) - 0.5 * z * z
        elif fam == "exponential":
            _check_nonnegative(xs, "exponential")
            (rate,) = _get(params, ("rate",), fam)
            if not (math.isfinite(rate) and rate > 0):
                return -math.inf
            terms = math.log(rate) - rate * xs
        elif fam == "poisson":
            _check_counts(xs, "Poisson")
            (rate,) = _get(params, ("rate",), fam)
            if not (math.isfinite(rate) and rate >= 0):
                return -math.inf
            terms = special.xlogy(xs, rate) - rate - special.gammaln(xs + 1.0)
        elif fam == "bernoulli":
            _check_zero_one(xs)
            (p,) = _get(params, ("p",), fam)
            if not 0.0 <= p <= 1.0:
                return -math.inf
            terms = special.xlogy(xs, p) + special.xlog1py(1.0 - xs, -p)
        elif fam == "binomial":
            if n_trials is None:
                n_trials = params.get("n_trials", fixed.get("n_trials"))
            trials = _check_trials(n_trials, xs.shape[0])
            _check_successes(xs, trials)
            (p,) = _get(params, ("p",), fam)
            if not 0.0 <= p <= 1.0:
                return -math.inf
            terms = log_binomial_coefficient(xs, trials) + special.xlogy(xs, p) + special.xlog1py(
                trials - xs, -p
            )
        elif fam == "gamma":
            _check_positive(xs, "gamma")
            shape, scale = _get(params, ("shape", "scale"), fam)
            if not (math.isfinite(shape) and math.isfinite(scale) and shape > 0 and scale > 0):
                return -math.inf
            terms = gamma_logpdf(xs, shape, scale)
        elif fam == "lognormal":
            _check_positive(xs, "log-normal")
            mu, sigma = _get(params, ("mu", "sigma"), fam)
            if not (math.isfinite(mu) and math.isfinite(sigma) and sigma > 0):
                return -math.inf
            lx = np.log(xs)
            z = (lx - mu) / sigma
            terms = -lx - _HALF_LOG_2PI - math.log(sigma) - 0.5 * z * z
        else:  # student_t
            df, loc, scale = _get(params, ("df", "loc", "scale"), fam)
            if not (df > 0 and math.isfinite(loc) and math.isfinite(scale) and scale > 0):
                return -math.inf
            terms = _t_logpdf(xs, df, loc, scale)
    total = _weighted_sum(w, terms)
    return total if not math.isnan(total) else -math.inf


def _t_logpdf(xs: np.ndarray, df: float, loc: float, scale: float) -> np.ndarray:
    """Student-t log-density of each value, shape (n,); ``df = inf`` is the normal."""
    z = (xs - loc) / scale
    if math.isinf(df):
        return -_HALF_LOG_2PI - math.log(scale) - 0.5 * z * z
    const = (
        log_ratio_gamma_half(0.5 * df)
        - 0.5 * math.log(df * math.pi)
        - math.log(scale)
    )
    # log1p keeps the tails accurate where z^2 / df is small next to 1.
    return const - 0.5 * (df + 1.0) * np.log1p(z * z / df)


# --------------------------------------------------------------------------------------
# Families whose parameters are arrays
# --------------------------------------------------------------------------------------

_MEAN_KEY = re.compile(r"^mean\[(\d+)\]$")
_COV_KEY = re.compile(r"^cov\[(\d+),\s*(\d+)\]$")


def mvn_arrays_from_params(params: Mapping[str, object]) -> tuple[np.ndarray, np.ndarray]:
    """Mean vector (D,) and covariance matrix (D, D) from ``"mean[i]"``/``"cov[i,j]"`` keys.

    The covariance may be given by its upper triangle (``i <= j``, as in
    ``MLEResult.params``) or in full; a missing entry is read from its mirror image.
    """
    idx = sorted(int(m.group(1)) for k in params if (m := _MEAN_KEY.match(str(k))))
    d = len(idx)
    if d == 0 or idx != list(range(d)):
        raise InputError(
            "params for the multivariate_normal family need keys 'mean[0]', ..., "
            "'mean[D-1]' and 'cov[i,j]' for 0 <= i <= j < D"
        )
    mean = np.array(_get(params, tuple(f"mean[{i}]" for i in range(d)), "multivariate_normal"))
    cov = np.full((d, d), np.nan)
    for k, v in params.items():
        m = _COV_KEY.match(str(k))
        if m:
            i, j = int(m.group(1)), int(m.group(2))
            if i >= d or j >= d:
                raise InputError(f"params key {k!r} is out of range for D = {d} means")
            cov[i, j] = float(v)
    cov = np.where(np.isnan(cov), cov.T, cov)
    missing = [f"cov[{i},{j}]" for i in range(d) for j in range(i, d) if np.isnan(cov[i, j])]
    if missing:
        raise InputError(
            f"params for the multivariate_normal family miss {', '.join(missing[:10])}"
        )
    return mean, cov


def _ll_multivariate_normal(x: object, params: Mapping[str, object], sample_weight: object) -> float:
    xs = _as_float_matrix(x)
    w = _check_weights(sample_weight, xs.shape[0])
    mean, cov = mvn_arrays_from_params(params)
    if mean.shape[0] != xs.shape[1]:
        raise InputError(
            f"params describe a {mean.shape[0]}-dimensional normal but x has "
            f"{xs.shape[1]} column(s)"
        )
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(cov))):
        return -math.inf
    if not np.allclose(cov, cov.T, rtol=1e-12, atol=0.0):
        return -math.inf
    try:
        chol = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        return -math.inf
    diag = np.diag(chol)
    if not np.all(diag > 0):
        return -math.inf
    from scipy.linalg import solve_triangular

    resid = solve_triangular(chol, (xs - mean).T, lower=True)  # (D, n)
    terms = -0.5 * np.sum(resid * resid, axis=0) - np.sum(np.log(diag)) - xs.shape[1] * _HALF_LOG_2PI
    return _weighted_sum(w, terms)


def categorical_name(label: object) -> str:
    """The params key of a category: ``"p[<label>]"``."""
    return f"p[{label}]"


def _ll_categorical(x: object, params: Mapping[str, object], sample_weight: object) -> float:
    labels = _as_label_vector(x)
    w = _check_weights(sample_weight, len(labels))
    probs: dict[str, float] = {}
    for k, v in params.items():
        k = str(k)
        if k.startswith("p[") and k.endswith("]"):
            try:
                probs[k] = float(v)
            except (TypeError, ValueError) as exc:
                raise InputError(f"params[{k!r}] must be a number, got {v!r}") from exc
    if not probs:
        raise InputError(
            "params for the categorical family need one 'p[<category>]' key per category"
        )
    unknown = [i for i, lab in enumerate(labels) if categorical_name(lab) not in probs]
    if unknown:
        shown = _list_some(unknown, lambda i: f"x[{i}] = {labels[i]!r}")
        raise InputError(
            f"unknown category(ies) in x: {shown}; params name "
            f"{', '.join(sorted(probs))}"
        )
    p = np.array(list(probs.values()))
    if not (np.all(np.isfinite(p)) and np.all(p >= 0) and abs(p.sum() - 1.0) <= 1e-9):
        return -math.inf
    terms = np.array([probs[categorical_name(lab)] for lab in labels])
    with np.errstate(divide="ignore"):
        return _weighted_sum(w, np.log(terms))
