"""Student-t fit: df, location and scale by quasi-Newton from several starts, then Newton."""

from __future__ import annotations

import math
import warnings

import numpy as np

from ..exceptions import InputError
from ._fit import _result
from ._input import _prepare, _refuse_all_equal
from ._loglik import _t_logpdf
from ._result import MLEResult

# df is searched in [_DF_MIN, _DF_MAX]. Beyond _DF_MAX the t and the normal differ by
# less than the optimiser's tolerance, and an estimate there means "no heavier than
# normal tails": the supremum is the normal limit, reported as df = inf.
_DF_MIN, _DF_MAX = 1e-3, 1e7
_DF_STARTS = (0.7, 2.0, 6.0, 25.0)


def _weighted_quantile(x: np.ndarray, w: np.ndarray, q: float) -> float:
    order = np.argsort(x, kind="stable")
    cw = np.cumsum(w[order])
    return float(x[order][np.searchsorted(cw, q * cw[-1])])


def _grad_hess(z: np.ndarray, w: np.ndarray, df: float, loc: float, scale: float):
    """Gradient (3,) and Hessian (3, 3) of ``sum_i w_i log t(z_i; df, loc, scale)``.

    In (df, loc, scale); with ``u = (z - loc) / scale`` and ``D = df + u**2`` every term
    is a rational function of ``u`` plus di/trigamma terms in df, written to avoid the
    ``log(df s^2 + r^2) - log(df s^2)`` cancellation of the textbook form at large df.
    """
    from scipy.special import digamma, polygamma

    u = (z - loc) / scale
    u2 = u * u
    big_d = df + u2
    d2 = big_d * big_d
    nu = df
    g_df = 0.5 * (digamma(0.5 * (nu + 1.0)) - digamma(0.5 * nu)) - 0.5 * np.log1p(
        u2 / nu
    ) + 0.5 * (u2 - 1.0) / big_d
    g_loc = (nu + 1.0) * u / (scale * big_d)
    g_scale = (nu / scale) * (u2 - 1.0) / big_d
    h_dd = (
        0.25 * (polygamma(1, 0.5 * (nu + 1.0)) - polygamma(1, 0.5 * nu))
        + 0.5 / nu
        - 1.0 / big_d
        + 0.5 * (nu + 1.0) / d2
    )
    h_dl = (u / scale) * (u2 - 1.0) / d2
    h_ds = (1.0 / scale) * u2 * (u2 - 1.0) / d2
    h_ll = (nu + 1.0) * (u2 - nu) / (scale * scale * d2)
    h_ls = -2.0 * nu * (nu + 1.0) * u / (scale * scale * d2)
    h_ss = (-nu - nu * (nu + 1.0) / big_d + 2.0 * nu * nu * (nu + 1.0) / d2) / (scale * scale)
    grad = np.array([w @ g_df, w @ g_loc, w @ g_scale])
    hess = np.array(
        [
            [w @ h_dd, w @ h_dl, w @ h_ds],
            [w @ h_dl, w @ h_ll, w @ h_ls],
            [w @ h_ds, w @ h_ls, w @ h_ss],
        ]
    )
    return grad, hess


def _loglik(z: np.ndarray, w: np.ndarray, df: float, loc: float, scale: float) -> float:
    with np.errstate(over="ignore", invalid="ignore"):
        return float(w @ _t_logpdf(z, df, loc, scale))


def _em_start(z, w, n, df):
    """A few EM iterations for (loc, scale) at fixed df, from median 0 and scale 1.

    EM for the t (a normal scale mixture) raises the likelihood at every step, so it
    gives each quasi-Newton start a sensible location and scale for its df.
    """
    loc, scale2 = 0.0, 1.0
    for _ in range(25):
        r2 = (z - loc) ** 2 / scale2
        tau = w * (df + 1.0) / (df + r2)
        loc = float(tau @ z / tau.sum())
        scale2 = float(tau @ (z - loc) ** 2 / n)
        if not scale2 > 0.0:
            return loc, 1.0
    return loc, math.sqrt(scale2)


