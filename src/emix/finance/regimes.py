"""Market regimes from returns: detection, causal probabilities, walk-forward refits.

Three promises hold for every function here:

* **No look-ahead where it matters.** ``filtered`` probabilities at a date use only the
  returns up to that date (the forward recursion of the HMM; a mixture's posterior uses
  only the date itself), and the features (returns, trailing volatility) are causal.
  ``smoothed`` probabilities and the decoded ``regime`` use the whole sample and are
  for description, never for a backtest. :func:`walk_forward` refits on past data only
  and filters forward through the next block, so its regimes are out of sample.
* **Regularisation scaled to the data.** ``reg_covar`` (the variance added to every
  state's covariance diagonal) is ``reg_relative`` (default 1e-6) times the smallest
  column variance of the fitted features, not an absolute 1e-6 that would be 1% of a
  daily return's variance. The fits are then equivariant under rescaling: returns in
  percent, in fractions, weekly or intraday give the same regimes. Parameters stay in
  the data's units.
* **Labels ordered by volatility.** Regime 0 is the calmest (smallest total emission
  variance), regime K-1 the most volatile, whatever the seed: two refits that reach the
  same solution label it identically, and walk-forward refits are aligned this way.
"""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass, field

import numpy as np

from .._validation import check_int
from ..exceptions import DegenerateComponentError, InputError
from ._data import Frame, _log_returns, as_frame, regime_features

__all__ = [
    "REG_RELATIVE",
    "RegimeModel",
    "RegimeResult",
    "RegimeStats",
    "WalkForwardResult",
    "detect_regimes",
    "walk_forward",
]

#: ``reg_covar`` of every finance fit, relative to the smallest column variance.
REG_RELATIVE = 1e-6
MODELS = ("hmm", "gmm")
EMISSIONS = ("gaussian", "student_t")
COVARIANCE_TYPES = ("full", "diag", "spherical", "tied")
#: Starting degrees of freedom of a Student-t emission's volatility start.
START_DF = 10.0


# --------------------------------------------------------------------------------------
# The fitted model
# --------------------------------------------------------------------------------------


class RegimeModel:
    """A fitted regime model that reads return series.

    It wraps the fitted :class:`emix.HMM` (``model='hmm'``) or :class:`emix.MixtureModel`
    (``model='gmm'``) with the feature recipe it was fitted on, so every method takes
    returns (and computes the trailing volatility itself when it is a feature).

    Attributes
    ----------
    estimator : HMM or MixtureModel
        The fitted emix model, in the units of the returns. Its state ``k`` is regime
        ``k`` for an HMM (fitted with ``label_order='volatility'``); a mixture's
        components are reordered by ``order``.
    kind : {'hmm', 'gmm'}
    order : ndarray of shape (K,), int
        ``order[k]`` is the estimator's component shown as regime ``k``.
    volatility_window : int or None
    reg_covar : float
        The regularisation the fit used (``reg_relative`` times the smallest feature
        variance of the training data).
    """

    def __init__(self, estimator, kind, order, volatility_window, reg_covar):
        self.estimator = estimator
        self.kind = kind
        self.order = np.asarray(order, dtype=np.intp)
        self.volatility_window = volatility_window
        self.reg_covar = float(reg_covar)

    def __repr__(self) -> str:
        return (f"RegimeModel(kind={self.kind!r}, n_regimes={self.n_regimes}, "
                f"volatility_window={self.volatility_window}, reg_covar={self.reg_covar:.3g})")

    @property
    def n_regimes(self) -> int:
        return int(self.order.shape[0])

    @property
    def transmat_(self) -> np.ndarray:
        """Regime transition matrix, shape (K, K); for a mixture (no persistence) every
        row is the regime weights."""
        if self.kind == "hmm":
            return np.asarray(self.estimator.transmat_, dtype=np.float64)
        w = np.asarray(self.estimator.weights_, dtype=np.float64)[self.order]
        return np.tile(w, (len(w), 1))

    @property
    def means_(self) -> np.ndarray:
        """Emission means (locations) in regime order, shape (K, D_features)."""
        return np.asarray(self._params()["means"], dtype=np.float64)[self.order]

    def _params(self) -> dict:
        est = self.estimator
        if self.kind == "hmm":
            return est._current_params()[2]
        return {k: np.asarray(v, dtype=np.float64) for k, v in est.params_.items()}

    def _features(self, returns) -> Frame:
        return regime_features(returns, volatility_window=self.volatility_window)

    def _wrap(self, f: Frame, P: np.ndarray):
        if f.index is not None:
            import pandas as pd

            return pd.DataFrame(P, index=f.index, columns=[f"regime_{k}" for k in range(P.shape[1])])
        return P

    def _filter_values(self, X: np.ndarray) -> np.ndarray:
        if self.kind == "hmm":
            return self.estimator.filter(X)
        return self.estimator.predict_proba(X)[:, self.order]

    def filter(self, returns):
        """Causal regime probabilities ``p(regime_t = k | returns up to t)``.

        Parameters
        ----------
        returns : Series, DataFrame or array-like of shape (T,) or (T, D)
            Returns in the units of the fit (the filter starts afresh at the first row).

        Returns
        -------
        ndarray of shape (T', K), or a DataFrame on the returns' dates
            ``T' = T`` without a volatility feature, ``T - volatility_window + 1`` with
            one. Row t never depends on a return after t.
        """
        f = self._features(returns)
        return self._wrap(f, self._filter_values(f.values))

    def smooth(self, returns):
        """Whole-sample regime probabilities ``p(regime_t = k | all returns)``.

        They use returns after t (the backward pass): for describing history, not for
        trading on it. Same shapes as :meth:`filter`.
        """
        f = self._features(returns)
        if self.kind == "hmm":
            P = self.estimator.predict_proba(f.values)
        else:
            P = self.estimator.predict_proba(f.values)[:, self.order]
        return self._wrap(f, P)

    def decode(self, returns) -> np.ndarray:
        """The decoded regimes, shape (T',): the Viterbi path of an HMM (whole-sample),
        the most probable component of each row for a mixture."""
        X = self._features(returns).values
        if self.kind == "hmm":
            return self.estimator.predict(X)
        inv = np.empty_like(self.order)
        inv[self.order] = np.arange(self.n_regimes)
        return inv[self.estimator.predict(X)]

    def loglik(self, returns) -> float:
        """Total log-likelihood of the returns (their features), a float."""
        X = self._features(returns).values
        return float(self.estimator.score(X)) * X.shape[0]

    @property
    def n_parameters(self) -> int:
        """Free parameters of the model (for BIC)."""
        return int(self.estimator._n_parameters())

    def bic(self, returns) -> float:
        """``-2 log L + p log T``; lower is better."""
        X = self._features(returns).values
        return float(self.estimator.bic(X))




