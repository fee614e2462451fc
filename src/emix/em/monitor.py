"""Convergence monitoring for EM: tolerance, history, and the likelihood-drop alarm."""

from __future__ import annotations

import math
import sys
import warnings

from ..exceptions import LikelihoodDecreaseWarning

__all__ = ["ConvergenceMonitor"]


class ConvergenceMonitor:
    """Tracks the mean log-likelihood per sample across EM iterations.

    EM never lowers the likelihood, so a drop larger than round-off is reported as a
    :class:`~emix.exceptions.LikelihoodDecreaseWarning` that names the iteration: it means
    a numerical breakdown (a collapsing component, too little ``reg_covar``) or a bug.

    Parameters
    ----------
    tol : float
        Converged when ``|ll_t - ll_{t-1}| < tol`` (mean log-likelihood per sample, the
        same rule as scikit-learn).
    max_iter : int
    drop_rtol : float
        A fall of more than ``drop_rtol * max(|ll|, 1)`` is reported. Round-off in the
        mean log-likelihood is about 1e-12 relative in float64 and 1e-6 in float32.
    verbose : int
        0 silent; 1 prints a line every ``verbose_interval`` iterations; 2 every one.
    verbose_interval : int
    label : str
        Prefix of printed lines (e.g. ``"init 2"``).
    previous : float, optional
        The mean log-likelihood a continued run starts from (a warm start's
        ``lower_bound_``). The first iteration's change is measured from it, so that a
        run of one iteration per call can converge, as in scikit-learn. It is not part
        of ``history``, and no drop from it is warned about (the data may have changed).
    previous_allowance : float, default=0.0
        How far the M-step that ended the previous run may have lowered the likelihood
        (``inf`` when unknown); see :meth:`stall`.

    Attributes
    ----------
    history : list of float
        Mean log-likelihood of the parameters entering each iteration.
    stalled : bool
        Whether :meth:`stall` ended the run.
    """

    def __init__(
        self,
        tol: float = 1e-3,
        max_iter: int = 100,
        *,
        drop_rtol: float = 1e-9,
        verbose: int = 0,
        verbose_interval: int = 10,
        label: str = "",
        stream=None,
        previous: float | None = None,
        previous_allowance: float = 0.0,
    ):
        self.tol = tol
        self.max_iter = max_iter
        self.drop_rtol = drop_rtol
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.label = label
        self.stream = stream
        self.history: list[float] = []
        self.drops: list[tuple[int, float, float]] = []
        self.previous = None if previous is None else float(previous)
        self.previous_allowance = float(previous_allowance)
        self.stalled = False

    @property
    def iteration(self) -> int:
        return len(self.history)

    def report(self, loglik: float, allowance: float = 0.0) -> None:
        """Record the mean log-likelihood of the current iteration.

        Parameters
        ----------
        loglik : float
            Mean log-likelihood per sample of the parameters entering this iteration.
        allowance : float
            A drop EM may legitimately make at this step, on top of round-off: with
            ``reg_covar > 0`` the M-step is not the exact maximiser, and the family's
            M-step reports by how much (``MStepReport.reg_gap``).
        """
        prev = self.history[-1] if self.history else None
        self.history.append(float(loglik))
        it = len(self.history)
        if prev is not None and math.isfinite(prev):
            drop = prev - loglik
            if drop > self.drop_rtol * max(abs(prev), 1.0) + allowance:
                self.drops.append((it, prev, float(loglik)))
                warnings.warn(
                    f"{self.label + ': ' if self.label else ''}the log-likelihood fell at "
                    f"iteration {it}, from {prev:.12g} to {loglik:.12g} (by {drop:.3g}); EM "
                    "never lowers it, so this is numerical breakdown: a component may be "
                    "collapsing (increase reg_covar) or the data are badly scaled",
                    LikelihoodDecreaseWarning,
                    stacklevel=4,
                )
        if self.verbose and (self.verbose > 1 or it % max(self.verbose_interval, 1) == 0):
            start = self.previous if prev is None else prev
            change = float("nan") if start is None else loglik - start
            print(
                f"{self.label + ' ' if self.label else ''}iteration {it:4d}  "
                f"log-likelihood {loglik: .10g}  change {change: .3e}",
                file=self.stream or sys.stdout,
            )

    def stall(self, loglik: float, allowance: float = 0.0) -> bool:
        """Whether ``loglik`` ends the run as converged at working precision.

        It does when ``loglik`` is below the last value by no more than round-off
        (``drop_rtol``) and the M-step between them was exact (``allowance`` 0). EM
        cannot lower the likelihood, so that fall is round-off in evaluating it: the
        step gained less than the E-step can resolve, and more steps only trade
        round-off. The caller then keeps the parameters of the last recorded value's
        M-step and does not :meth:`report` ``loglik``, so that the history never falls.
        A larger fall is not a stall: :meth:`report` warns about it.

        Parameters
        ----------
        loglik : float
            Mean log-likelihood of the parameters entering this iteration.
        allowance : float
            As in :meth:`report`.
        """
        if self.history:
            prev = self.history[-1]
        else:
            prev, allowance = self.previous, max(allowance, self.previous_allowance)
        if prev is None or not math.isfinite(prev) or allowance > 0:
            return False
        drop = prev - float(loglik)
        if not 0.0 < drop <= self.drop_rtol * max(abs(prev), 1.0):
            return False
        self.stalled = True
        if self.verbose:
            print(
                f"{self.label + ' ' if self.label else ''}iteration {len(self.history) + 1:4d}  "
                f"log-likelihood {loglik: .10g}  fell by {drop:.3e} (round-off): converged",
                file=self.stream or sys.stdout,
            )
        return True

    @property
    def converged(self) -> bool:
        """True once the last change is below ``tol``, or the run :meth:`stall`-ed.

        The first change of a continued run is measured from ``previous``.
        """
        if self.stalled:
            return True
        if len(self.history) == 1 and self.previous is not None:
            return abs(self.history[0] - self.previous) < self.tol
        if len(self.history) < 2:
            return False
        return abs(self.history[-1] - self.history[-2]) < self.tol

    @property
    def lower_bound(self) -> float:
        """The last recorded value; a run that stalled at once keeps ``previous``."""
        if self.history:
            return self.history[-1]
        if self.stalled:
            return self.previous
        return -math.inf
