"""Closed-form maximum-likelihood fits.

Every family here has an explicit MLE and an explicit observed information matrix, so
nothing is optimised or differentiated numerically.
"""

from __future__ import annotations

import math

import numpy as np

from ..exceptions import InputError
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
    _refuse_all_equal,
)
from ..families.binomial import log_binomial_coefficient
from ._loglik import categorical_name
from ._result import MLEResult


def _result(
    family: str,
    names: tuple[str, ...],
    estimates: tuple[float, ...],
    cov: np.ndarray,
    loglik: float,
    n: float,
    **extra: object,
) -> MLEResult:
    with np.errstate(invalid="ignore"):
        # A negative variance (a saddle, not a maximum) shows as nan, not a warning.
        se = np.sqrt(np.diag(cov))
    return MLEResult(
        family=family,
        params=dict(zip(names, estimates)),
        stderr=dict(zip(names, (float(s) for s in se))),
        cov=cov,
        loglik=loglik,
        n=n,
        **extra,
    )


def _weighted_mean(xs: np.ndarray, w: np.ndarray, n: float) -> float:
    """Weighted mean of xs (n_rows,), accurate to round-off of the spread, not the level.

    A BLAS dot product of 1e6-sized values errs by about n * eps * 1e6, which is more
    than the whole spread of data with sd 1e-8; one correction pass over the residuals
    (exact by Sterbenz's lemma when they are small) removes that error.
    """
    mean = float(np.dot(w, xs) / n)
    return mean + float(np.dot(w, xs - mean) / n)


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
    _refuse_all_equal(
        xs[w > 0],
        "the maximum-likelihood standard deviation is 0, where the normal likelihood "
        "is unbounded and no standard error exists; a normal fit needs at least two "
        "distinct values",
    )
    mean = _weighted_mean(xs, w, n)
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
    _check_nonnegative(xs, "exponential")
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
    _check_counts(xs, "Poisson")
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
    _check_zero_one(xs)
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


def fit_binomial(
    x: object, n_trials: object = None, sample_weight: object = None
) -> MLEResult:
    """Maximum-likelihood fit of a binomial distribution with a known number of trials.

    Parameters
    ----------
    x : array-like of shape (n,)
        Numbers of successes, whole numbers with ``0 <= x[i] <= n_trials[i]``.
    n_trials : int or array-like of shape (n,)
        The known number of trials: one number for every row, or one per row (e.g. the
        number of patients treated at each clinic). Required.
    sample_weight : array-like of shape (n,), optional
        Non-negative frequency weights. Defaults to all ones.

    Returns
    -------
    MLEResult
        ``params`` and ``stderr`` have the single key ``"p"`` (the success probability);
        ``cov`` has shape (1, 1); ``fixed["n_trials"]`` holds `n_trials` (an int, or a
        read-only array of shape (n,)), so that ``log_likelihood(res.family, x, res)``
        works.

    Raises
    ------
    InputError
        If `n_trials` is missing or not whole numbers >= 1, if `x` is empty, has
        NaN/inf, negative or fractional values or more successes than trials, if every
        (positively weighted) row has no successes or only successes, or if
        `sample_weight` is malformed.

    Notes
    -----
    With :math:`S = \\sum_i w_i x_i` successes in :math:`T = \\sum_i w_i m_i` trials,
    :math:`\\hat p = S/T` and :math:`\\mathrm{se}(\\hat p) = \\sqrt{\\hat p(1-\\hat p)/T}`
    (the observed information is :math:`S/p^2 + (T-S)/(1-p)^2`, which is
    :math:`T/(\\hat p(1-\\hat p))` at the MLE). ``n`` in the result is the number of
    rows (the sum of the weights), which is what BIC counts; the information grows with
    the trials. The log-likelihood includes the binomial coefficients, so it matches
    ``scipy.stats.binom.logpmf``.
    """
    xs, w, n = _prepare(x, sample_weight)
    trials = _check_trials(n_trials, xs.shape[0])
    _check_successes(xs, trials)
    successes = float(np.dot(w, xs))
    total = float(np.dot(w, trials))
    failures = total - successes
    if successes <= 0.0 or failures <= 0.0:
        what = "no successes" if successes <= 0.0 else "only successes"
        value = 0 if successes <= 0.0 else 1
        raise InputError(
            f"the (positively weighted) rows of x have {what}: the maximum-likelihood p "
            f"is {value}, on the edge of the parameter space, where the Fisher "
            "information is infinite and no standard error exists"
        )
    p = successes / total
    cov = np.array([[p * (1.0 - p) / total]])
    used = w > 0
    loglik = (
        float(np.dot(w[used], log_binomial_coefficient(xs[used], trials[used])))
        + successes * math.log(p)
        + failures * math.log1p(-p)
    )
    if np.all(trials == trials[0]):
        fixed_trials: object = int(trials[0])
    else:
        fixed_trials = trials.astype(np.int64)
    return _result(
        "binomial", ("p",), (p,), cov, loglik, n, fixed={"n_trials": fixed_trials}
    )


