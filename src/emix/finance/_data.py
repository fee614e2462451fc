"""Price and return series in, plain arrays plus their dates out, and back.

The finance functions accept pandas Series and DataFrames (with a date index), NumPy
arrays and lists. Internally everything is a float64 array of shape (T, D) plus the
index it came with; results go back out as the caller's type. pandas is imported only
when the caller passed pandas objects (it is never needed for arrays).
"""

from __future__ import annotations

import numbers

import numpy as np

from ..exceptions import InputError

__all__ = ["Frame", "as_frame", "log_returns", "rolling_volatility", "regime_features"]


def _is_pandas(x) -> bool:
    return type(x).__module__.split(".")[0] == "pandas"


class Frame:
    """A numeric table with the labels of its rows and columns.

    Attributes
    ----------
    values : ndarray of shape (T, D), float64
    index : pandas Index or None
        The row labels (dates) of pandas input; None for arrays.
    columns : list of str or None
        The column names of a DataFrame (the name of a Series as one column).
    kind : {'series', 'frame', 'array1d', 'array2d'}
        What the caller passed, so results can be returned in the same shape.
    """

    def __init__(self, values, index, columns, kind):
        self.values = values
        self.index = index
        self.columns = columns
        self.kind = kind

    @property
    def one_d(self) -> bool:
        return self.kind in ("series", "array1d")

    def label(self, t: int) -> str:
        """How row ``t`` is named in messages: its date (and position) or its position."""
        if self.index is not None:
            return f"{self.index[t]!s} (row {t})"
        return f"row {t}"

    def take(self, rows: slice) -> "Frame":
        return Frame(self.values[rows], None if self.index is None else self.index[rows],
                     self.columns, self.kind)

    def dates(self) -> np.ndarray:
        """The row labels as an array (positions 0..T-1 for arrays)."""
        if self.index is None:
            return np.arange(self.values.shape[0])
        return np.asarray(self.index)

    def wrap(self, values: np.ndarray, columns=None, *, keep_1d=True):
        """``values`` (T, C) in the caller's type: a Series/DataFrame on the same index,
        or an array (1-D when the input was 1-D and C == 1)."""
        if self.kind in ("series", "frame"):
            import pandas as pd

            if keep_1d and self.kind == "series" and values.shape[1] == 1:
                name = self.columns[0] if self.columns else None
                return pd.Series(values[:, 0], index=self.index, name=name)
            return pd.DataFrame(values, index=self.index, columns=columns if columns is not None else self.columns)
        if keep_1d and self.kind == "array1d" and values.shape[1] == 1:
            return values[:, 0]
        return values


