"""The degenerate-component rule, on covariances built by hand."""

from __future__ import annotations

import numpy as np
import pytest

from emix.families import gaussian as G


DATA_VAR = np.array([4.0, 100.0])


def screen(raw, nk, ct="full", reg=1e-6, data_var=DATA_VAR):
    return G.screen_components(np.asarray(raw, float), np.asarray(nk, float), data_var, ct, reg)


def test_a_collapse_along_a_rotated_direction_is_found_and_its_column_named():
    # Flat along v: the rows satisfy v . x = const. In standardised units (the data's
    # sds are 2 and 10) that constraint is mostly on column 0.
    v = np.array([1.0, 0.05]) / np.hypot(1.0, 0.05)
    w = np.array([-v[1], v[0]])
    collapsed = 9.0 * np.outer(w, w) + 1e-14 * np.outer(v, v)
    sound = 9.0 * np.outer(w, w) + 0.5 * np.outer(v, v)
    issues = screen([sound, collapsed], [100, 100])
    assert [(i.component, i.kind, i.column) for i in issues] == [(1, "collapsed", 0)]
    assert issues[0].value < G.COLLAPSE_RATIO
    assert "component 1 collapsed" in str(issues[0])


def test_a_thin_but_real_component_is_not_called_collapsed():
    # sd 1/300 of the data's in column 0, variance far above reg_covar.
    thin = np.diag([4.0 / 300**2, 50.0])
    assert screen([thin], [500]) == []


def test_a_variance_held_up_by_reg_covar_is_collapsed_even_if_not_tiny_relative():
    # Relative to the data it is 2.5e-7 (over the ratio limit at 1e-8 it would pass),
    # but its raw variance 1e-6 equals reg_covar: the regulariser supplies half of it.
    raw = np.diag([1e-6, 50.0])
    issues = screen([raw], [500], reg=1e-6)
    assert [(i.kind, i.column) for i in issues] == [("collapsed", 0)]
    assert screen([raw], [500], reg=1e-7) == []


@pytest.mark.parametrize(("ct", "own"), [("full", 6), ("diag", 5), ("spherical", 4), ("tied", 3)])
def test_too_few_points_for_the_component_s_own_parameters(ct, own):
    assert G.component_parameters(ct, 2) == own
    raw = {
        "full": np.stack([np.diag([1.0, 20.0])] * 2),
        "diag": np.array([[1.0, 20.0]] * 2),
        "spherical": np.array([3.0, 3.0]),
        "tied": np.diag([1.0, 20.0]),
    }[ct]
    issues = screen(raw, [own - 0.5, own], ct=ct)
    assert [(i.component, i.kind) for i in issues] == [(0, "too_few_points")]
    assert f"fewer than its {own} free parameters" in str(issues[0])


def test_constant_columns_are_nobody_s_collapse():
    raw = np.array([[0.0, 20.0], [0.0, 30.0]])
    assert screen(raw, [100, 100], ct="diag", data_var=np.array([0.0, 100.0])) == []


def test_a_collapsed_tied_covariance_is_reported_against_all_components():
    issues = screen(np.diag([1e-12, 20.0]), [100, 100], ct="tied")
    assert [(i.component, i.kind) for i in issues] == [(-1, "collapsed")]
    assert "the shared covariance" in str(issues[0])


def test_skipped_components_are_not_judged():
    raw = np.array([[0.0, 0.0], [1.0, 20.0]])
    assert screen(raw, [0.0, 100], ct="diag", reg=0.0) != []
    assert G.screen_components(raw, np.array([0.0, 100]), DATA_VAR, "diag", 0.0,
                               skip=[0]) == []
