"""emix.plots: figures hold the right artists at the right places, headless, lazily imported."""

from __future__ import annotations

import math
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")

from matplotlib.figure import Figure
from matplotlib.patches import Ellipse

import emix
from emix import plots
from emix.exceptions import InputError, NotFittedError

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# NumPy 2 renamed trapz; pyproject allows NumPy 1.24.
trapezoid = getattr(np, "trapezoid", None) or np.trapz


# ------------------------------------------------------------------------------ data


@pytest.fixture(scope="module")
def x1d():
    rng = np.random.default_rng(1)
    return np.concatenate([rng.normal(0.0, 1.0, 300), rng.normal(6.0, 0.5, 200)])


@pytest.fixture(scope="module")
def models_1d(x1d):
    return {
        ct: emix.GaussianMixture(2, covariance_type=ct, random_state=0).fit(x1d)
        for ct in COVARIANCE_TYPES
    }


@pytest.fixture(scope="module")
def x3d():
    rng = np.random.default_rng(2)
    # Correlated features, so that the marginal covariance of a pair matters.
    cov_a = [[1.0, 0.6, -0.5], [0.6, 2.0, 0.3], [-0.5, 0.3, 1.5]]
    cov_b = [[0.5, -0.2, 0.1], [-0.2, 0.8, 0.0], [0.1, 0.0, 0.3]]
    a = rng.multivariate_normal([0, 0, 0], cov_a, 250)
    b = rng.multivariate_normal([5, 1, 4], cov_b, 250)
    return np.vstack([a, b])


@pytest.fixture(scope="module")
def models_3d(x3d):
    return {
        ct: emix.GaussianMixture(2, covariance_type=ct, random_state=0).fit(x3d)
        for ct in COVARIANCE_TYPES
    }


def full_covariances(model) -> np.ndarray:
    """The model's covariances as (K, D, D), written out independently of emix.plots."""
    K, D = model.means_.shape
    c = np.asarray(model.covariances_, dtype=float)
    return {
        "full": lambda: c,
        "tied": lambda: np.stack([c] * K),
        "diag": lambda: np.stack([np.diag(v) for v in c]),
        "spherical": lambda: np.stack([v * np.eye(D) for v in c]),
    }[model.covariance_type]()


def selection_stub(best_index=2):
    table = []
    for ct, slope in (("full", 1.0), ("diag", 2.0)):
        for k in range(1, 6):
            table.append({
                "n_components": k,
                "covariance_type": ct,
                "criterion": 100.0 - 10.0 * k + slope * k * k,
                "degenerate": ct == "diag" and k == 4,
            })
    # A failed fit: plotted nowhere.
    table.append({"n_components": 6, "covariance_type": "full", "criterion": math.inf,
                  "degenerate": False})
    table.append({"n_components": 6, "covariance_type": "diag", "criterion": math.nan,
                  "degenerate": False})
    return SimpleNamespace(criterion="bic", table=table, best_index=best_index)


# ------------------------------------------------------------------------------ import cost


def test_import_plots_does_not_import_matplotlib():
    code = "import sys, emix, emix.plots\nprint('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"


# ------------------------------------------------------------------------------ common


def _all_plots(models_1d, x1d, models_3d, x3d):
    return {
        "mixture_1d": lambda ax=None: plots.plot_mixture_1d(models_1d["full"], x1d, ax=ax),
        "mixture_2d": lambda ax=None: plots.plot_mixture_2d(models_3d["full"], x3d, ax=ax),
        "loglik": lambda ax=None: plots.plot_loglik(models_3d["full"], ax=ax),
        "criterion": lambda ax=None: plots.plot_criterion(selection_stub(), ax=ax),
        "likelihood": lambda ax=None: plots.plot_likelihood_curve("poisson", [0, 2, 3, 1],
                                                                  ax=ax),
    }


@pytest.mark.parametrize("name", ["mixture_1d", "mixture_2d", "loglik", "criterion",
                                  "likelihood"])
