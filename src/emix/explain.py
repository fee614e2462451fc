"""Watch EM work: a record of every E-step and M-step, printable as plain-text tables.

The trace is taken from emix's own estimators (:class:`~emix.GaussianMixture` and
:class:`~emix.models.binomial.BinomialMixture`) through their per-iteration callback,
so it shows exactly what a fit computes, not a simplified re-implementation. The
dishonest casino (a hidden Markov model, :func:`trace_casino`) is the exception: its
forward, backward and re-estimation steps are written out here in plain NumPy, one roll
at a time, because the compiled recursion of :class:`emix.HMM` keeps no per-step
numbers; the tests hold both to the same results. EM starts
from a visible, deterministic guess (by default a poor one) so that a learner can
follow it improving.

>>> from emix.explain import explain
>>> trace = explain("coins", n_iter=2)
>>> trace.n_iter, bool(trace.logliks[-1] >= trace.logliks[0])
(2, True)
>>> print(trace)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._text import paragraph as _para
from ._text import table as _table
from ._validation import check_array, check_float, check_int
from .exceptions import InputError

__all__ = [
    "EXAMPLES",
    "HMMTrace",
    "HMMTraceRecord",
    "Trace",
    "TraceRecord",
    "explain",
    "trace_binomial",
    "trace_casino",
    "trace_gaussian_1d",
]

#: The built-in examples :func:`explain` knows.
EXAMPLES = ("heights", "coins", "casino")


@dataclass(frozen=True, eq=False)
class TraceRecord:
    """One EM iteration: an E-step under ``before``, then an M-step giving ``after``.

    Attributes
    ----------
    iteration : int
        1 for the first iteration.
    rows : ndarray of shape (R,), int
        Indices of the rows shown.
    values : ndarray of shape (R,)
        Their values (heights, or heads).
    responsibilities : ndarray of shape (R, K)
        Probability that each shown row came from each component, under ``before``.
    before : dict of str to ndarray of shape (K,)
        Parameters the E-step used: ``weight``, ``mean``, ``sd`` (Gaussian) or
        ``weight``, ``bias`` (binomial).
    after : dict of str to ndarray of shape (K,)
        Parameters the M-step produced from the E-step's statistics.
    loglik : float
        Log-likelihood of all the data under ``before`` (a sum over rows, not a mean).
    loglik_after : float
        Log-likelihood under ``after``.
    statistics : dict of str to ndarray of shape (K,)
        The E-step's sums that the M-step read: ``count`` (sum of responsibilities) for
        every model, and ``heads`` and ``trials`` credited to each component for the
        binomial one.
    """

    iteration: int
    rows: np.ndarray
    values: np.ndarray
    responsibilities: np.ndarray
    before: dict
    after: dict
    loglik: float
    loglik_after: float
    statistics: dict = field(default_factory=dict)

    @property
    def increase(self) -> float:
        """``loglik_after - loglik``: what this iteration gained (never negative in exact EM)."""
        return self.loglik_after - self.loglik


class _RecordArrays:
    """Arrays read off a trace's per-iteration records (``records``, each with
    ``loglik``, ``loglik_after``, ``increase``, ``before`` and ``after``), shared by
    :class:`Trace` and :class:`HMMTrace`."""

    # How path() stacks one parameter's values: np.vstack keeps a (K,) parameter's rows.
    _stack = staticmethod(np.vstack)

    def _empty_path(self) -> np.ndarray:
        return np.empty(0)

    @property
    def n_iter(self) -> int:
        """Number of EM iterations recorded."""
        return len(self.records)

    @property
    def logliks(self) -> np.ndarray:
        """Log-likelihood of the starting guess and after each iteration, shape (n_iter + 1,)."""
        if not self.records:
            return np.empty(0)
        return np.array([self.records[0].loglik] + [r.loglik_after for r in self.records])

    @property
    def increases(self) -> np.ndarray:
        """Gain of each iteration, shape (n_iter,)."""
        return np.array([r.increase for r in self.records])

    @property
    def initial(self) -> dict:
        """The starting guess: parameter name to ndarray (first axis: component or state)."""
        return dict(self.records[0].before) if self.records else {}

    @property
    def final(self) -> dict:
        """The parameters after the last M-step: name to ndarray."""
        return dict(self.records[-1].after) if self.records else {}

    def path(self, name: str) -> np.ndarray:
        """One parameter from the start through every iteration, shape (n_iter + 1, ...)."""
        if name not in self.parameter_names:
            raise InputError(f"unknown parameter {name!r}; this trace has {self.parameter_names}")
        if not self.records:
            return self._empty_path()
        return self._stack([self.records[0].before[name]] + [r.after[name] for r in self.records])


@dataclass(frozen=True, eq=False)
class Trace(_RecordArrays):
    """The record of one EM run, printable for a learner.

    Attributes
    ----------
    kind : {'gaussian', 'binomial'}
    records : tuple of TraceRecord, one per iteration
    component_names : tuple of str, length K
    parameter_names : tuple of str
        Keys of ``TraceRecord.before`` and ``after``, in display order.
    n : int
        Number of rows in the data.
    converged : bool
        True when EM stopped because the log-likelihood settled, False when it stopped
        at the requested number of iterations.
    model : fitted estimator
        The :class:`~emix.GaussianMixture` or
        :class:`~emix.models.binomial.BinomialMixture` that produced the trace.
    title : str
    truth : dict of str to ndarray of shape (K,), optional
        Parameters that generated the data, when known (simulated examples).
    n_trials : ndarray of shape (N,), optional
        Trials per row (binomial).
    tol : float
        The stopping tolerance on the mean log-likelihood per row.
    value_label : str
        Heading of the data column in the E-step tables.
    """

    kind: str
    records: tuple
    component_names: tuple
    parameter_names: tuple
    n: int
    converged: bool
    model: Any
    title: str = ""
    truth: dict | None = None
    n_trials: np.ndarray | None = None
    tol: float = 0.0
    value_label: str = "value"

    # ------------------------------------------------------------ arrays for code
    def _empty_path(self) -> np.ndarray:
        return np.empty((0, len(self.component_names)))

    # ------------------------------------------------------------ text for people
    def __str__(self) -> str:
        return self.to_text()

    def to_text(self, detailed: int | None = 5) -> str:
        """The trace as plain text: an introduction, then one table per iteration.

        Parameters
        ----------
        detailed : int or None, default=5
            Iterations shown in full (E-step responsibilities and M-step table); later
            ones get one summary line each. None shows every iteration in full.

        Returns
        -------
        str
        """
        if detailed is not None:
            detailed = check_int(detailed, "detailed", low=0)
        words = _WORDS[self.kind]
        lines: list[str] = []
        if self.title:
            lines += [self.title, "=" * len(self.title), ""]
        lines += [_para(words["intro"].format(n=self.n, K=len(self.component_names))), ""]
        lines += _start_table(self)
        lines.append("")
        shown = self.records if detailed is None else self.records[:detailed]
        for rec in shown:
            lines += _iteration_text(self, rec)
            lines.append("")
        rest = self.records[len(shown):]
        if rest:
            lines += _summary_lines(self, rest)
            lines.append("")
        lines += _ending(self)
        return "\n".join(lines).rstrip() + "\n"


# ------------------------------------------------------------------ wording

_WORDS = {
    "gaussian": {
        "intro": """EM fits a mixture of {K} normal curves to {n} numbers without knowing
            which curve each number came from. It starts from a guess and repeats two
            steps. The E-step asks, for every row, how likely each curve is to have
            produced it under the current guess (its "responsibilities", which add up to
            1). The M-step then re-estimates every curve's weight, mean and standard
            deviation as averages in which each row counts in proportion to its
            responsibility for that curve. Neither step can lower the log-likelihood
            (how probable the whole data set is under the guess), so it rises until it
            settles.""",
        "estep": """E-step: under the current guess, the responsibility of each
            component for every one of the {n} rows; {R} of them (rows numbered from 0,
            as in the data):""",
        "mstep": """M-step: each component's weight is its share of the total
            responsibility; its mean is the responsibility-weighted average of all {n}
            rows, and its standard deviation the weighted root mean squared distance
            from that mean.""",
        "row": "row",
        "component": "component",
    },
    "binomial": {
        "intro": """EM fits a mixture of {K} coins to {n} sets of flips without knowing
            which coin was flipped in each set. It starts from a guess of each coin's
            bias (its probability of heads) and how often it is used, and repeats two
            steps. The E-step asks, for every set, how likely each coin is to have
            produced its count of heads under the current guess (the set's
            "responsibilities", which add up to 1), and credits each coin with that share
            of the set's heads and tails. The M-step then sets each coin's bias to the
            heads credited to it divided by all flips credited to it, and its weight to
            its share of the sets. Neither step can lower the log-likelihood (how
            probable all the counts are under the guess), so it rises until it
            settles.""",
        "estep": """E-step: under the current guess, the responsibility of each coin for
            every one of the {n} sets, and the heads and tails credited to it; {R} of the
            sets (numbered from 0, as in the data):""",
        "mstep": """M-step: each coin's new bias is the heads credited to it over all
            sets divided by the flips credited to it; its weight is its share of the
            total responsibility.""",
        "row": "set",
        "component": "coin",
    },
}

_LABELS = {
    "weight": "weight",
    "mean": "mean",
    "sd": "sd",
    "bias": "P(heads)",
}
_DIGITS = {"weight": 3, "mean": 2, "sd": 2, "bias": 3}


def _fmt(name: str, value: float) -> str:
    return f"{value:.{_DIGITS.get(name, 3)}f}"


def _start_table(trace: Trace) -> list[str]:
    if not trace.records:
        return ["  (no iterations were run)"]
    start = trace.records[0].before
    header = [_WORDS[trace.kind]["component"], *(_LABELS[p] for p in trace.parameter_names)]
    rows = [
        [name, *(_fmt(p, start[p][k]) for p in trace.parameter_names)]
        for k, name in enumerate(trace.component_names)
    ]
    return [
        "Starting guess:",
        *_table(header, rows),
        f"    log-likelihood of the starting guess: {trace.records[0].loglik:.3f}",
    ]


def _iteration_text(trace: Trace, rec: TraceRecord) -> list[str]:
    words = _WORDS[trace.kind]
    names = trace.component_names
    out = [f"Iteration {rec.iteration}", "-" * len(f"Iteration {rec.iteration}")]
    R = len(rec.rows)
    if R:
        out.append(_para(words["estep"].format(n=trace.n, R=R), indent="  "))
        header = [words["row"], trace.value_label, *(f"P({c})" for c in names)]
        if trace.kind == "binomial":
            header += [f"{c}: heads, tails" for c in names]
        rows = []
        for j, i in enumerate(rec.rows):
            v = rec.values[j]
            cells = [str(int(i)), f"{v:g}" if trace.kind == "binomial" else f"{v:.2f}"]
            cells += [f"{r:.3f}" for r in rec.responsibilities[j]]
            if trace.kind == "binomial":
                n_i = float(trace.n_trials[i])
                cells += [
                    f"{r * v:.1f}, {r * (n_i - v):.1f}" for r in rec.responsibilities[j]
                ]
            rows.append(cells)
        out += _table(header, rows)
    out.append(_para(words["mstep"].format(n=trace.n), indent="  "))
    sub = [words["component"]]
    groups = [""]
    for p in trace.parameter_names:
        sub += ["before", "after"]
        groups += [_LABELS[p], ""]
    rows = []
    for k, name in enumerate(names):
        cells = [name]
        for p in trace.parameter_names:
            cells += [_fmt(p, rec.before[p][k]), _fmt(p, rec.after[p][k])]
        rows.append(cells)
    out += _table(sub, rows, groups=groups)
    # The sums the M-step read, so that a learner can redo its arithmetic.
    count = rec.statistics.get("count")
    noun = words["row"] + "s"
    for k, name in enumerate(names):
        parts = []
        if count is not None:
            parts.append(
                f"weight = {count[k]:.2f} / {trace.n} {noun} = {count[k] / trace.n:.3f}"
            )
        if trace.kind == "binomial" and rec.statistics["trials"][k] > 0:
            H, T = rec.statistics["heads"][k], rec.statistics["trials"][k]
            parts.append(f"P(heads) = {H:.2f} heads / {T:.2f} flips = {H / T:.3f}")
        if parts:
            out.append(f"    {words['component']} {name}: " + "; ".join(parts))
    out.append(
        f"  log-likelihood: {rec.loglik:.3f} before, {rec.loglik_after:.3f} after "
        f"(change {rec.increase:+.3g})"
    )
    return out


def _summary_lines(trace: Trace, records: Sequence[TraceRecord]) -> list[str]:
    header = ["iteration", "log-likelihood", "change"]
    for p in trace.parameter_names:
        header += [f"{_LABELS[p]} {c}" for c in trace.component_names]
    rows = []
    for rec in records:
        cells = [str(rec.iteration), f"{rec.loglik_after:.3f}", f"{rec.increase:+.2e}"]
        for p in trace.parameter_names:
            cells += [_fmt(p, v) for v in rec.after[p]]
        rows.append(cells)
    heading = (
        f"Iterations {records[0].iteration} to {records[-1].iteration}, one line each "
        "(values after the M-step):"
    )
    return [heading, *_table(header, rows)]


def _ending(trace: Trace) -> list[str]:
    if not trace.records:
        return []
    n = trace.n_iter
    if trace.converged:
        why = (
            f"EM stopped after {n} iteration{'s' if n != 1 else ''}: the log-likelihood "
            f"divided by the number of rows rose by less than tol={trace.tol:g}, so it "
            "counts as settled (a smaller tol runs longer)."
        )
    else:
        why = f"EM was stopped after the {n} iteration{'s' if n != 1 else ''} asked for."
    drops = [r for r in trace.records if r.increase < -1e-9 * max(1.0, abs(r.loglik))]
    mono = (
        "The log-likelihood never fell, as EM guarantees."
        if not drops
        else f"The log-likelihood fell at iteration {drops[0].iteration}: a numerical problem."
    )
    out = [_para(f"{why} {mono}")]
    if trace.truth is not None:
        out += ["", "Final estimates beside the values that generated the data:"]
        final = trace.final
        # EM numbers its components arbitrarily: pair them with the truth by rank of
        # the mean (or bias), the same rule as the heights demo.
        key = trace.parameter_names[1]
        fit_rank = np.argsort(np.argsort(final[key]))
        true_by_rank = np.argsort(trace.truth[key])
        header = [
            _WORDS[trace.kind]["component"],
            *(f"{_LABELS[p]} EM / true" for p in trace.parameter_names),
        ]
        rows = []
        names = trace.truth.get("names")
        for k in range(len(trace.component_names)):
            t = true_by_rank[fit_rank[k]]
            label = trace.component_names[k] + (f" ({names[t]})" if names is not None else "")
            rows.append(
                [label]
                + [
                    f"{_fmt(p, final[p][k])} / {_fmt(p, trace.truth[p][t])}"
                    for p in trace.parameter_names
                ]
            )
        out += _table(header, rows, indent="    ")
    return out


# ------------------------------------------------------------------ tracing


def _pick_rows(values: np.ndarray, n_rows: int, rows) -> np.ndarray:
    """Rows to show: given ones, or ``n_rows`` spread over the sorted values.

    Taking the rows at the 1/(2R), 3/(2R)... quantiles avoids the extremes, whose
    responsibilities are already near 0 or 1, and shows the rows EM is unsure about.
    """
    N = values.shape[0]
    if rows is not None:
        idx = np.asarray(rows)
        if idx.ndim != 1 or idx.dtype.kind not in "iu":
            raise InputError("rows must be a 1-D sequence of row indices")
        bad = idx[(idx < 0) | (idx >= N)]
        if bad.size:
            raise InputError(f"rows holds {int(bad[0])}, outside 0..{N - 1}")
        return idx.astype(np.int64)
    n_rows = check_int(n_rows, "n_rows", low=0)
    if n_rows >= N:
        return np.argsort(values, kind="stable")
    order = np.argsort(values, kind="stable")
    ranks = ((np.arange(n_rows) + 0.5) / n_rows * N).astype(np.int64)
    # In order of value, so that the responsibilities read as a progression.
    return order[np.minimum(ranks, N - 1)]


def _stop_after(n_iter):
    if n_iter is None:
        return None
    return check_int(n_iter, "n_iter", low=1)


def _component_names(names, K: int, default) -> tuple:
    if names is None:
        return tuple(default(k) for k in range(K))
    names = tuple(str(c) for c in names)
    if len(names) != K:
        raise InputError(f"component_names must hold {K} names; got {len(names)}")
    return names


def _start_weights(weights_init, K: int) -> np.ndarray:
    if weights_init is None:
        return np.full(K, 1.0 / K)
    return _as_vector(weights_init, "weights_init", K)


def _as_vector(value, name: str, K: int) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape != (K,):
        raise InputError(f"{name} must have shape ({K},); got {arr.shape}")
    return arr


def trace_gaussian_1d(
    x,
    n_components: int = 2,
    *,
    means_init=None,
    sds_init=None,
    weights_init=None,
    n_iter: int | None = None,
    tol: float = 1e-4,
    max_iter: int = 1000,
    reg_covar: float = 1e-6,
    n_rows: int = 3,
    rows=None,
    component_names=None,
    truth: dict | None = None,
    title: str = "",
    value_label: str = "value",
) -> Trace:
    """Fit a 1-D Gaussian mixture by EM and record every iteration.

    Parameters
    ----------
    x : array-like of shape (N,) or (N, 1)
    n_components : int, default=2
    means_init : array-like of shape (K,), optional
        Starting means; by default the data's quantiles at (k + 1/2) / K (the lower and
        upper quartiles for two components).
    sds_init : array-like of shape (K,), optional
        Starting standard deviations; by default the data's own, for every component.
    weights_init : array-like of shape (K,), optional
        Starting weights; equal by default.
    n_iter : int, optional
        Stop after this many iterations (sooner if EM settles); None runs until the
        mean log-likelihood per row rises by less than ``tol``.
    tol : float, default=1e-4
    max_iter : int, default=1000
        Upper limit when ``n_iter`` is None.
    reg_covar : float, default=1e-6
        Passed to :class:`~emix.GaussianMixture`.
    n_rows : int, default=3
        How many rows to show in each E-step table.
    rows : sequence of int, optional
        Show these rows instead.
    component_names : sequence of str, optional
        Default ``"1"``, ``"2"``...
    truth : dict, optional
        Generating values to print at the end: ``weight``, ``mean``, ``sd`` each of
        shape (K,), optionally ``names``.
    title : str, optional
    value_label : str, default="value"
        Heading of the data column, e.g. ``"height (cm)"``.

    Returns
    -------
    Trace
    """
    from .models.mixture import GaussianMixture

    X, _ = check_array(x, name="x")
    if X.shape[1] != 1:
        raise InputError(f"x must be one column of numbers; got shape {X.shape}")
    values = X[:, 0].astype(np.float64)
    K = check_int(n_components, "n_components", low=1)
    if values.shape[0] < K:
        raise InputError(f"x has {values.shape[0]} values; need at least n_components={K}")
    stop = _stop_after(n_iter)
    tol = check_float(tol, "tol", low=0.0)
    max_iter = check_int(max_iter, "max_iter", low=1)
    names = _component_names(component_names, K, lambda k: str(k + 1))
    means0 = (
        np.quantile(values, (np.arange(K) + 0.5) / K)
        if means_init is None
        else _as_vector(means_init, "means_init", K)
    )
    sds0 = (
        np.full(K, values.std()) if sds_init is None else _as_vector(sds_init, "sds_init", K)
    )
    if not np.all(sds0 > 0):
        raise InputError(f"starting standard deviations must be positive; got {sds0}")
    w0 = _start_weights(weights_init, K)
    shown = _pick_rows(values, n_rows, rows)
    seen: list[tuple[int, float, dict, np.ndarray]] = []

    def callback(iteration, mean_loglik, params):
        before = {
            "weight": np.array(params.weights, dtype=np.float64),
            "mean": np.array(params.means[:, 0], dtype=np.float64),
            "sd": np.sqrt(np.asarray(params.covariances, dtype=np.float64).reshape(K)),
        }
        seen.append((iteration, mean_loglik, before, _normal_resp(values[shown], before)))
        return stop is not None and iteration >= stop

    gm = GaussianMixture(
        K,
        # In one dimension 'spherical' is the general model, with the plainest arrays.
        covariance_type="spherical",
        tol=tol,
        reg_covar=reg_covar,
        max_iter=max_iter if stop is None else max(stop, 1),
        weights_init=w0,
        means_init=means0[:, None],
        precisions_init=1.0 / sds0**2,
        callback=callback,
    )
    gm.fit(values)
    N = values.shape[0]
    final = {
        "weight": np.array(gm.weights_, dtype=np.float64),
        "mean": np.array(gm.means_[:, 0], dtype=np.float64),
        "sd": np.sqrt(np.asarray(gm.covariances_, dtype=np.float64).reshape(K)),
    }
    records = _records(seen, final, N * gm.score(values), N, shown, values)
    return Trace(
        kind="gaussian",
        records=records,
        component_names=names,
        parameter_names=("weight", "mean", "sd"),
        n=N,
        converged=bool(gm.converged_),
        model=gm,
        title=title,
        truth=truth,
        tol=tol,
        value_label=value_label,
    )


def _normal_resp(v: np.ndarray, params: dict) -> np.ndarray:
    """Responsibilities (R, K) of values (R,) under 1-D normal components, in log space."""
    from scipy.special import logsumexp

    sd = params["sd"]
    with np.errstate(divide="ignore"):
        L = (
            np.log(params["weight"])[None, :]
            - 0.5 * ((v[:, None] - params["mean"][None, :]) / sd[None, :]) ** 2
            - np.log(sd)[None, :]
        )
    return np.exp(L - logsumexp(L, axis=1, keepdims=True))


def _records(seen, final, final_loglik, weight_sum, shown, values, stats=None) -> tuple:
    """Pair each E-step's parameters with the next one's (the M-step's output)."""
    out = []
    for j, (it, mean_ll, before, resp) in enumerate(seen):
        if j + 1 < len(seen):
            after, ll_after = seen[j + 1][2], seen[j + 1][1] * weight_sum
        else:
            after, ll_after = final, float(final_loglik)
        out.append(
            TraceRecord(
                iteration=int(it),
                rows=shown,
                values=values[shown],
                responsibilities=resp,
                before=before,
                after=after,
                loglik=float(mean_ll * weight_sum),
                loglik_after=float(ll_after),
                # Without the E-step's sums at hand, the count is what the weight says.
                statistics=(
                    stats[j] if stats is not None else {"count": after["weight"] * weight_sum}
                ),
            )
        )
    return tuple(out)


def trace_binomial(
    heads,
    n_trials,
    n_components: int = 2,
    *,
    probs_init=None,
    weights_init=None,
    n_iter: int | None = None,
    tol: float = 1e-6,
    max_iter: int = 1000,
    n_rows: int = 3,
    rows=None,
    component_names=None,
    truth: dict | None = None,
    title: str = "",
) -> Trace:
    """Fit a binomial mixture (the coins example) by EM and record every iteration.

    Parameters
    ----------
    heads : array-like of shape (N,)
        Successes per row (heads per set of flips).
    n_trials : int or array-like of shape (N,)
        Trials per row (flips per set).
    n_components : int, default=2
    probs_init : array-like of shape (K,), optional
        Starting probabilities of heads; by default 0.6 and 0.5 for two coins (the
        textbook's start), evenly spaced from 0.7 down to 0.3 otherwise.
    weights_init : array-like of shape (K,), optional
        Starting weights; equal by default.
    n_iter : int, optional
        Stop after this many iterations (sooner if EM settles).
    tol : float, default=1e-6
    max_iter : int, default=1000
    n_rows : int, default=3
    rows : sequence of int, optional
    component_names : sequence of str, optional
        Default ``"A"``, ``"B"``... (``"1"``, ``"2"``... beyond 26).
    truth : dict, optional
        ``weight`` and ``bias`` of shape (K,), optionally ``names``.
    title : str, optional

    Returns
    -------
    Trace
    """
    from .families import binomial as B
    from .models.binomial import BinomialMixture

    K = check_int(n_components, "n_components", low=1)
    stop = _stop_after(n_iter)
    tol = check_float(tol, "tol", low=0.0)
    max_iter = check_int(max_iter, "max_iter", low=1)
    names = _component_names(
        component_names, K, (lambda k: chr(ord("A") + k)) if K <= 26 else (lambda k: str(k + 1))
    )
    if probs_init is None:
        p0 = np.array([0.6, 0.5]) if K == 2 else np.linspace(0.7, 0.3, K)
    else:
        p0 = _as_vector(probs_init, "probs_init", K)
    w0 = _start_weights(weights_init, K)
    bm = BinomialMixture(
        K,
        n_trials=n_trials,
        tol=tol,
        max_iter=max_iter if stop is None else stop,
        n_init=1,
        weights_init=w0,
        probs_init=p0,
    )
    # The model's own validation, so that the trace accepts exactly what a fit accepts.
    h, trials, _ = bm._counts(heads, None, fitting=True)
    values = h
    shown = _pick_rows(values / np.maximum(trials, 1), n_rows, rows)
    seen = []
    stats = []

    def callback(iteration, mean_loglik, params):
        before = {"weight": np.array(params.weights), "bias": np.array(params.probs)}
        L = B.log_joint(h[shown], trials[shown], params)
        resp = B.responsibilities(L)[0]
        s = B.suff_stats(h, trials, params)
        stats.append({"count": s.nk, "heads": s.heads, "trials": s.trials})
        seen.append((iteration, mean_loglik, before, resp))
        return stop is not None and iteration >= stop

    bm.set_params(callback=callback)
    bm.fit(heads)
    N = h.shape[0]
    final = {"weight": np.array(bm.weights_), "bias": np.array(bm.probs_)}
    records = _records(seen, final, N * bm.score(heads), N, shown, values, stats)
    bm.set_params(callback=None)
    return Trace(
        kind="binomial",
        records=records,
        component_names=names,
        parameter_names=("weight", "bias"),
        n=N,
        converged=bool(bm.converged_),
        model=bm,
        title=title,
        truth=truth,
        n_trials=trials,
        tol=tol,
        value_label="heads",
    )


# ------------------------------------------------------------------ the dishonest casino
#
# A hidden Markov model traced by its own teaching code: the recursions below are plain
# NumPy, one loop over the rolls with the formula of every step beside it, written for
# reading rather than speed. emix.HMM runs the same recursions compiled
# (emix.models.forward_backward); the tests check that both give the same numbers.

#: Faces of a die, as the rolls show them.
DIE_FACES = 6


def scaled_forward(codes, startprob, transmat, emissionprob):
    """The forward pass of a hidden Markov model, scaled (Rabiner 1989), roll by roll.

    Parameters
    ----------
    codes : ndarray of int of shape (T,)
        The observed symbols as codes ``0 .. V - 1`` (a die's faces minus one).
    startprob : ndarray of shape (K,)
    transmat : ndarray of shape (K, K)
        ``transmat[j, k] = P(z_{t+1} = k | z_t = j)``.
    emissionprob : ndarray of shape (K, V)
        ``emissionprob[k, v] = P(x_t = v | z_t = k)``.

    Returns
    -------
    alpha : ndarray of shape (T, K)
        ``P(z_t = k | x_1 .. x_t)``: the filtered probabilities (each row sums to 1).
    predicted : ndarray of shape (T, K)
        ``P(z_t = k | x_1 .. x_{t-1})``: before roll t is seen (``startprob`` at t = 1).
    scale : ndarray of shape (T,)
        ``c_t = P(x_t | x_1 .. x_{t-1})``; ``log P(x_1 .. x_T) = sum_t log c_t``.

    Raises
    ------
    InputError
        When a roll has probability 0 under the parameters (naming it).
    """
    T, K = len(codes), len(startprob)
    alpha = np.empty((T, K))
    predicted = np.empty((T, K))
    scale = np.empty(T)
    for t in range(T):
        # Predict where the chain is before x_t is seen:
        #   t = 1:  P(z_1 = k) = startprob[k]
        #   t > 1:  P(z_t = k | x_<t) = sum_j alpha[t-1, j] * transmat[j, k]
        predicted[t] = startprob if t == 0 else alpha[t - 1] @ transmat
        # Update with x_t: weigh each state by P(x_t | z_t = k), then divide by
        #   c_t = sum_k predicted[t, k] * P(x_t | k) = P(x_t | x_<t)
        # so that alpha[t] sums to 1 (the unscaled alpha would underflow after a few
        # hundred rolls; the c_t keep the likelihood instead).
        joint = predicted[t] * emissionprob[:, codes[t]]
        scale[t] = joint.sum()
        if not scale[t] > 0.0:
            raise InputError(
                f"roll {t + 1} (code {int(codes[t])}) has probability 0 under the current "
                "parameters: no state can emit it"
            )
        alpha[t] = joint / scale[t]
    return alpha, predicted, scale


def scaled_backward(codes, transmat, emissionprob, scale):
    """The backward pass, scaled by the forward pass's ``c_t``, from the last roll down.

    Parameters
    ----------
    codes : ndarray of int of shape (T,)
    transmat : ndarray of shape (K, K)
    emissionprob : ndarray of shape (K, V)
    scale : ndarray of shape (T,)
        The ``c_t`` of :func:`scaled_forward`.

    Returns
    -------
    beta : ndarray of shape (T, K)
        ``P(x_{t+1} .. x_T | z_t = k) / (c_{t+1} ... c_T)``, so that ``alpha * beta``
        is the posterior ``P(z_t = k | x_1 .. x_T)``.
    """
    T, K = len(codes), transmat.shape[0]
    beta = np.empty((T, K))
    # Nothing is left to explain after the last roll.
    beta[T - 1] = 1.0
    for t in range(T - 2, -1, -1):
        # beta[t, j] = sum_k transmat[j, k] * P(x_{t+1} | k) * beta[t+1, k] / c_{t+1}
        beta[t] = transmat @ (emissionprob[:, codes[t + 1]] * beta[t + 1]) / scale[t + 1]
    return beta


def expected_counts(codes, alpha, beta, scale, transmat, emissionprob):
    """The E-step's posteriors and expected counts (what the re-estimation reads).

    Parameters
    ----------
    codes : ndarray of int of shape (T,)
    alpha, beta : ndarray of shape (T, K)
        From :func:`scaled_forward` and :func:`scaled_backward`.
    scale : ndarray of shape (T,)
    transmat : ndarray of shape (K, K)
    emissionprob : ndarray of shape (K, V)

    Returns
    -------
    gamma : ndarray of shape (T, K)
        ``P(z_t = k | x_1 .. x_T)``.
    transitions : ndarray of shape (K, K)
        ``sum_t P(z_t = j, z_{t+1} = k | x_1 .. x_T)``: expected numbers of each switch.
    symbol_counts : ndarray of shape (K, V)
        ``sum_t gamma[t, k] [x_t = v]``: expected number of times state k showed v.
    """
    T, K = alpha.shape
    V = emissionprob.shape[1]
    # gamma_t(k) = alpha_t(k) * beta_t(k): what came before t and what came after.
    gamma = alpha * beta
    transitions = np.zeros((K, K))
    for t in range(T - 1):
        # xi_t(j, k) = alpha_t(j) * transmat[j, k] * P(x_{t+1} | k) * beta_{t+1}(k) / c_{t+1}
        nxt = emissionprob[:, codes[t + 1]] * beta[t + 1]
        transitions += alpha[t][:, None] * transmat * nxt[None, :] / scale[t + 1]
    symbol_counts = np.zeros((K, V))
    for t in range(T):
        symbol_counts[:, codes[t]] += gamma[t]
    return gamma, transitions, symbol_counts


def reestimate(gamma, transitions, symbol_counts, previous: dict) -> dict:
    """Baum-Welch's M-step: new probabilities as ratios of expected counts.

    Parameters
    ----------
    gamma : ndarray of shape (T, K)
    transitions : ndarray of shape (K, K)
    symbol_counts : ndarray of shape (K, V)
    previous : dict
        ``startprob`` (K,), ``transmat`` (K, K), ``emissionprob`` (K, V) of the E-step:
        a state with no expected exits (or no expected rolls) keeps its row, rather than
        becoming 0/0.

    Returns
    -------
    dict with ``startprob`` (K,), ``transmat`` (K, K), ``emissionprob`` (K, V)
    """
    # start: P(z_1 = k | all rolls), normalised against round-off.
    startprob = gamma[0] / gamma[0].sum()
    # transmat[j, k] = expected switches j -> k / expected rolls that leave j.
    out = transitions.sum(axis=1)
    transmat = np.array(previous["transmat"], dtype=np.float64, copy=True)
    live = out > 0
    transmat[live] = transitions[live] / out[live, None]
    # emissionprob[k, v] = expected rolls of v by state k / expected rolls by state k.
    rolls = symbol_counts.sum(axis=1)
    emissionprob = np.array(previous["emissionprob"], dtype=np.float64, copy=True)
    live = rolls > 0
    emissionprob[live] = symbol_counts[live] / rolls[live, None]
    return {"startprob": startprob, "transmat": transmat, "emissionprob": emissionprob}


@dataclass(frozen=True, eq=False)
class HMMTraceRecord:
    """One Baum-Welch iteration: forward, backward, expected counts, re-estimation.

    Attributes
    ----------
    iteration : int
        1 for the first iteration.
    before, after : dict
        Parameters of the E-step and those the M-step made from its counts:
        ``startprob`` (K,), ``transmat`` (K, K), ``emissionprob`` (K, V).
    loglik : float
        ``log P(all rolls)`` under ``before`` (``sum_t log c_t``).
    loglik_after : float
        Under ``after``.
    times : ndarray of int of shape (R,)
        The first rolls shown (0-based positions), for which the arrays below are kept.
    predicted, alpha, beta, gamma : ndarray of shape (R, K)
        At those rolls (see :func:`scaled_forward`, :func:`scaled_backward`,
        :func:`expected_counts`).
    scale : ndarray of shape (R,)
        ``c_t`` at those rolls.
    end_times : ndarray of int of shape (R2,)
        The last rolls (where the backward pass starts), latest first.
    beta_end : ndarray of shape (R2, K)
        ``beta`` at them.
    start_counts : ndarray of shape (K,)
        ``gamma_1``.
    transitions : ndarray of shape (K, K)
        Expected numbers of switches ``j -> k``.
    symbol_counts : ndarray of shape (K, V)
        Expected numbers of each face per state.
    """

    iteration: int
    before: dict
    after: dict
    loglik: float
    loglik_after: float
    times: np.ndarray
    predicted: np.ndarray
    alpha: np.ndarray
    scale: np.ndarray
    beta: np.ndarray
    gamma: np.ndarray
    end_times: np.ndarray
    beta_end: np.ndarray
    start_counts: np.ndarray
    transitions: np.ndarray
    symbol_counts: np.ndarray

    @property
    def increase(self) -> float:
        """``loglik_after - loglik`` (never negative: Baum-Welch is EM)."""
        return self.loglik_after - self.loglik


@dataclass(frozen=True, eq=False)
class HMMTrace(_RecordArrays):
    """The record of one Baum-Welch run on die rolls, printable for a learner.

    Attributes
    ----------
    records : tuple of HMMTraceRecord, one per iteration
    state_names : tuple of str, length K
    rolls : ndarray of int of shape (T,)
        The faces, 1..6.
    converged : bool
        True when the log-likelihood per roll rose by less than ``tol``.
    tol : float
    title : str
    truth : dict, optional
        ``startprob``, ``transmat``, ``emissionprob`` that generated the rolls.
    hidden : ndarray of int of shape (T,), optional
        The true state of every roll, when known.
    posteriors : ndarray of shape (T, K)
        ``P(z_t = k | all rolls)`` under the final parameters.
    """

    records: tuple
    state_names: tuple
    rolls: np.ndarray
    converged: bool
    tol: float
    title: str = ""
    truth: dict | None = None
    hidden: np.ndarray | None = None
    posteriors: np.ndarray | None = None

    kind = "hmm"
    parameter_names = ("startprob", "transmat", "emissionprob")

    @property
    def n(self) -> int:
        """Number of rolls."""
        return int(self.rolls.shape[0])

    # Parameters are (K,), (K, K) and (K, F): one new axis per iteration.
    _stack = staticmethod(np.stack)

    def __str__(self) -> str:
        return self.to_text()

    def to_text(self, detailed: int | None = 3) -> str:
        """The trace as plain text: the model, the start, then every iteration.

        Parameters
        ----------
        detailed : int or None, default=3
            Iterations shown in full (forward, backward, counts and re-estimation);
            later ones get one summary line each. None shows every one in full.

        Returns
        -------
        str
        """
        if detailed is not None:
            detailed = check_int(detailed, "detailed", low=0)
        lines: list[str] = []
        if self.title:
            lines += [self.title, "=" * len(self.title), ""]
        lines += [_para(_HMM_INTRO.format(n=self.n, K=len(self.state_names))), ""]
        lines += _hmm_start(self)
        lines.append("")
        shown = self.records if detailed is None else self.records[:detailed]
        for rec in shown:
            lines += _hmm_iteration(self, rec)
            lines.append("")
        rest = self.records[len(shown):]
        if rest:
            lines += _hmm_summary(self, rest)
            lines.append("")
        lines += _hmm_ending(self)
        return "\n".join(lines).rstrip() + "\n"


_HMM_INTRO = """A casino rolls a die {n} times and now and then secretly swaps a fair die
    for a loaded one. We see every roll but not the die: the die is a hidden state that
    stays put from one roll to the next unless the casino switches. Baum-Welch (EM for
    hidden Markov models) estimates how often the casino switches and how each die is
    weighted from the rolls alone. Each iteration has an E-step in three parts (a
    forward pass through the rolls, a backward pass from the last roll, then the
    probabilities of each die at each roll and the expected numbers of switches and of
    each face) and an M-step that turns those expected counts into new probabilities.
    The log-likelihood (how probable all {n} rolls are under the guess) never falls."""

_HMM_FORWARD = """Forward pass, roll 1 to {n}: alpha_t(k) = P(die k at roll t | rolls 1..t).
    Predict: P(die k at t | rolls before t) = sum_j alpha_(t-1)(j) P(j -> k), the start
    probabilities at roll 1. Update: multiply by P(face | k) and divide by c_t, the sum
    of those products, so that alpha_t adds up to 1; c_t = P(roll t | rolls before t)
    and log P(all rolls) = sum_t log c_t. The first {R} rolls:"""

_HMM_BACKWARD = """Backward pass, roll {n} down to 1: beta_t(k) = P(rolls after t | die k
    at t), divided by the same c's. beta_{n}(k) = 1 (nothing follows), and beta_t(j) =
    sum_k P(j -> k) P(face at t+1 | k) beta_(t+1)(k) / c_(t+1):"""

_HMM_POSTERIOR = """Posteriors: gamma_t(k) = alpha_t(k) beta_t(k) = P(die k at roll t |
    all rolls), the forward pass's view of the past joined with the backward pass's
    view of the future:"""

_HMM_SWITCHES = """Expected switches: xi_t(j, k) = alpha_t(j) P(j -> k) P(face at t+1 | k)
    beta_(t+1)(k) / c_(t+1) = P(die j at t and die k at t+1 | all rolls), summed over
    the {m} pairs of neighbouring rolls (rows: from, columns: to):"""

_HMM_FACES = """Expected faces: sum over rolls of gamma_t(k) where the roll showed the face
    (each die's row adds up to its expected number of rolls):"""

_HMM_MSTEP = """M-step: start = gamma_1; P(j -> k) = expected switches j -> k / expected
    rolls leaving j; P(face | k) = expected rolls of that face by k / expected rolls by
    k."""


def _p(x: float) -> str:
    return f"{x:.3f}"


def _hmm_start(trace: HMMTrace) -> list[str]:
    if not trace.records:
        return ["  (no iterations were run)"]
    return ["Starting guess:", *_hmm_params_table(trace, trace.records[0].before),
            f"    log-likelihood of the starting guess: {trace.records[0].loglik:.3f}"]


def _hmm_params_table(trace: HMMTrace, params: dict, indent: str = "    ") -> list[str]:
    names = trace.state_names
    V = params["emissionprob"].shape[1]
    header = ["die", "P(start)", *(f"P(-> {c})" for c in names), *(f"P({v + 1})" for v in range(V))]
    rows = [
        [name, _p(params["startprob"][k]), *(_p(a) for a in params["transmat"][k]),
         *(_p(b) for b in params["emissionprob"][k])]
        for k, name in enumerate(names)
    ]
    return _table(header, rows, indent=indent)


def _hmm_iteration(trace: HMMTrace, rec: HMMTraceRecord) -> list[str]:
    names = trace.state_names
    K = len(names)
    title = f"Iteration {rec.iteration}"
    out = [title, "-" * len(title)]
    rolls = trace.rolls
    B = rec.before["emissionprob"]
    # Forward.
    R = len(rec.times)
    if R == 0:
        # No rolls asked for: the counts and the re-estimation still show every number.
        out.append(f"  Forward and backward passes over the {trace.n} rolls: log-likelihood "
                   f"= sum of log c_t = {rec.loglik:.3f}")
        return out + _hmm_counts_and_mstep(trace, rec)
    out.append(_para(_HMM_FORWARD.format(n=trace.n, R=R), indent="  "))
    header = ["roll", "face", *names, *names, "c_t", *names]
    groups = ["", "", "predicted", *([""] * (K - 1)), "P(face | die)", *([""] * (K - 1)), "",
              "alpha_t", *([""] * (K - 1))]
    rows = []
    for j, t in enumerate(rec.times):
        face = int(rolls[t])
        rows.append([str(t + 1), str(face), *(_p(x) for x in rec.predicted[j]),
                     *(_p(B[k, face - 1]) for k in range(K)), f"{rec.scale[j]:.4f}",
                     *(_p(x) for x in rec.alpha[j])])
    out += _table(header, rows, n_labels=2, groups=groups)
    more = trace.n - R
    out.append(
        f"    ... and {more} more roll{'s' if more != 1 else ''}; "
        f"log-likelihood = sum of log c_t = {rec.loglik:.3f}"
    )
    # Backward: its first steps (the last rolls), then the rolls the tables above show.
    out.append(_para(_HMM_BACKWARD.format(n=trace.n), indent="  "))
    header = ["roll", "next face", *(f"beta {c}" for c in names)]
    rows = []
    for j, t in enumerate(rec.end_times):
        nxt = "-" if t == trace.n - 1 else str(int(rolls[t + 1]))
        rows.append([str(t + 1), nxt, *(_p(x) for x in rec.beta_end[j])])
    first = [t for t in rec.times[::-1] if t not in set(rec.end_times.tolist())]
    if first:
        rows.append(["...", "", *([""] * K)])
        for t in first:
            j = int(np.flatnonzero(rec.times == t)[0])
            rows.append([str(t + 1), str(int(rolls[t + 1])) if t + 1 < trace.n else "-",
                         *(_p(x) for x in rec.beta[j])])
    out += _table(header, rows, n_labels=2)
    # Posteriors.
    out.append(_para(_HMM_POSTERIOR, indent="  "))
    header = ["roll", "face", *(f"P({c})" for c in names)]
    if trace.hidden is not None:
        header.append("hidden die")
    rows = []
    for j, t in enumerate(rec.times):
        cells = [str(t + 1), str(int(rolls[t])), *(_p(x) for x in rec.gamma[j])]
        if trace.hidden is not None:
            cells.append(names[int(trace.hidden[t])])
        rows.append(cells)
    out += _table(header, rows, n_labels=2)
    return out + _hmm_counts_and_mstep(trace, rec)


def _hmm_counts_and_mstep(trace: HMMTrace, rec: HMMTraceRecord) -> list[str]:
    names = trace.state_names
    out = []
    # Expected counts.
    out.append(_para(_HMM_SWITCHES.format(m=trace.n - 1), indent="  "))
    out += _table(["from \\ to", *names, "total"],
                  [[c, *(f"{x:.2f}" for x in rec.transitions[k]), f"{rec.transitions[k].sum():.2f}"]
                   for k, c in enumerate(names)])
    out.append(_para(_HMM_FACES, indent="  "))
    V = rec.symbol_counts.shape[1]
    out += _table(["die", *(str(v + 1) for v in range(V)), "total"],
                  [[c, *(f"{x:.2f}" for x in rec.symbol_counts[k]), f"{rec.symbol_counts[k].sum():.2f}"]
                   for k, c in enumerate(names)])
    # Re-estimation, with the arithmetic.
    out.append(_para(_HMM_MSTEP, indent="  "))
    a, b = rec.before, rec.after
    rows = [[f"P(start {c})", _p(a["startprob"][k]), _p(b["startprob"][k]),
             f"gamma_1 = {rec.start_counts[k]:.3f}"] for k, c in enumerate(names)]
    for j, cj in enumerate(names):
        total = rec.transitions[j].sum()
        for k, ck in enumerate(names):
            rows.append([f"P({cj} -> {ck})", _p(a["transmat"][j, k]), _p(b["transmat"][j, k]),
                         f"{rec.transitions[j, k]:.2f} / {total:.2f}"])
    for k, c in enumerate(names):
        total = rec.symbol_counts[k].sum()
        for v in range(V):
            rows.append([f"P({v + 1} | {c})", _p(a["emissionprob"][k, v]),
                         _p(b["emissionprob"][k, v]), f"{rec.symbol_counts[k, v]:.2f} / {total:.2f}"])
    out += _table(["probability", "before", "after", "= expected counts"], rows)
    out.append(
        f"  log-likelihood: {rec.loglik:.3f} before, {rec.loglik_after:.3f} after "
        f"(change {rec.increase:+.3g})"
    )
    return out


def _hmm_summary(trace: HMMTrace, records) -> list[str]:
    names = trace.state_names
    K = len(names)
    V = trace.records[0].before["emissionprob"].shape[1]
    header = ["iteration", "log-lik", "change"]
    header += [f"{names[j]}->{names[k]}" for j in range(K) for k in range(K) if j != k]
    header += [f"P({V}|{c})" for c in names]
    rows = []
    for rec in records:
        A, B = rec.after["transmat"], rec.after["emissionprob"]
        rows.append([str(rec.iteration), f"{rec.loglik_after:.3f}", f"{rec.increase:+.2e}",
                     *(_p(A[j, k]) for j in range(K) for k in range(K) if j != k),
                     *(_p(B[k, V - 1]) for k in range(K))])
    heading = (
        f"Iterations {records[0].iteration} to {records[-1].iteration}, one line each "
        "(values after the M-step):"
    )
    return [heading, *_table(header, rows)]


def _hmm_ending(trace: HMMTrace) -> list[str]:
    if not trace.records:
        return []
    n = trace.n_iter
    if trace.converged:
        why = (
            f"Baum-Welch stopped after {n} iteration{'s' if n != 1 else ''}: the "
            f"log-likelihood divided by the number of rolls rose by less than "
            f"tol={trace.tol:g}."
        )
    else:
        why = f"Baum-Welch was stopped after the {n} iteration{'s' if n != 1 else ''} asked for."
    drops = [r for r in trace.records if r.increase < -1e-9 * max(1.0, abs(r.loglik))]
    mono = (
        "The log-likelihood never fell, as EM guarantees."
        if not drops
        else f"The log-likelihood fell at iteration {drops[0].iteration}: a numerical problem."
    )
    out = [_para(f"{why} {mono}"), "", "Final estimates:", *_hmm_params_table(trace, trace.final)]
    if trace.truth is not None:
        out += ["", _para("The values that generated the rolls (states paired by position: "
                          "the starting guess decides which is which):"),
                *_hmm_params_table(trace, trace.truth)]
    if trace.hidden is not None and trace.posteriors is not None:
        guess = np.argmax(trace.posteriors, axis=1)
        share = float(np.mean(guess == trace.hidden))
        out += ["", _para(
            f"Under the final estimates the more probable die at each roll (the larger "
            f"gamma_t) is the hidden die at {100 * share:.1f}% of the {trace.n} rolls."
        )]
    return out


def _check_rolls(rolls) -> np.ndarray:
    """The rolls as int64 faces 1..6, shape (T,), or an InputError naming a bad one."""
    arr = np.asarray(rolls)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise InputError(f"rolls must be one sequence of faces 1..{DIE_FACES}; got shape {arr.shape}")
    if arr.shape[0] < 2:
        raise InputError(f"rolls must hold at least 2 rolls; got {arr.shape[0]}")
    try:
        values = arr.astype(np.float64)
    except (TypeError, ValueError):
        raise InputError(f"rolls must be numbers 1..{DIE_FACES}") from None
    bad = ~(np.isfinite(values) & (values == np.round(values)) & (values >= 1)
            & (values <= DIE_FACES))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"roll {i + 1} (position {i}) is {arr[i].item()!r}; a die shows a whole number 1..{DIE_FACES}"
        )
    return values.astype(np.int64)


