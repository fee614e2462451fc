"""Tests of the heights demo, `python -m emix.demo`."""

from __future__ import annotations

import re

import numpy as np
import pytest

import emix
from emix import demo
from emix.datasets import load_heights


class _FixedMixture:
    """Stand-in estimator with known fitted values, components deliberately listed
    boys-first so that the demo's sort-by-mean matching is exercised."""

    instances: list[_FixedMixture] = []

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.fit_shape = None
        _FixedMixture.instances.append(self)

    def fit(self, X, y=None):
        self.fit_shape = np.shape(X)
        self.weights_ = np.array([0.4, 0.6])
        self.means_ = np.array([[176.5], [163.2]])
        self.covariances_ = np.array([[[49.0]], [[42.25]]])
        self.n_iter_ = 7
        self.converged_ = True
        self.lower_bound_ = -3.7
        return self


def _row(out: str, *cells: str) -> bool:
    pattern = r"\s+".join(re.escape(c) for c in cells)
    return re.search(pattern, out) is not None


def test_demo_matches_components_to_groups_by_mean(monkeypatch, capsys):
    _FixedMixture.instances.clear()
    monkeypatch.setattr(emix, "GaussianMixture", _FixedMixture, raising=False)
    assert demo.main([]) == 0
    out = capsys.readouterr().out

    (gm,) = _FixedMixture.instances
    assert gm.kwargs == {"n_components": 2, "random_state": 0, "n_init": 5}
    assert gm.fit_shape == (200,)  # 1-D heights, one feature

    assert _row(out, "girls", "weight", "0.500", "0.600")
    assert _row(out, "mean (cm)", "163.0", "163.20")
    assert _row(out, "sd (cm)", "6.5", "6.50")
    assert _row(out, "boys", "weight", "0.500", "0.400")
    assert _row(out, "mean (cm)", "176.0", "176.50")
    assert _row(out, "sd (cm)", "7.0", "7.00")
    assert "EM iterations (best run): 7" in out
    assert _row(out, "converged:", "yes")
    assert "EM fit:          -3.7000" in out


def test_demo_part_one_reports_mle_with_standard_errors(monkeypatch, capsys):
    monkeypatch.setattr(emix, "GaussianMixture", _FixedMixture, raising=False)
    demo.main(["--n-boys", "40", "--n-girls", "60", "--seed", "2"])
    out = capsys.readouterr().out
    data = load_heights(n_boys=40, n_girls=60, random_state=2)
    boys = data.heights[data.is_boy]
    mean, sd = boys.mean(), boys.std()
    assert _row(
        out,
        "boys",
        "40",
        "176.0",
        f"{mean:.2f} ± {sd / np.sqrt(40):.2f}",
        "7.0",
        f"{sd:.2f} ± {sd / np.sqrt(80):.2f}",
    )
    assert "Heights of 40 boys and 60 girls (simulated, seed 2)" in out


def test_demo_rejects_groups_too_small_to_fit(capsys):
    with pytest.raises(SystemExit) as exc:
        demo.main(["--n-girls", "1"])
    assert exc.value.code == 2
    assert "--n-girls must be at least 2, got 1" in capsys.readouterr().err


def test_demo_runs_end_to_end_with_emix_gaussian_mixture(capsys):
    # The real estimator: EM should land within a few cm of the generating means.
    assert demo.main([]) == 0
    out = capsys.readouterr().out
    assert "Part 2. Labels hidden" in out
    girls_mean = re.search(r"girls\s+weight.*\n\s+mean \(cm\)\s+163\.0\s+([\d.]+)", out)
    boys_mean = re.search(r"boys\s+weight.*\n\s+mean \(cm\)\s+176\.0\s+([\d.]+)", out)
    assert girls_mean and boys_mean
    assert abs(float(girls_mean.group(1)) - 163.0) < 5.0
    assert abs(float(boys_mean.group(1)) - 176.0) < 5.0