def test_figure_saves_png_and_draws_into_given_axes(name, models_1d, x1d, models_3d, x3d,
                                                   tmp_path):
    make = _all_plots(models_1d, x1d, models_3d, x3d)[name]
    fig = make()
    assert isinstance(fig, Figure)
    path = tmp_path / "x.png"
    fig.savefig(path)
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 1000

    host = Figure()
    left, right = host.subplots(1, 2)
    assert make(ax=right) is host
    assert len(left.get_lines()) == len(left.collections) == len(left.patches) == 0
    assert right.get_lines() or right.collections


def test_ax_must_be_an_axes(models_3d):
    with pytest.raises(InputError, match="Axes"):
        plots.plot_loglik([1.0, 2.0], ax="left")


def test_axes_in_a_subfigure_returns_the_savable_figure():
    root = Figure()
    ax = root.subfigures(1, 2)[1].add_subplot()
    assert plots.plot_loglik([1.0, 2.0], ax=ax) is root


# ------------------------------------------------------------------------------ 1-D mixture


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_mixture_1d_densities(ct, models_1d, x1d):
    model = models_1d[ct]
    fig = plots.plot_mixture_1d(model, x1d)
    (ax,) = fig.axes
    lines = ax.get_lines()
    K = model.n_components
    assert len(lines) == K + 1
    *components, mixture = lines
    grid, mix = mixture.get_xdata(), mixture.get_ydata()
    assert grid.min() <= x1d.min() and grid.max() >= x1d.max()
    # The mixture line is the model's density, and it integrates to 1.
    np.testing.assert_allclose(mix, np.exp(model.score_samples(grid)), rtol=1e-5, atol=1e-12)
    assert trapezoid(mix, grid) == pytest.approx(1.0, abs=1e-3)
    # Components add up to the mixture; each encloses its weight.
    np.testing.assert_allclose(sum(c.get_ydata() for c in components), mix, rtol=1e-12)
    for k, c in enumerate(components):
        assert trapezoid(c.get_ydata(), c.get_xdata()) == pytest.approx(
            float(model.weights_[k]), abs=1e-3)
        assert f"w = {float(model.weights_[k]):.3g}" in c.get_label()
    assert mixture.get_linewidth() > max(c.get_linewidth() for c in components)
    # The histogram is a density: its bars' area is 1.
    area = sum(p.get_width() * p.get_height() for p in ax.patches)
    assert area == pytest.approx(1.0)


def test_mixture_1d_keeps_a_narrow_component(x1d):
    model = emix.GaussianMixture(2, covariance_type="spherical", random_state=0).fit(x1d)
    model.covariances_ = np.array([1e-6, 1.0])  # sd 1e-3: a spike between grid points
    model.means_ = np.array([[0.123456], [6.0]])
    fig = plots.plot_mixture_1d(model, x1d)
    spike = fig.axes[0].get_lines()[0].get_ydata()
    peak = float(model.weights_[0]) / (1e-3 * math.sqrt(2 * math.pi))
    assert spike.max() == pytest.approx(peak, rel=1e-3)


def test_mixture_1d_accepts_column_vector_and_bins(models_1d, x1d):
    fig = plots.plot_mixture_1d(models_1d["diag"], x1d.reshape(-1, 1), bins=7)
    assert len(fig.axes[0].patches) == 7


def test_mixture_1d_errors(models_1d, models_3d, x1d, x3d):
    with pytest.raises(InputError, match=r"one feature.*3 features"):
        plots.plot_mixture_1d(models_3d["full"], x3d)
    with pytest.raises(InputError, match="one feature"):
        plots.plot_mixture_1d(models_1d["full"], x3d[:, :2])
    with pytest.raises(NotFittedError, match="not fitted"):
        plots.plot_mixture_1d(emix.GaussianMixture(2), x1d)
    with pytest.raises(InputError, match="fitted Gaussian mixture"):
        plots.plot_mixture_1d(object(), x1d)