def fit_student_t(x: object, sample_weight: object = None) -> MLEResult:
    """Maximum-likelihood fit of a Student-t distribution with df, location and scale.

    Parameters
    ----------
    x : array-like of shape (n,)
        Finite real observations (returns, residuals, measurements with outliers).
    sample_weight : array-like of shape (n,), optional
        Non-negative frequency weights. Defaults to all ones.

    Returns
    -------
    MLEResult
        ``params`` and ``stderr`` have keys ``"df"``, ``"loc"`` and ``"scale"``, as in
        ``scipy.stats.t(df, loc, scale)``; ``cov`` has shape (3, 3). When the data are
        no heavier-tailed than a normal, the likelihood keeps rising as df grows and its
        supremum is the normal limit: the result then has ``df = inf``, ``loc`` and
        ``scale`` equal to the normal MLE, ``stderr["df"] = inf``, and a
        ``UserWarning`` says so.

    Raises
    ------
    InputError
        If `x` is empty, has NaN/inf values, fewer than two distinct (positively
        weighted) values, or so many tied values that the likelihood grows without bound
        as the scale shrinks to 0; or if `sample_weight` is malformed.

    Notes
    -----
    The data are first standardised by their weighted median and interquartile range
    (so offsets of 1e6 and spreads of 1e-8 cost no digits). Starting values come from
    a few EM steps for location and scale at each of several values of df; each is
    refined by a safeguarded Newton method in (log df, loc, log scale)
    with the analytic Hessian (eigenvalues made negative, capped steps, step halving),
    and the better optimum is kept, converged to round-off. This finds optima that
    ``scipy.stats.t.fit`` (Nelder-Mead from one start) stops short of.

    With df free, the t likelihood is unbounded along df -> 0, scale -> 0 with the
    location on a data value; like every t fitter, this reports the interior maximum.
    If the optimiser slides into such a spike (many tied values), it raises.

    Standard errors come from the analytic observed information in (df, loc, scale).
    """
    xs, w, n = _prepare(x, sample_weight)
    used = w > 0
    xu, wu = xs[used], w[used]
    _refuse_all_equal(
        xu,
        "the Student-t scale would be 0; a Student-t fit needs at least two distinct "
        "values",
    )
    centre = _weighted_quantile(xu, wu, 0.5)
    spread = (_weighted_quantile(xu, wu, 0.75) - _weighted_quantile(xu, wu, 0.25)) / 1.349
    if not spread > 0.0:
        mean = float(wu @ xu / n)
        spread = math.sqrt(float(wu @ (xu - mean) ** 2 / n))
    z = (xu - centre) / spread

    best = _optimise(z, wu, n)
    df, loc, scale = best
    # The t likelihood is unbounded along df -> 0, scale -> 0 with loc on a data value
    # (a spike at a value shared by enough rows); what is reported is the interior
    # maximum, and an optimiser that slid into a spike is reported as such.
    if not scale > 1e-6:
        # The heaviest tie, computed only here: the fit itself never needs it.
        values, counts = np.unique(z, return_inverse=True)
        tie_weight = np.bincount(counts, weights=wu)
        top = int(np.argmax(tie_weight))
        share = tie_weight[top] / n
        raise InputError(
            f"{100 * share:.3g}% of the (weighted) observations equal "
            f"{float(centre + spread * values[top])!r}: with that many ties the Student-t "
            "likelihood grows without bound as the scale shrinks to 0, so no maximum "
            "exists; fit a mixture or jitter the data"
        )

    normal_mean = float(wu @ z / n)
    normal_var = float(wu @ (z - normal_mean) ** 2 / n)
    normal_ll = -0.5 * n * (math.log(2.0 * math.pi * normal_var) + 1.0)
    ll = _loglik(z, wu, df, loc, scale)
    log_jac = n * math.log(spread)
    if df >= 0.999 * _DF_MAX or normal_ll >= ll:
        warnings.warn(
            "the data are no heavier-tailed than a normal distribution: the Student-t "
            "likelihood increases with df towards the normal limit, so df = inf is "
            "reported with the normal estimates of loc and scale",
            UserWarning,
            stacklevel=2,
        )
        sd = math.sqrt(normal_var) * spread
        cov = np.array(
            [[math.inf, 0.0, 0.0], [0.0, sd * sd / n, 0.0], [0.0, 0.0, sd * sd / (2.0 * n)]]
        )
        return _result(
            "student_t",
            ("df", "loc", "scale"),
            (math.inf, centre + spread * normal_mean, sd),
            cov,
            normal_ll - log_jac,
            n,
        )

    _, hess = _grad_hess(z, wu, df, loc, scale)
    try:
        cov_z = np.linalg.inv(-hess)
    except np.linalg.LinAlgError:
        cov_z = np.full((3, 3), np.nan)
    jac = np.diag([1.0, spread, spread])
    cov = jac @ cov_z @ jac
    cov = 0.5 * (cov + cov.T)
    return _result(
        "student_t",
        ("df", "loc", "scale"),
        (df, centre + spread * loc, spread * scale),
        cov,
        ll - log_jac,
        n,
    )