def fit_lognormal(x: object, sample_weight: object = None) -> MLEResult:
    """Maximum-likelihood fit of a log-normal distribution: log(x) ~ N(mu, sigma**2).

    Parameters
    ----------
    x : array-like of shape (n,)
        Positive, finite observations.
    sample_weight : array-like of shape (n,), optional
        Non-negative frequency weights. Defaults to all ones.

    Returns
    -------
    MLEResult
        ``params`` and ``stderr`` have keys ``"mu"`` and ``"sigma"``, the mean and
        standard deviation of ``log(x)``; ``cov`` has shape (2, 2). In
        ``scipy.stats.lognorm`` terms, ``s = sigma`` and ``scale = exp(mu)`` (with
        ``loc = 0``); in NumPy's ``lognormal(mean, sigma)``, ``mean = mu``.

    Raises
    ------
    InputError
        If `x` is empty, has NaN/inf, zero or negative values, or fewer than two
        distinct (positively weighted) values, or if `sample_weight` is malformed.

    Notes
    -----
    The MLE is the normal MLE of :math:`\\log x` (dividing by :math:`n`), with the
    same standard errors :math:`\\hat\\sigma/\\sqrt n` and :math:`\\hat\\sigma/\\sqrt{2n}`.
    The log-likelihood adds the Jacobian term :math:`-\\sum_i w_i \\log x_i`, so it
    matches ``scipy.stats.lognorm.logpdf``.

    The logarithms are taken as ``log(c) + log1p((x - c) / c)`` about the weighted mean
    ``c``, so that data with a tiny relative spread (``1e6`` plus or minus ``1e-3``)
    keep their digits instead of losing them to ``log(x)`` rounding.
    """
    xs, w, n = _prepare(x, sample_weight)
    _check_positive(xs, "log-normal")
    _refuse_all_equal(
        xs[w > 0],
        "the maximum-likelihood sigma is 0, where the log-normal likelihood is "
        "unbounded; a log-normal fit needs at least two distinct values",
    )
    centre = float(np.dot(w, xs) / n)
    rel = np.log1p((xs - centre) / centre)
    shift = float(np.dot(w, rel) / n)
    dev = rel - shift
    var = float(np.dot(w, dev * dev) / n)
    if not var > 0.0:
        raise InputError(
            "the values of x differ, but the variance of log(x) underflows to 0 in "
            "float64, so sigma cannot be estimated"
        )
    mu = math.log(centre) + shift
    sigma = math.sqrt(var)
    sum_log = float(np.dot(w, np.log(xs)))
    loglik = -sum_log - 0.5 * n * (math.log(2.0 * math.pi * var) + 1.0)
    cov = np.diag([var / n, var / (2.0 * n)])
    return _result("lognormal", ("mu", "sigma"), (mu, sigma), cov, loglik, n)


