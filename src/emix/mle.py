"""Maximum-likelihood fits of single distributions, with standard errors.

These are the building blocks a student meets before mixtures: with every label known, each
group's parameters have a closed-form maximum-likelihood estimate (MLE). Each ``fit_*``
function returns an :class:`MLEResult` holding the estimates, their standard errors, the
parameters' covariance matrix and the maximised log-likelihood.

Standard errors come from the *observed* Fisher information: the Hessian of the negative
log-likelihood evaluated at the MLE, inverted. For every family here that Hessian has a
closed form, so nothing is differentiated numerically. For these families the observed and
the expected information coincide at the MLE, so the two usual textbook definitions agree.

Sample weights are *frequency* weights: a weight of 3 means "this value was seen three
times", and ``n`` (the effective sample size used in every standard error) is the sum of
the weights. Weights that were rescaled to sum to 1 therefore give standard errors as if
there were a single observation; pass counts, not proportions, when standard errors matter.

Examples
--------
>>> from emix.mle import fit_normal
>>> res = fit_normal([170.0, 180.0, 175.0, 165.0])
>>> res.params["mean"], round(res.params["sd"], 4)
(172.5, 5.5902)
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from emix.exceptions import InputError, NonNumericError

__all__ = [
    "MLEResult",
    "fit_normal",
    "fit_exponential",
    "fit_poisson",
    "fit_bernoulli",
]

# Error messages list at most this many offending positions; beyond that the count says
# enough, and a message the length of the data helps nobody.
_MAX_POSITIONS_SHOWN = 10


# --------------------------------------------------------------------------------------
# Result object
# --------------------------------------------------------------------------------------


# eq=False: the generated __eq__ would compare the ``cov`` arrays with ``==`` and fail
# with "truth value of an array is ambiguous"; identity equality is the honest default.
@dataclass(frozen=True, eq=False)
class MLEResult:
    """The outcome of a maximum-likelihood fit of one distribution.

    Attributes
    ----------
    family : str
        Name of the distribution, e.g. ``"normal"``.
    params : dict of str to float
        Maximum-likelihood estimates, in the order of the rows of `cov`.
    stderr : dict of str to float
        Standard error of each estimate: the square root of the matching diagonal entry
        of `cov`.
    cov : ndarray of shape (n_params, n_params)
        Estimated covariance matrix of the estimates: the inverse of the observed Fisher
        information (the Hessian of the negative log-likelihood at the MLE). Read-only.
    loglik : float
        Maximised log-likelihood, ``sum_i w_i * log f(x_i; params)``.
    n : float
        Effective sample size: the sum of the sample weights (the number of
        observations when unweighted).
    """

    family: str
    params: dict[str, float]
    stderr: dict[str, float]
    cov: np.ndarray
    loglik: float
    n: float

    def __post_init__(self) -> None:
        # The dataclass is frozen, but its containers would not be; copy them and lock the
        # array so that a result cannot be changed behind the caller's back.
        params = {str(k): float(v) for k, v in self.params.items()}
        stderr = {str(k): float(v) for k, v in self.stderr.items()}
        if list(params) != list(stderr):
            raise ValueError("params and stderr must name the same parameters in the same order")
        cov = np.array(self.cov, dtype=np.float64, copy=True)
        if cov.shape != (len(params), len(params)):
            raise ValueError(
                f"cov must have shape ({len(params)}, {len(params)}), got {cov.shape}"
            )
        cov.setflags(write=False)
        object.__setattr__(self, "params", params)
        object.__setattr__(self, "stderr", stderr)
        object.__setattr__(self, "cov", cov)
        object.__setattr__(self, "loglik", float(self.loglik))
        object.__setattr__(self, "n", float(self.n))

    @property
    def param_names(self) -> tuple[str, ...]:
        """Names of the parameters, in the order of the rows of `cov`."""
        return tuple(self.params)

    def conf_int(self, level: float = 0.95) -> dict[str, tuple[float, float]]:
        """Wald confidence intervals, ``estimate +/- z * stderr``.

        Parameters
        ----------
        level : float, default=0.95
            Confidence level, strictly between 0 and 1.

        Returns
        -------
        dict of str to (float, float)
            ``(lower, upper)`` for each parameter.

        Notes
        -----
        Wald intervals rest on the estimate being approximately normal, which holds for
        large ``n``. They are symmetric, so for small samples they can stray outside the
        parameter's range (a negative lower bound for a standard deviation, say).
        """
        z = _z_quantile(level)
        return {
            name: (est - z * self.stderr[name], est + z * self.stderr[name])
            for name, est in self.params.items()
        }

    def summary(self, level: float = 0.95) -> str:
        """A small text table: estimate, standard error and confidence interval.

        Parameters
        ----------
        level : float, default=0.95
            Confidence level of the interval column.

        Returns
        -------
        str
            The table, several lines, without a trailing newline.
        """
        ci = self.conf_int(level)
        pct = f"{100 * level:g}% CI"
        header = ("parameter", "estimate", "std. error", pct)
        rows = []
        for name, est in self.params.items():
            d = _decimals(self.stderr[name])
            lo, hi = ci[name]
            se = self.stderr[name]
            rows.append((name, f"{est:.{d}f}", f"{se:.{d}f}", f"[{lo:.{d}f}, {hi:.{d}f}]"))
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]

        def line(cells: tuple[str, ...]) -> str:
            # Names read best left-aligned, numbers right-aligned so digits line up.
            first = cells[0].ljust(widths[0])
            rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:])]
            return "  ".join([first, *rest]).rstrip()

        title = f"{self.family.capitalize()} maximum-likelihood fit (n = {_fmt(self.n)})"
        lines = [title, line(header), *(line(r) for r in rows)]
        lines.append(f"log-likelihood: {_fmt(self.loglik)}")
        if self.family == "normal":
            # Students compare against numpy.std(ddof=1) or a calculator and see a
            # smaller number; the table should say why before they go looking.
            lines.append("sd is the maximum-likelihood estimate (divides by n, not n - 1).")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def _decimals(stderr: float) -> int:
    # Digits beyond the standard error's third significant figure are noise; printing
    # them invites students to read meaning into them. Same decimals across a row keeps
    # estimate, error and interval comparable.
    if not math.isfinite(stderr) or stderr <= 0.0:
        return 6
    return min(10, max(0, 2 - math.floor(math.log10(stderr))))


def _fmt(value: float) -> str:
    # Six significant digits suit heights in cm and rates of 1e-4 alike; integers such as
    # an unweighted n print without a spurious ".0".
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"


def _z_quantile(level: float) -> float:
    if not isinstance(level, numbers.Real) or not 0.0 < float(level) < 1.0:
        raise InputError(f"level must be a number strictly between 0 and 1, got {level!r}")
    # statistics.NormalDist keeps scipy.stats (a slow import) out of this module.
    return NormalDist().inv_cdf(0.5 + float(level) / 2.0)


# --------------------------------------------------------------------------------------
# Input checking
# --------------------------------------------------------------------------------------


def _describe_positions(name: str, values: np.ndarray, idx: np.ndarray) -> str:
    # float() first: NumPy 2 would otherwise print "np.float64(-1.5)".
    shown = ", ".join(
        f"{name}[{i}] = {float(values[i])!r}" for i in idx[:_MAX_POSITIONS_SHOWN]
    )
    more = len(idx) - _MAX_POSITIONS_SHOWN
    if more > 0:
        shown += f", and {more} more"
    return shown


def _is_missing_scalar(v: object) -> bool:
    # pandas' nullable dtypes turn missing entries into pd.NA when converted to an object
    # array; recognise it by type name so that pandas is never imported here.
    return v is None or type(v).__name__ in {"NAType", "NaTType"}


def _as_float_vector(x: object, name: str) -> np.ndarray:
    """Convert list / array / pandas Series to a 1-D float64 array, or raise naming why.

    Missing values (None, NaN, pd.NA) become NaN here and are reported by the caller's
    finiteness check, so the user gets one message listing every bad position.
    """
    if isinstance(x, (str, bytes)):
        raise NonNumericError(f"{name} must be a sequence of numbers, got a string: {x!r}")
    if isinstance(x, Mapping):
        raise NonNumericError(
            f"{name} must be a sequence of numbers, got a {type(x).__name__}; "
            "pass its values instead"
        )
    try:
        arr = np.asarray(x)
    except (ValueError, TypeError) as exc:
        # NumPy refuses ragged nested lists; say so in terms of the user's argument.
        raise InputError(f"{name} must be a flat sequence of numbers: {exc}") from exc

    if arr.ndim == 0:
        raise InputError(f"{name} must be a one-dimensional sequence of values, got a scalar")
    if arr.ndim == 2 and arr.shape[1] == 1:
        # A single-column DataFrame or an (n, 1) array is unambiguous: one variable.
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise InputError(
            f"{name} must be one-dimensional (one variable), got an array of shape {arr.shape}"
        )
    if arr.size == 0:
        raise InputError(f"{name} is empty: at least one observation is needed")

    kind = arr.dtype.kind
    if kind in "biuf":
        return arr.astype(np.float64, copy=True)
    if kind == "c":
        raise NonNumericError(f"{name} holds complex numbers; only real values can be fitted")
    if kind in "USV":
        raise NonNumericError(
            f"{name} must hold numbers, but {name}[0] is {str(arr[0])!r} (text); "
            "convert strings to numbers before fitting"
        )
    if kind in "mM":
        raise NonNumericError(
            f"{name} holds dates or time spans ({arr.dtype}); convert them to numbers first"
        )

    # Object arrays: pandas Series of mixed or nullable type, lists with None, ...
    out = np.empty(arr.shape[0], dtype=np.float64)
    for i, v in enumerate(arr):
        if _is_missing_scalar(v):
            out[i] = np.nan
        elif isinstance(v, (numbers.Real, np.bool_)):
            out[i] = float(v)
        else:
            raise NonNumericError(
                f"{name} must hold numbers, but {name}[{i}] is {v!r} ({type(v).__name__})"
            )
    return out


def _check_finite(arr: np.ndarray, name: str) -> None:
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise InputError(
            f"{name} contains {bad.size} missing (NaN) or infinite value(s): "
            f"{_describe_positions(name, arr, bad)}; drop or impute them before fitting"
        )


def _prepare(x: object, sample_weight: object) -> tuple[np.ndarray, np.ndarray, float]:
    """Validate data and weights; return ``(x, w, sum_w)``, both arrays of shape (n,)."""
    xs = _as_float_vector(x, "x")
    _check_finite(xs, "x")
    if sample_weight is None:
        w = np.ones_like(xs)
    else:
        w = _as_float_vector(sample_weight, "sample_weight")
        if w.shape != xs.shape:
            raise InputError(
                f"sample_weight has {w.shape[0]} entries but x has {xs.shape[0]}; "
                "they must have the same length"
            )
        _check_finite(w, "sample_weight")
        neg = np.flatnonzero(w < 0)
        if neg.size:
            raise InputError(
                "sample_weight must be non-negative; negative weight(s) at "
                f"{_describe_positions('sample_weight', w, neg)}"
            )
    total = float(w.sum())
    if total <= 0.0:
        raise InputError("all sample weights are zero: there is nothing to fit")
    return xs, w, total


def _result(
    family: str,
    names: tuple[str, ...],
    estimates: tuple[float, ...],
    cov: np.ndarray,
    loglik: float,
    n: float,
) -> MLEResult:
    se = np.sqrt(np.diag(cov))
    return MLEResult(
        family=family,
        params=dict(zip(names, estimates)),
        stderr=dict(zip(names, (float(s) for s in se))),
        cov=cov,
        loglik=loglik,
        n=n,
    )


# --------------------------------------------------------------------------------------
# Families
# --------------------------------------------------------------------------------------


def fit_normal(x: object, sample_weight: object = None) -> MLEResult:
    """Maximum-likelihood fit of a normal distribution N(mean, sd**2).

    Parameters
    ----------
    x : array-like of shape (n,)
        Observations: a list, NumPy array or pandas Series of finite real numbers. An
        array of shape (n, 1) is read as one variable.
    sample_weight : array-like of shape (n,), optional
        Non-negative frequency weights (see the module notes). Defaults to all ones.

    Returns
    -------
    MLEResult
        ``params`` and ``stderr`` have keys ``"mean"`` and ``"sd"``; ``cov`` has shape
        (2, 2).

    Raises
    ------
    InputError
        If `x` is empty, contains NaN or infinite values, or all its (positively
        weighted) values are equal, or if `sample_weight` is malformed. ``InputError``
        subclasses ``ValueError``.
    NonNumericError
        If `x` holds something other than real numbers (also a ``TypeError``).

    Notes
    -----
    With weights :math:`w_i` summing to :math:`n`,

    .. math::

        \\hat\\mu = \\frac{1}{n}\\sum_i w_i x_i, \\qquad
        \\hat\\sigma = \\sqrt{\\frac{1}{n}\\sum_i w_i (x_i - \\hat\\mu)^2}.

    The standard deviation is the MLE, which divides by :math:`n`, *not* the unbiased
    :math:`n - 1` of ``numpy.std(x, ddof=1)``; it is therefore slightly smaller than the
    usual sample standard deviation, noticeably so for small samples.

    The observed Fisher information for :math:`(\\mu, \\sigma)` at the MLE is
    :math:`\\mathrm{diag}(n/\\hat\\sigma^2,\\; 2n/\\hat\\sigma^2)` (the cross term
    vanishes because the weighted residuals sum to zero), so

    .. math::

        \\mathrm{se}(\\hat\\mu) = \\hat\\sigma/\\sqrt{n}, \\qquad
        \\mathrm{se}(\\hat\\sigma) = \\hat\\sigma/\\sqrt{2n}.

    The maximised log-likelihood is :math:`-\\tfrac{n}{2}(\\log(2\\pi\\hat\\sigma^2) + 1)`.

    Examples
    --------
    >>> res = fit_normal([1.0, 2.0, 3.0, 4.0])
    >>> round(res.params["sd"], 4), round(res.stderr["mean"], 4)
    (1.118, 0.559)
    """
    xs, w, n = _prepare(x, sample_weight)
    used = xs[w > 0]
    if np.all(used == used[0]):
        raise InputError(
            f"all {used.size} (positively weighted) values of x are equal to {float(used[0])!r}: "
            "the maximum-likelihood standard deviation is 0, where the normal likelihood "
            "is unbounded and no standard error exists; a normal fit needs at least two "
            "distinct values"
        )
    mean = float(np.dot(w, xs) / n)
    # Two-pass variance: subtracting the mean first avoids the cancellation of
    # E[x^2] - E[x]^2 when the spread is small next to the level (heights in cm, prices).
    var = float(np.dot(w, (xs - mean) ** 2) / n)
    if not var > 0.0:
        # Distinct values whose spread underflows in float64; the same failure as above.
        raise InputError(
            "the values of x differ, but their variance underflows to 0 in float64, so "
            "the standard deviation cannot be estimated; rescale x"
        )
    sd = math.sqrt(var)
    cov = np.diag([var / n, var / (2.0 * n)])
    loglik = -0.5 * n * (math.log(2.0 * math.pi * var) + 1.0)
    return _result("normal", ("mean", "sd"), (mean, sd), cov, loglik, n)


def fit_exponential(x: object, sample_weight: object = None) -> MLEResult:
    """Maximum-likelihood fit of an exponential distribution with density rate * exp(-rate * x).

    Parameters
    ----------
    x : array-like of shape (n,)
        Non-negative, finite observations (waiting times, sizes, ...).
    sample_weight : array-like of shape (n,), optional
        Non-negative frequency weights. Defaults to all ones.

    Returns
    -------
    MLEResult
        ``params`` and ``stderr`` have the single key ``"rate"``; ``cov`` has shape (1, 1).
        The scale (mean) used by ``scipy.stats.expon`` and ``numpy.random`` is
        ``1 / rate``.

    Raises
    ------
    InputError
        If `x` is empty, has NaN/inf or negative values, or all its (positively
        weighted) values are zero, or if `sample_weight` is malformed.
    NonNumericError
        If `x` holds something other than real numbers.

    Notes
    -----
    :math:`\\hat\\lambda = n / \\sum_i w_i x_i` (one over the weighted mean). The
    negative log-likelihood :math:`-n\\log\\lambda + \\lambda\\sum_i w_i x_i` has second
    derivative :math:`n/\\lambda^2`, so :math:`\\mathrm{se}(\\hat\\lambda) =
    \\hat\\lambda/\\sqrt{n}`. The maximised log-likelihood is :math:`n(\\log\\hat\\lambda - 1)`.
    """
    xs, w, n = _prepare(x, sample_weight)
    neg = np.flatnonzero(xs < 0)
    if neg.size:
        raise InputError(
            "the exponential distribution needs x >= 0; negative value(s) at "
            f"{_describe_positions('x', xs, neg)}"
        )
    total = float(np.dot(w, xs))
    if total <= 0.0:
        raise InputError(
            "all (positively weighted) values of x are 0: the maximum-likelihood rate is "
            "infinite, so the exponential fit is undefined"
        )
    rate = n / total
    cov = np.array([[rate * rate / n]])
    loglik = n * (math.log(rate) - 1.0)
    return _result("exponential", ("rate",), (rate,), cov, loglik, n)


def fit_poisson(x: object, sample_weight: object = None) -> MLEResult:
    """Maximum-likelihood fit of a Poisson distribution to counts.

    Parameters
    ----------
    x : array-like of shape (n,)
        Non-negative integer counts. Floats are accepted when they hold whole numbers
        (``3.0``), since data read from files often arrive as floats.
    sample_weight : array-like of shape (n,), optional
        Non-negative frequency weights. Defaults to all ones.

    Returns
    -------
    MLEResult
        ``params`` and ``stderr`` have the single key ``"rate"`` (the Poisson mean,
        often written lambda or mu); ``cov`` has shape (1, 1).

    Raises
    ------
    InputError
        If `x` is empty, has NaN/inf, negative or fractional values, or all its
        (positively weighted) counts are zero, or if `sample_weight` is malformed.
    NonNumericError
        If `x` holds something other than real numbers.

    Notes
    -----
    :math:`\\hat\\lambda = \\frac{1}{n}\\sum_i w_i x_i`. The negative log-likelihood has
    second derivative :math:`\\sum_i w_i x_i/\\lambda^2`, which at the MLE is
    :math:`n/\\hat\\lambda`, so :math:`\\mathrm{se}(\\hat\\lambda) = \\sqrt{\\hat\\lambda/n}`.
    The log-likelihood includes the :math:`-\\log x_i!` terms, so it matches
    ``scipy.stats.poisson.logpmf``.
    """
    xs, w, n = _prepare(x, sample_weight)
    neg = np.flatnonzero(xs < 0)
    if neg.size:
        raise InputError(
            "the Poisson distribution needs non-negative integer counts; negative "
            f"value(s) at {_describe_positions('x', xs, neg)}"
        )
    frac = np.flatnonzero(xs != np.floor(xs))
    if frac.size:
        raise InputError(
            "the Poisson distribution needs whole-number counts; fractional value(s) at "
            f"{_describe_positions('x', xs, frac)}"
        )
    total = float(np.dot(w, xs))
    if total <= 0.0:
        raise InputError(
            "all (positively weighted) counts in x are 0: the maximum-likelihood rate is "
            "0, on the edge of the parameter space, where the Fisher information and the "
            "standard error are undefined"
        )
    rate = total / n
    cov = np.array([[rate / n]])
    # Deferred: scipy.special costs a quarter of a second to import, and only this
    # family needs log-factorials.
    from scipy.special import gammaln

    loglik = total * math.log(rate) - n * rate - float(np.dot(w, gammaln(xs + 1.0)))
    return _result("poisson", ("rate",), (rate,), cov, loglik, n)


def fit_bernoulli(x: object, sample_weight: object = None) -> MLEResult:
    """Maximum-likelihood fit of a Bernoulli distribution (probability of a 1).

    Parameters
    ----------
    x : array-like of shape (n,)
        Outcomes coded 0/1 (``True``/``False`` is accepted as well).
    sample_weight : array-like of shape (n,), optional
        Non-negative frequency weights. Defaults to all ones.

    Returns
    -------
    MLEResult
        ``params`` and ``stderr`` have the single key ``"p"``; ``cov`` has shape (1, 1).

    Raises
    ------
    InputError
        If `x` is empty, has NaN/inf or values other than 0 and 1, or its (positively
        weighted) values are all 0 or all 1, or if `sample_weight` is malformed.
    NonNumericError
        If `x` holds something other than real numbers or booleans.

    Notes
    -----
    :math:`\\hat p = \\frac{1}{n}\\sum_i w_i x_i`. The observed information at the MLE
    is :math:`n / (\\hat p(1-\\hat p))`, so :math:`\\mathrm{se}(\\hat p) =
    \\sqrt{\\hat p(1-\\hat p)/n}`. When every outcome is the same, :math:`\\hat p` is 0
    or 1, the information is infinite and the Wald standard error would be a misleading
    0, so that case is an error.
    """
    xs, w, n = _prepare(x, sample_weight)
    bad = np.flatnonzero((xs != 0.0) & (xs != 1.0))
    if bad.size:
        raise InputError(
            "the Bernoulli distribution needs outcomes coded 0 or 1; other value(s) at "
            f"{_describe_positions('x', xs, bad)}"
        )
    ones = float(np.dot(w, xs))
    zeros = n - ones
    if ones <= 0.0 or zeros <= 0.0:
        value = 1 if ones > 0.0 else 0
        raise InputError(
            f"all (positively weighted) values of x are {value}: the maximum-likelihood "
            f"p is {value}, on the edge of the parameter space, where the Fisher "
            "information is infinite and no standard error exists"
        )
    p = ones / n
    cov = np.array([[p * (1.0 - p) / n]])
    loglik = ones * math.log(p) + zeros * math.log1p(-p)
    return _result("bernoulli", ("p",), (p,), cov, loglik, n)
