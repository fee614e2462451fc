"""The generic EM machinery: loop, convergence monitor, initialisers."""

from .engine import EMResult, run_em, run_restarts
from .monitor import ConvergenceMonitor

__all__ = ["ConvergenceMonitor", "EMResult", "run_em", "run_restarts"]