def as_frame(x, name: str) -> Frame:
    """Read a series or table of numbers, refusing NaN and infinities by row.

    Parameters
    ----------
    x : pandas Series or DataFrame, or array-like of shape (T,) or (T, D)
    name : str
        How the argument is named in messages.

    Returns
    -------
    Frame
    """
    if isinstance(x, Frame):
        return x
    if _is_pandas(x) and hasattr(x, "index"):
        index = x.index
        if getattr(x, "ndim", 1) == 1:
            kind, columns = "series", [x.name if x.name is not None else name]
        else:
            kind, columns = "frame", [str(c) for c in x.columns]
        try:
            values = x.to_numpy(dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError(f"{name} must hold numbers; some entries are not numeric") from None
    else:
        index = None
        try:
            values = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError(f"{name} must be an array of numbers; got {type(x).__name__}") from None
        if values.ndim == 0 or values.ndim > 2:
            raise InputError(f"{name} must be 1-D (one series) or 2-D (T, D); got shape {values.shape}")
        kind, columns = ("array1d" if values.ndim == 1 else "array2d"), None
    values = values.reshape(values.shape[0], -1)
    if values.shape[0] == 0 or values.shape[1] == 0:
        raise InputError(f"{name} is empty")
    frame = Frame(np.ascontiguousarray(values), index, columns, kind)
    bad = ~np.isfinite(values)
    if bad.any():
        t, c = np.argwhere(bad)[0]
        what = "NaN" if np.isnan(values[t, c]) else "infinite"
        col = f", column {columns[c]!r}" if columns and values.shape[1] > 1 else (f", column {c}" if values.shape[1] > 1 else "")
        raise InputError(
            f"{name} is {what} at {frame.label(int(t))}{col}; drop or fill missing values "
            "first (e.g. prices.dropna() or prices.ffill())"
        )
    return frame


def _check_window(window, name="window") -> int:
    if isinstance(window, bool) or not isinstance(window, numbers.Integral) or window < 2:
        raise InputError(f"{name} must be an integer >= 2; got {window!r}")
    return int(window)


def _log_returns(prices: Frame) -> Frame:
    v = prices.values
    bad = v <= 0
    if bad.any():
        t, c = np.argwhere(bad)[0]
        col = ""
        if v.shape[1] > 1:
            col = f", column {prices.columns[c]!r}" if prices.columns else f", column {c}"
        raise InputError(
            f"prices must be positive for log-returns; the price at {prices.label(int(t))}{col} "
            f"is {v[t, c]:.6g}"
        )
    if v.shape[0] < 2:
        raise InputError("prices need at least 2 rows to give a return")
    r = np.diff(np.log(v), axis=0)
    return Frame(r, None if prices.index is None else prices.index[1:], prices.columns, prices.kind)


def _rolling_std(r: np.ndarray, window: int) -> np.ndarray:
    """Trailing sample standard deviation (ddof=1) of each column, shape (T - window + 1, D).

    Row ``i`` covers rows ``i .. i + window - 1`` of ``r``: only the past and present of
    its last row, so the feature is causal.
    """
    win = np.lib.stride_tricks.sliding_window_view(r, window, axis=0)  # (T-w+1, D, w)
    return np.std(win, axis=2, ddof=1)


def rolling_volatility(returns, window: int = 21):
    """Trailing standard deviation of returns over ``window`` periods (causal).

    Parameters
    ----------
    returns : pandas Series or DataFrame, or array-like of shape (T,) or (T, D)
    window : int, default=21
        Periods per window (21 trading days is about a month), at least 2.

    Returns
    -------
    Series, DataFrame or ndarray of shape (T - window + 1,) or (T - window + 1, D)
        The value at a date uses the ``window`` returns up to and including it; the
        first ``window - 1`` dates, which have no full window, are dropped.
    """
    window = _check_window(window)
    f = as_frame(returns, "returns")
    if f.values.shape[0] < window:
        raise InputError(f"returns have {f.values.shape[0]} rows, fewer than window={window}")
    vol = _rolling_std(f.values, window)
    return f.take(slice(window - 1, None)).wrap(vol)


def regime_features(returns, *, volatility_window: int | None = None) -> Frame:
    """The feature table the regime models read: the returns, and optionally their
    trailing volatility.

    Parameters
    ----------
    returns : pandas Series or DataFrame, or array-like of shape (T,) or (T, D)
    volatility_window : int, optional
        Add each column's trailing standard deviation over this many periods as a
        feature; the first ``volatility_window - 1`` rows are then dropped.

    Returns
    -------
    Frame
        ``values`` of shape (T', D) or (T', 2 D) with ``T' = T - volatility_window + 1``;
        the columns are the returns, then their volatilities.
    """
    f = as_frame(returns, "returns")
    if volatility_window is None:
        return f
    w = _check_window(volatility_window, "volatility_window")
    if f.values.shape[0] < w + 1:
        raise InputError(
            f"returns have {f.values.shape[0]} rows; volatility_window={w} needs more"
        )
    vol = _rolling_std(f.values, w)
    names = f.columns or [f"r{j}" for j in range(f.values.shape[1])]
    cols = list(names) + [f"{n}_vol{w}" for n in names]
    out = f.take(slice(w - 1, None))
    return Frame(np.hstack([out.values, vol]), out.index, cols, "frame" if f.index is not None else "array2d")


def log_returns(prices, *, volatility_window: int | None = None):
    """Log-returns ``log(p_t / p_{t-1})`` of a price series, keeping the dates.

    Parameters
    ----------
    prices : pandas Series or DataFrame with a date index, or array-like of shape (T,) or (T, D)
        Positive prices, oldest first, without gaps (NaN).
    volatility_window : int, optional
        Also return each column's trailing volatility over this many periods (a regime
        feature); the first ``volatility_window - 1`` returns are then dropped.

    Returns
    -------
    Series, DataFrame or ndarray
        Shape (T - 1,) or (T - 1, D), dated by the later price of each pair (the first
        date has no return). With ``volatility_window``: a table of shape
        (T - volatility_window, 2 D), returns then volatilities (a DataFrame with
        columns ``name`` and ``name_vol{window}`` for pandas input).

    Raises
    ------
    InputError
        A NaN or infinite price, or one <= 0, naming its date (or row) and column.

    Examples
    --------
    >>> log_returns([100.0, 110.0, 99.0]).round(4)
    array([ 0.0953, -0.1054])
    """
    f = as_frame(prices, "prices")
    r = _log_returns(f)
    if volatility_window is None:
        return r.wrap(r.values)
    feats = regime_features(r, volatility_window=volatility_window)
    return feats.wrap(feats.values, feats.columns, keep_1d=False)
