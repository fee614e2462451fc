"""The generic EM loop. It knows no distribution family.

A *problem* supplies two functions:

``e_step(params) -> stats``
    one pass over the data under ``params``; ``stats`` are additive sufficient
    statistics with ``stats.loglik`` (sum of weighted log-likelihoods of those params)
    and ``stats.weight_sum``, both from the same pass.
``m_step(stats, params, iteration) -> params``
    new parameters from the statistics alone (``params`` only to keep empty parts).
    A problem whose M-step is not an exact maximiser (regularised covariances) sets
    ``last_allowance``: the most it may lower the mean log-likelihood. A problem that
    screens its parameters sets ``last_issues``: the reasons the parameters from its
    last M-step are degenerate (empty or collapsed parts), empty when they are sound.

Because only statistics cross that boundary, the same loop serves arrays in memory,
chunked files, Dask arrays and GPU tensors: each of those only changes ``e_step``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import numpy as np

from ..exceptions import DegenerateComponentError
from .monitor import ConvergenceMonitor

__all__ = ["EMProblem", "EMResult", "run_em", "run_restarts"]


class EMProblem(Protocol):
    def e_step(self, params) -> Any: ...

    def m_step(self, stats, params, iteration: int) -> Any: ...


@dataclass
class EMResult:
    """Outcome of one EM run.

    Attributes
    ----------
    params : the parameters after the last M-step
    converged : bool
    n_iter : int
        Number of E-step + M-step rounds done.
    lower_bound : float
        Mean log-likelihood from the last E-step (of the parameters entering it; the
        quantity scikit-learn calls ``lower_bound_``).
    history : ndarray of shape (n_iter,)
        Mean log-likelihood at every iteration.
    init : int
        Which restart produced this run.
    issues : list
        Why the final parameters are degenerate (the problem's ``last_issues`` after the
        last M-step: empty, collapsed or under-populated components); empty when sound.
    """

    params: Any
    converged: bool
    n_iter: int
    lower_bound: float
    history: np.ndarray
    init: int = 0
    issues: list = field(default_factory=list)
    stopped_by_callback: bool = False

    @property
    def degenerate(self) -> bool:
        return bool(self.issues)

    @property
    def last_change(self) -> float:
        """Absolute change of the mean log-likelihood over the last iteration.

        ``inf`` when the run has fewer than two iterations, so that a non-converged
        warning never reports a change that was not measured.
        """
        if len(self.history) < 2:
            return math.inf
        return abs(float(self.history[-1] - self.history[-2]))


def run_em(
    problem: EMProblem,
    params,
    *,
    tol: float,
    max_iter: int,
    callback: Callable[[int, float, Any], Any] | None = None,
    monitor: ConvergenceMonitor | None = None,
    init: int = 0,
) -> EMResult:
    """Iterate E- and M-steps from ``params`` until converged or ``max_iter``.

    Parameters
    ----------
    callback : callable ``(iteration, log_likelihood, params)``, optional
        Called after each E-step with the mean log-likelihood of ``params`` (the
        parameters that E-step used). Returning ``True`` stops the run early.

    Notes
    -----
    After an exact M-step a fall of the likelihood within round-off ends the run as
    converged (:meth:`ConvergenceMonitor.stall`): that E-step is not recorded and its
    M-step not taken, so the result pairs the last recorded likelihood with the
    parameters of its M-step, as after any other iteration, and the history never falls.
    """
    monitor = monitor or ConvergenceMonitor(tol, max_iter)
    stop = False
    allowance = 0.0  # how far the last M-step may legitimately lower the likelihood
    for it in range(1, max_iter + 1):
        stats = problem.e_step(params)
        ll = stats.loglik / stats.weight_sum
        if not math.isfinite(ll):
            raise DegenerateComponentError(
                f"the log-likelihood is {ll} at iteration {it}: some rows have zero "
                "density under every component (a collapsed component or extreme "
                "values); increase reg_covar or rescale the data"
            )
        if monitor.stall(ll, allowance):
            break
        monitor.report(ll, allowance)
        if callback is not None:
            stop = bool(callback(it, ll, params))
        params = problem.m_step(stats, params, it)
        allowance = float(getattr(problem, "last_allowance", 0.0))
        if monitor.converged or stop:
            break
    history = np.asarray(monitor.history, dtype=np.float64)
    return EMResult(
        params=params,
        converged=monitor.converged,
        n_iter=len(history),
        lower_bound=float(monitor.lower_bound),
        history=history,
        init=init,
        issues=list(getattr(problem, "last_issues", [])),
        stopped_by_callback=stop,
    )


def run_restarts(
    problem: EMProblem,
    initial_params: Callable[[int], Any],
    *,
    n_init: int,
    tol: float,
    max_iter: int,
    callback=None,
    make_monitor: Callable[[int], ConvergenceMonitor] | None = None,
) -> EMResult:
    """Run EM from ``n_init`` starting points and keep the best.

    Best means the highest final mean log-likelihood among runs with no degenerate
    component; a degenerate run wins only when every run is degenerate.

    Parameters
    ----------
    initial_params : callable ``i -> params``
        Starting parameters of restart ``i`` (draws from a shared random generator in
        order, which keeps the whole fit reproducible from one seed).
    """
    best: EMResult | None = None
    for i in range(n_init):
        params0 = initial_params(i)
        monitor = make_monitor(i) if make_monitor else None
        result = run_em(
            problem,
            params0,
            tol=tol,
            max_iter=max_iter,
            callback=callback,
            monitor=monitor,
            init=i,
        )
        if best is None or _better(result, best):
            best = result
    return best


def _better(a: EMResult, b: EMResult) -> bool:
    if a.degenerate != b.degenerate:
        return not a.degenerate
    return a.lower_bound > b.lower_bound
