"""``HMM``: hidden Markov models whose emissions are any family, fitted by Baum-Welch.

A hidden Markov model is a mixture whose label persists in time: row ``t`` of a
sequence is drawn from the emission of a hidden state ``z_t``, and the states form a
Markov chain with initial distribution ``startprob`` and transition matrix
``transmat``. The model reuses the family contract of the mixtures unchanged:

* log-emissions ``log p(x_t | k)`` are one backend pass of the mixture's
  :class:`~emix.models._kernels.LogJointKernel` with unit weights (``log w = 0``);
* the forward-backward recursion over them (:mod:`emix.models.forward_backward`,
  compiled, on the host) gives the smoothed state posteriors, the expected initial
  states and the expected transition counts;
* the emission statistics are a second pass with the posteriors as given
  responsibilities, so the family's M-step runs as it does for a mixture, and the
  statistics of several sequences (and row blocks) simply add.

One Baum-Welch iteration is therefore an E-step of the generic engine
(:func:`emix.em.engine.run_em`) returning :class:`HMMStats`, with the same convergence
monitor, restarts, callback and warnings as the mixtures.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .._missing import check_missing, check_missing_mode
from .._validation import allow_nan, check_int
from ..backends import resolve_backend
from ..data._dask import is_dask
from ..data import is_source_like
from ..data._stream import (
    check_support_blocks,
    is_streaming,
    resolve_data_backend,
    sequence_missing,
)
from ..em.init import as_generator
from ..exceptions import DegenerateComponentError, InputError
from ..families._base import Family, MixtureStats, permute_params
from ._kernels import GivenRespKernel, LogJointKernel, MixtureKernel, stats_from_acc
from ._mixture_base import MixtureEstimator
from .forward_backward import check_lengths, forward, forward_backward, use_scan, viterbi
from .mixture_model import (
    _zero_missing,
    column_labels,
    impute_columns,
    observed_summary,
    starting_stats,
    take_columns,
)

__all__ = ["HMM", "HMMStats"]

INIT_PARAMS = ("kmeans", "k-means++", "random", "random_from_data")
FIXABLE = ("startprob", "transmat", "emission")
LABEL_ORDERS = (None, "mean", "volatility")
# The default transition matrix puts this much mass on staying in the same state: a
# sticky start suits the persistent regimes HMMs are used for and breaks the symmetry
# between states from the first E-step (a uniform matrix makes the first posteriors
# those of a plain mixture).
STICKY_DIAGONAL = 0.8
# Forward-backward runs on a GPU (torch, all sequences batched, one Python step per time
# step) when there are on average at least this many sequences per time step, T >= this *
# max(lengths); otherwise the compiled host loop wins. The host loop costs about 0.3 us
# per row for K = 8 (measured, 2-core CPU); a batched time step costs some 20 kernel
# launches, an estimated 50-100 us on a GPU (not yet measured): break-even near 250
# sequences per step. On torch's CPU the batched steps measured 5-30x slower than the
# host loop, so there it is never used.
DEVICE_FB_MIN_BATCH = 256
_COMPONENT = re.compile(r"\bcomponents? (\d+)")
_STATE = re.compile(r"\bstate (\d+)")
_FAMILY_EMPTY = re.compile(r"\bcomponent (\d+) (?:is empty|received no data)")


def _as_states(message: str) -> str:
    """A family's message about 'component k' reworded for an HMM's 'state k'."""
    msg = _COMPONENT.sub(lambda m: m.group(0).replace("component", "state"), message)
    return msg.replace("fewer components", "fewer states").replace("n_components", "n_states")


def _tiny(total: float) -> float:
    """An expected count indistinguishable from 0 next to ``total`` rows."""
    return 10.0 * np.finfo(np.float64).eps * max(float(total), 1.0)


@dataclass(frozen=True, eq=False)
class HMMStats:
    """Additive statistics of one Baum-Welch E-step (float64, on the host).

    ``a + b`` is the statistics of the union of the sequences of ``a`` and ``b``.

    Attributes
    ----------
    emission : MixtureStats or None
        The emission family's statistics with the smoothed posteriors as
        responsibilities (None when the emission is fixed).
    start : ndarray of shape (K,)
        ``sum over sequences of p(z_1 = k | x)``.
    transitions : ndarray of shape (K, K)
        Expected transition counts ``sum_t p(z_t = i, z_{t+1} = j | x)``.
    occupancy : ndarray of shape (K,)
        Expected rows in each state, ``sum_t p(z_t = k | x)``.
    loglik : float
        ``sum over sequences of log p(x)`` under the parameters of the pass.
    weight_sum : float
        Rows T (so ``loglik / weight_sum`` is the mean log-likelihood per row).
    n_sequences : int
    """

    emission: MixtureStats | None
    start: np.ndarray
    transitions: np.ndarray
    occupancy: np.ndarray
    loglik: float
    weight_sum: float
    n_sequences: int

    def __add__(self, other):
        if not isinstance(other, HMMStats):
            return NotImplemented
        if (self.emission is None) != (other.emission is None):
            raise InputError("cannot add HMM statistics with and without emission statistics")
        return HMMStats(
            None if self.emission is None else self.emission + other.emission,
            self.start + other.start,
            self.transitions + other.transitions,
            self.occupancy + other.occupancy,
            self.loglik + other.loglik,
            self.weight_sum + other.weight_sum,
            self.n_sequences + other.n_sequences,
        )


class _PosteriorKernel(MixtureKernel):
    """Emission statistics with given posteriors as responsibilities.

    Unlike :class:`GivenRespKernel` it evaluates the family's ``transform`` under the
    current parameters, so a family with latent scales (Student-t) weights its
    statistics by their expectations, exactly as in its mixture E-step.

    Parameters
    ----------
    family : bound Family
    params : dict, the family's parameters
    resp : callable ``(start, stop) -> ndarray of shape (stop - start, K)``
    """

    def __init__(self, family, params: dict, resp, K: int, missing: bool = True):
        super().__init__(family, params, np.ones(K), missing)
        self.resp = resp
        # An exponential family's statistics need only T(x): skip the product eta @ T.
        self.plain = type(family).transform is Family.transform and not family.extra_stats

    def _posteriors(self, ops, start, stop):
        r = self.resp(start, stop)
        if isinstance(r, np.ndarray):
            r = np.array(r.T, dtype=np.float64, order="C")
        else:  # posteriors left on the device by the batched torch recursions
            r = r.T.contiguous()
        return ops.asarray(r)

    def block(self, ops, st, Xb, wb, acc, start, stop):
        O = self._mask(ops, Xb)
        if O is not None:
            # Expected statistics given each row's observed cells (and, for latent-scale
            # families, the scales' expectations given them).
            ctx = self.missing_context(ops, st, Xb, O)
            R = self._posteriors(ops, start, stop)
            self._weigh(ops, R, wb, acc)
            S, extra = self.family.missing_stats(ops, st["missing"], ctx, R)
            acc["S"] += S
            for name, value in extra.items():
                acc[name] += value
            return
        if self.plain:
            F, U, extra = self.family.features(ops, Xb), None, {}
        else:
            F, _, U, extra = self.log_joint(ops, st, Xb)
        r = self.resp(start, stop)
        if isinstance(r, np.ndarray):
            r = np.array(r.T, dtype=np.float64, order="C")
        else:  # posteriors left on the device by the batched torch recursions
            r = r.T.contiguous()
        R = ops.asarray(r)
        self._accumulate(ops, F, R, wb, acc, U, extra)


class _HMMProblem:
    """Baum-Welch as an engine problem; parameters are ``(startprob (K,), transmat (K,
    K), family params dict)``, float64 on the host."""

    def __init__(self, backend, X, family, K, lengths, block_size, fixed, missing=True):
        self.backend = backend
        self.missing = bool(missing)
        self.X = X
        self.family = family
        self.K = K
        self.lengths = lengths
        self.block_size = block_size
        self.fixed = frozenset(fixed)
        self.T = int(X.shape[0])
        self.on_device = _device_recursions(backend, lengths)
        self.last_issues: list = []
        self.last_allowance = 0.0

    # -------------------------------------------------------------- passes
    def log_emissions(self, fp):
        """``log p(x_t | k)``, shape (T, K), float64 on the host (a tensor on the device
        when the recursions run there)."""
        kernel = LogJointKernel(self.family, fp, np.ones(self.K), missing=self.missing)
        return _log_emissions(self.backend, self.X, kernel, self.block_size,
                              self.family.feature_width(), self.on_device)

    def _pass(self, kernel) -> MixtureStats:
        acc = self.backend.stats_pass(
            self.X, None, kernel, block_size=self.block_size, width=self.family.feature_width()
        )
        return stats_from_acc(acc, self.T, self.family)

    def given_resp_stats(self, resp) -> MixtureStats:
        """Statistics of starting responsibilities (latent scales at 1)."""
        return self._pass(GivenRespKernel(self.family, resp, self.K, missing=self.missing))

    # -------------------------------------------------------------- EM
    def e_step(self, params) -> HMMStats:
        if hasattr(self.backend, "sequence_pass"):
            # Dask: each row block (whole sequences) runs the E-step on its worker.
            return self.backend.sequence_pass(
                self.X, self.lengths,
                _BlockEStep(self.family, self.K, self.block_size, self.fixed, params),
            )
        return baum_welch_stats(self.backend, self.X, self.family, self.K, self.lengths,
                                self.block_size, self.fixed, params, self.on_device,
                                missing=self.missing)

    @property
    def N(self) -> int:
        return self.T

    def m_step(self, stats: HMMStats, params, iteration):
        startprob, transmat, fp = params
        tiny = _tiny(stats.weight_sum)
        unvisited = set(np.flatnonzero(stats.occupancy <= tiny).tolist())
        if "startprob" not in self.fixed:
            # Sums to the number of sequences; a state no sequence starts in gets 0 (a
            # structural zero of startprob_init stays 0).
            startprob = stats.start / stats.start.sum()
        dead_rows = []
        if "transmat" not in self.fixed:
            out = stats.transitions.sum(axis=1)
            live = out > tiny
            new = np.array(transmat, dtype=np.float64, copy=True)
            # Expected counts of structurally impossible transitions are exactly 0,
            # so zeros of transmat_init stay 0.
            new[live] = stats.transitions[live] / out[live, None]
            transmat = new
            dead_rows = [int(k) for k in np.flatnonzero(~live) if int(k) not in unvisited]
        issues: list = []
        if "emission" not in self.fixed:
            try:
                fp, fam_issues = self.family.m_step(stats.emission, fp)
            except DegenerateComponentError as exc:
                raise DegenerateComponentError(_as_states(str(exc))) from None
            for msg in fam_issues:
                m = _FAMILY_EMPTY.search(msg)
                if m:
                    unvisited.add(int(m.group(1)))
                else:
                    issues.append(_as_states(msg))
            gap = getattr(self.family, "reg_gap", None)
            self.last_allowance = 0.0 if gap is None else float(gap(stats.emission))
        issues = [
            f"state {k} is never visited (its expected number of rows is {stats.occupancy[k]:.3g}): "
            "it keeps its emission parameters and transition row; use fewer states"
            for k in sorted(unvisited)
        ] + [
            f"state {k} has no expected transitions out of it (it is occupied only at the "
            "ends of sequences): its transition row keeps its previous values"
            for k in dead_rows
        ] + issues
        self.last_issues = issues
        return startprob, transmat, fp


def baum_welch_stats(backend, X, family, K, lengths, block_size, fixed, params, on_device,
                     row0=0, seq0=0, missing=True) -> HMMStats:
    """One Baum-Welch E-step over the sequences of ``X`` (T, D): the log-emissions, the
    forward-backward recursions and the emission statistics under the posteriors.

    ``row0`` and ``seq0`` number the first row and sequence of ``X`` in the whole data
    (a Dask block's), for the error naming an impossible row. ``missing=False`` says X
    has no NaN (the kernels then skip the per-block check).
    """
    startprob, transmat, fp = params
    log_B = _log_emissions(backend, X, LogJointKernel(family, fp, np.ones(K), missing=missing),
                           block_size, family.feature_width(), on_device)
    fb = forward_backward(log_B, startprob, transmat, lengths)
    loglik = float(np.sum(fb.loglik))
    if not math.isfinite(loglik):
        raise impossible_row(log_B, startprob, transmat, lengths, row0, seq0)
    post = fb.posteriors
    T = int(X.shape[0])
    emission = None
    if "emission" not in fixed:
        kernel = _PosteriorKernel(family, fp, lambda a, b: post[a:b], K, missing=missing)
        acc = backend.stats_pass(X, None, kernel, block_size=block_size,
                                 width=family.feature_width())
        emission = stats_from_acc(acc, T, family)
    return HMMStats(
        emission, fb.start, fb.transitions, _host(post.sum(0)), loglik, float(T), len(lengths),
    )


class _BlockEStep:
    """The E-step of one Dask row block of whole sequences, run on its worker with the
    NumPy backend (pickled there with the family and the parameters)."""

    def __init__(self, family, K, block_size, fixed, params):
        self.family, self.K, self.block_size = family, K, block_size
        self.fixed, self.params = frozenset(fixed), params

    def __call__(self, inner, Xb, lengths, row0, seq0) -> HMMStats:
        return baum_welch_stats(inner, Xb, self.family, self.K, lengths, self.block_size,
                                self.fixed, self.params, False, row0, seq0)


class _BlockInference:
    """A fitted HMM's inference method on one Dask row block of whole sequences, run
    on its worker; errors number rows and sequences as in the whole X."""

    def __init__(self, est, method: str):
        self.est, self.method = est, method

    def __call__(self, Xb, lengths, row0, seq0):
        try:
            if self.method == "decode":
                # The path and, on each sequence's first row, that sequence's log-probability
                # (so the column sums to decode's total).
                logprob, path = viterbi(*self.est._prepare(Xb, lengths, "decode"))
                share = np.zeros(len(path))
                share[np.concatenate([[0], np.cumsum(lengths)[:-1]])] = _host(logprob)
                return np.column_stack([_host(path).astype(np.float64), share])
            return np.asarray(getattr(self.est, self.method)(Xb, lengths))
        except (InputError, DegenerateComponentError) as exc:
            msg = re.sub(r"\brow (\d+)", lambda m: f"row {int(m.group(1)) + row0}", str(exc),
                         count=1)
            msg = re.sub(r"\bsequence (\d+)", lambda m: f"sequence {int(m.group(1)) + seq0}",
                         msg, count=1)
            raise type(exc)(msg) from None


def _device_recursions(backend, lengths) -> bool:
    """Whether forward-backward runs batched on the backend's torch device rather than
    compiled on the host: on a GPU with enough sequences per time step
    (:data:`DEVICE_FB_MIN_BATCH`). On torch's CPU the host loop is faster and reads the
    same memory."""
    device = getattr(backend, "device", None)
    if getattr(backend, "name", None) == "torch" and device is not None and use_scan(device, lengths):
        return True  # one or a few long sequences on a GPU: forward_backward's parallel scan
    if getattr(backend, "name", None) != "torch" or device is None or device.type == "cpu":
        return False
    return int(np.sum(lengths)) >= DEVICE_FB_MIN_BATCH * int(np.max(lengths))


def _log_emissions(backend, X, kernel, block_size, width, on_device):
    """``log p(x_t | k)`` (T, K) float64: NumPy, or a tensor left on the device."""
    if on_device:
        return backend.map_rows(X, kernel, block_size=block_size, width=width,
                                out_dtype=np.float64, on_device=True)
    L = backend.map_rows(X, kernel, block_size=block_size, width=width, out_dtype=np.float64)
    return np.asarray(backend.to_numpy(L), dtype=np.float64)


def _host(a) -> np.ndarray:
    """A result of the recursions as NumPy, whichever device computed it."""
    return a if isinstance(a, np.ndarray) else a.cpu().numpy()


def impossible_row(log_B, startprob, transmat, lengths, row0=0, seq0=0) -> DegenerateComponentError:
    """The error for data with zero likelihood, naming the first impossible row (rows
    and sequences of ``log_B`` numbered from ``row0`` and ``seq0``)."""
    fr = forward(_host(log_B), startprob, transmat, lengths)
    bad = np.flatnonzero(~np.isfinite(fr.step_loglik))
    t = int(bad[0]) if bad.size else 0
    seq = int(np.searchsorted(np.cumsum(lengths), t, side="right"))
    return DegenerateComponentError(
        f"row {t + row0} (sequence {seq + seq0}) has probability 0 under the states the "
        "chain can be in there (a collapsed emission, a zero of startprob/transmat that the data "
        "contradict, or extreme values); change the fixed zeros, increase reg_covar or "
        "rescale the data"
    )


class HMM(MixtureEstimator):
    """Hidden Markov model with emissions from any family, fitted by Baum-Welch.

    Parameters
    ----------
    n_states : int, default=2
        K, the number of hidden states.
    emission : str, Family, mapping or list of (family, columns), default='gaussian'
        The distribution of a row given its state: a name from
        :data:`emix.families.FAMILY_NAMES` (``'gaussian'``, ``'bernoulli'``,
        ``'categorical'``, ``'poisson'``, ``'exponential'``, ``'binomial'``,
        ``'student_t'``), a family object, or an independent product over column
        groups as in :class:`emix.MixtureModel` (``{"gaussian": [0, 1], "poisson":
        [2]}``). ``'gaussian'`` is the exponential-family normal of
        :mod:`emix.families.normal`.
    covariance_type : {'full', 'tied', 'diag', 'spherical'}, default='full'
        For the emissions that have one (Gaussian, Student-t), as the family allows.
    tol : float, default=1e-3
        Converged when the mean log-likelihood per row changes by less than ``tol``.
    max_iter : int, default=100
    n_init : int, default=1
        Restarts from different emission starts; the best run without degenerate
        states is kept.
    init_params : {'kmeans', 'k-means++', 'random', 'random_from_data'}, default='kmeans'
        How the emission parameters start (as in :class:`emix.MixtureModel`: one
        M-step on k-means labels of the standardised rows, on the nearest of seed
        rows, or on random soft labels). The time order plays no part in it.
    startprob_init : array-like of shape (K,), optional
        Default uniform.
    transmat_init : array-like of shape (K, K), optional
        Rows sum to 1. Default: ``0.8`` on the diagonal and the rest spread evenly (a
        sticky start). **Zeros stay zero**: Baum-Welch never re-estimates a transition
        whose probability is 0 above 0, so a left-right model (upper triangular) or any
        forbidden transition is set by its zeros here; the same holds for zeros of
        ``startprob_init``.
    emission_init : dict, optional
        Starting emission parameters keyed as the family's ``param_names`` (e.g.
        ``{"means": (K, D), "covariances": (K, D, D)}``, ``{"rates": (K, D)}``); the
        ones not given come from ``init_params``.
    means_init, covariances_init : array-like, optional
        Shorthands for ``emission_init["means"]`` and ``emission_init["covariances"]``.
    fixed : iterable of {'startprob', 'transmat', 'emission'}, default=()
        Parameter groups that are not re-estimated (they stay at their initial values).
    random_state : int, numpy Generator or RandomState, optional
    warm_start : bool, default=False
        Start the next ``fit`` from the current parameters.
    verbose : int, default=0
    block_size : int, optional
        Rows per block of the emission passes.
    device : str, optional
        None for NumPy; ``'cpu'`` or ``'cuda'`` to run the emission passes (the
        log-emissions and the statistics) on PyTorch. The forward-backward recursion
        runs compiled on the host, except on a GPU, where the log-emissions never leave
        the device: one or a few long sequences (65,536 rows or more, one of 1,024
        steps or more) run as a parallel scan (``models/_fb_scan.py``), and many
        sequences (on average ``DEVICE_FB_MIN_BATCH`` = 256 or more per time step) run
        batched. ``emix.models.forward_backward.SCAN`` forces (True) or forbids (False)
        the scan.
    callback : callable ``(iteration, log_likelihood, params)``, optional
        Called at every iteration with the mean log-likelihood per row of ``params`` =
        ``(startprob, transmat, emission params dict)``. Return True to stop.
    label_order : {None, 'mean', 'volatility'}, default=None
        ``'mean'``: states numbered by ascending emission means (first column first).
        ``'volatility'``: by ascending total emission variance (the trace of the
        covariance; for a Student-t the scale times ``df / (df - 2)``, infinite for
        ``df <= 2``), so state 0 is the calmest; ties go by the means. Only for
        emissions with a covariance or scale (Gaussian, Student-t).
    family_options : dict, optional
        Constructor keywords of the emission family given by name (e.g.
        ``{"reg_covar": 1e-4}``, ``{"n_trials": 10}``, ``{"df": 5}``).
    missing : {'em', 'error'}, default='em'
        What NaN in X means. ``'em'``: a missing emission value, a hidden variable of
        Baum-Welch: a row's emission probability is that of its observed cells and its
        statistics are the expected complete-data ones. A row with every value missing
        is still a time step (it is *not* dropped, unlike in a mixture): its emission
        probability is 1 under every state, so the chain just propagates through it
        (``score_samples`` is 0 there, ``filter`` the one-step prediction). ``'error'``:
        NaN is an :class:`emix.InputError`. inf is always an error. Paths, sources and
        Dask arrays are read the same way.

    Attributes
    ----------
    startprob_ : ndarray of shape (K,)
    transmat_ : ndarray of shape (K, K)
    <param>_ : ndarray
        One per emission parameter, state axis first: ``means_`` (K, D) and
        ``covariances_`` for the Gaussian, ``rates_`` (K, D) for Poisson, ...
    params_ : dict
        The emission parameters (for a product, ``{part label: {name: array}}``).
    family_ : Family
        The emission family bound to the training data.
    converged_ : bool
    n_iter_ : int
    lower_bound_ : float
        Mean log-likelihood per row from the last E-step.
    lower_bounds_ : ndarray of shape (n_iter_,)
        The mean log-likelihood per row at every iteration (never decreasing).
    degenerate_ : bool
    degenerate_components_ : ndarray of int
        The states named in the degeneracy warnings (also ``degenerate_states_``).
    n_features_in_ : int
    columns_ : ndarray of int

    Notes
    -----
    ``score`` is the mean log-likelihood per row (as for emix's mixtures, and unlike
    hmmlearn's total); ``score_samples`` gives every row's ``log p(x_t | x_<t)``, which
    sum to each sequence's log-likelihood.

    A state the posteriors never visit keeps its emission parameters and transition
    row, and a state occupied only at the ends of sequences keeps its transition row;
    both are named in a :class:`emix.DegenerateComponentWarning` ("state 2 ..."), and
    the fit continues. A collapse the family cannot survive (a zero variance with
    ``reg_covar=0``) and data with zero likelihood raise
    :class:`emix.DegenerateComponentError` naming the state or the row.
    """

    def __init__(
        self,
        n_states=2,
        emission="gaussian",
        *,
        covariance_type="full",
        tol=1e-3,
        max_iter=100,
        n_init=1,
        init_params="kmeans",
        startprob_init=None,
        transmat_init=None,
        emission_init=None,
        means_init=None,
        covariances_init=None,
        fixed=(),
        random_state=None,
        warm_start=False,
        verbose=0,
        block_size=None,
        device=None,
        callback=None,
        label_order=None,
        family_options=None,
        missing="em",
    ):
        self.n_states = n_states
        self.emission = emission
        self.covariance_type = covariance_type
        self.tol = tol
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.startprob_init = startprob_init
        self.transmat_init = transmat_init
        self.emission_init = emission_init
        self.means_init = means_init
        self.covariances_init = covariances_init
        self.fixed = fixed
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.block_size = block_size
        self.device = device
        self.callback = callback
        self.label_order = label_order
        self.family_options = family_options
        self.missing = missing

    # ------------------------------------------------------------------ checks
    def _fixed_set(self) -> frozenset:
        fixed = self.fixed
        if fixed is None:
            return frozenset()
        if isinstance(fixed, str):
            fixed = (fixed,)
        try:
            names = list(fixed)
        except TypeError:
            raise InputError(
                f"fixed must be a list of parameter groups from {FIXABLE}; got {fixed!r}"
            ) from None
        unknown = [n for n in names if n not in FIXABLE]
        if unknown:
            raise InputError(
                f"fixed names parameter groups {FIXABLE}; {unknown[0]!r} is none of them"
            )
        return frozenset(names)

    def _check_parameters(self):
        self._check_common_parameters(INIT_PARAMS, count="n_states", label_orders=LABEL_ORDERS)
        check_missing_mode(self.missing)
        for name in ("family_options", "emission_init"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Mapping):
                raise InputError(f"{name} must be a dict; got {type(value).__name__}")
        self._fixed_set()

    def _start_init(self, K) -> np.ndarray:
        if self.startprob_init is None:
            return np.full(K, 1.0 / K)
        p = np.asarray(self.startprob_init, dtype=np.float64)
        if p.shape != (K,):
            raise InputError(f"startprob_init must have shape ({K},); got {p.shape}")
        if not np.all(np.isfinite(p)) or np.any(p < 0) or abs(p.sum() - 1.0) > 1e-6:
            raise InputError("startprob_init must hold non-negative probabilities summing to 1")
        return p / p.sum()

    def _trans_init(self, K) -> np.ndarray:
        if self.transmat_init is None:
            if K == 1:
                return np.ones((1, 1))
            A = np.full((K, K), (1.0 - STICKY_DIAGONAL) / (K - 1))
            np.fill_diagonal(A, STICKY_DIAGONAL)
            return A
        A = np.asarray(self.transmat_init, dtype=np.float64)
        if A.shape != (K, K):
            raise InputError(f"transmat_init must have shape ({K}, {K}); got {A.shape}")
        if not np.all(np.isfinite(A)) or np.any(A < 0):
            raise InputError("transmat_init must hold non-negative probabilities")
        bad = np.flatnonzero(np.abs(A.sum(axis=1) - 1.0) > 1e-6)
        if bad.size:
            raise InputError(
                f"row {int(bad[0])} of transmat_init sums to {A[bad[0]].sum():.6g}, not 1 "
                "(the transitions out of a state)"
            )
        return A / A.sum(axis=1, keepdims=True)

    def _emission_init(self, fam) -> dict:
        """User-given starting emission parameters (possibly a part of them)."""
        given = dict(self.emission_init or {})
        for key, value in (("means", self.means_init), ("covariances", self.covariances_init)):
            if value is None:
                continue
            if key not in fam.param_names:
                raise InputError(
                    f"{key}_init applies to emissions with {key!r} ({fam.name} has "
                    f"{list(fam.param_names)}); use emission_init"
                )
            if key in given:
                raise InputError(f"{key} is given twice: in {key}_init and emission_init")
            given[key] = value
        unknown = sorted(set(given) - set(fam.param_names))
        if unknown:
            raise InputError(
                f"emission_init for {fam.name} takes {list(fam.param_names)}; got {unknown}"
            )
        return given

    # ------------------------------------------------------------------ fitting
    def _resolve_family(self, names, D):
        """The emission family and the positions of the columns it reads.

        A family given by name, object or product is resolved exactly as
        :class:`emix.MixtureModel` resolves its ``family``.
        """
        from .mixture_model import MixtureModel

        helper = MixtureModel(
            family=self.emission, covariance_type=self.covariance_type,
            family_options=self.family_options,
        )
        return helper._select_columns(helper._make_family(), names, D)

    def fit(self, X, lengths=None):
        """Fit the model by Baum-Welch.

        Parameters
        ----------
        X : array-like of shape (T, D) or (T,), DataFrame, torch tensor, or dask array
            The rows of all sequences, one after another; 1-D input is one column. A
            dask array (or DataFrame) stays on the workers: its row blocks are rechunked
            on sequence boundaries and each block's E-step runs where it lives, the
            statistics tree-added (one ``compute`` per iteration). A path or
            :func:`emix.data.source` is read once per iteration in groups of whole
            sequences (a sequence cut by a block is carried over to the next block, so
            memory is a block plus the longest sequence).
        lengths : array-like of int of shape (S,), optional
            The lengths of the S sequences (summing to T); default one sequence.

        Returns
        -------
        self
        """
        self._fit(X, lengths)
        return self

    def fit_predict(self, X, lengths=None) -> np.ndarray:
        """Fit, then return the Viterbi path, shape (T,)."""
        self._fit(X, lengths)
        return self.predict(X, lengths)

    def _fit(self, X, lengths):
        from ..families.product import Product

        self._check_parameters()
        fixed = self._fixed_set()
        K = int(self.n_states)
        # A dask X stays on the workers: each row block of whole sequences runs its
        # E-step there (emix.data._dask); a path or source is read once per iteration
        # in groups of whole sequences (emix.data._sequences). X_host is then never formed.
        in_memory = not (is_dask(X) or is_source_like(X))
        if not in_memory:
            backend = resolve_data_backend(X, self.device)
        else:
            backend = resolve_backend(X, self.device)
        # A source or Dask array is read with NaN as a missing value too (emix.data).
        with allow_nan(self.missing == "em"):
            Xv, names = backend.validate(X, name="X")
        T, D_in = Xv.shape
        lengths = check_lengths(lengths, T)
        if hasattr(backend, "align_to_sequences"):
            Xv = backend.align_to_sequences(Xv, lengths)
        cols, family = self._resolve_family(names, D_in)
        Xs = take_columns(Xv, cols, D_in)
        D = len(cols)
        any_missing = False
        if in_memory and self.missing == "em":
            any_missing = _check_hmm_missing(Xs, column_labels(names, cols))
        elif self.missing == "em":  # found in a pass over the blocks
            any_missing = sequence_missing(backend, Xs, column_labels(names, cols))
        if hasattr(backend, "check_support_blocks") or is_streaming(Xs):
            X_host = None
            check_support_blocks(backend, Xs, family, column_labels(names, cols))
        else:
            X_host = np.asarray(backend.to_numpy(Xs), dtype=np.float64)
            family.check_support(_zero_missing(X_host) if any_missing else X_host,
                                 column_labels(names, cols))
        if any_missing and X_host is not None:
            summary = observed_summary(X_host, None)
        else:  # blocks: over each column's observed values (emix.data._stream)
            summary = backend.column_summary(Xs, None)
        fam = family.bind(summary, D)
        start0 = self._start_init(K)
        trans0 = self._trans_init(K)
        given = self._emission_init(fam)
        if isinstance(fam, Product) and given:
            raise InputError("emission_init is not supported for a product emission yet")
        complete = given and (set(fam.param_names) <= set(given) or _completes(fam, given, K))

        problem = _HMMProblem(backend, Xs, fam, K, lengths, self.block_size, fixed,
                              missing=any_missing if in_memory else True)
        warm = (
            self.warm_start
            and hasattr(self, "_params")
            and getattr(self, "family_", None) is not None
            and type(self.family_) is type(fam)
            and len(getattr(self, "_columns_used", ())) == D
            and len(self._params[0]) == K
        )
        rng = as_generator(self.random_state)
        dtype = backend.numpy_dtype(Xs)

        def initial(i):
            if warm:
                return self._current_params()
            if complete:
                fp = fam.validate_params(given, K)
            else:
                fp = self._initial_emission(problem, X_host, summary, rng)
                if given:
                    fp = fam.validate_params({**fp, **given}, K)
            return start0, trans0, fp

        result = self._run_em(
            problem, initial, n_init=1 if warm else self.n_init, dtype=dtype, warm=warm,
            exact=getattr(fam, "reg_gap", None) is None,
        )
        (startprob, transmat, fp), issues = result.params, list(result.issues)
        if self.label_order is not None:
            keys = [np.asarray(k, dtype=np.float64) for k in fam.canonical_keys(fp)]
            if self.label_order == "volatility":
                # Ties (a tied covariance) fall back on the means.
                keys = [emission_variances(fam, fp)] + keys
            perm = np.lexsort(keys[::-1])
            startprob, transmat = startprob[perm], transmat[np.ix_(perm, perm)]
            # A shared parameter (a tied covariance) has no state axis to permute.
            fp = permute_params(fp, perm, getattr(fam, "shared_param_names", ()))
            inv = np.empty_like(perm)
            inv[perm] = np.arange(K)
            issues = [_STATE.sub(lambda m: f"state {int(inv[int(m.group(1))])}", msg) for msg in issues]
        self.family_ = fam
        self._summary = {
            k: (np.asarray(summary[k], dtype=np.float64) if k != "n" else int(summary[k]))
            for k in ("mean", "var", "min", "max", "n")
        }
        self._columns_used = cols
        self._dtype = np.dtype(dtype)
        self._store(startprob, transmat, fp)
        self._set_feature_names(names)
        self.n_features_in_ = D_in
        self.columns_ = cols
        self._record_run(result)
        self._issues = tuple(issues)
        self._warn_issues(issues, [int(m) for msg in issues for m in _STATE.findall(msg)])
        self.degenerate_states_ = self.degenerate_components_
        return self

    def _initial_emission(self, problem, X_host, summary, rng) -> dict:
        """Emission parameters from one M-step on starting state labels."""
        K = problem.K
        T = problem.T
        method = self.init_params
        if T < K:
            raise InputError(f"X has {T} rows but n_states={K}: need at least as many rows as states")
        stats = starting_stats(problem, X_host, summary, None, rng, method, K)
        empty = np.flatnonzero(stats.nk <= _tiny(stats.weight_sum))
        if empty.size:
            raise InputError(
                f"state {int(empty[0])} starts empty: X has fewer than n_states={K} distinct "
                "rows for this start; use fewer states, init_params='random', or emission_init"
            )
        try:
            fp, _ = problem.family.m_step(stats, None)
        except DegenerateComponentError as exc:
            raise DegenerateComponentError(_as_states(str(exc))) from None
        return fp

    # ------------------------------------------------------------------ state
    def _store(self, startprob, transmat, fp) -> None:
        from ..families.product import Product

        self._params = (
            np.asarray(startprob, dtype=np.float64),
            np.asarray(transmat, dtype=np.float64),
            {k: np.asarray(v, dtype=np.float64) for k, v in fp.items()},
        )
        dt = self._dtype
        # Probabilities stay float64 whatever the data's dtype.
        self.startprob_ = self._params[0].copy()
        self.transmat_ = self._params[1].copy()
        fam = self.family_
        if isinstance(fam, Product):
            self.params_ = {
                label: {k: v.astype(dt) for k, v in part.items()}
                for label, part in fam.nested(self._params[2]).items()
            }
        else:
            self.params_ = {k: v.astype(dt) for k, v in self._params[2].items()}
            for k, v in self.params_.items():
                setattr(self, f"{k}_", v)

    def _current_params(self):
        """``(startprob, transmat, emission params)`` from the public attributes, so
        that edits are honoured."""
        from ..families.product import Product

        fam = self.family_
        if isinstance(fam, Product):
            fp = fam.flatten(self.params_)
        else:
            fp = {k: getattr(self, f"{k}_") for k in fam.param_names}
        return (
            np.asarray(self.startprob_, dtype=np.float64),
            np.asarray(self.transmat_, dtype=np.float64),
            {k: np.asarray(v, dtype=np.float64) for k, v in fp.items()},
        )

    def save(self, path) -> None:
        """Write the fitted model to ``path`` (read it back with :func:`emix.load`)."""
        from ..io import save

        save(self, path)

    # ------------------------------------------------------------------ inference
    def _prepare(self, X, lengths, method):
        """``(log_B (T, K), startprob, transmat, lengths (S,))`` for X."""
        self._check_is_fitted(method)
        if is_source_like(X):
            raise InputError(
                f"HMM.{method} reads a file or source through its public methods only"
            )
        backend = resolve_backend(X, self.device)
        D = self.n_features_in_
        # Models saved before missing values existed have no ``missing`` attribute.
        em = getattr(self, "missing", "error") == "em"
        with allow_nan(em):
            Xv, names = backend.validate(
                X, name="X", n_features=D, allow_1d=(D == 1), estimator_name=type(self).__name__
            )
        self._check_feature_names(names)
        lengths = check_lengths(lengths, Xv.shape[0])
        cols = self._columns_used
        Xs = take_columns(Xv, cols, D)
        labels = column_labels(getattr(self, "feature_names_in_", None), cols)
        any_missing = em and check_missing(Xs, "em", name="X", column_names=labels,
                                           fitting=False).any_missing
        X_host = np.asarray(backend.to_numpy(Xs), dtype=np.float64)
        self.family_.check_support(_zero_missing(X_host) if any_missing else X_host, labels)
        startprob, transmat, fp = self._current_params()
        kernel = LogJointKernel(self.family_, fp, np.ones(len(startprob)), missing=any_missing)
        log_B = _log_emissions(backend, Xs, kernel, self.block_size, self.family_.feature_width(),
                               _device_recursions(backend, lengths))
        return log_B, startprob, transmat, lengths

    def _on_dask(self, X, lengths, method):
        """``method`` of a dask X, lazily: every row block of whole sequences (X is
        rechunked on sequence boundaries) runs the in-memory method on its worker.

        Returns
        -------
        dask.array.Array of shape (T,) or (T, K), chunked by whole sequences; for
        ``'decode'`` the path (T,) and each row's share of the log-probability (T,)
        (the path's log-probability of a sequence on its first row, 0 elsewhere).
        """
        self._check_is_fitted(method)
        backend = resolve_data_backend(X, self.device)
        D = self.n_features_in_
        with allow_nan(getattr(self, "missing", "error") == "em"):
            Xv, names = backend.validate(
                X, name="X", n_features=D, allow_1d=(D == 1), estimator_name=type(self).__name__
            )
        self._check_feature_names(names)
        lengths = check_lengths(lengths, Xv.shape[0])
        Xv = backend.align_to_sequences(Xv, lengths)
        # The copy that travels to the workers: no callback (a user's closure may hold a
        # client) and no names (blocks are plain arrays; the names were checked here).
        est = copy.copy(self)
        est.callback = None
        if hasattr(est, "feature_names_in_"):
            del est.feature_names_in_
        K = len(self.startprob_)
        if method == "decode":
            pair = backend.map_sequences(Xv, lengths, _BlockInference(est, method),
                                         dtype=np.float64, width=2)
            return pair[:, 0].astype(np.intp), pair[:, 1]
        width = K if method in ("predict_proba", "filter") else None
        dtype = np.intp if method == "predict" else np.float64
        return backend.map_sequences(Xv, lengths, _BlockInference(est, method),
                                     dtype=dtype, width=width)

    def _on_source(self, X, lengths, method):
        """``method`` of a path or :class:`emix.data.Source`, read once in groups of
        whole sequences (a sequence cut by a block is carried over to the next), each
        group through the in-memory method; the results joined in row order.

        Returns
        -------
        ndarray of shape (T,) or (T, K); for ``'decode'`` the path (T,) and each row's
        share of the log-probability (T,), as :meth:`_on_dask`.
        """
        from ..data._sequences import sequence_groups

        self._check_is_fitted(method)
        backend = resolve_data_backend(X, self.device)
        D = self.n_features_in_
        with allow_nan(getattr(self, "missing", "error") == "em"):  # NaN read as missing
            Xv, names = backend.validate(
                X, name="X", n_features=D, allow_1d=(D == 1), estimator_name=type(self).__name__
            )
        self._check_feature_names(names)
        lengths = check_lengths(lengths, Xv.shape[0])
        est = copy.copy(self)
        est.callback = None
        if hasattr(est, "feature_names_in_"):
            del est.feature_names_in_  # the blocks are plain arrays; names checked above
        run = _BlockInference(est, "decode" if method == "decode" else method)
        parts = [run(Xg, lg, row0, seq0)
                 for Xg, lg, row0, seq0 in sequence_groups(Xv.blocks(), lengths,
                                                           Xv.source.label)]
        out = np.concatenate(parts, axis=0)
        if method == "decode":
            return out[:, 0].astype(np.intp), out[:, 1]
        return out

    def predict(self, X, lengths=None) -> np.ndarray:
        """The most likely state path (Viterbi), shape (T,); a lazy dask array for a
        dask X."""
        if is_dask(X):
            return self._on_dask(X, lengths, "predict")
        return self.decode(X, lengths)[1]

    def decode(self, X, lengths=None):
        """The most likely state path and its log-probability.

        Parameters
        ----------
        X : array-like of shape (T, D) or (T,)
        lengths : array-like of int of shape (S,), optional

        Returns
        -------
        logprob : float
            ``log p(x, z*)`` summed over the sequences (-inf when no path is possible).
        path : ndarray of shape (T,), int
        """
        if is_dask(X):
            path, logprob = self._on_dask(X, lengths, "decode")
            return float(logprob.sum().compute()), np.asarray(path.compute(), dtype=np.intp)
        if is_source_like(X):
            path, logprob = self._on_source(X, lengths, "decode")
            return float(np.sum(logprob)), path
        log_B, startprob, transmat, lengths = self._prepare(X, lengths, "decode")
        logprob, path = viterbi(log_B, startprob, transmat, lengths)
        return float(np.sum(logprob)), np.asarray(_host(path), dtype=np.intp)

    def predict_proba(self, X, lengths=None) -> np.ndarray:
        """Smoothed state probabilities ``p(z_t = k | whole sequence)``, shape (T, K)."""
        if is_dask(X):
            return self._on_dask(X, lengths, "predict_proba")
        if is_source_like(X):
            return self._on_source(X, lengths, "predict_proba")
        log_B, startprob, transmat, lengths = self._prepare(X, lengths, "predict_proba")
        fb = forward_backward(log_B, startprob, transmat, lengths)
        if not np.all(np.isfinite(fb.loglik)):
            raise impossible_row(log_B, startprob, transmat, lengths)
        return _host(fb.posteriors)

    def filter(self, X, lengths=None) -> np.ndarray:
        """Filtered (causal) state probabilities ``p(z_t = k | x_1..x_t)``, shape (T, K).

        Row t uses no row after t of its sequence: the probabilities a trading rule or
        an online monitor could have known at time t.
        """
        if is_dask(X):
            return self._on_dask(X, lengths, "filter")
        if is_source_like(X):
            return self._on_source(X, lengths, "filter")
        log_B, startprob, transmat, lengths = self._prepare(X, lengths, "filter")
        fr = forward(log_B, startprob, transmat, lengths)
        if not np.all(np.isfinite(fr.loglik)):
            raise impossible_row(log_B, startprob, transmat, lengths)
        return _host(fr.filtered)

    def score_samples(self, X, lengths=None) -> np.ndarray:
        """``log p(x_t | x_1..x_{t-1})`` of every row, shape (T,).

        Summed over a sequence they give its log-likelihood.
        """
        if is_dask(X):
            return self._on_dask(X, lengths, "score_samples")
        if is_source_like(X):
            return self._on_source(X, lengths, "score_samples")
        log_B, startprob, transmat, lengths = self._prepare(X, lengths, "score_samples")
        return _host(forward(log_B, startprob, transmat, lengths).step_loglik)

    def impute(self, X, lengths=None, n_draws=None, random_state=None):
        """Fill the missing values (NaN) of X from the fitted model.

        Parameters
        ----------
        X : array-like of shape (T, n_features_in_) or (T,), DataFrame or tensor
            In memory (not a path, source or Dask array).
        lengths : array-like of int of shape (S,), optional
        n_draws : int, optional
            None: the conditional mean ``sum_k p(z_t = k | x_obs) E[x_miss | x_obs, k]``
            with the smoothed state probabilities (the whole sequence's observed cells).
            ``m``: ``m`` multiple imputations, each drawing a whole state path from its
            posterior (forward filtering, backward sampling) and then every row's
            missing cells from its state's conditional distribution.
        random_state : int, numpy Generator or RandomState, optional
            For the draws (default: the model's ``random_state``).

        Returns
        -------
        ndarray of shape (T, n_features_in_), or (n_draws, T, n_features_in_)
            Observed cells unchanged; the missing cells of the columns the model reads
            (``columns_``) filled; other columns as given.
        """
        from .mixture_model import _refuse_blocks

        _refuse_blocks(X, "HMM.impute")
        log_B, startprob, transmat, lengths = self._prepare(X, lengths, "impute")
        log_B = _host(log_B)
        backend = resolve_backend(X, self.device)
        D = self.n_features_in_
        with allow_nan(True):
            Xv, _ = backend.validate(X, name="X", n_features=D, allow_1d=(D == 1),
                                     estimator_name=type(self).__name__)
        X_all = np.array(backend.to_numpy(Xv), dtype=np.float64)
        fp = self._current_params()[2]
        rs = self.random_state if random_state is None else random_state
        if n_draws is None:
            fb = forward_backward(log_B, startprob, transmat, lengths)
            if not np.all(np.isfinite(fb.loglik)):
                raise impossible_row(log_B, startprob, transmat, lengths)
            return impute_columns(self.family_, fp, X_all, self._columns_used,
                                  _host(fb.posteriors), None, rs, self._dtype)
        fr = forward(log_B, startprob, transmat, lengths)
        if not np.all(np.isfinite(fr.loglik)):
            raise impossible_row(log_B, startprob, transmat, lengths)
        filtered = _host(fr.filtered)
        return impute_columns(
            self.family_, fp, X_all, self._columns_used, filtered, n_draws, rs, self._dtype,
            draw_states=lambda rng, n: sample_paths(filtered, transmat, lengths, rng, n),
        )

    def score(self, X, lengths=None) -> float:
        """Mean log-likelihood per row, ``sum over sequences of log p(x) / T``.

        (hmmlearn's ``score`` is the total; multiply by T for it.)
        """
        if is_dask(X):
            return float(self._on_dask(X, lengths, "score_samples").mean().compute())
        return float(np.mean(self.score_samples(X, lengths)))

    def sample(self, n_samples: int = 1, random_state=None):
        """Draw one sequence from the fitted model.

        Parameters
        ----------
        n_samples : int
            Its length.
        random_state : int or Generator, optional
            Default: the model's ``random_state``.

        Returns
        -------
        X : ndarray of shape (n_samples, D_used)
        states : ndarray of shape (n_samples,), int
        """
        self._check_is_fitted("sample")
        n = check_int(n_samples, "n_samples", low=1)
        rng = as_generator(self.random_state if random_state is None else random_state)
        startprob, transmat, fp = self._current_params()
        K = len(startprob)
        cum = np.cumsum(transmat, axis=1)
        u = rng.random(n)
        states = np.empty(n, dtype=np.intp)
        states[0] = min(int(np.searchsorted(np.cumsum(startprob), u[0], side="right")), K - 1)
        for t in range(1, n):
            states[t] = min(int(np.searchsorted(cum[states[t - 1]], u[t], side="right")), K - 1)
        D = len(self._columns_used)
        X = np.empty((n, D), dtype=np.float64)
        for k in range(K):
            idx = np.flatnonzero(states == k)
            if idx.size:
                X[idx] = np.asarray(self.family_.sample(fp, k, idx.size, rng), dtype=np.float64).reshape(idx.size, D)
        return X.astype(self._dtype, copy=False), states

    # ------------------------------------------------------------------ selection
    def _n_parameters(self) -> int:
        """Free parameters: startprob and transmat entries not fixed or structurally
        zero (each row's last entry follows from the others), and the emission's."""
        self._check_is_fitted("_n_parameters")
        fixed = self._fixed_set()
        K = len(self.startprob_)
        n = 0
        if "startprob" not in fixed:
            n += int(np.count_nonzero(self._start_init(K))) - 1
        if "transmat" not in fixed:
            nz = np.count_nonzero(self._trans_init(K), axis=1)
            n += int(np.sum(nz - 1))
        if "emission" not in fixed:
            n += int(self.family_.n_parameters(K))
        return n

    def bic(self, X, lengths=None) -> float:
        """Bayesian information criterion, ``-2 log L + p log T``; lower is better.

        With missing values ``T`` counts the rows with an observed value (a row with
        every value missing is a time step but no observation).
        """
        s = self.score_samples(X, lengths)
        n = s.shape[0]
        if getattr(self, "missing", "error") == "em" and not (is_dask(X) or is_source_like(X)):
            from ._mixture_base import _nan_mask_or_none

            nan = _nan_mask_or_none(X)
            if nan is not None and nan.any():
                n = int(nan.shape[0] - nan.reshape(nan.shape[0], -1).all(axis=1).sum())
        return -2.0 * float(np.sum(s)) + self._n_parameters() * math.log(n)

    def aic(self, X, lengths=None) -> float:
        """Akaike information criterion, ``-2 log L + 2 p``; lower is better."""
        s = self.score_samples(X, lengths)
        return -2.0 * float(np.sum(s)) + 2.0 * self._n_parameters()


def sample_paths(filtered: np.ndarray, transmat: np.ndarray, lengths, rng,
                 n_paths: int = 1) -> np.ndarray:
    """State paths drawn from their posterior given the data, every sequence's jointly
    (forward filtering, backward sampling).

    Parameters
    ----------
    filtered : ndarray of shape (T, K), ``p(z_t | x_1..x_t)``
    transmat : ndarray of shape (K, K)
    lengths : ndarray of int of shape (S,)
    rng : numpy Generator
    n_paths : int
        Independent draws.

    Returns
    -------
    ndarray of int of shape (n_paths, T)
    """
    from ._ffbs_numba import backward_sample

    T = filtered.shape[0]
    z = np.empty((int(n_paths), T), dtype=np.int64)
    u = rng.random((int(n_paths), T))
    backward_sample(np.ascontiguousarray(filtered, dtype=np.float64),
                    np.ascontiguousarray(transmat, dtype=np.float64),
                    np.asarray(lengths, dtype=np.int64), u, z)
    return z.astype(np.intp, copy=False)


def _check_hmm_missing(Xs, labels) -> bool:
    """Whether the HMM's data have NaN; inf, all-missing data and a column with no
    observed value are errors. Rows with every value missing stay: they are time steps.
    """
    info = check_missing(Xs, "em", name="X", column_names=labels, fitting=False)
    if not info.any_missing:
        return False
    from .._missing import check_observed, nan_mask

    check_observed(info.n_observed_rows, np.flatnonzero(nan_mask(Xs).all(axis=0)),
                   column_names=labels)
    return True


def emission_variances(fam, fp: dict) -> np.ndarray:
    """Total variance of each state's emission (trace of its covariance), shape (K,).

    For a family parametrised by ``covariances`` (Gaussian) or ``scales`` and ``df``
    (Student-t, whose variance is the scale times ``df / (df - 2)``, infinite when
    ``df <= 2``), in any ``covariance_type``; a tied covariance gives equal values.

    Raises
    ------
    InputError
        For an emission without a covariance or scale (counts, categories, products).
    """
    key = "covariances" if "covariances" in fp else "scales" if "scales" in fp else None
    if key is None:
        raise InputError(
            f"label_order='volatility' needs an emission with a covariance or scale "
            f"(gaussian, student_t); {getattr(fam, 'name', type(fam).__name__)} has "
            f"{sorted(fp)}; use label_order='mean'"
        )
    C = np.asarray(fp[key], dtype=np.float64)
    K = np.asarray(fam.component_means(fp)).shape[0]
    D = np.asarray(fam.component_means(fp)).shape[1]
    kind = getattr(fam, "covariance_type", "full")
    if kind == "full":
        tr = np.trace(C, axis1=1, axis2=2)
    elif kind == "tied":
        tr = np.full(K, np.trace(C))
    elif kind == "diag":
        tr = C.sum(axis=1)
    else:  # spherical: one variance per state for every column
        tr = C.reshape(K) * D
    if "df" in fp:
        df = np.broadcast_to(np.asarray(fp["df"], dtype=np.float64).reshape(-1), (K,))
        with np.errstate(divide="ignore", invalid="ignore"):
            tr = np.where(df > 2.0, tr * df / (df - 2.0), np.inf)
    return np.asarray(tr, dtype=np.float64)


def _completes(fam, given: dict, K: int) -> bool:
    """Whether ``given`` is a whole parameter set (a fixed-df Student-t needs no df)."""
    try:
        fam.validate_params(given, K)
    except InputError:
        return False
    return True