# --------------------------------------------------------------------------------------
# Fitting
# --------------------------------------------------------------------------------------


@dataclass
class _Spec:
    n_regimes: int
    model: str
    emission: str
    covariance_type: str
    volatility_window: int | None
    n_init: int
    max_iter: int
    tol: float
    reg_relative: float


def _check_spec(n_regimes, model, emission, covariance_type, volatility_window, n_init,
                max_iter, tol, reg_relative) -> _Spec:
    K = check_int(n_regimes, "n_regimes", low=1)
    if model not in MODELS:
        raise InputError(f"model must be one of {MODELS}; got {model!r}")
    if emission not in EMISSIONS:
        raise InputError(f"emission must be one of {EMISSIONS}; got {emission!r}")
    if covariance_type not in COVARIANCE_TYPES:
        raise InputError(f"covariance_type must be one of {COVARIANCE_TYPES}; got {covariance_type!r}")
    if volatility_window is not None:
        check_int(volatility_window, "volatility_window", low=2)
    for name, v in (("tol", tol), ("reg_relative", reg_relative)):
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not (v >= 0) or not math.isfinite(v):
            raise InputError(f"{name} must be a finite number >= 0; got {v!r}")
    return _Spec(K, model, emission, covariance_type, volatility_window,
                 check_int(n_init, "n_init", low=0), check_int(max_iter, "max_iter", low=1),
                 float(tol), float(reg_relative))


