"""Synthetic daily prices that switch between a calm and a volatile regime.

The test bed for :mod:`emix.finance`: a price path whose log-returns are normal with a
daily volatility of 1% in the calm regime and 3% in the volatile one, and whose regime
switches on **known dates** (a fixed schedule, not a random chain), so that a regime
detector can be scored day by day against the truth. The dates are business days
(Monday to Friday) as ``numpy.datetime64``; pandas is not needed, but
:meth:`RegimePrices.to_series` gives a pandas Series with a DatetimeIndex when it is
installed.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from emix.datasets._checks import as_generator, check_count
from emix.exceptions import InputError

__all__ = ["CALM_VOL", "VOLATILE_VOL", "VOLATILE_SPELLS", "RegimePrices", "load_regime_prices"]

#: Daily volatility (standard deviation of the log-return) of the calm regime.
CALM_VOL = 0.01

#: Daily volatility of the volatile regime.
VOLATILE_VOL = 0.03

#: Daily mean log-return of the calm and of the volatile regime.
CALM_DRIFT = 0.0005
VOLATILE_DRIFT = -0.001

#: The volatile spells as fractions ``[start, stop)`` of the sample: three spells of
#: different lengths, the rest calm. Scaled to ``n_days`` they give the switch dates.
VOLATILE_SPELLS = ((0.20, 0.30), (0.50, 0.56), (0.75, 0.90))


@dataclass(frozen=True, eq=False)
class RegimePrices:
    """A simulated price path with its true regimes.

    Attributes
    ----------
    prices : ndarray of shape (n_days + 1,)
        Closing prices; ``prices[0]`` is the starting price. Read-only.
    dates : ndarray of shape (n_days + 1,), dtype datetime64[D]
        The business day of each price. Read-only.
    returns : ndarray of shape (n_days,)
        Log-returns ``log(prices[t + 1] / prices[t])``, dated ``dates[1:]``. Read-only.
    regimes : ndarray of shape (n_days,), int
        The true regime of each return: 0 calm, 1 volatile. Read-only.
    switch_days : ndarray of int
        Positions ``t`` in ``returns`` where the regime differs from ``t - 1``.
    vols : ndarray of shape (2,)
        Daily volatilities of the regimes (calm, volatile).
    """

    prices: np.ndarray
    dates: np.ndarray
    returns: np.ndarray
    regimes: np.ndarray
    switch_days: np.ndarray
    vols: np.ndarray

    @property
    def n_days(self) -> int:
        """Number of returns."""
        return int(self.returns.shape[0])

    @property
    def switch_dates(self) -> np.ndarray:
        """The dates of the returns at which the regime switches, datetime64[D]."""
        return self.dates[1:][self.switch_days]

    def to_series(self):
        """The prices as a pandas Series indexed by date (imports pandas)."""
        import pandas as pd

        return pd.Series(self.prices, index=pd.DatetimeIndex(self.dates, name="date"), name="price")


def load_regime_prices(
    n_days: int = 1500,
    random_state: int | np.random.Generator | None = 0,
    *,
    start: str = "2015-01-02",
    start_price: float = 100.0,
    calm_vol: float = CALM_VOL,
    volatile_vol: float = VOLATILE_VOL,
) -> RegimePrices:
    """Simulate ``n_days`` daily prices with known calm and volatile spells.

    The volatile spells cover the fractions :data:`VOLATILE_SPELLS` of the sample
    (20-30%, 50-56% and 75-90%: 31% of the days), so the switch dates are known in
    advance and scale with ``n_days``. Returns are normal with the regime's drift
    (+0.05% calm, -0.1% volatile) and volatility.

    Parameters
    ----------
    n_days : int, default=1500
        Number of returns (the prices have one more entry), at least 20.
    random_state : int, numpy.random.Generator or None, default=0
        Seed or Generator; the same integer gives the same path on every run.
    start : str, default='2015-01-02'
        The first date (rolled forward to a business day).
    start_price : float, default=100.0
    calm_vol, volatile_vol : float
        Daily volatilities of the two regimes, positive.

    Returns
    -------
    RegimePrices

    Raises
    ------
    InputError
        If ``n_days`` is not an integer >= 20 or a volatility or price is not positive.

    Examples
    --------
    >>> data = load_regime_prices(500, random_state=1)
    >>> data.prices.shape, data.returns.shape, int(data.regimes.sum())
    ((501,), (500,), 155)
    """
    n = check_count(n_days, "n_days", minimum=20)
    for name, v in (("start_price", start_price), ("calm_vol", calm_vol), ("volatile_vol", volatile_vol)):
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not np.isfinite(v) or v <= 0:
            raise InputError(f"{name} must be a positive number, got {v!r}")
    rng = as_generator(random_state)
    regimes = np.zeros(n, dtype=np.int64)
    for a, b in VOLATILE_SPELLS:
        regimes[int(round(a * n)) : int(round(b * n))] = 1
    vols = np.array([calm_vol, volatile_vol], dtype=np.float64)
    drift = np.array([CALM_DRIFT, VOLATILE_DRIFT])
    returns = drift[regimes] + vols[regimes] * rng.standard_normal(n)
    prices = float(start_price) * np.exp(np.concatenate([[0.0], np.cumsum(returns)]))
    first = np.busday_offset(np.datetime64(start, "D"), 0, roll="forward")
    dates = np.busday_offset(first, np.arange(n + 1), roll="forward")
    switch = np.flatnonzero(np.diff(regimes) != 0) + 1
    for a in (prices, dates, returns, regimes, switch, vols):
        a.setflags(write=False)
    return RegimePrices(prices, dates, returns, regimes, switch, vols)