def fit_multivariate_normal(x: object, sample_weight: object = None) -> MLEResult:
    """Maximum-likelihood fit of a multivariate normal distribution N(mean, cov).

    Parameters
    ----------
    x : array-like of shape (n, D)
        Rows are observations, columns variables; a 1-D array is one variable.
    sample_weight : array-like of shape (n,), optional
        Non-negative frequency weights, one per row. Defaults to all ones.

    Returns
    -------
    MLEResult
        ``params`` holds ``"mean[i]"`` for ``i < D`` and then the upper triangle of the
        covariance matrix, ``"cov[i,j]"`` for ``i <= j`` in row order (the
        ``D + D(D+1)/2`` free parameters, which is ``n_params``); ``stderr`` and the
        rows of ``cov`` follow that order. ``arrays["mean"]`` (shape (D,)) and
        ``arrays["cov"]`` (shape (D, D)) hold the estimates as arrays.

    Raises
    ------
    InputError
        If `x` is empty or not two-dimensional, has NaN/inf values, if a column is
        constant or the columns are linearly dependent (the covariance matrix is
        singular: with D variables at least D + 1 rows in general position are
        needed), or if `sample_weight` is malformed.

    Notes
    -----
    :math:`\\hat\\mu = \\frac1n\\sum_i w_i x_i` and :math:`\\hat\\Sigma =
    \\frac1n\\sum_i w_i (x_i-\\hat\\mu)(x_i-\\hat\\mu)^T` (dividing by :math:`n`).
    The inverse observed information is block diagonal at the MLE: :math:`\\hat\\Sigma/n`
    for the mean, and :math:`\\mathrm{Cov}(\\hat\\sigma_{ij}, \\hat\\sigma_{kl}) =
    (\\hat\\sigma_{ik}\\hat\\sigma_{jl} + \\hat\\sigma_{il}\\hat\\sigma_{jk})/n` for the
    covariance entries. The maximised log-likelihood is
    :math:`-\\tfrac n2(D\\log 2\\pi + \\log\\det\\hat\\Sigma + D)`.
    """
    xs = _as_float_matrix(x)
    w = _check_weights(sample_weight, xs.shape[0])
    n = float(w.sum())
    d = xs.shape[1]
    mean = (w @ xs) / n
    mean = mean + (w @ (xs - mean)) / n  # see _weighted_mean
    resid = xs - mean
    cov = (resid * w[:, None]).T @ resid / n
    cov = 0.5 * (cov + cov.T)
    sd = np.sqrt(np.diag(cov))
    flat = np.flatnonzero(~(sd > 0))
    if flat.size:
        cols = ", ".join(f"column {j}" for j in flat[:10])
        raise InputError(
            f"{cols} of x {'is' if flat.size == 1 else 'are'} constant over the "
            "(positively weighted) rows: its variance is 0, the covariance matrix is "
            "singular and the likelihood is unbounded"
        )
    corr = cov / np.outer(sd, sd)
    eig = np.linalg.eigvalsh(corr)
    if eig[0] <= 1e-12 * d:
        n_rows = int(np.count_nonzero(w > 0))
        raise InputError(
            f"the covariance matrix of x is singular (its columns are linearly dependent "
            f"over the {n_rows} positively weighted row(s)); a {d}-variable normal needs "
            f"at least {d + 1} rows in general position and no column that is a linear "
            "combination of others"
        )
    logdet = 2.0 * float(np.sum(np.log(sd))) + float(np.sum(np.log(eig)))
    loglik = -0.5 * n * (d * math.log(2.0 * math.pi) + logdet + d)

    # Upper-triangle entries (i, j), i <= j, in row order: the order of the names.
    iu, ju = np.triu_indices(d)
    pairs = list(zip(iu.tolist(), ju.tolist()))
    names = tuple(f"mean[{i}]" for i in range(d)) + tuple(f"cov[{i},{j}]" for i, j in pairs)
    estimates = tuple(mean) + tuple(cov[i, j] for i, j in pairs)
    m = len(pairs)
    param_cov = np.zeros((d + m, d + m))
    param_cov[:d, :d] = cov / n
    # Entry (a, b) for pairs (i, j) and (k, l): (s_ik s_jl + s_il s_jk) / n.
    param_cov[d:, d:] = (
        cov[np.ix_(iu, iu)] * cov[np.ix_(ju, ju)] + cov[np.ix_(iu, ju)] * cov[np.ix_(ju, iu)]
    ) / n
    return _result(
        "multivariate_normal",
        names,
        estimates,
        param_cov,
        loglik,
        n,
        arrays={"mean": mean, "cov": cov},
    )