def test_mixture_1d_refuses_a_zero_variance_component(x1d):
    model = emix.GaussianMixture(2, covariance_type="diag", random_state=0).fit(x1d)
    model.covariances_ = np.array([[0.0], [1.0]])
    with pytest.raises(InputError, match=r"component 0 .*positive, finite variance"):
        plots.plot_mixture_1d(model, x1d)


# ------------------------------------------------------------------------------ 2-D mixture


def _unit_circle_on(ellipse) -> np.ndarray:
    t = np.linspace(0.0, 2.0 * np.pi, 37)
    return ellipse.get_patch_transform().transform(np.column_stack([np.cos(t), np.sin(t)]))


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
@pytest.mark.parametrize("dims", [(0, 1), (2, 0)])
def test_mixture_2d_ellipses_and_points(ct, dims, models_3d, x3d):
    model = models_3d[ct]
    n_std = 1.5
    fig = plots.plot_mixture_2d(model, x3d, dims=dims, n_std=n_std)
    (ax,) = fig.axes
    K = model.n_components
    ellipses = [p for p in ax.patches if isinstance(p, Ellipse)]
    assert len(ellipses) == K
    covs = full_covariances(model)
    idx = np.ix_(dims, dims)
    for k, e in enumerate(ellipses):
        c2 = covs[k][idx]
        mean2 = np.asarray(model.means_[k], dtype=float)[list(dims)]
        np.testing.assert_allclose(e.center, mean2, rtol=1e-6)
        vals = np.linalg.eigvalsh(c2)
        np.testing.assert_allclose(sorted([e.width, e.height]),
                                   2 * n_std * np.sqrt(vals), rtol=1e-6)
        # Every point of the drawn ellipse is n_std Mahalanobis units from the mean.
        d = _unit_circle_on(e) - mean2
        maha = np.sqrt(np.einsum("ni,ij,nj->n", d, np.linalg.inv(c2), d))
        np.testing.assert_allclose(maha, n_std, rtol=1e-6)
    # One scatter per component coloured by prediction, then the means.
    labels = model.predict(x3d)
    assert len(ax.collections) == K + 1
    for k in range(K):
        pts = ax.collections[k].get_offsets()
        np.testing.assert_allclose(pts, x3d[labels == k][:, list(dims)])
    np.testing.assert_allclose(ax.collections[-1].get_offsets(),
                               np.asarray(model.means_, dtype=float)[:, list(dims)], rtol=1e-6)
    assert ax.get_xlabel() == f"feature {dims[0]}"


def test_mixture_2d_uses_feature_names(x3d):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(x3d, columns=["height", "weight", "age"])
    model = emix.GaussianMixture(2, random_state=0).fit(df)
    fig = plots.plot_mixture_2d(model, df, dims=("age", "height"))
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("age", "height")
    np.testing.assert_allclose(ax.collections[-1].get_offsets(),
                               model.means_[:, [2, 0]], rtol=1e-6)
    with pytest.raises(InputError, match=r"'bmi'.*height"):
        plots.plot_mixture_2d(model, df, dims=("bmi", "age"))


def test_mixture_2d_errors(models_1d, models_3d, x1d, x3d):
    model = models_3d["full"]
    with pytest.raises(InputError, match=r"dims=\(0, 5\) is out of range.*3 features"):
        plots.plot_mixture_2d(model, x3d, dims=(0, 5))
    with pytest.raises(InputError, match="same feature twice"):
        plots.plot_mixture_2d(model, x3d, dims=(1, 1))
    with pytest.raises(InputError, match="exactly two"):
        plots.plot_mixture_2d(model, x3d, dims=(0, 1, 2))
    with pytest.raises(InputError, match="integers or feature names"):
        plots.plot_mixture_2d(model, x3d, dims=(0, 1.0))
    with pytest.raises(InputError, match="n_std"):
        plots.plot_mixture_2d(model, x3d, n_std=0)
    with pytest.raises(InputError, match="at least two features"):
        plots.plot_mixture_2d(models_1d["full"], x1d)
    with pytest.raises(InputError, match=r"2 features.*expecting 3"):
        plots.plot_mixture_2d(model, x3d[:, :2])
    with pytest.raises(NotFittedError, match="not fitted"):
        plots.plot_mixture_2d(emix.GaussianMixture(2), x3d)


