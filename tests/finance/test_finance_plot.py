"""RegimeResult.plot, WalkForwardResult.plot and demo_regimes: figures headless (Agg)."""

from __future__ import annotations

import io

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")

from matplotlib.collections import PolyCollection  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from emix.datasets import load_regime_prices  # noqa: E402
from emix.finance import demo_regimes, detect_regimes, walk_forward  # noqa: E402
from emix.finance._plot import regime_runs  # noqa: E402


def _spans(ax):
    # axvspan draws a Rectangle (matplotlib >= 3.9) or a Polygon patch spanning the axes.
    return [p for p in ax.patches]


def test_regime_runs():
    assert regime_runs(np.array([0, 0, 1, 1, 1, 0, 2])) == [(0, 0, 2), (1, 2, 5), (0, 5, 6), (2, 6, 7)]
    assert regime_runs(np.array([], dtype=int)) == []


def test_plot_has_price_shading_and_stacked_probabilities():
    data = load_regime_prices(600, random_state=2)
    res = detect_regimes(prices=data.prices, random_state=0, select_k=False)
    fig = res.plot(title="t")
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    ax_p, ax_q = fig.axes
    # One shaded span per run of equal decoded regime, coloured by regime.
    runs = regime_runs(res.regime)
    spans = _spans(ax_p)
    assert len(spans) == len(runs) >= 3
    colors = {k: None for k in range(2)}
    for (k, a, b), patch in zip(runs, spans):
        if colors[k] is None:
            colors[k] = patch.get_facecolor()
        assert patch.get_facecolor() == colors[k]
    assert colors[0] != colors[1]
    # The first span starts at the first date and the last ends at the last one.
    x0 = spans[0].get_x() if isinstance(spans[0], Rectangle) else spans[0].get_xy()[0][0]
    assert x0 == pytest.approx(0.0)
    # The price line is the prices at the return dates.
    (line,) = ax_p.get_lines()
    np.testing.assert_allclose(line.get_ydata(), data.prices[1:])
    # Stacked probabilities: one filled band per regime, heights summing to 1.
    bands = [c for c in ax_q.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 2
    assert ax_q.get_ylim() == (0.0, 1.0)
    assert ax_p.get_title() == "t"
    legend = [t.get_text() for t in ax_p.get_legend().get_texts()]
    assert legend[0].startswith("regime 0") and "ann. vol" in legend[1]
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    assert buf.getvalue()[:4] == b"\x89PNG"
    fig2 = res.plot(probabilities="filtered")
    assert fig2.axes[1].get_ylabel() == "filtered probability"


def test_plot_without_prices_draws_growth_of_one_and_walk_forward_plot():
    data = load_regime_prices(500, random_state=1)
    res = detect_regimes(data.returns, random_state=0, select_k=False)
    fig = res.plot()
    np.testing.assert_allclose(fig.axes[0].get_lines()[0].get_ydata(), np.exp(np.cumsum(data.returns)))
    wf = walk_forward(data.returns, refit_every=100, min_train=200)
    fig = wf.plot()
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    # No shading before the first fit (regime -1); refit ticks on the lower panel.
    runs = [r for r in regime_runs(wf.regime) if r[0] >= 0]
    assert len(fig.axes[0].patches) == len(runs)
    assert len(fig.axes[1].get_lines()) == len(wf.refit_positions)


def test_plot_rejects_unknown_probabilities():
    from emix.exceptions import InputError

    res = detect_regimes(load_regime_prices(200).returns, random_state=0, select_k=False)
    with pytest.raises(InputError, match="probabilities"):
        res.plot(probabilities="both")


def test_demo_regimes_prints_and_writes_the_plot(tmp_path):
    out = io.StringIO()
    path = tmp_path / "regimes.png"
    res = demo_regimes(path, file=out)
    text = out.getvalue()
    assert "Volatile days labelled volatile" in text and "lowest at K=2" in text
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert res.n_regimes == 2
