"""Maximum-likelihood fits of single distributions, with standard errors.

These are the building blocks a student meets before mixtures: with every label known, each
group's parameters have a maximum-likelihood estimate (MLE). Each ``fit_*`` function
returns an :class:`MLEResult` holding the estimates, their standard errors, the
parameters' covariance matrix, the maximised log-likelihood, AIC and BIC.

========================  =====================================  =========================
family                    ``params`` keys                        estimate
========================  =====================================  =========================
``normal``                ``mean``, ``sd``                       closed form
``multivariate_normal``   ``mean[i]``, ``cov[i,j]`` (i <= j)     closed form
``bernoulli``             ``p``                                  closed form
``binomial``              ``p`` (``n_trials`` known)             closed form
``poisson``               ``rate``                               closed form
``exponential``           ``rate``                               closed form
``gamma``                 ``shape``, ``scale``                   Newton on the digamma
                                                                 equation
``lognormal``             ``mu``, ``sigma`` (of ``log x``)       closed form
``student_t``             ``df``, ``loc``, ``scale``             quasi-Newton from several
                                                                 starts, Newton polish
``categorical``           ``p[<label>]``, one per category       closed form
========================  =====================================  =========================

:func:`fit` dispatches on the family name, and :func:`log_likelihood` evaluates the
likelihood of data at any parameter values (``-inf`` outside the parameter space), which
is what a likelihood curve is drawn from.

Standard errors come from the *observed* Fisher information: the Hessian of the negative
log-likelihood evaluated at the MLE, inverted. Every family here has that Hessian in
closed form (the gamma and Student-t ones involve digamma/trigamma functions), so nothing
is differentiated numerically; the tests check each against finite differences.

Sample weights are *frequency* weights: a weight of 3 means "this value was seen three
times", and ``n`` (the effective sample size used in every standard error) is the sum of
the weights. Weights that were rescaled to sum to 1 therefore give standard errors as if
there were a single observation; pass counts, not proportions, when standard errors matter.

Examples
--------
>>> from emix.mle import fit_normal, log_likelihood
>>> res = fit_normal([170.0, 180.0, 175.0, 165.0])
>>> res.params["mean"], round(res.params["sd"], 4)
(172.5, 5.5902)
>>> log_likelihood("bernoulli", [1] * 70 + [0] * 30, {"p": 1.2})
-inf
"""

from __future__ import annotations

from ..exceptions import InputError
from ._fit import (
    fit_bernoulli,
    fit_binomial,
    fit_categorical,
    fit_exponential,
    fit_lognormal,
    fit_multivariate_normal,
    fit_normal,
    fit_poisson,
)
from ._gamma import fit_gamma
from ._loglik import FAMILIES, canonical_family, log_likelihood
from ._result import MLEResult
from ._student_t import fit_student_t

__all__ = [
    "FAMILIES",
    "MLEResult",
    "fit",
    "fit_bernoulli",
    "fit_binomial",
    "fit_categorical",
    "fit_exponential",
    "fit_gamma",
    "fit_lognormal",
    "fit_multivariate_normal",
    "fit_normal",
    "fit_poisson",
    "fit_student_t",
    "log_likelihood",
]

_FITTERS = {
    "normal": fit_normal,
    "multivariate_normal": fit_multivariate_normal,
    "bernoulli": fit_bernoulli,
    "binomial": fit_binomial,
    "poisson": fit_poisson,
    "exponential": fit_exponential,
    "gamma": fit_gamma,
    "lognormal": fit_lognormal,
    "student_t": fit_student_t,
    "categorical": fit_categorical,
}


def fit(family: str, x: object, sample_weight: object = None, **kw: object) -> MLEResult:
    """Maximum-likelihood fit of the named family; dispatches to the ``fit_*`` functions.

    Parameters
    ----------
    family : str
        One of :data:`FAMILIES` (``"normal"``, ``"multivariate_normal"``,
        ``"bernoulli"``, ``"binomial"``, ``"poisson"``, ``"exponential"``, ``"gamma"``,
        ``"lognormal"``, ``"student_t"``, ``"categorical"``), or an alias such as
        ``"gaussian"``, ``"t"`` or ``"log-normal"``; case, spaces and hyphens are ignored.
    x : array-like of shape (n,), or (n, D) for the multivariate normal
        The data.
    sample_weight : array-like of shape (n,), optional
        Non-negative frequency weights. Defaults to all ones.
    **kw
        Family-specific keywords: ``n_trials`` (binomial, required), ``categories``
        (categorical).

    Returns
    -------
    MLEResult
        As returned by the family's ``fit_*`` function.

    Raises
    ------
    InputError
        If `family` is unknown, a keyword does not apply to it, or the fit itself
        raises (see the family's function).

    Examples
    --------
    >>> fit("bernoulli", [1] * 70 + [0] * 30).params["p"]
    0.7
    >>> fit("binomial", [3, 5, 4], n_trials=10).params["p"]
    0.4
    """
    fam = canonical_family(family)
    allowed = {"binomial": {"n_trials"}, "categorical": {"categories"}}.get(fam, set())
    extra = sorted(set(kw) - allowed)
    if extra:
        hint = f"; it accepts {', '.join(sorted(allowed))}" if allowed else ""
        raise InputError(
            f"the {fam} fit takes no keyword argument(s) {', '.join(extra)}{hint}"
        )
    return _FITTERS[fam](x, sample_weight=sample_weight, **kw)