# ------------------------------------------------------------------------------ log-likelihood


def test_loglik_from_model(models_3d):
    model = models_3d["full"]
    fig = plots.plot_loglik(model)
    line = fig.axes[0].get_lines()[0]
    np.testing.assert_array_equal(line.get_ydata(), model.lower_bounds_)
    np.testing.assert_array_equal(line.get_xdata(), np.arange(1, model.n_iter_ + 1))
    assert "iteration" in fig.axes[0].get_title()


def test_loglik_marks_decreases():
    fig = plots.plot_loglik([-5.0, -3.0, -3.5, -2.0, -2.0, -2.1])
    lines = fig.axes[0].get_lines()
    assert len(lines) == 2
    np.testing.assert_array_equal(lines[1].get_xdata(), [3, 6])
    np.testing.assert_array_equal(lines[1].get_ydata(), [-3.5, -2.1])
    assert lines[1].get_marker() == "v"
    assert "2 iteration" in lines[1].get_label()


def test_loglik_monotone_has_one_line_and_monitor_is_accepted():
    monitor = emix.ConvergenceMonitor()
    monitor.history = [-3.0, -2.0, -1.5]
    fig = plots.plot_loglik(monitor)
    (line,) = fig.axes[0].get_lines()
    np.testing.assert_array_equal(line.get_ydata(), [-3.0, -2.0, -1.5])


@pytest.mark.parametrize("bad, match", [
    ([], "empty"),
    ([[1.0, 2.0]], "one-dimensional"),
    ([1.0, float("nan"), 2.0], "NaN or infinite.*iteration.* 2"),
    ("abc", "sequence"),
    (["a", "b"], "numbers"),
])
def test_loglik_errors(bad, match):
    with pytest.raises(InputError, match=match):
        plots.plot_loglik(bad)


def test_loglik_unfitted_model():
    with pytest.raises(NotFittedError, match="not fitted"):
        plots.plot_loglik(emix.GaussianMixture(2))


# ------------------------------------------------------------------------------ criterion


def test_criterion_lines_degenerate_and_best():
    sel = selection_stub(best_index=2)
    fig = plots.plot_criterion(sel)
    ax = fig.axes[0]
    by_label = {ln.get_label(): ln for ln in ax.get_lines()}
    full, diag = by_label["full"], by_label["diag"]
    # Failed (inf / nan) candidates are left out.
    np.testing.assert_array_equal(full.get_xdata(), [1, 2, 3, 4, 5])
    np.testing.assert_array_equal(diag.get_xdata(), [1, 2, 3, 4, 5])
    np.testing.assert_allclose(full.get_ydata(), [100 - 10 * k + k * k for k in range(1, 6)])
    # The degenerate diag candidate at K=4 has no dot but an x.
    assert list(diag.get_markevery()) == [0, 1, 2, 4]
    assert list(full.get_markevery()) == [0, 1, 2, 3, 4]
    degenerate = by_label["degenerate"]
    assert degenerate.get_marker() == "x" and degenerate.get_linestyle() == "None"
    np.testing.assert_array_equal(degenerate.get_xdata(), [4])
    np.testing.assert_allclose(degenerate.get_ydata(), [100 - 40 + 32])
    (best,) = [ln for ln in ax.get_lines() if ln.get_marker() == "*"]
    np.testing.assert_array_equal(best.get_xdata(), [3])
    np.testing.assert_allclose(best.get_ydata(), [79.0])
    assert "BIC" in ax.get_ylabel()
    assert len(ax.get_lines()) == 4


def test_criterion_without_best_and_one_degenerate_legend_entry():
    sel = selection_stub(best_index=None)
    sel.table[0]["degenerate"] = True  # a degenerate "full" candidate too
    ax = plots.plot_criterion(sel).axes[0]
    assert not [ln for ln in ax.get_lines() if ln.get_marker() == "*"]
    xs = [ln for ln in ax.get_lines() if ln.get_marker() == "x"]
    assert len(xs) == 2
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend.count("degenerate") == 1