def _optimise(z: np.ndarray, w: np.ndarray, n: float) -> tuple[float, float, float]:
    """Best (df, loc, scale) for standardised data z (n_used,) with weights w."""
    # Several starts because on heavy-tailed data with clusters the likelihood can have
    # local optima of the location; each run costs a few milliseconds.
    best = None
    for df0 in _DF_STARTS:
        loc0, scale0 = _em_start(z, w, n, df0)
        cand = _newton(z, w, df0, loc0, max(scale0, 1e-10))
        if best is None or cand[0] > best[0]:
            best = cand
    return best[1:]


def _newton(z, w, df, loc, scale):
    """Maximise the t log-likelihood from (df, loc, scale); returns (loglik, df, loc, scale).

    Newton's method in (log df, loc, log scale) with the exact Hessian, made negative
    definite by taking the absolute values of its eigenvalues (so that a step at a
    saddle or in a convex region still climbs), steps capped in length and halved
    until the likelihood does not fall. Near the optimum this is plain Newton, which
    takes the estimate to round-off in a few steps; the cap and the halving keep it
    safe far from it. ``log df`` is held in [log _DF_MIN, log _DF_MAX].
    """
    lo, hi = math.log(_DF_MIN), math.log(_DF_MAX)
    phi = np.array([math.log(df), loc, math.log(scale)])
    ll = _loglik(z, w, df, loc, scale)
    for _ in range(200):
        df, scale = math.exp(phi[0]), math.exp(phi[2])
        g, h = _grad_hess(z, w, df, phi[1], scale)
        t = np.array([df, 1.0, scale])
        g_phi = g * t
        h_phi = h * np.outer(t, t) + np.diag([g[0] * df, 0.0, g[2] * scale])
        if not (np.all(np.isfinite(g_phi)) and np.all(np.isfinite(h_phi))):
            break
        evals, evecs = np.linalg.eigh(h_phi)
        size = np.maximum(np.abs(evals), 1e-12 * max(1.0, float(np.abs(evals).max())))
        step = evecs @ ((evecs.T @ g_phi) / size)
        longest = float(np.abs(step).max())
        if longest > 2.0:
            step *= 2.0 / longest
        improved = False
        for _ in range(50):
            cand = phi + step
            cand[0] = min(max(cand[0], lo), hi)
            new_ll = _loglik(z, w, math.exp(cand[0]), cand[1], math.exp(cand[2]))
            if new_ll >= ll:
                improved = True
                break
            step *= 0.5
        if not improved:
            break
        moved = float(np.abs(cand - phi).max())
        phi, ll = cand, new_ll
        if moved <= 1e-13 * (1.0 + float(np.abs(phi).max())):
            break
    return ll, math.exp(phi[0]), float(phi[1]), math.exp(phi[2])
