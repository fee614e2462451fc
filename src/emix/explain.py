"""Watch EM work: a record of every E-step and M-step, printable as plain-text tables.

The trace is taken from emix's own estimators (:class:`~emix.GaussianMixture` and
:class:`~emix.models.binomial.BinomialMixture`) through their per-iteration callback,
so it shows exactly what a fit computes, not a simplified re-implementation. EM starts
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

__all__ = ["EXAMPLES", "Trace", "TraceRecord", "explain", "trace_binomial", "trace_gaussian_1d"]

#: The built-in examples :func:`explain` knows.
EXAMPLES = ("heights", "coins")


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


@dataclass(frozen=True, eq=False)
class Trace:
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
        """The starting guess: parameter name to ndarray of shape (K,)."""
        return dict(self.records[0].before) if self.records else {}

    @property
    def final(self) -> dict:
        """The parameters after the last M-step: name to ndarray of shape (K,)."""
        return dict(self.records[-1].after) if self.records else {}

    def path(self, name: str) -> np.ndarray:
        """One parameter from the start through every iteration, shape (n_iter + 1, K)."""
        if name not in self.parameter_names:
            raise InputError(f"unknown parameter {name!r}; this trace has {self.parameter_names}")
        if not self.records:
            return np.empty((0, len(self.component_names)))
        return np.vstack([self.records[0].before[name]] + [r.after[name] for r in self.records])

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
    example : {'heights', 'coins'}, default='heights'
        ``heights``: 100 boys and 100 girls (:func:`emix.datasets.load_heights`), a
        two-component normal mixture started with its means at the lower and upper
        quartiles. ``coins``: 20 sets of 10 flips of two coins
        (:func:`emix.datasets.load_two_coins`), started at biases 0.6 and 0.5 as in
        the textbook example.
    n_iter : int, optional
        Iterations to run; None runs until EM settles.
    n_rows : int, default=3
        Rows shown in each E-step table.
    random_state : int, default=0
        Seed of the simulated data (EM itself starts from a fixed guess).
    **kwargs
        Passed to :func:`trace_gaussian_1d` or :func:`trace_binomial` (for instance
        ``means_init``, ``probs_init``, ``tol``).

    Returns
    -------
    Trace
        ``print(trace)`` shows it; ``trace.logliks``, ``trace.path("mean")`` and
        ``trace.records`` give the numbers.
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

