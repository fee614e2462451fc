"""The regime figure: price with regimes shaded, regime probabilities beneath.

Made with ``matplotlib.figure.Figure`` (no pyplot), like :mod:`emix.plots`; matplotlib
is imported only when a figure is drawn.
"""

from __future__ import annotations

import numpy as np

__all__ = ["plot_regimes", "regime_runs"]


def regime_runs(regime: np.ndarray) -> list:
    """Runs of equal regime: ``[(regime, first row, last row + 1), ...]`` in time order."""
    regime = np.asarray(regime)
    if regime.size == 0:
        return []
    cuts = np.flatnonzero(np.diff(regime) != 0) + 1
    starts = np.concatenate([[0], cuts])
    stops = np.concatenate([cuts, [regime.size]])
    return [(int(regime[a]), int(a), int(b)) for a, b in zip(starts, stops)]


def plot_regimes(dates, prices, returns, regime, proba, ann_vol, *, title=None,
                 prob_label="probability"):
    """Draw the two-panel regime figure.

    Parameters
    ----------
    dates : ndarray of shape (T,)
        datetime64 dates or positions.
    prices : ndarray of shape (T,) or None
        The price at each date; None draws the growth of 1 from the (first column of
        the) returns, ``exp(cumsum(r))``.
    returns : ndarray of shape (T,) or (T, D)
    regime : ndarray of shape (T,), int
        Shaded per run; -1 (no regime yet) is left blank.
    proba : ndarray of shape (T, K)
        Stacked beneath (NaN drawn as 0).
    ann_vol : ndarray of shape (K,) or (K, D)
        Annualised volatility per regime, for the legend.

    Returns
    -------
    matplotlib.figure.Figure
        ``fig.axes[0]`` the price with one ``axvspan`` patch per run, ``fig.axes[1]``
        the stacked probabilities (one PolyCollection per regime).
    """
    from matplotlib.figure import Figure

    from ..plots import _colors

    T, K = proba.shape
    x = np.asarray(dates)
    if prices is None:
        r = np.asarray(returns).reshape(T, -1)[:, 0]
        y, ylabel = np.exp(np.cumsum(r)), "growth of 1"
    else:
        y, ylabel = np.asarray(prices, dtype=np.float64), "price"
    colors = _colors(K)
    vol = np.asarray(ann_vol, dtype=np.float64)
    vol = vol if vol.ndim == 1 else vol[:, 0]
    labels = [f"regime {k} ({vol[k]:.0%} ann. vol)" if np.isfinite(vol[k]) else f"regime {k}"
              for k in range(K)]
    fig = Figure(figsize=(10, 6), layout="constrained")
    ax_p, ax_q = fig.subplots(2, 1, sharex=True, height_ratios=[2, 1])
    ax_p.plot(x, y, color="black", lw=0.9)
    # A run ends where the next begins, so the shading has no gaps between dates.
    edges = np.concatenate([x, x[-1:]]) if T else x
    for k, a, b in regime_runs(regime):
        if k < 0:
            continue
        ax_p.axvspan(edges[a], edges[b], color=colors[k], alpha=0.25, lw=0)
    from matplotlib.patches import Patch

    ax_p.legend(handles=[Patch(color=colors[k], alpha=0.4, label=labels[k]) for k in range(K)],
                loc="upper left", fontsize="small")
    ax_p.set_ylabel(ylabel)
    if title:
        ax_p.set_title(title)
    ax_q.stackplot(x, np.nan_to_num(np.asarray(proba, dtype=np.float64)).T, colors=colors,
                   labels=labels, alpha=0.8)
    ax_q.set_ylim(0.0, 1.0)
    ax_q.set_ylabel(prob_label)
    return fig