def _check_stochastic(value, name: str, shape: tuple) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape != shape:
        raise InputError(f"{name} must have shape {shape}; got {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise InputError(f"{name} must hold non-negative probabilities")
    sums = arr.sum(axis=-1)
    bad = np.flatnonzero(np.abs(np.atleast_1d(sums) - 1.0) > 1e-6)
    if bad.size:
        where = f"row {int(bad[0])} of " if arr.ndim == 2 else ""
        raise InputError(f"{where}{name} sums to {float(np.atleast_1d(sums)[bad[0]]):.6g}, not 1")
    return arr / sums[..., None] if arr.ndim == 2 else arr / sums


#: The default starting guess: two dice that differ a little (the second favours six),
#: a sticky chain, and no preference for the first die.
CASINO_START = {
    "startprob": (0.5, 0.5),
    "transmat": ((0.9, 0.1), (0.1, 0.9)),
    "emissionprob": ((1 / 6,) * 6, (0.15, 0.15, 0.15, 0.15, 0.15, 0.25)),
}


def trace_casino(
    rolls,
    *,
    startprob_init=None,
    transmat_init=None,
    emissionprob_init=None,
    n_iter: int | None = None,
    tol: float = 1e-6,
    max_iter: int = 1000,
    n_rows: int = 4,
    state_names=None,
    truth: dict | None = None,
    hidden=None,
    title: str = "",
) -> HMMTrace:
    """Fit a hidden Markov model to die rolls by Baum-Welch and record every step.

    The forward, backward and re-estimation steps are computed here in plain NumPy
    (:func:`scaled_forward`, :func:`scaled_backward`, :func:`expected_counts`,
    :func:`reestimate`), one roll at a time, so that every number shown can be redone
    by hand; they equal :class:`emix.HMM` with ``emission='categorical'`` from the same
    start.

    Parameters
    ----------
    rolls : array-like of int of shape (T,)
        The faces shown, 1..6 (as :func:`emix.datasets.load_casino` gives them).
    startprob_init : array-like of shape (K,), optional
        Default (0.5, 0.5).
    transmat_init : array-like of shape (K, K), optional
        Rows sum to 1; default 0.9 on the diagonal (the dice are sticky).
    emissionprob_init : array-like of shape (K, 6), optional
        Each die's face probabilities; default a fair die and one that favours six a
        little (0.25 against 0.15): the starting guess decides which state ends up the
        loaded die.
    n_iter : int, optional
        Stop after this many iterations (sooner if Baum-Welch settles).
    tol : float, default=1e-6
        Settled when the log-likelihood per roll rises by less than this.
    max_iter : int, default=1000
    n_rows : int, default=4
        How many rolls the forward, backward and posterior tables show.
    state_names : sequence of str, optional
        Default ``("fair", "loaded")`` for two states, else ``"1"``, ``"2"``...
    truth : dict, optional
        ``startprob``, ``transmat``, ``emissionprob`` that generated the rolls.
    hidden : array-like of int of shape (T,), optional
        The true state of every roll (shown beside the posteriors).
    title : str, optional

    Returns
    -------
    HMMTrace
    """
    x = _check_rolls(rolls)
    codes = x - 1
    T = x.shape[0]
    K = 2
    for value in (startprob_init, transmat_init, emissionprob_init):
        if value is not None:
            K = int(np.shape(value)[0])
            break
    if K < 1:
        raise InputError("the starting guess must have at least one state")
    defaults = CASINO_START if K == 2 else {
        "startprob": np.full(K, 1.0 / K),
        "transmat": np.full((K, K), 0.1 / max(K - 1, 1)) + np.eye(K) * (0.9 - 0.1 / max(K - 1, 1)),
        "emissionprob": np.full((K, DIE_FACES), 1.0 / DIE_FACES),
    }
    params = {
        "startprob": _check_stochastic(
            defaults["startprob"] if startprob_init is None else startprob_init,
            "startprob_init", (K,)),
        "transmat": _check_stochastic(
            defaults["transmat"] if transmat_init is None else transmat_init,
            "transmat_init", (K, K)),
        "emissionprob": _check_stochastic(
            defaults["emissionprob"] if emissionprob_init is None else emissionprob_init,
            "emissionprob_init", (K, DIE_FACES)),
    }
    stop = _stop_after(n_iter)
    tol = check_float(tol, "tol", low=0.0)
    max_iter = check_int(max_iter, "max_iter", low=1)
    R = min(check_int(n_rows, "n_rows", low=0), T)
    if state_names is None:
        names = ("fair", "loaded") if K == 2 else tuple(str(k + 1) for k in range(K))
    else:
        names = _component_names(state_names, K, str)
    if hidden is not None:
        hidden = np.asarray(hidden, dtype=np.int64)
        if hidden.shape != (T,):
            raise InputError(f"hidden must have shape ({T},); got {hidden.shape}")
    times = np.arange(R)
    end_times = np.arange(T - 1, T - 1 - R, -1)
    if truth is not None:
        truth = {k: np.asarray(truth[k], dtype=np.float64) for k in ("startprob", "transmat", "emissionprob")}

    records = []
    converged = False
    fwd = scaled_forward(codes, params["startprob"], params["transmat"], params["emissionprob"])
    for it in range(1, (stop or max_iter) + 1):
        # E-step: forward (already done for these parameters), backward, counts.
        alpha, predicted, scale = fwd
        loglik = float(np.sum(np.log(scale)))
        beta = scaled_backward(codes, params["transmat"], params["emissionprob"], scale)
        gamma, transitions, symbol_counts = expected_counts(
            codes, alpha, beta, scale, params["transmat"], params["emissionprob"]
        )
        # M-step.
        new = reestimate(gamma, transitions, symbol_counts, params)
        # The next E-step's forward pass gives the new log-likelihood.
        fwd = scaled_forward(codes, new["startprob"], new["transmat"], new["emissionprob"])
        loglik_after = float(np.sum(np.log(fwd[2])))
        records.append(HMMTraceRecord(
            iteration=it, before=params, after=new, loglik=loglik, loglik_after=loglik_after,
            times=times, predicted=predicted[times], alpha=alpha[times], scale=scale[times],
            beta=beta[times], gamma=gamma[times], end_times=end_times, beta_end=beta[end_times],
            start_counts=gamma[0].copy(), transitions=transitions, symbol_counts=symbol_counts,
        ))
        params = new
        if (loglik_after - loglik) / T < tol:
            converged = True
            break
    alpha, _, scale = fwd
    beta = scaled_backward(codes, params["transmat"], params["emissionprob"], scale)
    return HMMTrace(
        records=tuple(records),
        state_names=names,
        rolls=x,
        converged=converged,
        tol=tol,
        title=title,
        truth=truth,
        hidden=hidden,
        posteriors=alpha * beta,
    )


def explain(
    example: str = "heights",
    *,
    n_iter: int | None = None,
    n_rows: int = 3,
    random_state: int = 0,
    **kwargs,
) -> Trace:
    """Trace EM on a built-in example.

    Parameters
    ----------
    example : {'heights', 'coins', 'casino'}, default='heights'
        ``heights``: 100 boys and 100 girls (:func:`emix.datasets.load_heights`), a
        two-component normal mixture started with its means at the lower and upper
        quartiles. ``coins``: 20 sets of 10 flips of two coins
        (:func:`emix.datasets.load_two_coins`), started at biases 0.6 and 0.5 as in
        the textbook example. ``casino``: 300 rolls of the dishonest casino
        (:func:`emix.datasets.load_casino`; ``n_rolls`` changes it), a two-state
        hidden Markov model fitted by Baum-Welch from :data:`CASINO_START`, with every
        forward, backward and re-estimation step (:func:`trace_casino`).
    n_iter : int, optional
        Iterations to run; None runs until EM settles.
    n_rows : int, default=3
        Rows shown in each E-step table (rolls in the forward, backward and posterior
        tables of the casino).
    random_state : int, default=0
        Seed of the simulated data (EM itself starts from a fixed guess).
    **kwargs
        Passed to :func:`trace_gaussian_1d`, :func:`trace_binomial` or
        :func:`trace_casino` (for instance ``means_init``, ``probs_init``, ``tol``).

    Returns
    -------
    Trace or HMMTrace
        ``print(trace)`` shows it; ``trace.logliks``, ``trace.path("mean")`` and
        ``trace.records`` give the numbers (an :class:`HMMTrace` for ``casino``).
    """
    if example not in EXAMPLES:
        raise InputError(f"unknown example {example!r}; choose one of {', '.join(EXAMPLES)}")
    if example == "heights":
        from .datasets import load_heights

        data = load_heights(random_state=random_state)
        t = data.truth
        truth = {
            "weight": np.array([t.girls_weight, t.boys_weight]),
            "mean": np.array([t.girls_mean, t.boys_mean]),
            "sd": np.array([t.girls_sd, t.boys_sd]),
            "names": ("girls", "boys"),
        }
        n_boys = int(data.is_boy.sum())
        title = (
            f"EM step by step: heights of {n_boys} boys and {data.n - n_boys} girls "
            f"(simulated, seed {random_state}), labels hidden"
        )
        kwargs.setdefault("value_label", "height (cm)")
        return trace_gaussian_1d(
            data.heights, 2, n_iter=n_iter, n_rows=n_rows, truth=truth, title=title, **kwargs
        )
    if example == "casino":
        from .datasets import load_casino

        data = load_casino(kwargs.pop("n_rolls", 300), random_state=random_state)
        t = data.truth
        title = (
            f"Baum-Welch step by step: {data.n_rolls} rolls of a fair and a loaded die "
            f"(seed {random_state}), dice hidden"
        )
        return trace_casino(
            data.rolls, n_iter=n_iter, n_rows=n_rows, hidden=data.dice, title=title,
            truth={"startprob": t.startprob, "transmat": t.transmat,
                   "emissionprob": t.emissionprob},
            **kwargs,
        )
    from .datasets import load_two_coins

    n_sets = kwargs.pop("n_sets", 20)
    data = load_two_coins(n_sets=n_sets, random_state=random_state)
    truth = {
        "weight": np.array(data.truth.weights),
        "bias": np.array(data.truth.biases),
        "names": ("A", "B"),
    }
    title = (
        f"EM step by step: {data.n_sets} sets of {data.n_flips} flips of two coins "
        f"(simulated, seed {random_state}), which coin hidden"
    )
    return trace_binomial(
        data.heads, data.n_flips, 2, n_iter=n_iter, n_rows=n_rows, truth=truth, title=title,
        **kwargs,
    )

