"""Market regimes for quantitative analysts: calm and volatile periods in returns.

- :func:`log_returns`: log-returns of prices (pandas with dates, or arrays), optionally
  with the trailing volatility as a feature; :func:`rolling_volatility`.
- :func:`detect_regimes`: an HMM (or a mixture) of the returns, with regimes ordered by
  volatility (0 = calmest), causal ``filtered`` and whole-sample ``smoothed``
  probabilities, the decoded ``regime``, statistics per regime and BIC over 1..K, a
  DataFrame (``to_frame``) and a figure (``plot``).
- :func:`walk_forward`: refits on past data every N periods and out-of-sample causal
  probabilities for the next N.
- :func:`demo_regimes`: the whole thing on built-in synthetic prices.

Regularisation is relative to the data's variance (``reg_relative``), so returns in any
unit or frequency fit without tuning ``reg_covar``. pandas and matplotlib are imported
only when pandas input, ``to_frame`` or ``plot`` asks for them.
"""

from ._data import log_returns, rolling_volatility
from .demo import demo_regimes
from .regimes import (
    REG_RELATIVE,
    RegimeModel,
    RegimeResult,
    RegimeStats,
    WalkForwardResult,
    detect_regimes,
    walk_forward,
)

__all__ = [
    "REG_RELATIVE",
    "RegimeModel",
    "RegimeResult",
    "RegimeStats",
    "WalkForwardResult",
    "demo_regimes",
    "detect_regimes",
    "log_returns",
    "rolling_volatility",
    "walk_forward",
]