def test_criterion_errors():
    with pytest.raises(InputError, match="best_index"):
        plots.plot_criterion(selection_stub(best_index=99))
    with pytest.raises(InputError, match="lacks table"):
        plots.plot_criterion(SimpleNamespace(criterion="bic", best_index=None))
    bad = selection_stub()
    del bad.table[3]["covariance_type"]
    with pytest.raises(InputError, match=r"table\[3\] lacks the key\(s\) covariance_type"):
        plots.plot_criterion(bad)
    failed = SimpleNamespace(criterion="aic", best_index=None, table=[
        {"n_components": 1, "covariance_type": "full", "criterion": math.inf,
         "degenerate": False}])
    with pytest.raises(InputError, match="finite aic"):
        plots.plot_criterion(failed)


def test_criterion_of_a_real_selection(x1d):
    sel = emix.select(x1d, n_components=[1, 2, 3], covariance_types=["full", "spherical"],
                      n_init=1, random_state=0)
    ax = plots.plot_criterion(sel).axes[0]
    (best,) = [ln for ln in ax.get_lines() if ln.get_marker() == "*"]
    assert best.get_xdata()[0] == sel.n_components
    assert best.get_ydata()[0] == pytest.approx(sel.best["criterion"])
    assert {"full", "spherical"} <= {ln.get_label() for ln in ax.get_lines()}


# ------------------------------------------------------------------------------ likelihood


def _curve_parts(fig):
    ax = fig.axes[0]
    curve, vline, mark = ax.get_lines()
    return ax, curve, vline, mark


def test_likelihood_curve_bernoulli_peaks_at_the_mle():
    x = [1] * 70 + [0] * 30
    ax, curve, vline, mark = _curve_parts(plots.plot_likelihood_curve("bernoulli", x))
    p, ll = curve.get_xdata(), curve.get_ydata()
    assert 0.0 < p.min() < 0.7 < p.max() < 1.0
    np.testing.assert_allclose(ll, 70 * np.log(p) + 30 * np.log1p(-p), rtol=1e-12)
    assert p[np.argmax(ll)] == pytest.approx(0.7)
    np.testing.assert_allclose(vline.get_xdata(), [0.7, 0.7])
    assert mark.get_xdata()[0] == pytest.approx(0.7)
    assert mark.get_ydata()[0] == pytest.approx(70 * math.log(0.7) + 30 * math.log(0.3))
    assert mark.get_ydata()[0] >= np.max(ll)
    (note,) = ax.texts
    assert "p = 0.7" in note.get_text()
    assert ax.get_xlabel() == "p"


@pytest.mark.parametrize("family, x, param, expected", [
    ("poisson", [0, 2, 3, 1, 4], "rate", 2.0),
    ("exponential", [0.5, 1.5, 1.0], "rate", 1.0),
    ("normal", [1.0, 2.0, 3.0, 6.0], "mean", 3.0),
    ("normal", [1.0, 2.0, 3.0, 6.0], "sd", math.sqrt(3.5)),
])
def test_likelihood_curve_marks_the_mle(family, x, param, expected):
    fig = plots.plot_likelihood_curve(family, x, param=param)
    _, curve, _, mark = _curve_parts(fig)
    assert mark.get_xdata()[0] == pytest.approx(expected, rel=1e-12)
    grid, ll = curve.get_xdata(), curve.get_ydata()
    assert grid.min() < expected < grid.max()
    assert np.nanmax(ll) == pytest.approx(mark.get_ydata()[0], rel=1e-12)


def test_likelihood_curve_of_sd_holds_the_mean_at_its_mle():
    x = np.array([1.0, 2.0, 3.0, 6.0])
    _, curve, _, _ = _curve_parts(plots.plot_likelihood_curve("normal", x, param="sd"))
    sd = curve.get_xdata()
    expected = -4 * np.log(sd) - 2 * np.log(2 * np.pi) - 0.5 * 14.0 / sd**2
    np.testing.assert_allclose(curve.get_ydata(), expected, rtol=1e-12)