def fit_categorical(
    x: object, sample_weight: object = None, categories: object = None
) -> MLEResult:
    """Maximum-likelihood fit of a categorical distribution (one draw of a multinomial).

    Parameters
    ----------
    x : array-like of shape (n,)
        Category labels: strings, integers, booleans, ... (any hashable values).
    sample_weight : array-like of shape (n,), optional
        Non-negative frequency weights. Defaults to all ones.
    categories : sequence, optional
        The possible categories, in the order to report them. A category that never
        occurs gets probability 0 (with standard error 0, as the Wald formula gives:
        treat it with care). Defaults to the distinct labels of `x`, sorted when they
        can be sorted.

    Returns
    -------
    MLEResult
        ``params`` has one key ``"p[<label>]"`` per category (e.g. ``"p[red]"``,
        ``"p[3]"``); the probabilities sum to 1, so ``n_params`` is K - 1, one fewer
        than ``len(params)``. ``cov`` (K, K) is the multinomial covariance
        ``(diag(p) - p p^T) / n``, singular because of the sum constraint.
        ``fixed["categories"]`` is the tuple of categories and ``arrays["p"]`` (shape
        (K,)) the probabilities in that order.

    Raises
    ------
    InputError
        If `x` is empty, has missing labels (None, NaN), labels not in `categories`,
        if `categories` repeats a label, if every (positively weighted) observation is
        in one category (p = 1 is on the edge of the parameter space), or if
        `sample_weight` is malformed.

    Notes
    -----
    :math:`\\hat p_k = n_k/n`, the weighted share of category :math:`k`;
    :math:`\\mathrm{se}(\\hat p_k) = \\sqrt{\\hat p_k(1-\\hat p_k)/n}`.
    """
    labels = _as_label_vector(x)
    w = _check_weights(sample_weight, len(labels))
    n = float(w.sum())
    try:
        seen = list(dict.fromkeys(labels))
    except TypeError as exc:
        raise InputError(f"category labels must be hashable: {exc}") from exc
    if categories is None:
        try:
            cats = sorted(seen)
        except TypeError:
            cats = seen  # mixed types do not sort; keep the order of first appearance
    else:
        if isinstance(categories, (str, bytes)):
            raise InputError(f"categories must be a sequence of labels, got {categories!r}")
        cats = [c.item() if isinstance(c, np.generic) else c for c in categories]
        names_seen: dict[str, object] = {}
        for c in cats:
            if categorical_name(c) in names_seen:
                raise InputError(f"categories lists {c!r} more than once")
            names_seen[categorical_name(c)] = c
        known = set(cats)
        unknown = [i for i, lab in enumerate(labels) if lab not in known]
        if unknown:
            shown = _list_some(unknown, lambda i: f"x[{i}] = {labels[i]!r}")
            raise InputError(
                f"x has {len(unknown)} label(s) not among the categories "
                f"{list(cats)!r}: {shown}"
            )
    index = {c: k for k, c in enumerate(cats)}
    codes = np.fromiter((index[lab] for lab in labels), dtype=np.int64, count=len(labels))
    counts = np.bincount(codes, weights=w, minlength=len(cats))
    occupied = np.flatnonzero(counts > 0)
    if occupied.size < 2:
        raise InputError(
            f"all (positively weighted) observations are in category "
            f"{cats[occupied[0]]!r}: its maximum-likelihood probability is 1, on the edge "
            "of the parameter space, where no standard error exists; a categorical fit "
            "needs at least two observed categories"
        )
    p = counts / n
    cov = (np.diag(p) - np.outer(p, p)) / n
    with np.errstate(divide="ignore"):
        loglik = float(np.dot(counts[occupied], np.log(p[occupied])))
    names = tuple(categorical_name(c) for c in cats)
    if len(set(names)) != len(names):
        raise InputError(
            f"categories {cats!r} include different labels that print alike; "
            "convert the labels to distinct strings"
        )
    return _result(
        "categorical",
        names,
        tuple(p),
        cov,
        loglik,
        n,
        n_params=len(cats) - 1,
        fixed={"categories": tuple(cats)},
        arrays={"p": p},
    )