def _volatility_start(X: np.ndarray, K: int, spec: _Spec, reg: float):
    """Starting weights and emission parameters from volatility quantiles.

    Rows are ranked by a centred moving average of their squared standardised
    deviation (local volatility) and cut into K equal groups; each group's mean and
    covariance start one state. It starts states apart in volatility, where k-means on
    returns would start them apart in sign. (The fit uses the whole training sample
    anyway, so a centred average adds no look-ahead beyond the fit's own.)
    """
    T, D = X.shape
    mu = X.mean(axis=0)
    sd = X.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    z2 = np.sum(((X - mu) / sd) ** 2, axis=1)
    w = int(max(1, min(21, T // (4 * K))))
    local = np.convolve(z2, np.ones(w) / w, mode="same")
    ranks = np.empty(T, dtype=np.intp)
    ranks[np.argsort(local, kind="stable")] = np.arange(T)
    groups = ranks * K // T
    weights = np.bincount(groups, minlength=K) / T
    means = np.stack([X[groups == k].mean(axis=0) for k in range(K)])
    covs = np.stack([
        np.atleast_2d(np.cov(X[groups == k], rowvar=False, bias=True)) + reg * np.eye(D)
        for k in range(K)
    ])
    ct = spec.covariance_type
    if ct == "diag":
        cov = np.stack([np.diag(c) for c in covs])
    elif ct == "spherical":
        cov = np.array([np.trace(c) / D for c in covs])
    elif ct == "tied":
        cov = np.einsum("k,kij->ij", weights, covs)
    else:
        cov = covs
    if spec.emission == "student_t":
        # A t with df degrees of freedom has variance scale * df / (df - 2).
        params = {"means": means, "scales": cov * (START_DF - 2) / START_DF,
                  "df": np.full(K, START_DF)}
    else:
        params = {"means": means, "covariances": cov}
    return weights, params


def _make(spec: _Spec, K: int, reg: float, seed, start):
    from ..models.hmm import HMM
    from ..models.mixture_model import MixtureModel

    opts = {"reg_covar": reg}
    if spec.model == "hmm":
        kw = {} if start is None else {"emission_init": start[1]}
        return HMM(K, spec.emission, covariance_type=spec.covariance_type, tol=spec.tol,
                   max_iter=spec.max_iter, random_state=seed, label_order="volatility",
                   family_options=opts, **kw)
    kw = {}
    if start is not None:
        params = dict(start[1])
        if spec.emission == "gaussian":
            # A Gaussian MixtureModel runs GaussianMixture, which starts from precisions.
            params["precisions"] = _inverse(params.pop("covariances"), spec.covariance_type)
        kw = {"weights_init": start[0], "params_init": params}
    return MixtureModel(family=spec.emission, n_components=K, covariance_type=spec.covariance_type,
                        tol=spec.tol, max_iter=spec.max_iter, random_state=seed,
                        family_options=opts, **kw)


def _inverse(cov: np.ndarray, covariance_type: str) -> np.ndarray:
    if covariance_type in ("full", "tied"):
        return np.linalg.inv(cov)
    return 1.0 / cov


def _variances(est, covariance_type: str) -> np.ndarray:
    """Total emission variance per component of a fitted MixtureModel, shape (K,)."""
    from types import SimpleNamespace

    from ..models.hmm import emission_variances

    fp = {k: np.asarray(v, dtype=np.float64) for k, v in est.params_.items()}
    # A Gaussian MixtureModel delegates to GaussianMixture and keeps no family object.
    fam = SimpleNamespace(covariance_type=covariance_type, name="gaussian",
                          component_means=lambda p: np.asarray(p["means"]))
    return emission_variances(fam, fp), fp


def _seeds(random_state, n: int) -> list:
    """``n`` integer seeds from ``random_state`` (None gives fresh ones)."""
    from ..em.init import as_generator

    rng = as_generator(random_state)
    return [int(s) for s in rng.integers(0, 2**31 - 1, size=n)]


def _fit(X: np.ndarray, spec: _Spec, K: int, seeds: list, volatility_window) -> RegimeModel:
    """Fit K regimes to features X (T, D) from the volatility start and ``len(seeds)``
    k-means starts; keep the highest likelihood among the fits without degenerate
    states (the earliest start on ties)."""
    T, D = X.shape
    if T < 2 * K:
        raise InputError(f"{T} returns are too few for {K} regimes (need at least {2 * K})")
    var = X.var(axis=0)
    if not np.any(var > 0):
        raise InputError("the returns are constant: no volatility to tell regimes apart")
    reg = spec.reg_relative * float(np.min(var[var > 0]))
    starts = [("volatility", None)] + [("kmeans", s) for s in seeds]
    best, best_rank, best_warnings, error = None, (False, -np.inf), [], None
    for how, seed in starts:
        start = _volatility_start(X, K, spec, reg) if how == "volatility" else None
        est = _make(spec, K, reg, seed if seed is not None else 0, start)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                est.fit(X)
            except DegenerateComponentError as exc:
                error = exc
                continue
        ll = float(est.score(X)) * T
        # A state collapsed onto a few rows has a spurious, unbounded likelihood, so a
        # fit without one wins over any fit with one.
        rank = (not bool(getattr(est, "degenerate_", False)), ll)
        # A later start must win clearly, so the volatility start is kept on ties.
        if best is None or rank[0] > best_rank[0] or (
            rank[0] == best_rank[0] and ll > best_rank[1] + 1e-9 * max(1.0, abs(best_rank[1]))
        ):
            best, best_rank, best_warnings = est, rank, caught
    if best is None:
        raise error
    for w in best_warnings:
        warnings.warn(w.message, w.category, stacklevel=4)
    if spec.model == "hmm":
        order = np.arange(K)
    else:
        var, fp = _variances(best, spec.covariance_type)
        order = np.lexsort([fp["means"][:, d] for d in range(D)][::-1] + [var])
    return RegimeModel(best, spec.model, order, volatility_window, reg)


# --------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class RegimeStats:
    """Per-regime statistics of a fit.

    Means and volatilities are weighted by the smoothed probabilities:
    ``mean_k = sum_t p_tk r_t / sum_t p_tk`` and ``volatility_k`` the square root of
    the weighted mean squared deviation from it (for a Gaussian HMM they are the fitted
    emission mean and standard deviation of the returns).

    Attributes
    ----------
    mean : ndarray of shape (K,) or (K, D)
        Mean return per period in each regime ((K, D) for D return columns).
    volatility : ndarray of shape (K,) or (K, D)
        Standard deviation of the returns per period.
    annualized_mean : ndarray, ``mean * periods_per_year``
    annualized_volatility : ndarray, ``volatility * sqrt(periods_per_year)``
    share : ndarray of shape (K,)
        Expected share of time in each regime (the mean smoothed probability).
    expected_duration : ndarray of shape (K,)
        Expected periods per visit, ``1 / (1 - transmat[k, k])`` (inf for an absorbing
        regime); for a mixture ``1 / (1 - weight_k)``.
    transmat : ndarray of shape (K, K)
        ``transmat[i, j] = p(regime_{t+1} = j | regime_t = i)``; a mixture's rows are
        its weights.
    loglik : float
        Total log-likelihood of the fitted features.
    n_parameters : int
    bic : float
        ``-2 loglik + n_parameters log T``.
    bic_by_k : ndarray of shape (K,) or None
        BIC of fits with 1..K regimes (same settings), when computed.
    best_k : int or None
        The number of regimes with the lowest BIC among 1..K.
    periods_per_year : float
    n_periods : int
    """

    mean: np.ndarray
    volatility: np.ndarray
    annualized_mean: np.ndarray
    annualized_volatility: np.ndarray
    share: np.ndarray
    expected_duration: np.ndarray
    transmat: np.ndarray
    loglik: float
    n_parameters: int
    bic: float
    bic_by_k: np.ndarray | None
    best_k: int | None
    periods_per_year: float
    n_periods: int

    def to_frame(self):
        """One row per regime (first return column's mean and volatility), pandas."""
        import pandas as pd

        first = (lambda a: a) if np.ndim(self.mean) == 1 else (lambda a: a[:, 0])
        K = len(self.share)
        return pd.DataFrame({
            "mean": first(self.mean),
            "volatility": first(self.volatility),
            "annualized_mean": first(self.annualized_mean),
            "annualized_volatility": first(self.annualized_volatility),
            "share": self.share,
            "expected_duration": self.expected_duration,
        }, index=pd.RangeIndex(K, name="regime"))

    def __str__(self) -> str:
        first = (lambda a: a) if np.ndim(self.mean) == 1 else (lambda a: a[:, 0])
        m, v = first(self.annualized_mean), first(self.annualized_volatility)
        lines = [
            f"{'regime':>6} {'share':>7} {'duration':>9} {'ann. mean':>10} {'ann. vol':>9}",
        ]
        for k in range(len(self.share)):
            lines.append(f"{k:>6} {self.share[k]:>7.1%} {self.expected_duration[k]:>9.1f} "
                         f"{m[k]:>10.1%} {v[k]:>9.1%}")
        lines.append(f"log-likelihood {self.loglik:.2f}, BIC {self.bic:.2f} "
                     f"({self.n_parameters} parameters, {self.n_periods} periods)")
        if self.bic_by_k is not None:
            table = ", ".join(f"K={k + 1}: {b:.1f}" for k, b in enumerate(self.bic_by_k))
            lines.append(f"BIC by number of regimes: {table}; lowest at K={self.best_k}")
        return "\n".join(lines)


def _regime_stats(R: np.ndarray, P: np.ndarray, model: RegimeModel, X: np.ndarray,
                  periods_per_year: float, bic_by_k, one_d: bool) -> RegimeStats:
    """Statistics from returns R (T, D_r), smoothed probabilities P (T, K), features X."""
    T = R.shape[0]
    nk = P.sum(axis=0)
    safe = np.where(nk > 0, nk, 1.0)
    mean = (P.T @ R) / safe[:, None]
    var = np.stack([(P[:, k] @ (R - mean[k]) ** 2) / safe[k] for k in range(P.shape[1])])
    vol = np.sqrt(var)
    A = model.transmat_
    stay = np.diag(A)
    with np.errstate(divide="ignore"):
        duration = np.where(stay < 1.0, 1.0 / (1.0 - stay), np.inf)
    loglik = float(model.estimator.score(X)) * T
    p = model.n_parameters
    bic = -2.0 * loglik + p * math.log(T)
    best_k = None if bic_by_k is None else int(np.argmin(bic_by_k)) + 1
    if one_d:
        mean, vol = mean[:, 0], vol[:, 0]
    ppy = float(periods_per_year)
    return RegimeStats(mean, vol, mean * ppy, vol * math.sqrt(ppy), nk / T, duration, A,
                       loglik, p, bic, bic_by_k, best_k, ppy, T)


# --------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------


def _frame_index(index, dates):
    import pandas as pd

    return index if index is not None else pd.RangeIndex(len(dates), name="t")


@dataclass(eq=False)
class RegimeResult:
    """Regimes of one return series, per date.

    Attributes
    ----------
    dates : ndarray of shape (T,)
        The dates of the returns (datetime64 for a pandas DatetimeIndex; positions
        0..T-1 for arrays). With a volatility feature, the first ``volatility_window - 1``
        returns have no row.
    returns : ndarray of shape (T,) or (T, D)
    regime : ndarray of shape (T,), int
        The decoded regime: the Viterbi path of an HMM, the most probable component of
        each row for a mixture. **Whole-sample** for an HMM (uses later returns).
    filtered_regime : ndarray of shape (T,), int
        ``argmax_k filtered[t, k]``: the regime known at date t (causal).
    filtered : ndarray of shape (T, K)
        ``p(regime_t = k | returns up to t)`` under the fitted parameters: causal
        given the model (but the parameters were fitted on the whole sample; use
        :func:`walk_forward` for out-of-sample probabilities).
    smoothed : ndarray of shape (T, K)
        ``p(regime_t = k | all returns)``: whole-sample, for describing history only.
    model : RegimeModel
        ``model.filter(returns)`` gives the causal probabilities of any series.
    stats : RegimeStats
    prices : ndarray of shape (T,) or None
        The price (first column) at each date, when prices were given.
    """

    dates: np.ndarray
    returns: np.ndarray
    regime: np.ndarray
    filtered_regime: np.ndarray
    filtered: np.ndarray
    smoothed: np.ndarray
    model: RegimeModel
    stats: RegimeStats
    prices: np.ndarray | None = None
    index: object = field(default=None, repr=False)
    columns: list | None = field(default=None, repr=False)

    @property
    def n_regimes(self) -> int:
        return int(self.filtered.shape[1])

    def to_frame(self):
        """A pandas DataFrame indexed by date: the returns, ``regime``,
        ``filtered_regime``, ``filtered_0..K-1`` and ``smoothed_0..K-1``."""
        import pandas as pd

        R = self.returns.reshape(len(self.dates), -1)
        names = self.columns or (["return"] if R.shape[1] == 1 else [f"return_{j}" for j in range(R.shape[1])])
        data = {n: R[:, j] for j, n in enumerate(names)}
        data["regime"] = self.regime
        data["filtered_regime"] = self.filtered_regime
        for k in range(self.n_regimes):
            data[f"filtered_{k}"] = self.filtered[:, k]
        for k in range(self.n_regimes):
            data[f"smoothed_{k}"] = self.smoothed[:, k]
        return pd.DataFrame(data, index=_frame_index(self.index, self.dates))

    def plot(self, *, probabilities: str = "smoothed", title: str | None = None):
        """The price with the decoded regimes shaded, and the regime probabilities beneath.

        Parameters
        ----------
        probabilities : {'smoothed', 'filtered'}, default='smoothed'
            Which probabilities to stack in the lower panel.
        title : str, optional

        Returns
        -------
        matplotlib.figure.Figure
            Two axes: the price (one shaded span per run of equal regime) and the
            stacked regime probabilities. Made without pyplot.
        """
        from ._plot import plot_regimes

        if probabilities not in ("smoothed", "filtered"):
            raise InputError(f"probabilities must be 'smoothed' or 'filtered'; got {probabilities!r}")
        P = self.smoothed if probabilities == "smoothed" else self.filtered
        return plot_regimes(self.dates, self.prices, self.returns, self.regime, P,
                            self.stats.annualized_volatility, title=title,
                            prob_label=f"{probabilities} probability")


@dataclass(eq=False)
class WalkForwardResult:
    """Out-of-sample regimes from refits on past data only.

    Attributes
    ----------
    dates : ndarray of shape (T,)
    returns : ndarray of shape (T,) or (T, D)
    filtered : ndarray of shape (T, K)
        At date t: ``p(regime_t = k | returns up to t)`` under the parameters fitted
        on returns before the start of t's block. NaN before the first fit.
    regime : ndarray of shape (T,), int
        ``argmax_k filtered[t, k]``; -1 before the first fit.
    refit_positions : ndarray of shape (J,), int
        Row where each fit's block starts (the fit used rows before it).
    train_starts : ndarray of shape (J,), int
        First row of each fit's training data (0 when expanding).
    models : list of RegimeModel
        The fit used for each block.
    prices : ndarray of shape (T,) or None
    periods_per_year : float
    """

    dates: np.ndarray
    returns: np.ndarray
    filtered: np.ndarray
    regime: np.ndarray
    refit_positions: np.ndarray
    train_starts: np.ndarray
    models: list
    prices: np.ndarray | None = None
    index: object = field(default=None, repr=False)
    columns: list | None = field(default=None, repr=False)
    periods_per_year: float = 252.0

    @property
    def n_regimes(self) -> int:
        return int(self.filtered.shape[1])

    @property
    def refit_dates(self) -> np.ndarray:
        return self.dates[self.refit_positions]

    def to_frame(self):
        """A pandas DataFrame indexed by date: the returns, ``regime`` and
        ``filtered_0..K-1``."""
        import pandas as pd

        R = self.returns.reshape(len(self.dates), -1)
        names = self.columns or (["return"] if R.shape[1] == 1 else [f"return_{j}" for j in range(R.shape[1])])
        data = {n: R[:, j] for j, n in enumerate(names)}
        data["regime"] = self.regime
        for k in range(self.n_regimes):
            data[f"filtered_{k}"] = self.filtered[:, k]
        return pd.DataFrame(data, index=_frame_index(self.index, self.dates))

    def plot(self, *, title: str | None = None):
        """The price with the out-of-sample regimes shaded, the filtered probabilities
        beneath, and a tick at every refit. Returns a matplotlib Figure."""
        from ._plot import plot_regimes

        R = self.returns.reshape(len(self.dates), -1)[:, 0]
        K = self.n_regimes
        ok = self.regime >= 0
        vol = np.array([R[ok & (self.regime == k)].std() if np.any(ok & (self.regime == k)) else np.nan
                        for k in range(K)])
        fig = plot_regimes(self.dates, self.prices, self.returns, self.regime, self.filtered,
                           vol * np.sqrt(self.periods_per_year), title=title, prob_label="filtered probability (out of sample)")
        for x in self.refit_dates:
            fig.axes[1].axvline(x, color="0.3", lw=0.5, ls=":")
        return fig


# --------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------


def _inputs(returns, prices, volatility_window):
    """``(features Frame, return columns D_r, aligned prices (T,) or None)``."""
    if (returns is None) == (prices is None):
        raise InputError("give exactly one of returns= and prices=")
    price_col = None
    if prices is not None:
        pf = as_frame(prices, "prices")
        rf = _log_returns(pf)
        price_col = pf.values[1:, 0]
    else:
        rf = as_frame(returns, "returns")
    feats = regime_features(rf, volatility_window=volatility_window)
    skip = rf.values.shape[0] - feats.values.shape[0]
    if price_col is not None:
        price_col = price_col[skip:]
    return feats, rf, skip, price_col


def _check_ppy(periods_per_year) -> float:
    if isinstance(periods_per_year, bool) or not isinstance(periods_per_year, numbers.Real) \
            or not (periods_per_year > 0) or not math.isfinite(periods_per_year):
        raise InputError(f"periods_per_year must be a positive number; got {periods_per_year!r}")
    return float(periods_per_year)


def detect_regimes(
    returns=None,
    *,
    prices=None,
    n_regimes: int = 2,
    model: str = "hmm",
    emission: str = "gaussian",
    covariance_type: str = "full",
    volatility_window: int | None = None,
    random_state=None,
    n_init: int = 1,
    max_iter: int = 500,
    tol: float = 1e-5,
    reg_relative: float = REG_RELATIVE,
    periods_per_year: float = 252,
    select_k: bool = True,
) -> RegimeResult:
    """Fit market regimes to a return series.

    Parameters
    ----------
    returns : Series, DataFrame or array-like of shape (T,) or (T, D), optional
        Returns (log-returns, say), oldest first. Give this or ``prices``.
    prices : Series, DataFrame or array-like of shape (T + 1,) or (T + 1, D), optional
        Positive prices; their log-returns are fitted and the first column is drawn
        by :meth:`RegimeResult.plot`.
    n_regimes : int, default=2
        K. Regime 0 is the calmest, K-1 the most volatile.
    model : {'hmm', 'gmm'}, default='hmm'
        ``'hmm'``: a hidden Markov model (regimes persist; Baum-Welch).
        ``'gmm'``: a mixture (each date on its own; no persistence).
    emission : {'gaussian', 'student_t'}, default='gaussian'
        The distribution of the returns within a regime; Student-t for fat tails.
    covariance_type : {'full', 'diag', 'spherical', 'tied'}, default='full'
        For several return columns. ``'tied'`` shares one covariance, so its regimes
        differ only in mean (and are then ordered by mean).
    volatility_window : int, optional
        Add each column's trailing volatility over this many periods as a feature
        (causal). The first ``volatility_window - 1`` returns then have no regime.
    random_state : int, Generator or None
        Seeds the ``n_init`` k-means starts.
    n_init : int, default=1
        k-means starts tried besides the volatility start (states started apart by
        local volatility); the fit with the highest likelihood is kept, the volatility
        start on ties.
    max_iter : int, default=500
    tol : float, default=1e-5
        Converged when the mean log-likelihood per period changes less than this
        (scale-free: rescaling the returns shifts it by a constant).
    reg_relative : float, default=1e-6
        ``reg_covar = reg_relative * (smallest feature variance)``: regularisation in
        the data's units, so daily, weekly and intraday returns need no tuning.
    periods_per_year : float, default=252
        For the annualised statistics (252 daily, 52 weekly, 12 monthly).
    select_k : bool, default=True
        Also fit 1..K-1 regimes to report the BIC of each and the K it prefers.

    Returns
    -------
    RegimeResult

    Raises
    ------
    InputError
        Bad arguments; NaN or non-positive prices (naming the date); constant returns;
        too few rows.

    Examples
    --------
    >>> from emix.datasets import load_regime_prices
    >>> data = load_regime_prices(600, random_state=0)
    >>> res = detect_regimes(prices=data.prices, random_state=0, select_k=False)
    >>> res.filtered.shape, bool(res.stats.volatility[1] > 2 * res.stats.volatility[0])
    ((600, 2), True)
    """
    spec = _check_spec(n_regimes, model, emission, covariance_type, volatility_window,
                       n_init, max_iter, tol, reg_relative)
    ppy = _check_ppy(periods_per_year)
    feats, rf, skip, price_col = _inputs(returns, prices, volatility_window)
    X = feats.values
    K = spec.n_regimes
    seeds = _seeds(random_state, spec.n_init)
    fitted = _fit(X, spec, K, seeds, volatility_window)
    filtered = fitted._filter_values(X)
    # X are the features already, so the estimator reads them directly.
    est = fitted.estimator
    if fitted.kind == "hmm":
        smoothed = est.predict_proba(X)
        regime = est.predict(X)
    else:
        smoothed = est.predict_proba(X)[:, fitted.order]
        regime = np.argmax(smoothed, axis=1)
    bic_by_k = None
    if select_k:
        bics = []
        for k in range(1, K):
            bics.append(float(_fit(X, spec, k, seeds, volatility_window).estimator.bic(X)))
        bics.append(float(est.bic(X)))
        bic_by_k = np.array(bics)
    R = rf.values[skip:]
    stats = _regime_stats(R, smoothed, fitted, X, ppy, bic_by_k, rf.one_d)
    dates = rf.take(slice(skip, None)).dates()
    return RegimeResult(
        dates=dates, returns=R[:, 0] if rf.one_d else R, regime=np.asarray(regime, dtype=np.intp),
        filtered_regime=np.argmax(filtered, axis=1), filtered=filtered, smoothed=smoothed,
        model=fitted, stats=stats, prices=price_col, index=feats.index,
        columns=rf.columns,
    )


def walk_forward(
    returns=None,
    n_regimes: int = 2,
    *,
    prices=None,
    refit_every: int = 21,
    window: int | None = None,
    min_train: int | None = None,
    model: str = "hmm",
    emission: str = "gaussian",
    covariance_type: str = "full",
    volatility_window: int | None = None,
    random_state=0,
    n_init: int = 1,
    max_iter: int = 500,
    tol: float = 1e-5,
    reg_relative: float = REG_RELATIVE,
    periods_per_year: float = 252,
) -> WalkForwardResult:
    """Out-of-sample regimes: refit on the past every ``refit_every`` periods and
    filter forward through the next block.

    At each refit row ``s`` (``min_train``, ``min_train + refit_every``, ...) a model is
    fitted on the rows before ``s`` (all of them, or the last ``window``), then the
    forward filter runs under its parameters from the first training row through the
    block ``s .. s + refit_every - 1``, so the filter state at the block start, and
    every probability in the block, uses only returns up to that date. Each fit orders
    its regimes by volatility, which aligns the labels across refits.

    Parameters
    ----------
    returns, prices
        As in :func:`detect_regimes` (give one).
    n_regimes : int, default=2
    refit_every : int, default=21
        N, the periods between refits (21 trading days is about a month).
    window : int, optional
        Fit on the last ``window`` rows only (rolling); default all past rows
        (expanding).
    min_train : int, optional
        Rows before the first fit; default ``window``, or 252 when expanding (capped
        at half the rows).
    model, emission, covariance_type, volatility_window, n_init, max_iter, tol, reg_relative
        As in :func:`detect_regimes`.
    periods_per_year : float, default=252
        For the annualised volatilities in the figure's legend.
    random_state : int or None, default=0
        Fit j is seeded from ``(random_state, j)``, so a fit never depends on data after
        its refit row (None: fresh seeds).

    Returns
    -------
    WalkForwardResult

    Notes
    -----
    Appending returns after date t, or changing them, changes nothing at or before t:
    the fits before t see only earlier rows, and the filter is causal.
    """
    spec = _check_spec(n_regimes, model, emission, covariance_type, volatility_window,
                       n_init, max_iter, tol, reg_relative)
    N = check_int(refit_every, "refit_every", low=1)
    ppy = _check_ppy(periods_per_year)
    feats, rf, skip, price_col = _inputs(returns, prices, volatility_window)
    X = feats.values
    T = X.shape[0]
    K = spec.n_regimes
    if window is not None:
        window = check_int(window, "window", low=2 * K)
    if min_train is None:
        min_train = window if window is not None else min(252, T // 2)
    s0 = check_int(min_train, "min_train", low=2 * K)
    if s0 >= T:
        raise InputError(f"min_train={s0} leaves no rows to predict ({T} rows)")
    if random_state is None:
        base = int(np.random.default_rng().integers(0, 2**31 - 1))
    elif isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        base = int(random_state)
    else:
        raise InputError("walk_forward's random_state must be an integer or None (each refit "
                         "derives its own seed from it)")
    filtered = np.full((T, K), np.nan)
    positions, starts, models = [], [], []
    for j, s in enumerate(range(s0, T, N)):
        a = 0 if window is None else max(0, s - window)
        seeds = [int(x) for x in np.random.default_rng([base, j]).integers(0, 2**31 - 1, size=spec.n_init)]
        fitted = _fit(X[a:s], spec, K, seeds, volatility_window)
        b = min(s + N, T)
        if fitted.kind == "hmm":
            filtered[s:b] = fitted.estimator.filter(X[a:b])[s - a:]
        else:
            filtered[s:b] = fitted._filter_values(X[s:b])
        positions.append(s)
        starts.append(a)
        models.append(fitted)
    regime = np.full(T, -1, dtype=np.intp)
    regime[s0:] = np.argmax(filtered[s0:], axis=1)
    R = rf.values[skip:]
    return WalkForwardResult(
        dates=rf.take(slice(skip, None)).dates(), returns=R[:, 0] if rf.one_d else R,
        filtered=filtered, regime=regime, refit_positions=np.array(positions, dtype=np.intp),
        train_starts=np.array(starts, dtype=np.intp), models=models, prices=price_col,
        index=feats.index, columns=rf.columns, periods_per_year=ppy,
    )
