"""A one-line progress bar for fits, driven by the estimators' ``callback``.

The estimators call ``callback(iteration, mean_loglik, params)`` once per EM iteration;
the bar counts iterations against ``max_iter`` and shows the log-likelihood. It stays
silent for the first second (a fast fit should print nothing), redraws at most ten times
a second (a terminal write per iteration would cost more than a small E-step), and
erases itself when the fit ends, so that the command's own output starts on a clean line.

It is on when stderr is a terminal and ``--quiet`` was not given. The environment
variable ``EMIX_PROGRESS`` overrides the terminal test (``--quiet`` still wins): ``always`` draws every iteration from the first,
whatever stderr is (for tests and logs), ``never`` hides it.
"""

from __future__ import annotations

import os
import sys
import time

__all__ = ["Progress"]

_DELAY_S = 1.0
_REDRAW_S = 0.1
_BAR = 20


class Progress:
    """Progress of one fit (restarts included) on one line of ``stream``.

    Parameters
    ----------
    label : str
        Shown first, e.g. ``"emix fit"``.
    max_iter : int
        Iterations allowed per run (the bar's full width).
    n_init : int, default=1
        Runs (restarts); a run is recognised by its iteration count starting again.
    quiet : bool, default=False
    stream : file, optional
        Default ``sys.stderr``.
    clock : callable, optional
        Seconds as a float (``time.monotonic``); tests pass their own.
    """

    def __init__(self, label: str, max_iter: int, n_init: int = 1, *, quiet: bool = False,
                 stream=None, clock=time.monotonic):
        self.label = label
        self.max_iter = max(int(max_iter), 1)
        self.n_init = max(int(n_init), 1)
        self.stream = sys.stderr if stream is None else stream
        self.clock = clock
        mode = os.environ.get("EMIX_PROGRESS", "").strip().lower()
        self.delay, self.redraw = _DELAY_S, _REDRAW_S
        if quiet or mode == "never":
            self.enabled = False
        elif mode == "always":
            self.enabled, self.delay, self.redraw = True, 0.0, 0.0
        else:
            isatty = getattr(self.stream, "isatty", None)
            self.enabled = bool(isatty is not None and isatty())
        self.start = clock()
        self.last_draw = None
        self.run = 1
        self.last_iteration = 0
        self.width = 0
        self.draws = 0

    def __call__(self, iteration, mean_loglik, params=None) -> bool:
        """The estimator's callback; never asks the fit to stop."""
        if iteration <= self.last_iteration:
            self.run += 1
        self.last_iteration = iteration
        if not self.enabled:
            return False
        now = self.clock()
        if now - self.start < self.delay:
            return False
        if self.last_draw is not None and now - self.last_draw < self.redraw:
            return False
        self.last_draw = now
        self._draw(iteration, mean_loglik, now - self.start)
        return False

    def _draw(self, iteration: int, mean_loglik: float, elapsed: float) -> None:
        filled = min(_BAR, round(_BAR * iteration / self.max_iter))
        bar = "#" * filled + "." * (_BAR - filled)
        run = f" run {min(self.run, self.n_init)}/{self.n_init}" if self.n_init > 1 else ""
        text = (f"{self.label}:{run} [{bar}] iteration {iteration}/{self.max_iter}, "
                f"log-likelihood per row {mean_loglik:.6g}, {elapsed:.0f} s")
        pad = " " * max(0, self.width - len(text))
        self.stream.write("\r" + text + pad)
        self.stream.flush()
        self.width = len(text)
        self.draws += 1

    def close(self) -> None:
        """Erase the bar, if it was drawn."""
        if self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
            self.width = 0
