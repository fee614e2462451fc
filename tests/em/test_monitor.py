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


# --------------------------------------------------------------------------- continued runs
def test_a_continued_run_measures_its_first_change_from_previous():
    m = ConvergenceMonitor(tol=1e-3, previous=-5.0)
    assert not m.converged
    m.report(-5.0 + 5e-4)
    assert m.converged  # one value, but the change from where the last run ended is small
    assert m.history == [-5.0 + 5e-4]  # previous is not part of the history
    assert not ConvergenceMonitor(tol=1e-3, previous=-6.0).converged


def test_no_drop_warning_against_previous():
    # A warm start may be given other data; a fall from the last fit's value is no alarm.
    m = ConvergenceMonitor(previous=-1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m.report(-7.0)
    assert m.drops == [] and not m.converged


def test_verbose_change_of_a_continued_run_is_from_previous():
    out = io.StringIO()
    feed(ConvergenceMonitor(verbose=2, previous=-3.0, stream=out), [-2.0])
    assert "change  1.000e+00" in out.getvalue()


# --------------------------------------------------------------------------- stalls
def test_a_fall_within_round_off_after_an_exact_step_stalls():
    m = feed(ConvergenceMonitor(tol=0.0, drop_rtol=1e-9), [-3.0, -2.0])
    assert not m.stall(-2.0)  # a tie is no fall: tol=0 runs on
    assert not m.stall(-1.5)  # a rise neither
    assert m.stall(-2.0 - 1e-12)
    assert m.stalled and m.converged  # converged although tol=0
    assert m.history == [-3.0, -2.0]  # the fallen value is not recorded
    assert m.lower_bound == -2.0


def test_no_stall_beyond_round_off_or_after_a_regularised_step():
    m = feed(ConvergenceMonitor(drop_rtol=1e-9), [-3.0, -2.0])
    assert not m.stall(-2.0 - 1e-6)  # beyond round-off: report() warns instead
    assert not m.stall(-2.0 - 1e-12, allowance=1e-10)  # reg_covar may lower it
    assert not m.stalled and not m.converged


def test_stall_against_previous_needs_an_exact_previous_step():
    exact = ConvergenceMonitor(tol=0.0, previous=-2.0)
    assert exact.stall(-2.0 - 1e-12)
    assert exact.converged and exact.history == [] and exact.lower_bound == -2.0
    unknown = ConvergenceMonitor(tol=0.0, previous=-2.0, previous_allowance=float("inf"))
    assert not unknown.stall(-2.0 - 1e-12)
    assert not ConvergenceMonitor(tol=0.0).stall(-2.0)  # nothing to fall from
    assert ConvergenceMonitor().lower_bound == float("-inf")


class _Scripted:
    """An EM problem whose E-steps return given log-likelihoods; M-steps count up."""

    def __init__(self, lls):
        self.lls = list(lls)
        self.m_steps = 0

    def e_step(self, params):
        ll = self.lls.pop(0)
        return type("Stats", (), {"loglik": ll, "weight_sum": 1.0})()

    def m_step(self, stats, params, iteration):
        self.m_steps += 1
        return params + 1


def test_run_em_keeps_the_parameters_of_the_last_recorded_step_after_a_stall():
    from emix.em.engine import run_em

    problem = _Scripted([-3.0, -2.0, -2.0 - 1e-13, -1.0])
    seen = []
    result = run_em(problem, 0, tol=0.0, max_iter=10,
                    callback=lambda it, ll, p: seen.append(ll))
    assert result.converged and result.n_iter == 2
    assert list(result.history) == [-3.0, -2.0] and result.lower_bound == -2.0
    assert result.params == 2 and problem.m_steps == 2  # the stalled step's M-step is skipped
    assert seen == [-3.0, -2.0]  # the callback sees the recorded values only
