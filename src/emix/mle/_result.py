"""The result object of every maximum-likelihood fit."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np

from ..exceptions import InputError


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
        observations when unweighted). AIC, BIC and every standard error use it.
    n_params : int
        Number of free parameters, used by :attr:`aic` and :attr:`bic`. Usually
        ``len(params)``; fewer where `params` lists dependent quantities (a categorical
        fit lists all K probabilities, which sum to 1, so ``n_params = K - 1``).
        Defaults to ``len(params)``.
    fixed : dict of str to object
        Known quantities that were not estimated but are needed to evaluate the
        likelihood: ``"n_trials"`` (int, or read-only ndarray of shape (n,)) for the
        binomial, ``"categories"`` (tuple) for the categorical. Empty otherwise.
    arrays : dict of str to ndarray
        The estimates reassembled as read-only arrays where a family's parameters are
        naturally arrays: ``"mean"`` of shape (D,) and ``"cov"`` of shape (D, D) for the
        multivariate normal, ``"p"`` of shape (K,) for the categorical (in the order of
        ``fixed["categories"]``). Empty otherwise.
    """

    family: str
    params: dict[str, float]
    stderr: dict[str, float]
    cov: np.ndarray
    loglik: float
    n: float
    n_params: int | None = None
    fixed: Mapping[str, object] = field(default_factory=dict)
    arrays: Mapping[str, np.ndarray] = field(default_factory=dict)

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
        k = len(params) if self.n_params is None else int(self.n_params)
        if not 0 <= k <= len(params):
            raise ValueError(f"n_params must be between 0 and {len(params)}, got {k}")
        object.__setattr__(self, "n_params", k)
        object.__setattr__(self, "fixed", {str(k): _frozen(v) for k, v in self.fixed.items()})
        object.__setattr__(
            self, "arrays", {str(k): _frozen(np.asarray(v)) for k, v in self.arrays.items()}
        )

    @property
    def aic(self) -> float:
        """Akaike's information criterion, ``2 * n_params - 2 * loglik`` (lower is better)."""
        return 2.0 * self.n_params - 2.0 * self.loglik

    @property
    def bic(self) -> float:
        """Bayesian information criterion, ``n_params * log(n) - 2 * loglik``.

        ``n`` is the effective sample size (the sum of the frequency weights).
        """
        return self.n_params * math.log(self.n) - 2.0 * self.loglik

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

        name = _DISPLAY_NAMES.get(self.family, self.family.capitalize())
        title = f"{name} maximum-likelihood fit (n = {_fmt(self.n)})"
        lines = [title, line(header), *(line(r) for r in rows)]
        lines.append(
            f"log-likelihood: {_fmt(self.loglik)}   AIC: {_fmt(self.aic)}   "
            f"BIC: {_fmt(self.bic)}"
        )
        if self.family == "normal":
            # Students compare against numpy.std(ddof=1) or a calculator and see a
            # smaller number; the table should say why before they go looking.
            lines.append("sd is the maximum-likelihood estimate (divides by n, not n - 1).")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


_DISPLAY_NAMES = {
    "multivariate_normal": "Multivariate normal",
    "lognormal": "Log-normal",
    "student_t": "Student-t",
}


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


def _frozen(value: object) -> object:
    # Arrays in a frozen result are locked like ``cov``; other values are kept as given.
    if isinstance(value, np.ndarray):
        arr = np.array(value, copy=True)
        arr.setflags(write=False)
        return arr
    return value
