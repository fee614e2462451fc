"""ConvergenceMonitor: convergence rule, history, likelihood-drop alarm, verbose output."""

from __future__ import annotations

import io
import warnings

import pytest

import emix
from emix import ConvergenceMonitor, LikelihoodDecreaseWarning


def feed(monitor, values):
    for v in values:
        monitor.report(v)
    return monitor


def test_history_records_every_report_in_order():
    values = [-10.0, -5.0, -4.5, -4.49]
    m = feed(ConvergenceMonitor(tol=1e-3, max_iter=10), values)
    assert m.history == values
    assert all(isinstance(v, float) for v in m.history)
    assert m.iteration == 4
    assert m.drops == []


def test_not_converged_before_two_values():
    m = ConvergenceMonitor(tol=1e9)
    assert not m.converged
    m.report(-1.0)
    assert not m.converged  # one value: no change to judge yet


@pytest.mark.parametrize(
    ("prev", "new", "tol", "expected"),
    [
        (-5.0, -4.0, 1e-3, False),  # large gain
        (-5.0, -5.0 + 5e-4, 1e-3, True),  # gain below tol
        (-5.0, -5.0 + 1e-3, 1e-3, False),  # exactly tol is not below it: |change| < tol
        (-5.0, -5.0, 0.0, False),  # tol=0 never converges
        (-5.0, -5.0 - 5e-4, 1e-3, True),  # the rule is on |change| (a tiny fall converges too)
    ],
)
def test_converged_rule_is_abs_change_below_tol(prev, new, tol, expected):
    m = ConvergenceMonitor(tol=tol, drop_rtol=1.0)  # no drop warning in this test
    feed(m, [prev, new])
    assert m.converged is expected


def test_converged_looks_at_last_change_only():
    m = feed(ConvergenceMonitor(tol=0.1), [-10.0, -9.99, -5.0])
    assert not m.converged
    m.report(-4.95)
    assert m.converged


def test_drop_beyond_round_off_warns_naming_the_iteration():
    m = ConvergenceMonitor(tol=1e-3, drop_rtol=1e-9)
    m.report(-3.0)
    m.report(-2.0)
    with pytest.warns(LikelihoodDecreaseWarning, match=r"iteration 3\b") as rec:
        m.report(-2.5)
    msg = str(rec[0].message)
    assert "-2.5" in msg and "-2" in msg  # from and to
    assert m.drops == [(3, -2.0, -2.5)]
    assert m.history == [-3.0, -2.0, -2.5]  # the drop is still recorded


def test_drop_warning_carries_the_label():
    m = ConvergenceMonitor(label="init 4")
    m.report(-1.0)
    with pytest.warns(LikelihoodDecreaseWarning, match=r"^init 4: .*iteration 2"):
        m.report(-2.0)


@pytest.mark.parametrize("level", [-1e6, -3.0, -1e-3, 0.0, 2.0, 1e6])
def test_drops_within_round_off_do_not_warn(level):
    # The threshold is drop_rtol * max(|ll|, 1): relative for large, absolute below 1.
    rtol = 1e-9
    m = ConvergenceMonitor(drop_rtol=rtol)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m.report(level)
        m.report(level - 0.5 * rtol * max(abs(level), 1.0))
        m.report(level - 0.9 * rtol * max(abs(level), 1.0))
    assert m.drops == []


@pytest.mark.parametrize("level", [-1e6, -3.0, 0.0, 1e6])
def test_drop_just_beyond_threshold_warns(level):
    rtol = 1e-9
    m = ConvergenceMonitor(drop_rtol=rtol)
    m.report(level)
    with pytest.warns(LikelihoodDecreaseWarning, match="iteration 2"):
        m.report(level - 2.0 * rtol * max(abs(level), 1.0))


def test_float32_threshold_is_looser():
    m = ConvergenceMonitor(drop_rtol=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        feed(m, [-100.0, -100.0 - 5e-4])  # 5e-6 relative: float32 round-off
    with pytest.warns(LikelihoodDecreaseWarning):
        m.report(-100.0 - 5e-4 - 0.01)


def test_no_warning_after_a_non_finite_previous_value():
    m = ConvergenceMonitor()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        feed(m, [float("-inf"), -5.0, -4.0])


def test_increase_never_warns():
    m = ConvergenceMonitor(drop_rtol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        feed(m, [-10.0, -9.0, -9.0, -8.0])  # an exact tie is not a drop
    assert m.drops == []


def test_verbose_1_prints_every_interval():
    out = io.StringIO()
    m = ConvergenceMonitor(verbose=1, verbose_interval=2, stream=out)
    feed(m, [-4.0, -3.0, -2.5, -2.25, -2.2])
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert "iteration    2" in lines[0] and "iteration    4" in lines[1]
    assert "log-likelihood" in lines[0] and "-3" in lines[0]
    assert "change  1.000e+00" in lines[0]


def test_verbose_2_prints_every_iteration_with_label():
    out = io.StringIO()
    m = ConvergenceMonitor(verbose=2, verbose_interval=100, label="init 1", stream=out)
    feed(m, [-4.0, -3.0, -2.5])
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert all(line.startswith("init 1 iteration") for line in lines)
    assert "nan" in lines[0]  # no change at the first iteration


def test_verbose_defaults_to_stdout(capsys):
    feed(ConvergenceMonitor(verbose=2), [-1.0, -0.5])
    assert capsys.readouterr().out.count("iteration") == 2


def test_silent_by_default(capsys):
    feed(ConvergenceMonitor(), [-1.0, -0.5, -0.4])
    assert capsys.readouterr().out == ""


def test_gaussian_mixture_verbose_prints_through_the_monitor(rng, capsys):
    X = rng.normal(size=(60, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", emix.ConvergenceWarning)
        emix.GaussianMixture(2, verbose=2, max_iter=5, tol=0.0, random_state=0).fit(X)
    out = capsys.readouterr().out
    assert out.count("iteration") == 5
