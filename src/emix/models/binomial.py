"""``BinomialMixture``: counts of successes out of trials, from a mixture of binomials.

The two-coins example is the classic case: each row is the number of heads in a set of
flips made with one of several coins of unknown bias, and which coin is hidden.

``BinomialMixture`` is the teaching face of ``MixtureModel(family=Binomial())``: it keeps
the coins' vocabulary (``n_trials`` per call, ``probs_``, ``probs_init``, parameters as
:class:`~emix.families.binomial.BinomialMixtureParams` for the callback and ``explain``),
while the EM itself (E-step kernels, restarts, convergence monitor) is the general
model's, run on ``(heads, trials)`` columns.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .._validation import (
    check_array,
    check_float,
    check_int,
    check_sample_weight,
    check_weights_init,
    describe_positions,
)
from ..backends.numpy_backend import NumpyBackend
from ..em.init import as_generator, random_rows
from ..exceptions import InputError
from ..families import binomial as B
from ._base import EstimatorBase
from ._kernels import LogJointKernel
from .mixture_model import MixtureModel

__all__ = ["BinomialMixture"]

INIT_PARAMS = ("random_from_data", "random")


class _CoinsModel(MixtureModel):
    """The general mixture over (heads, trials) columns, started as BinomialMixture
    starts (``start(X_host, w, rng) -> (weights, params)``)."""

    def _initial_params(self, problem, X_host, summary, w, rng):
        return self._start(X_host, w, rng)


class BinomialMixture(EstimatorBase):
    """Mixture of binomial distributions fitted by EM on additive sufficient statistics.

    Every row is a count of successes ("heads") out of a number of trials ("flips"),
    drawn from one of ``K`` binomial distributions with unknown success probabilities;
    which one is hidden. EM estimates the probabilities and how often each component is
    used. Follows scikit-learn's estimator conventions (``fit``, ``predict``,
    ``predict_proba``, ``score``, trailing-underscore fitted attributes).

    Parameters
    ----------
    n_components : int, default=2
    n_trials : int or array-like of shape (N,), optional
        Trials per row: one number for every row, or one per row. When None, ``X`` must
        have two columns, ``(heads, trials)``. Every method also takes ``n_trials``,
        which overrides this one (needed when predicting rows of other trial counts).
    tol : float, default=1e-6
        Converged when the mean log-likelihood per row changes by less than ``tol``.
    max_iter : int, default=200
    n_init : int, default=5
        Restarts; the best non-degenerate run is kept. Binomial mixtures have local
        maxima, and each run costs little.
    init_params : {'random_from_data', 'random'}, default='random_from_data'
        ``random_from_data``: each component starts at the success rate of a randomly
        chosen row (pulled slightly towards 1/2, so that no row starts impossible), equal
        weights. ``random``: random soft responsibilities, then one M-step.
    weights_init : array-like of shape (K,), optional
        Starting weights, non-negative, summing to 1.
    probs_init : array-like of shape (K,), optional
        Starting success probabilities, in [0, 1]. With both given every restart starts
        there, so the fit involves no randomness.
    random_state : int, numpy Generator or RandomState, optional
    callback : callable ``(iteration, log_likelihood, params)``, optional
        Called after each E-step with the mean log-likelihood of ``params``, the
        :class:`emix.families.binomial.BinomialMixtureParams` that E-step used. Return
        True to stop.

    Attributes
    ----------
    weights_ : ndarray of shape (K,)
    probs_ : ndarray of shape (K,)
        Fitted success probability of each component.
    converged_ : bool
    n_iter_ : int
    lower_bound_ : float
        Mean log-likelihood per row from the last E-step of the best run.
    lower_bounds_ : ndarray of shape (n_iter_,)
        Mean log-likelihood at every iteration of the best run.
    best_init_ : int
    n_trials_ : int or None
        The number of trials per row used in ``fit`` when it was one number (then
        ``predict`` and the other methods use it for new rows without being told),
        else None.
    n_features_in_ : int
        1 (heads, trials given separately) or 2 (heads and trials as columns).
    mixture_model_ : MixtureModel
        The general model that ran EM, fitted on the (heads, trials) columns.

    Examples
    --------
    >>> from emix.datasets import load_two_coins
    >>> data = load_two_coins(n_sets=500, random_state=0)
    >>> bm = BinomialMixture(2, n_trials=data.n_flips, random_state=0).fit(data.heads)
    >>> sorted(bm.probs_.round(2).tolist())
    [0.47, 0.8]
    """

    def __init__(
        self,
        n_components=2,
        *,
        n_trials=None,
        tol=1e-6,
        max_iter=200,
        n_init=5,
        init_params="random_from_data",
        weights_init=None,
        probs_init=None,
        random_state=None,
        callback=None,
    ):
        self.n_components = n_components
        self.n_trials = n_trials
        self.tol = tol
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.probs_init = probs_init
        self.random_state = random_state
        self.callback = callback

    # ------------------------------------------------------------------ checks
    def _check_parameters(self):
        check_int(self.n_components, "n_components", low=1)
        check_float(self.tol, "tol", low=0.0)
        check_int(self.max_iter, "max_iter", low=0)
        check_int(self.n_init, "n_init", low=1)
        if self.init_params not in INIT_PARAMS:
            raise InputError(
                f"init_params must be one of {INIT_PARAMS}; got {self.init_params!r}"
            )
        if self.callback is not None and not callable(self.callback):
            raise InputError("callback must be callable (iteration, log_likelihood, params)")

    def _check_initial(self):
        K = self.n_components
        w = p = None
        if self.weights_init is not None:
            w = check_weights_init(self.weights_init, K)
        if self.probs_init is not None:
            p = np.asarray(self.probs_init, dtype=np.float64)
            if p.shape != (K,):
                raise InputError(f"probs_init must have shape ({K},); got {p.shape}")
            if not np.all((p >= 0) & (p <= 1)):
                raise InputError(f"probs_init must lie in [0, 1]; got {p}")
        return w, p

    def _counts(self, X, n_trials, *, fitting: bool):
        """Validated ``(heads, trials, names)``, each count array of shape (N,), float64."""
        if n_trials is None:
            n_trials = self.n_trials
        if n_trials is None and not fitting:
            # A single count given to fit applies to new rows too (sets of 10 flips).
            n_trials = getattr(self, "n_trials_", None)
        Xv, names = check_array(X, name="X")
        N, D = Xv.shape
        if fitting:
            expected = 1 if n_trials is not None else 2
            if D != expected:
                if n_trials is None:
                    raise InputError(
                        f"X has {D} column(s) and n_trials is not set: give X as one column "
                        "of heads with n_trials=..., or as two columns (heads, trials)"
                    )
                raise InputError(
                    f"X has {D} columns, but with n_trials given X must be one column of "
                    "heads (shape (N,) or (N, 1))"
                )
        else:
            if D != self.n_features_in_:
                raise InputError(
                    f"X has {D} features, but {type(self).__name__} is expecting "
                    f"{self.n_features_in_} features as input"
                )
            if D == 1 and n_trials is None:
                raise InputError("n_trials is needed: this model was fitted with it")
        heads = Xv[:, 0].astype(np.float64, copy=False)
        if D == 2:
            if n_trials is not None and not fitting:
                raise InputError("X holds a trials column; do not pass n_trials as well")
            trials = Xv[:, 1].astype(np.float64, copy=False)
            trials_name = "the trials column of X"
        else:
            trials = _check_trials(n_trials, N)
            trials_name = "n_trials"
        _check_integers(heads, "the heads in X")
        _check_integers(trials, trials_name)
        neg = heads < 0
        if neg.any():
            i = int(np.flatnonzero(neg)[0])
            raise InputError(
                f"heads must be non-negative counts; negative at "
                f"{describe_positions(np.flatnonzero(neg))} (row {i} has {heads[i]:g})"
            )
        neg = trials < 0
        if neg.any():
            i = int(np.flatnonzero(neg)[0])
            raise InputError(
                f"{trials_name} must be non-negative counts; negative at "
                f"{describe_positions(np.flatnonzero(neg))} (row {i} has {trials[i]:g})"
            )
        over = heads > trials
        if over.any():
            i = int(np.flatnonzero(over)[0])
            raise InputError(
                f"heads exceed the number of trials at "
                f"{describe_positions(np.flatnonzero(over))} (row {i} has {heads[i]:g} "
                f"heads in {trials[i]:g} trials)"
            )
        return heads, trials, names

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y=None, sample_weight=None, *, n_trials=None):
        """Fit the mixture by EM.

        Parameters
        ----------
        X : array-like of shape (N,), (N, 1) or (N, 2)
            Heads per row, non-negative integers; or two columns (heads, trials).
        y : ignored
        sample_weight : array-like of shape (N,), optional
            Non-negative row weights; an integer weight equals repeating the row.
        n_trials : int or array-like of shape (N,), optional
            Overrides the constructor's ``n_trials``.

        Returns
        -------
        self
        """
        self._check_parameters()
        K = self.n_components
        heads, trials, names = self._counts(X, n_trials, fitting=True)
        N = heads.shape[0]
        w = check_sample_weight(sample_weight, N)
        n_pos = N if w is None else int(np.count_nonzero(w))
        if n_pos < K:
            raise InputError(
                f"X has {n_pos} row(s){' with positive weight' if w is not None else ''} "
                f"but n_components={K}: need at least as many rows as components"
            )
        live = np.ones(N, bool) if w is None else w > 0
        if not np.any(trials[live] > 0):
            raise InputError("every row has 0 trials: there is nothing to estimate from")
        w_init, p_init = self._check_initial()
        user_callback = self.callback

        def callback(iteration, mean_loglik, params):
            weights, fp = params
            return user_callback(
                iteration, mean_loglik, B.BinomialMixtureParams(weights, fp["probabilities"][:, 0])
            )

        model = _CoinsModel(
            B.Binomial(),
            K,
            tol=self.tol,
            max_iter=self.max_iter,
            n_init=self.n_init,
            weights_init=w_init,
            params_init=None if p_init is None else {"probabilities": p_init[:, None]},
            random_state=self.random_state,
            callback=None if user_callback is None else callback,
        )
        model._start = self._initial_params
        model.fit(np.column_stack([heads, trials]), sample_weight=w)
        self.mixture_model_ = model
        self._family = model.family_
        probs = np.array(model.probabilities_[:, 0], dtype=np.float64)
        self._params = B.BinomialMixtureParams(np.array(model.weights_, dtype=np.float64), probs)
        self.weights_ = self._params.weights.copy()
        self.probs_ = probs.copy()
        self._set_feature_names(names)
        self.n_features_in_ = 1 if n_trials is not None or self.n_trials is not None else 2
        given = n_trials if n_trials is not None else self.n_trials
        self.n_trials_ = int(given) if given is not None and np.ndim(given) == 0 else None
        self.converged_ = bool(model.converged_)
        self.n_iter_ = int(model.n_iter_)
        self.lower_bound_ = float(model.lower_bound_)
        self.lower_bounds_ = model.lower_bounds_
        self.best_init_ = int(model.best_init_)
        return self

    def fit_predict(self, X, y=None, sample_weight=None, *, n_trials=None):
        """Fit, then return the most likely component of every row, shape (N,)."""
        self.fit(X, sample_weight=sample_weight, n_trials=n_trials)
        return self.predict(X, n_trials=n_trials)

    def _initial_params(self, X2, weight, rng):
        """``(weights (K,), {"probabilities": (K, 1)})`` to start EM from.

        Parameters
        ----------
        X2 : ndarray of shape (N, 2), the (heads, trials) columns
        weight : ndarray of shape (N,) or None
        rng : numpy Generator
        """
        K = self.n_components
        heads, trials = X2[:, 0], X2[:, 1]
        N = heads.shape[0]
        weight = np.ones(N) if weight is None else weight
        if self.init_params == "random":
            resp = rng.random((N, K))
            resp /= resp.sum(axis=1, keepdims=True)
            v = weight[:, None] * resp
            stats = B.BinomialStats(v.sum(axis=0), heads @ v, trials @ v, 0.0, float(weight.sum()))
            params = B.m_step(stats)[0]
            return params.weights, {"probabilities": params.probs[:, None]}
        # Rows with no trials say nothing about a success rate: never seed from them.
        usable = np.where(trials > 0, weight, 0.0)
        if np.count_nonzero(usable) >= K:
            rows = random_rows(usable, K, rng)
        else:
            rows = rng.choice(np.flatnonzero(usable), K, replace=True)
        # Add-one-half smoothing keeps each start inside (0, 1), where every row is
        # possible under every component.
        probs = (heads[rows] + 0.5) / (trials[rows] + 1.0)
        # Components that start equal stay equal forever (EM keeps the symmetry); a
        # small spread breaks ties between seed rows with the same success rate.
        probs = np.clip(probs + rng.uniform(-0.02, 0.02, K), 0.01, 0.99)
        return np.full(K, 1.0 / K), {"probabilities": probs[:, None]}

    @property
    def params_(self) -> B.BinomialMixtureParams:
        """The fitted parameters as one immutable value."""
        self._check_is_fitted("params_")
        return self._params

    # ------------------------------------------------------------------ prediction
    def _log_joint(self, X, n_trials, method: str) -> np.ndarray:
        """``log w_k + log Binomial(h | n, p_k)``, (N, K), by the general model's kernel
        (from the public ``weights_`` and ``probs_``, so that edits are honoured)."""
        self._check_is_fitted(method)
        heads, trials, names = self._counts(X, n_trials, fitting=False)
        self._check_feature_names(names)
        kernel = LogJointKernel(
            self._family,
            {"probabilities": np.asarray(self.probs_, dtype=np.float64)[:, None]},
            np.asarray(self.weights_, dtype=np.float64),
        )
        X2 = np.column_stack([heads, trials])
        return NumpyBackend().map_rows(X2, kernel, width=self._family.feature_width())

    def score_samples(self, X, *, n_trials=None) -> np.ndarray:
        """Log probability of every row's count, shape (N,)."""
        return B.responsibilities(self._log_joint(X, n_trials, "score_samples"))[1]

    def score(self, X, y=None, sample_weight=None, *, n_trials=None) -> float:
        """Mean log-likelihood per row (weighted when ``sample_weight`` is given)."""
        s = self.score_samples(X, n_trials=n_trials)
        if sample_weight is None:
            return float(np.mean(s))
        sw = check_sample_weight(sample_weight, s.shape[0])
        return float(np.dot(sw, s) / sw.sum())

    def predict_proba(self, X, *, n_trials=None) -> np.ndarray:
        """Responsibilities: posterior probability of each component, shape (N, K)."""
        return B.responsibilities(self._log_joint(X, n_trials, "predict_proba"))[0]

    def predict(self, X, *, n_trials=None) -> np.ndarray:
        """Most likely component of every row, shape (N,)."""
        return np.argmax(self._log_joint(X, n_trials, "predict"), axis=1)

    def sample(self, n_samples: int = 1, *, n_trials=None):
        """Draw counts from the fitted mixture.

        Parameters
        ----------
        n_samples : int, default=1
        n_trials : int, optional
            Trials per drawn row; defaults to the constructor's when that is one number.

        Returns
        -------
        heads : ndarray of shape (n_samples,), int64
        labels : ndarray of shape (n_samples,), the component of each row
        """
        self._check_is_fitted("sample")
        check_int(n_samples, "n_samples", low=1)
        n = self.n_trials if n_trials is None else n_trials
        if n is None:
            n = self.n_trials_
        if n is None or np.ndim(n) != 0:
            raise InputError("sample needs one number of trials per row: pass n_trials=...")
        n = int(_check_trials(n, 1)[0])
        rng = as_generator(self.random_state)
        w = np.asarray(self.weights_, dtype=np.float64)
        labels = rng.choice(len(w), size=n_samples, p=w / w.sum())
        heads = rng.binomial(n, np.asarray(self.probs_)[labels]).astype(np.int64)
        return heads, labels

    # ------------------------------------------------------------------ selection
    def _n_parameters(self) -> int:
        return B.n_parameters(self.n_components)

    def bic(self, X, *, n_trials=None) -> float:
        """Bayesian information criterion on X; lower is better."""
        s = self.score_samples(X, n_trials=n_trials)
        return -2.0 * float(s.sum()) + self._n_parameters() * math.log(s.shape[0])

    def aic(self, X, *, n_trials=None) -> float:
        """Akaike information criterion on X; lower is better."""
        s = self.score_samples(X, n_trials=n_trials)
        return -2.0 * float(s.sum()) + 2.0 * self._n_parameters()


def _check_trials(n_trials, N: int) -> np.ndarray:
    """``n_trials`` as float64 of shape (N,): one number broadcast, or one per row."""
    if isinstance(n_trials, (bool, np.bool_)):
        raise InputError(f"n_trials must be a count or one count per row; got {n_trials!r}")
    if isinstance(n_trials, numbers.Number):
        value = float(n_trials)
        if not math.isfinite(value) or value != math.floor(value) or value < 0:
            raise InputError(f"n_trials must be a non-negative integer; got {n_trials!r}")
        return np.full(N, value)
    arr, _ = check_array(n_trials, name="n_trials")
    if arr.shape[1] != 1:
        raise InputError(f"n_trials must be one number or 1-D; got shape {arr.shape}")
    if arr.shape[0] != N:
        raise InputError(
            f"n_trials has {arr.shape[0]} entries but X has {N} rows; give one number "
            "for every row, or one per row"
        )
    return arr[:, 0].astype(np.float64, copy=False)


def _check_integers(values: np.ndarray, name: str) -> None:
    bad = values != np.round(values)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"{name} must be whole numbers (counts); not at "
            f"{describe_positions(np.flatnonzero(bad))} (row {i} has {values[i]:g})"
        )