def test_likelihood_curve_with_held_parameters_marks_the_conditional_maximum():
    x = np.array([1.0, 2.0, 3.0, 6.0])
    fig = plots.plot_likelihood_curve("normal", x, param="sd", params={"mean": 2.0})
    ax, _, _, mark = _curve_parts(fig)
    assert mark.get_xdata()[0] == pytest.approx(math.sqrt(np.mean((x - 2.0) ** 2)), rel=1e-7)
    assert "maximum" in ax.texts[0].get_text() and "mean = 2" in ax.get_title()


def test_likelihood_curve_from_a_result_and_weights():
    x = [1, 0, 1, 1]
    w = [2.0, 1.0, 0.0, 3.0]
    res = emix.mle.fit_bernoulli(x, sample_weight=w)
    fig = plots.plot_likelihood_curve(res, x, sample_weight=w)
    _, curve, _, mark = _curve_parts(fig)
    assert mark.get_xdata()[0] == pytest.approx(5 / 6)
    p = curve.get_xdata()
    np.testing.assert_allclose(curve.get_ydata(), 5 * np.log(p) + np.log1p(-p), rtol=1e-12)
    with pytest.raises(InputError, match="not fitted to x"):
        plots.plot_likelihood_curve(res, x)  # the weights are missing


def test_likelihood_curve_binomial_trials_from_result_or_params():
    x = [3, 5, 4]
    res = emix.mle.fit("binomial", x, n_trials=10)
    a = _curve_parts(plots.plot_likelihood_curve(res, x))[3].get_xdata()[0]
    b = _curve_parts(plots.plot_likelihood_curve("binomial", x, params={"n_trials": 10}))
    assert a == b[3].get_xdata()[0] == pytest.approx(0.4)


def test_likelihood_curve_explicit_grid_leaves_gaps_outside_the_space():
    grid = [1.1, -0.1, 0.0, 0.5, 0.9]
    fig = plots.plot_likelihood_curve("bernoulli", [1, 0, 1], grid=grid)
    _, curve, _, mark = _curve_parts(fig)
    np.testing.assert_array_equal(curve.get_xdata(), [-0.1, 0.0, 0.5, 0.9, 1.1])
    ll = curve.get_ydata()
    assert np.isnan(ll[[0, 1, 4]]).all() and np.isfinite(ll[[2, 3]]).all()
    assert mark.get_xdata()[0] == pytest.approx(2 / 3)


@pytest.mark.parametrize("kwargs, match", [
    ({"family": "normal"}, "parameters mean, sd; choose one with param="),
    ({"family": "normal", "param": "lam"}, "no parameter 'lam'"),
    ({"family": "normal", "param": "sd", "params": {"mu": 1.0}}, "'mu'"),
    ({"family": "normal", "param": "sd", "params": [1.0]}, "mapping"),
    ({"family": "wobbly"}, "unknown family"),
    ({"family": "categorical"}, "sum to 1"),
    ({"family": "exponential", "grid": [-2.0, -1.0]}, "-inf at every grid value"),
    ({"family": "exponential", "grid": [1.0]}, "at least 2"),
    ({"family": "exponential", "grid": [1.0, np.nan]}, "NaN"),
])
def test_likelihood_curve_errors(kwargs, match):
    family = kwargs.pop("family")
    with pytest.raises(InputError, match=match):
        plots.plot_likelihood_curve(family, [1.0, 2.0, 2.0], **kwargs)


def test_criterion_plot_draws_one_line_per_family_when_families_are_compared():
    import emix

    rng = np.random.default_rng(0)
    X = np.concatenate([rng.exponential(1.0, (150, 2)), rng.exponential(8.0, (150, 2))])
    sel = emix.select(X, n_components=[1, 2], families=["gaussian", "exponential"],
                      covariance_types=["diag"], random_state=0)
    fig = emix.plots.plot_criterion(sel)
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert "diag" in labels and "exponential" in labels and "None" not in labels
