"""EM at work: plot_em_step's curves and log-likelihood, GIF and PNG frames, and
``emix explain ... --plot``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binom, norm

import emix
from emix import cli
from emix.datasets import load_heights, load_two_coins
from emix.exceptions import InputError
from emix.plots import plot_em_step, save_em_animation

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def heights():
    return emix.explain("heights", n_iter=4), load_heights(random_state=0).heights


@pytest.fixture(scope="module")
def coins():
    return emix.explain("coins", n_iter=3), load_two_coins(n_sets=20, random_state=0).heads


def test_gaussian_step_draws_the_trace_parameters(heights):
    trace, x = heights
    fig = plot_em_step(trace, x, 2)
    ax, ax_ll = fig.axes
    *components, mixture = ax.get_lines()
    grid = components[0].get_xdata()
    w, m, s = (trace.path(n)[2] for n in ("weight", "mean", "sd"))
    for k, line in enumerate(components):
        np.testing.assert_allclose(line.get_ydata(), w[k] * norm.pdf(grid, m[k], s[k]),
                                   rtol=1e-12)
    np.testing.assert_allclose(mixture.get_ydata(),
                               sum(c.get_ydata() for c in components), rtol=1e-12)
    # The mixture is a density: its area over the grid is (nearly) 1.
    assert abs(np.trapezoid(mixture.get_ydata(), grid) - 1.0) < 1e-3
    path = ax_ll.get_lines()[1]
    np.testing.assert_array_equal(path.get_ydata(), trace.logliks[:3])
    assert np.all(np.diff(path.get_ydata()) >= 0)  # it climbs
    # The last step by default, the start at 0.
    last = plot_em_step(trace, x).axes[1].get_lines()[1]
    assert len(last.get_ydata()) == trace.n_iter + 1


def test_binomial_step_draws_the_pmfs(coins):
    trace, heads = coins
    fig = plot_em_step(trace, heads, 0)
    *components, mixture = fig.axes[0].get_lines()
    w, p = trace.path("weight")[0], trace.path("bias")[0]
    for k, line in enumerate(components):
        np.testing.assert_allclose(line.get_ydata(), w[k] * binom.pmf(np.arange(11), 10, p[k]),
                                   rtol=1e-12)
    assert abs(mixture.get_ydata().sum() - 1.0) < 1e-12


def test_bad_arguments(heights):
    trace, x = heights
    with pytest.raises(InputError, match="step must be in 0..4"):
        plot_em_step(trace, x, 9)
    with pytest.raises(InputError, match="x must be the 200 values"):
        plot_em_step(trace, x[:10])
    with pytest.raises(InputError, match="needs a Trace of a Gaussian or binomial"):
        plot_em_step(emix.explain("casino", n_iter=1), x)
    with pytest.raises(InputError, match=r"\.gif, or as \.png frames"):
        save_em_animation(trace, x, "em.mp4")


def test_gif_and_png_frames(coins, tmp_path):
    from PIL import Image

    trace, heads = coins
    written = save_em_animation(trace, heads, tmp_path / "em.gif")
    assert written == [str(tmp_path / "em.gif")]
    data = (tmp_path / "em.gif").read_bytes()
    assert data[:6] == b"GIF89a"
    with Image.open(tmp_path / "em.gif") as im:
        assert im.n_frames == trace.n_iter + 1
    frames = save_em_animation(trace, heads, tmp_path / "step.png", dpi=40)
    assert [os.path.basename(f) for f in frames] == [f"step-{i:03d}.png" for i in range(4)]
    assert all(Path(f).read_bytes()[:8] == PNG for f in frames)
    assert sorted(os.listdir(tmp_path)) == sorted(["em.gif", *map(os.path.basename, frames)])


def test_explain_plot_from_the_command(tmp_path, capsys):
    code = cli.main(["explain", "heights", "--iterations", "2", "--detail", "0",
                     "--plot", str(tmp_path / "em.gif")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"Animation of 2 iterations written to {tmp_path / 'em.gif'}" in out
    assert (tmp_path / "em.gif").read_bytes()[:6] == b"GIF89a"
    code = cli.main(["explain", "coins", "--iterations", "1", "--detail", "0",
                     "--plot", str(tmp_path / "em.png")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "2 frames written" in out
    assert (tmp_path / "em-001.png").read_bytes()[:8] == PNG
