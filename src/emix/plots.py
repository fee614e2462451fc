"""Figures for fitted models, EM runs, model selection and single-distribution fits.

Every function returns a :class:`matplotlib.figure.Figure`. Pass ``ax=`` to draw into an
existing :class:`matplotlib.axes.Axes` (the function then returns that axes' figure);
without it a new figure is made with ``matplotlib.figure.Figure()``, not ``pyplot``, so
the functions work headless, never open a window, and leave no figures behind in
pyplot's global state. Nothing here calls ``plt.show``; display or save the figure
yourself (``fig.savefig("fit.png")``, or let Jupyter show it).

matplotlib is an optional dependency (``pip install emix[plots]``). It is imported inside
each function, so ``import emix.plots`` costs nothing until a figure is drawn.

Functions
---------
plot_mixture_1d
    Histogram of one-feature data with each component's weighted density and the mixture.
plot_mixture_2d
    Scatter of two features coloured by component, with covariance ellipses and means.
plot_loglik
    Log-likelihood per EM iteration, with any decreases marked.
plot_criterion
    Model-selection criterion against the number of components, per covariance type.
plot_likelihood_curve
    Log-likelihood of a single-distribution fit as a function of one parameter.
plot_em_step, save_em_animation
    EM at work on an :func:`emix.explain` trace: the curves after each iteration beside
    the climbing log-likelihood, as one figure, an animated GIF or PNG frames.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence

import numpy as np

from .exceptions import InputError, NotFittedError, sklearn_compatible

__all__ = [
    "plot_criterion",
    "plot_likelihood_curve",
    "plot_loglik",
    "plot_mixture_1d",
    "plot_mixture_2d",
    "plot_em_step",
    "save_em_animation",
]

_COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


# --------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------


def _figure_and_axes(ax):
    """``(figure, axes)``: the given axes and its figure, or a new pyplot-free figure."""
    if ax is None:
        from matplotlib.figure import Figure

        fig = Figure(layout="constrained")
        return fig, fig.add_subplot()
    from matplotlib.axes import Axes

    if not isinstance(ax, Axes):
        raise InputError(f"ax must be a matplotlib Axes or None; got {type(ax).__name__}")
    try:
        # An axes inside a SubFigure: the caller wants the Figure they can save.
        fig = ax.get_figure(root=True)
    except TypeError:  # matplotlib < 3.10 has no ``root`` and no nested figures to climb
        fig = ax.get_figure()
    return fig, ax


def _colors(n: int) -> list:
    """``n`` distinguishable colours; the same component gets the same colour everywhere."""
    import matplotlib

    if n > 20:
        # Qualitative maps run out; a perceptual map at least keeps neighbours apart.
        return [matplotlib.colormaps["viridis"](t) for t in np.linspace(0.0, 1.0, n)]
    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(k) for k in range(n)]


def _check_fitted_mixture(model, caller: str) -> None:
    """Raise the model's own NotFittedError, or InputError for something not a mixture."""
    check = getattr(model, "_check_is_fitted", None)
    if callable(check):
        check(caller)
    missing = [a for a in ("weights_", "means_", "covariances_") if not hasattr(model, a)]
    if not missing:
        return
    if hasattr(model, "fit"):
        # A mixture from another library (scikit-learn's has the same attributes), not
        # fitted yet: same error class as emix's own models raise.
        raise sklearn_compatible(NotFittedError, "NotFittedError")(
            f"This {type(model).__name__} instance is not fitted yet; call fit before "
            f"{caller}."
        )
    raise InputError(
        f"{caller} needs a fitted Gaussian mixture (an object with weights_, means_ and "
        f"covariances_, such as emix.GaussianMixture); got {type(model).__name__}"
    )


def _mixture_parameters(model):
    """Fitted parameters in float64 with covariances expanded to full matrices.

    Returns
    -------
    weights : ndarray of shape (K,)
    means : ndarray of shape (K, D)
    covariances : ndarray of shape (K, D, D)
    """
    weights = np.asarray(model.weights_, dtype=np.float64).reshape(-1)
    means = np.asarray(model.means_, dtype=np.float64)
    if means.ndim != 2 or means.shape[0] != weights.shape[0]:
        raise InputError(
            f"the model's means_ has shape {means.shape}; expected ({weights.shape[0]}, D)"
        )
    K, D = means.shape
    cov = np.asarray(model.covariances_, dtype=np.float64)
    ct = getattr(model, "covariance_type", "full")
    if ct not in _COVARIANCE_TYPES:
        raise InputError(f"covariance_type must be one of {_COVARIANCE_TYPES}; got {ct!r}")
    from .families.gaussian import covariance_shape

    expected = covariance_shape(ct, K, D)
    if cov.shape != expected:
        raise InputError(
            f"the model's covariances_ has shape {cov.shape}, but covariance_type={ct!r} "
            f"with {K} components and {D} features needs {expected}"
        )
    if ct == "full":
        full = cov.copy()
    elif ct == "tied":
        full = np.broadcast_to(cov, (K, D, D)).copy()
    elif ct == "diag":
        full = np.zeros((K, D, D))
        full[:, np.arange(D), np.arange(D)] = cov
    else:
        full = cov[:, None, None] * np.eye(D)
    return weights, means, full


def _data_matrix(X, name: str = "X") -> np.ndarray:
    """Data as a float64 host array of shape (N, D); 1-D input is one feature."""
    from ._validation import check_array
    from .backends import is_torch_tensor

    if is_torch_tensor(X):
        X = X.detach().cpu().numpy()
    arr, _ = check_array(X, name=name)
    return np.asarray(arr, dtype=np.float64)


def _feature_name(model, j: int) -> str:
    names = getattr(model, "feature_names_in_", None)
    if names is not None and j < len(names):
        return str(names[j])
    return f"feature {j}"


def _n_features(model) -> int:
    D = getattr(model, "n_features_in_", None)
    return int(D) if D is not None else int(np.shape(model.means_)[1])


# --------------------------------------------------------------------------------------
# Mixtures
# --------------------------------------------------------------------------------------


def plot_mixture_1d(model, X, *, bins="auto", ax=None):
    """Histogram of one-feature data with the fitted mixture's densities over it.

    Draws the data as a density-scaled histogram, one line per component showing
    ``weight_k * N(x | mean_k, sd_k**2)`` (labelled with the weight, mean and standard
    deviation), and the mixture density, their sum, as a thicker black line. The
    component lines therefore add up to the mixture line, and each encloses an area
    equal to its weight.

    Parameters
    ----------
    model : GaussianMixture
        A mixture fitted on one feature, of any ``covariance_type``.
    X : array-like of shape (N,) or (N, 1)
        Data to show, usually the data the model was fitted on.
    bins : int, sequence or str, default="auto"
        Passed to :meth:`matplotlib.axes.Axes.hist`.
    ax : matplotlib.axes.Axes, optional
        Axes to draw into; a new figure is made when omitted.

    Returns
    -------
    matplotlib.figure.Figure
        The figure holding the plot. Its axes hold K + 1 lines: the components in
        order, then the mixture.

    Raises
    ------
    NotFittedError
        If the model has not been fitted.
    InputError
        If the model or `X` has more than one feature, or `X` is not numeric data.
    """
    _check_fitted_mixture(model, "plot_mixture_1d")
    D = _n_features(model)
    if D != 1:
        raise InputError(
            f"plot_mixture_1d needs a model fitted on one feature; this model has {D} "
            "features. Use plot_mixture_2d to look at two of them."
        )
    x = _data_matrix(X)
    if x.shape[1] != 1:
        raise InputError(
            f"plot_mixture_1d needs one feature of data; X has shape {x.shape} "
            f"({x.shape[1]} features)"
        )
    x = x[:, 0]
    weights, means, cov = _mixture_parameters(model)
    mu = means[:, 0]
    sd = np.sqrt(cov[:, 0, 0])
    flat = np.flatnonzero(~(sd > 0) | ~np.isfinite(sd) | ~np.isfinite(mu))
    if flat.size:
        k = int(flat[0])
        raise InputError(
            f"component {k} has mean {mu[k]!r} and variance {cov[k, 0, 0]!r}; a density "
            "can be drawn only for a finite mean and a positive, finite variance"
        )

    # The grid spans the data and four standard deviations around every component, and
    # takes extra points across each component: a narrow (nearly collapsed) component
    # would otherwise fall between grid points and its spike would vanish from the plot.
    lo = min(x.min(), float(np.min(mu - 4.0 * sd)))
    hi = max(x.max(), float(np.max(mu + 4.0 * sd)))
    local = (mu[:, None] + sd[:, None] * np.linspace(-4.0, 4.0, 81)).ravel()
    grid = np.unique(np.concatenate([np.linspace(lo, hi, 1000), local]))
    z = (grid[None, :] - mu[:, None]) / sd[:, None]
    comp = weights[:, None] * np.exp(-0.5 * z * z) / (sd[:, None] * math.sqrt(2.0 * math.pi))
    mix = comp.sum(axis=0)

    fig, ax = _figure_and_axes(ax)
    ax.hist(x, bins=bins, density=True, color="0.82", edgecolor="0.6", linewidth=0.5,
            label=f"data (n = {x.shape[0]})")
    colors = _colors(len(weights))
    # Where components are well separated each one coincides with the mixture; dashed
    # component lines drawn above the thick mixture line keep both visible there.
    for k in range(len(weights)):
        ax.plot(grid, comp[k], color=colors[k], linewidth=1.75, linestyle="--", zorder=3,
                label=f"component {k}: w = {weights[k]:.3g}, mean = {mu[k]:.4g}, "
                      f"sd = {sd[k]:.3g}")
    ax.plot(grid, mix, color="black", linewidth=2.75, zorder=2, label="mixture")
    ax.set_xlabel(_feature_name(model, 0) if hasattr(model, "feature_names_in_") else "x")
    ax.set_ylabel("density")
    ct = getattr(model, "covariance_type", "full")
    ax.set_title(f"Gaussian mixture, {len(weights)} component(s), covariance_type={ct!r}")
    ax.legend(fontsize="small")
    return fig


def _ellipse_geometry(cov2: np.ndarray, n_std: float) -> tuple[float, float, float]:
    """Width, height and angle (degrees) of the ``n_std`` ellipse of a 2x2 covariance.

    The width runs along the major axis (the larger eigenvalue's eigenvector).
    """
    vals, vecs = np.linalg.eigh(cov2)
    # Round-off can make a singular marginal covariance's smallest eigenvalue -1e-17.
    vals = np.clip(vals, 0.0, None)
    major = vecs[:, 1]
    angle = math.degrees(math.atan2(major[1], major[0]))
    return 2.0 * n_std * math.sqrt(vals[1]), 2.0 * n_std * math.sqrt(vals[0]), angle


def _resolve_dims(model, dims, D: int) -> tuple[int, int]:
    """Two distinct column indices from ``dims`` (ints, or feature names of a DataFrame fit)."""
    if isinstance(dims, (str, bytes)) or not isinstance(dims, Sequence | np.ndarray):
        raise InputError(f"dims must be a pair of feature indices such as (0, 1); got {dims!r}")
    dims = list(dims)
    if len(dims) != 2:
        raise InputError(f"dims must name exactly two features; got {len(dims)}: {dims!r}")
    names = getattr(model, "feature_names_in_", None)
    out = []
    for d in dims:
        if isinstance(d, str):
            if names is None or d not in list(names):
                known = "" if names is None else f"; the model's features are {list(names)}"
                raise InputError(f"dims names feature {d!r}, which the model does not have"
                                 + known)
            out.append(list(names).index(d))
        elif isinstance(d, numbers.Integral) and not isinstance(d, bool):
            if not -D <= int(d) < D:
                raise InputError(
                    f"dims={tuple(dims)!r} is out of range: the model has {D} features, so "
                    f"indices run from 0 to {D - 1}"
                )
            out.append(int(d) % D)
        else:
            raise InputError(f"dims entries must be integers or feature names; got {d!r}")
    if out[0] == out[1]:
        raise InputError(f"dims={tuple(dims)!r} names the same feature twice; pick two")
    return out[0], out[1]


def plot_mixture_2d(model, X, *, dims=(0, 1), n_std=2.0, ax=None):
    """Scatter of two features coloured by predicted component, with covariance ellipses.

    Each row of `X` is coloured by ``model.predict(X)``. Every component gets an ellipse
    (:class:`matplotlib.patches.Ellipse`) drawn at `n_std` standard deviations of its
    marginal covariance in the two chosen features, and its mean is marked with a
    black-edged cross.

    Parameters
    ----------
    model : GaussianMixture
        A fitted mixture with at least two features, of any ``covariance_type``.
    X : array-like of shape (N, D)
        Data with the model's features, usually the data it was fitted on. A DataFrame
        is accepted when the model was fitted on one.
    dims : pair of int or str, default=(0, 1)
        The features on the horizontal and vertical axes: column indices, or column
        names when the model was fitted on a DataFrame.
    n_std : float, default=2.0
        Size of the ellipses, in standard deviations (Mahalanobis distance).
    ax : matplotlib.axes.Axes, optional
        Axes to draw into; a new figure is made when omitted.

    Returns
    -------
    matplotlib.figure.Figure
        The figure holding the plot. Its axes hold K scatter collections (one per
        component, in order, possibly empty), one collection of the K means (last), and
        K ellipse patches.

    Raises
    ------
    NotFittedError
        If the model has not been fitted.
    InputError
        If the model has fewer than two features, `dims` does not name two distinct
        features of it, `n_std` is not a positive number, or `X` does not match the model.

    Notes
    -----
    The ellipse is the set of points at Mahalanobis distance `n_std` from the mean in
    the two chosen features: width and height are ``2 * n_std * sqrt(eigenvalue)`` of
    the 2x2 marginal covariance, along its eigenvectors. For a two-dimensional Gaussian
    it holds a fraction ``1 - exp(-n_std**2 / 2)`` of the component's mass (86.5% for
    the default 2), not the 95.4% that two standard deviations cover in one dimension.
    """
    _check_fitted_mixture(model, "plot_mixture_2d")
    D = _n_features(model)
    if D < 2:
        raise InputError(
            "plot_mixture_2d needs a model with at least two features; this one has 1. "
            "Use plot_mixture_1d."
        )
    i, j = _resolve_dims(model, dims, D)
    if (not isinstance(n_std, numbers.Real) or isinstance(n_std, bool)
            or not math.isfinite(n_std) or n_std <= 0):
        raise InputError(f"n_std must be a positive number; got {n_std!r}")
    # predict validates X against the model (feature count and names) with emix's
    # messages, so it runs on X exactly as the caller gave it.
    labels = np.asarray(model.predict(X))
    data = _data_matrix(X)
    weights, means, cov = _mixture_parameters(model)
    K = len(weights)

    from matplotlib.patches import Ellipse

    fig, ax = _figure_and_axes(ax)
    colors = _colors(K)
    for k in range(K):
        rows = labels == k
        ax.scatter(data[rows, i], data[rows, j], s=10, color=colors[k], alpha=0.6,
                   linewidths=0, label=f"component {k} (w = {weights[k]:.3g}, "
                                       f"{int(rows.sum())} points)")
    for k in range(K):
        width, height, angle = _ellipse_geometry(cov[k][np.ix_([i, j], [i, j])], float(n_std))
        ax.add_patch(Ellipse((means[k, i], means[k, j]), width, height, angle=angle,
                             fill=False, edgecolor=colors[k], linewidth=2.0))
    ax.scatter(means[:, i], means[:, j], marker="X", s=90, c=colors, edgecolors="black",
               linewidths=1.0, zorder=3, label="means")
    ax.set_xlabel(_feature_name(model, i))
    ax.set_ylabel(_feature_name(model, j))
    ct = getattr(model, "covariance_type", "full")
    ax.set_title(f"{K} component(s), covariance_type={ct!r}; ellipses at {n_std:g} sd")
    ax.legend(fontsize="small", markerscale=1.5)
    return fig


# --------------------------------------------------------------------------------------
# EM runs and model selection
# --------------------------------------------------------------------------------------


def _history_from(history) -> tuple[np.ndarray, str, object]:
    """``(values (n,), y label, model or None)`` from a model, a monitor or a sequence."""
    if hasattr(history, "lower_bounds_"):
        return (np.asarray(history.lower_bounds_, dtype=np.float64),
                "mean log-likelihood per sample", history)
    if hasattr(history, "fit"):
        _check_fitted_mixture(history, "plot_loglik")  # raises NotFittedError
        raise InputError(
            f"plot_loglik needs a model with a lower_bounds_ history; "
            f"{type(history).__name__} has none"
        )
    if hasattr(history, "history") and not isinstance(history, np.ndarray):
        # emix.ConvergenceMonitor keeps the run's values in ``history``.
        history = history.history
        label = "mean log-likelihood per sample"
    else:
        label = "log-likelihood"
    if isinstance(history, (str, bytes, Mapping)):
        raise InputError(
            "plot_loglik needs a fitted model or a sequence of log-likelihood values; got "
            f"a {type(history).__name__}"
        )
    try:
        values = np.asarray(history, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"the log-likelihood history must be numbers: {exc}") from None
    return values, label, None


def plot_loglik(history, *, ax=None):
    """Log-likelihood at every EM iteration, with any decreases marked.

    EM never lowers the likelihood (up to round-off, and up to the small gap that
    ``reg_covar`` opens), so a marked decrease points at a numerical problem or a bug.

    Parameters
    ----------
    history : GaussianMixture, ConvergenceMonitor or array-like of shape (n_iter,)
        A fitted model (its ``lower_bounds_`` are plotted), a convergence monitor (its
        ``history``), or the values themselves, one per iteration.
    ax : matplotlib.axes.Axes, optional
        Axes to draw into; a new figure is made when omitted.

    Returns
    -------
    matplotlib.figure.Figure
        The figure holding the plot. Its axes hold one line of the history and, when
        some iteration is lower than the one before it, a second line of red downward
        triangles at those iterations (numbered from 1).

    Raises
    ------
    NotFittedError
        If `history` is a model that has not been fitted.
    InputError
        If the history is empty, not one-dimensional, or holds NaN or infinite values.
    """
    values, ylabel, model = _history_from(history)
    if values.ndim != 1:
        raise InputError(
            f"the log-likelihood history must be one-dimensional; got shape {values.shape}"
        )
    if values.size == 0:
        raise InputError("the log-likelihood history is empty: there is nothing to plot")
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        shown = ", ".join(str(b + 1) for b in bad[:5]) + (" ..." if bad.size > 5 else "")
        raise InputError(
            f"the log-likelihood history holds {bad.size} NaN or infinite value(s), at "
            f"iteration(s) {shown}"
        )
    it = np.arange(1, values.size + 1)
    fig, ax = _figure_and_axes(ax)
    ax.plot(it, values, color="C0", linewidth=1.5, marker="o" if values.size <= 60 else None,
            markersize=3, label="log-likelihood")
    # Any fall is shown, however small: a plot cannot judge what round-off is, and the
    # monitor's warning already applies that judgement.
    down = np.flatnonzero(np.diff(values) < 0) + 1
    if down.size:
        ax.plot(it[down], values[down], linestyle="none", marker="v", markersize=8,
                color="red", label=f"decreased ({down.size} iteration(s))")
        ax.legend(fontsize="small")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("iteration")
    ax.set_ylabel(ylabel)
    if model is not None and hasattr(model, "converged_"):
        state = "converged" if model.converged_ else "did not converge"
        ax.set_title(f"EM {state} after {values.size} iteration(s)")
    else:
        ax.set_title(f"log-likelihood over {values.size} iteration(s)")
    return fig


def _selection_rows(selection) -> tuple[str, list[dict], int | None]:
    missing = [a for a in ("criterion", "table", "best_index") if not hasattr(selection, a)]
    if missing:
        raise InputError(
            "plot_criterion needs a model-selection result (from emix.select) with "
            f"criterion, table and best_index; {type(selection).__name__} lacks "
            f"{', '.join(missing)}"
        )
    table = selection.table
    if hasattr(table, "to_dict") and hasattr(table, "columns"):
        table = table.to_dict("records")  # a DataFrame view of the same table
    rows = list(table)
    for r, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise InputError(f"selection.table[{r}] must be a dict; got {type(row).__name__}")
        lacking = [k for k in ("n_components", "covariance_type", "criterion") if k not in row]
        if lacking:
            raise InputError(f"selection.table[{r}] lacks the key(s) {', '.join(lacking)}")
    best = selection.best_index
    if best is not None:
        if not isinstance(best, numbers.Integral) or not 0 <= int(best) < len(rows):
            raise InputError(
                f"selection.best_index={best!r} does not index the table of {len(rows)} "
                "candidate(s)"
            )
        best = int(best)
    return str(selection.criterion), rows, best


def _candidate_group(row) -> str:
    """The line a candidate belongs to: its covariance type, prefixed by its family when
    the table compares families (``poisson``, ``student_t full``)."""
    family = row.get("family")
    ct = row.get("covariance_type")
    if family in (None, "gaussian"):
        return str(ct)
    return str(family) if ct is None else f"{family} {ct}"


def plot_criterion(selection, *, ax=None):
    """Model-selection criterion against the number of components, per covariance type.

    One line per covariance type (per family and covariance type when the selection
    compared families) joins its candidates in order of ``n_components``.
    Candidates flagged degenerate (a collapsed or empty component) are drawn as an ``x``
    instead of a dot: selection never prefers them, whatever their value. The chosen
    candidate is marked with a large star. Candidates whose fit failed (criterion NaN or
    infinite) are left out.

    Parameters
    ----------
    selection : object
        A model-selection result, as returned by ``emix.select``, with attributes
        ``criterion`` (``"bic"``, ``"aic"`` or ``"icl"``), ``table`` (a list of dicts,
        one per candidate, with keys ``"n_components"``, ``"covariance_type"``,
        ``"criterion"`` and optionally ``"degenerate"``) and ``best_index`` (index into
        ``table``, or None when no candidate qualified).
    ax : matplotlib.axes.Axes, optional
        Axes to draw into; a new figure is made when omitted.

    Returns
    -------
    matplotlib.figure.Figure
        The figure holding the plot. Its axes hold, for each covariance type in the
        order first seen in the table, a line labelled with the type (dots at its
        non-degenerate candidates) followed by a line of ``x`` markers when it has
        degenerate candidates; then, when there is a best candidate, a one-point line
        with a star marker.

    Raises
    ------
    InputError
        If `selection` lacks those attributes, a row lacks a key, ``best_index`` is out
        of range, or no candidate has a finite criterion.
    """
    criterion, rows, best = _selection_rows(selection)
    groups: dict[str, list[tuple[int, float, bool]]] = {}
    for row in rows:
        value = float(row["criterion"])
        if not math.isfinite(value):
            continue
        groups.setdefault(_candidate_group(row), []).append(
            (int(row["n_components"]), value, bool(row.get("degenerate", False)))
        )
    if not groups:
        raise InputError(
            f"no candidate in the selection has a finite {criterion}: every fit failed, "
            "so there is nothing to plot"
        )

    from matplotlib.ticker import MaxNLocator

    fig, ax = _figure_and_axes(ax)
    colors = _colors(len(groups))
    degenerate_labelled = False
    for color, (ct, points) in zip(colors, groups.items(), strict=True):
        points.sort(key=lambda p: p[0])
        ks = np.array([p[0] for p in points])
        vals = np.array([p[1] for p in points])
        degenerate = np.array([p[2] for p in points])
        # The line runs through every candidate so the trend stays readable; only the
        # eligible ones get the solid dot.
        ax.plot(ks, vals, color=color, linewidth=1.5, marker="o", markersize=6,
                markevery=[int(m) for m in np.flatnonzero(~degenerate)], label=ct)
        if degenerate.any():
            ax.plot(ks[degenerate], vals[degenerate], linestyle="none", marker="x",
                    markersize=9, markeredgewidth=2.0, color=color,
                    label="_nolegend_" if degenerate_labelled else "degenerate")
            degenerate_labelled = True
    title = f"{criterion.upper()} by number of components"
    if best is not None:
        row = rows[best]
        value = float(row["criterion"])
        if math.isfinite(value):
            ax.plot([int(row["n_components"])], [value], linestyle="none", marker="*",
                    markersize=18, color="gold", markeredgecolor="black", zorder=4,
                    label=f"best: {int(row['n_components'])} component(s), "
                          f"{row['covariance_type']}")
        title += f"; best: {int(row['n_components'])}, {row['covariance_type']}"
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("number of components")
    ax.set_ylabel(f"{criterion.upper()} (lower is better)")
    ax.set_title(title)
    ax.legend(fontsize="small")
    return fig


# --------------------------------------------------------------------------------------
# Single-distribution likelihoods
# --------------------------------------------------------------------------------------

# Parameters that must be positive, by name (the same name means the same constraint in
# every family of emix.mle). Anything else is unbounded as far as the grid is concerned;
# log_likelihood's -inf then marks whatever the family itself rules out.
_POSITIVE = frozenset({"rate", "sd", "sigma", "scale", "shape", "df"})
_UNIT_INTERVAL = frozenset({"p"})
_GRID_POINTS = 401


def _bounds(name: str) -> tuple[float, float]:
    import re

    if name in _UNIT_INTERVAL:
        return 0.0, 1.0
    m = re.fullmatch(r"cov\[(\d+),\s*(\d+)\]", name)
    if name in _POSITIVE or (m and m.group(1) == m.group(2)):
        return 0.0, math.inf
    return -math.inf, math.inf


def _default_grid(estimate: float, stderr: float, name: str) -> np.ndarray:
    """Grid of shape (G,), G = 401 or 402, around the estimate, inside the parameter space.

    Five standard errors either side is where a quadratic log-likelihood has fallen by
    12.5, far enough to show the whole peak. Near a boundary the grid stops 2% of the way
    from the boundary to the estimate: the log-likelihood runs to -inf there, and an
    endless fall would flatten the peak that the plot is about.
    """
    if math.isfinite(stderr) and stderr > 0:
        width = 5.0 * stderr
    else:  # no usable standard error: half the estimate's size either side
        width = 0.5 * max(abs(estimate), 1.0)
    lo, hi = estimate - width, estimate + width
    low_bound, high_bound = _bounds(name)
    if math.isfinite(low_bound):
        lo = max(lo, low_bound + 0.02 * (estimate - low_bound))
    if math.isfinite(high_bound):
        hi = min(hi, high_bound - 0.02 * (high_bound - estimate))
    # The estimate itself is a grid point, so the curve passes through the marked peak.
    return np.union1d(np.linspace(lo, hi, _GRID_POINTS), [estimate])


def _check_grid(grid) -> np.ndarray:
    try:
        g = np.asarray(grid, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"grid must be a sequence of numbers: {exc}") from None
    if g.ndim != 1 or g.size < 2:
        raise InputError(
            f"grid must be one-dimensional with at least 2 values; got shape {g.shape}"
        )
    if not np.all(np.isfinite(g)):
        raise InputError("grid holds NaN or infinite values")
    return np.sort(g)


def plot_likelihood_curve(family, x, *, param=None, params=None, sample_weight=None,
                          grid=None, ax=None):
    """Log-likelihood of data as a function of one parameter, with the maximum marked.

    Draws ``log L(theta) = sum_i w_i log f(x_i; theta)`` over a grid of values of one
    parameter, the others held fixed (at their maximum-likelihood estimates unless
    `params` says otherwise), and marks the maximum with a vertical line and a point
    annotated with its value. With the others at their MLE that maximum is the MLE.

    Parameters
    ----------
    family : str or MLEResult
        A family of :mod:`emix.mle` (``"bernoulli"``, ``"poisson"``, ``"exponential"``,
        ``"normal"``, ``"gamma"``, ...), fitted to `x` here; or the result of fitting
        one to `x` (an :class:`emix.mle.MLEResult`), whose estimates are used as they
        are. A result fitted to other data is an error.
    x : array-like of shape (n,), or (n, D) for the multivariate normal
        The data.
    param : str, optional
        The parameter on the horizontal axis, named as in ``MLEResult.params``
        (``"p"``, ``"rate"``, ``"mean"``, ``"sd"``, ...). Required when the family has
        more than one parameter.
    params : mapping of str to float, optional
        Values at which to hold the other parameters instead of their MLE; an entry for
        `param` itself is not used. The marked point is then the maximum along the
        curve (the conditional maximum), found numerically. For the binomial family
        given by name, ``params["n_trials"]`` supplies the known number of trials.
    sample_weight : array-like of shape (n,), optional
        Non-negative frequency weights, as in the ``fit_*`` functions.
    grid : array-like of shape (G,), optional
        Parameter values at which to evaluate the log-likelihood. By default 401 values
        spanning five standard errors either side of the estimate, kept inside the
        parameter space. Values where the log-likelihood is ``-inf`` (outside the
        parameter space) are left as gaps in the curve.
    ax : matplotlib.axes.Axes, optional
        Axes to draw into; a new figure is made when omitted.

    Returns
    -------
    matplotlib.figure.Figure
        The figure holding the plot. Its axes hold three lines: the curve (x data of
        shape (G,) or (G + 1,), ``-inf`` drawn as NaN), the vertical line at the maximum,
        and a one-point line marking the maximum; and one annotation with its value.

    Raises
    ------
    InputError
        If the family is unknown or categorical (its probabilities cannot move one at a
        time), `param` is missing or unknown, `params` names unknown parameters, the
        grid is malformed or gives ``-inf`` everywhere, an MLEResult does not fit `x`,
        or the data do not suit the family.
    """
    from . import mle

    fixed: dict = {}
    if isinstance(family, mle.MLEResult):
        result = family
        fam = mle.canonical_family(result.family)
        fixed = dict(result.fixed)
    else:
        fam = mle.canonical_family(family)
        result = None
    if fam == "categorical":
        raise InputError(
            "plot_likelihood_curve cannot vary one categorical probability alone: the "
            "probabilities must sum to 1, so every other value of one of them is outside "
            "the parameter space"
        )
    if params is not None and not isinstance(params, Mapping):
        raise InputError(
            f"params must be a mapping of parameter names to values; got {type(params).__name__}"
        )
    held_in = dict(params or {})
    n_trials = held_in.pop("n_trials", None) if fam == "binomial" else None
    if n_trials is None:
        n_trials = fixed.get("n_trials")
    ll_kw = {"n_trials": n_trials} if fam == "binomial" else {}

    if result is None:
        fit_kw = {"n_trials": n_trials} if fam == "binomial" else {}
        result = mle.fit(fam, x, sample_weight=sample_weight, **fit_kw)
    estimates = dict(result.params)
    names = tuple(estimates)

    if param is None:
        if len(names) != 1:
            raise InputError(
                f"the {fam} family has parameters {', '.join(names)}; choose one with param="
            )
        param = names[0]
    if param not in estimates:
        raise InputError(
            f"the {fam} family has no parameter {param!r}; its parameters are "
            f"{', '.join(names)}"
        )
    unknown = sorted(set(held_in) - set(names))
    if unknown:
        raise InputError(
            f"params names {', '.join(map(repr, unknown))}, which the {fam} family does not "
            f"have; its parameters are {', '.join(names)}"
        )

    def loglik(values: Mapping[str, float]) -> float:
        return float(mle.log_likelihood(fam, x, values, sample_weight, **ll_kw))

    if family is result:
        # A result from other data (or other weights) would put the mark where the curve
        # does not peak; its own log-likelihood on x tells at the cost of one evaluation.
        here = loglik(estimates)
        if not math.isclose(here, result.loglik, rel_tol=1e-8, abs_tol=1e-8):
            raise InputError(
                f"this MLEResult was not fitted to x (with this sample_weight): its "
                f"log-likelihood is {result.loglik:.8g}, but x gives {here:.8g} at its "
                "estimates. Pass the data it was fitted to, or the family's name."
            )

    held = {**estimates, **{k: float(v) for k, v in held_in.items() if k != param}}
    at_mle = all(held[k] == estimates[k] for k in names if k != param)
    estimate = estimates[param]
    if not math.isfinite(estimate):
        raise InputError(
            f"the estimate of {param} is {estimate}; there is no finite peak to draw"
        )
    values = (_default_grid(estimate, result.stderr.get(param, math.nan), param)
              if grid is None else _check_grid(grid))
    curve = np.array([loglik({**held, param: float(t)}) for t in values])
    finite = np.isfinite(curve)
    if not finite.any():
        raise InputError(
            f"the log-likelihood is -inf at every grid value of {param} "
            f"({values[0]:.4g} to {values[-1]:.4g}): the grid lies outside the parameter "
            "space or the held parameters give the data zero probability"
        )

    if at_mle:
        peak, what = estimate, "MLE"
    else:
        what = "maximum"
        peak = _conditional_maximum(values, curve, lambda t: loglik({**held, param: t}))
    peak_ll = loglik({**held, param: peak})

    fig, ax = _figure_and_axes(ax)
    ax.plot(values, np.where(finite, curve, np.nan), color="C0", linewidth=2.0,
            label="log-likelihood")
    ax.axvline(peak, color="C3", linestyle="--", linewidth=1.25)
    ax.plot([peak], [peak_ll], linestyle="none", marker="o", markersize=8, color="C3",
            label=f"{what}: {param} = {peak:.6g}")
    ax.annotate(f"{what} {param} = {peak:.4g}", xy=(peak, peak_ll), xytext=(8, -28),
                textcoords="offset points", color="C3")
    ax.set_xlabel(param)
    ax.set_ylabel("log-likelihood")
    others = [k for k in names if k != param]
    title = f"{fam} log-likelihood in {param}"
    if others:
        shown = ", ".join(f"{k} = {held[k]:.4g}" for k in others[:3])
        shown += ", ..." if len(others) > 3 else ""
        title += f"\n(held {'at the MLE' if at_mle else 'fixed'}: {shown})"
    ax.set_title(title)
    ax.legend(fontsize="small")
    return fig


def _conditional_maximum(values: np.ndarray, curve: np.ndarray, f) -> float:
    """Maximiser of ``f`` near the best grid value: a bounded search between neighbours.

    The grid locates the peak to one spacing; Brent's method refines it to round-off,
    so that the mark sits on the maximum rather than on the nearest grid point.
    """
    i = int(np.nanargmax(np.where(np.isfinite(curve), curve, -np.inf)))
    lo, hi = values[max(i - 1, 0)], values[min(i + 1, len(values) - 1)]
    if lo == hi:
        return float(values[i])
    from scipy.optimize import minimize_scalar

    res = minimize_scalar(lambda t: -f(float(t)), bounds=(lo, hi), method="bounded",
                          options={"xatol": 1e-10 * max(abs(values[i]), 1.0)})
    # The search cannot do worse than the grid point it started from.
    return float(res.x) if -res.fun >= curve[i] else float(values[i])


# --------------------------------------------------------------------------------------
# EM at work (emix.explain traces)
# --------------------------------------------------------------------------------------


class _EMFrames:
    """One figure whose artists are moved to each step of an EM trace.

    Built once (histogram, axes limits that hold every step, so frames do not jump),
    then :meth:`show` sets the curves and the log-likelihood path of step ``s``: 0 is
    the starting guess, ``s`` the parameters after iteration ``s``.
    """

    def __init__(self, trace, x, bins, figsize, dpi):
        from matplotlib.figure import Figure

        kind = getattr(trace, "kind", None)
        if kind not in ("gaussian", "binomial") or not getattr(trace, "records", None):
            raise InputError(
                "plot_em_step needs a Trace of a Gaussian or binomial mixture with at least "
                "one iteration (emix.explain('heights') or emix.explain('coins'))"
            )
        self.trace = trace
        self.n_steps = trace.n_iter + 1
        values = _data_matrix(x, "x")
        if values.shape[1] != 1 or values.shape[0] != trace.n:
            raise InputError(
                f"x must be the {trace.n} values the trace was fitted on, one column; got "
                f"shape {values.shape}"
            )
        self.x = values[:, 0]
        self.logliks = np.asarray(trace.logliks, dtype=np.float64)
        self.names = tuple(trace.component_names)
        K = len(self.names)
        self.colors = _colors(K)
        self.fig = Figure(figsize=figsize, dpi=dpi, layout="constrained")
        self.ax, self.ax_ll = self.fig.subplots(1, 2, width_ratios=(3, 2))
        if kind == "gaussian":
            self.grid, curves = self._gaussian_curves()
        else:
            self.grid, curves = self._binomial_curves()
        self.curves = curves  # (n_steps, K + 1, G): components, then the mixture
        ax = self.ax
        if kind == "gaussian":
            heights = ax.hist(self.x, bins=bins, density=True, color="0.85", edgecolor="0.6",
                              linewidth=0.5, label=f"data (n = {trace.n})")[0]
            style = {"linestyle": "--", "linewidth": 1.75}
            mix_style = {"linewidth": 2.5}
        else:
            counts = np.bincount(self.x.astype(np.int64), minlength=self.n_trials + 1)
            heights = counts / counts.sum()
            ax.bar(self.grid, heights, width=0.8, color="0.85", edgecolor="0.6",
                   linewidth=0.5, label=f"data ({trace.n} sets)")
            style = {"linestyle": "--", "marker": "o", "markersize": 3, "linewidth": 1.25}
            mix_style = {"marker": "o", "markersize": 4, "linewidth": 2}
        self.lines = [
            ax.plot(self.grid, curves[0, k], color=self.colors[k], zorder=3, **style,
                    label=f"{'component' if kind == 'gaussian' else 'coin'} {self.names[k]}")[0]
            for k in range(K)
        ]
        self.lines.append(ax.plot(self.grid, curves[0, K], color="black", zorder=2,
                                  label="mixture", **mix_style)[0])
        top = max(float(np.max(heights)), float(np.max(curves)))
        ax.set_ylim(0.0, 1.08 * top)
        ax.set_xlabel(trace.value_label if kind == "gaussian" else "heads in a set")
        ax.set_ylabel("density" if kind == "gaussian" else "share of sets")
        ax.legend(fontsize="small", loc="upper right")
        self.caption = ax.text(0.02, 0.97, "", transform=ax.transAxes, va="top",
                               fontsize="small", family="monospace")

        steps = np.arange(self.n_steps)
        lo, hi = float(np.min(self.logliks)), float(np.max(self.logliks))
        pad = 0.06 * (hi - lo) if hi > lo else 1.0
        self.ax_ll.plot(steps, self.logliks, color="0.85", linewidth=1)  # the road ahead
        (self.ll_line,) = self.ax_ll.plot([], [], color="C0", linewidth=2, marker="o",
                                          markersize=3)
        (self.ll_now,) = self.ax_ll.plot([], [], "o", color="C3", markersize=7)
        self.ax_ll.set_xlim(-0.5, max(self.n_steps - 0.5, 1.0))
        self.ax_ll.set_ylim(lo - pad, hi + pad)
        self.ax_ll.set_xlabel("iteration (0 = starting guess)")
        self.ax_ll.set_ylabel("log-likelihood")
        self.ax_ll.set_title("log-likelihood climbs", fontsize="medium")
        self.ll_text = self.ax_ll.text(0.97, 0.05, "", transform=self.ax_ll.transAxes,
                                       ha="right", va="bottom", fontsize="small")
        if trace.title:
            self.fig.suptitle(trace.title, fontsize="medium")

    def freeze_layout(self) -> None:
        """Keep the layout of the frame just drawn for the rest.

        Every frame has the same axes and labels, so the constrained layout found for the
        first holds for all; solving it again per frame would double the drawing time.
        """
        self.fig.set_layout_engine("none")

    def _params(self, step: int) -> dict:
        return {name: self.trace.path(name)[step] for name in self.trace.parameter_names}

    def _gaussian_curves(self):
        mean = self.trace.path("mean")
        sd = self.trace.path("sd")
        weight = self.trace.path("weight")
        lo = min(float(self.x.min()), float(np.min(mean - 3.5 * sd)))
        hi = max(float(self.x.max()), float(np.max(mean + 3.5 * sd)))
        grid = np.linspace(lo, hi, 400)
        z = (grid[None, None, :] - mean[:, :, None]) / sd[:, :, None]
        comp = (weight[:, :, None] * np.exp(-0.5 * z * z)
                / (sd[:, :, None] * math.sqrt(2.0 * math.pi)))
        return grid, np.concatenate([comp, comp.sum(axis=1, keepdims=True)], axis=1)

    def _binomial_curves(self):
        from scipy.stats import binom

        trials = np.asarray(self.trace.n_trials, dtype=np.float64)
        if trials.size == 0 or np.any(trials != trials[0]):
            raise InputError("plot_em_step draws a binomial trace whose sets all have the "
                             "same number of trials")
        self.n_trials = int(trials[0])
        grid = np.arange(self.n_trials + 1, dtype=np.float64)
        bias = self.trace.path("bias")
        weight = self.trace.path("weight")
        comp = weight[:, :, None] * binom.pmf(grid[None, None, :], self.n_trials,
                                              bias[:, :, None])
        return grid, np.concatenate([comp, comp.sum(axis=1, keepdims=True)], axis=1)

    def show(self, step: int):
        step = int(step)
        if not 0 <= step < self.n_steps:
            raise InputError(f"step must be in 0..{self.n_steps - 1}; got {step}")
        for line, curve in zip(self.lines, self.curves[step]):
            line.set_ydata(curve)
        p = self._params(step)
        head = "starting guess" if step == 0 else f"after iteration {step}"
        rows = [head]
        for k, name in enumerate(self.names):
            cells = "  ".join(f"{key} {p[key][k]:.3g}" for key in self.trace.parameter_names)
            rows.append(f"{name}: {cells}")
        self.caption.set_text("\n".join(rows))
        self.ll_line.set_data(np.arange(step + 1), self.logliks[: step + 1])
        self.ll_now.set_data([step], [self.logliks[step]])
        gain = "" if step == 0 else f"\n(+{self.logliks[step] - self.logliks[step - 1]:.3g})"
        self.ll_text.set_text(f"{self.logliks[step]:.6g}{gain}")
        return self.fig


def plot_em_step(trace, x, step=-1, *, bins="auto", figsize=(10.0, 4.2), dpi=100):
    """EM at one step: the fitted curves over the data, the log-likelihood beside them.

    Left: the data (a density histogram of the values, or the share of sets with each
    number of heads) with every component's weighted curve and the mixture, at step
    ``step``. Right: the log-likelihood from the starting guess to that step, rising at
    every iteration. :func:`save_em_animation` writes every step as an animation.

    Parameters
    ----------
    trace : emix.explain.Trace
        A trace of a one-feature Gaussian mixture (``emix.explain("heights")``,
        :func:`emix.explain.trace_gaussian_1d`) or of a binomial mixture with the same
        number of trials in every set (``emix.explain("coins")``).
    x : array-like of shape (N,)
        The values the trace was fitted on (heights, or heads per set).
    step : int, default=-1
        0 is the starting guess, ``s`` the parameters after iteration ``s``; negative
        counts from the end (-1: the last).
    bins : int, sequence or str, default="auto"
        Histogram bins (Gaussian traces).
    figsize : (float, float), default=(10.0, 4.2)
    dpi : float, default=100

    Returns
    -------
    matplotlib.figure.Figure
        Two axes: the curves (K component lines, then the mixture), and the
        log-likelihood.

    Raises
    ------
    InputError
        A trace of another kind (the casino's HMM), ``x`` not the trace's data, or a
        step out of range.
    """
    frames = _EMFrames(trace, x, bins, figsize, dpi)
    step = int(step)
    return frames.show(step + frames.n_steps if step < 0 else step)


def save_em_animation(trace, x, path, *, fps=2.0, bins="auto", figsize=(10.0, 4.2), dpi=80):
    """Write EM at work as an animated GIF, or as one PNG per step.

    Every frame is :func:`plot_em_step` at one step, from the starting guess to the last
    iteration; the last frame is held for two seconds so the fit can be read.

    Parameters
    ----------
    trace : emix.explain.Trace
        As for :func:`plot_em_step`.
    x : array-like of shape (N,)
        The values the trace was fitted on.
    path : str or path-like
        ``.gif``: one animated file (drawn with Pillow, which matplotlib depends on).
        ``.png``: one file per step, numbered from 0 before the suffix: ``em.png``
        gives ``em-000.png`` (the start), ``em-001.png``, ...
    fps : float, default=2.0
        Frames per second of the GIF.
    bins, figsize, dpi
        As for :func:`plot_em_step`.

    Returns
    -------
    list of str
        The files written, in order.

    Raises
    ------
    InputError
        A suffix other than ``.gif`` or ``.png``, a non-positive ``fps``, or a trace
        :func:`plot_em_step` cannot draw.
    OSError
        A file cannot be written; each file is written whole or not at all
        (a temporary file renamed into place), and the files written before the failure
        are kept.
    """
    import os

    from ._atomic import write_atomic

    path = os.fspath(path)
    root, suffix = os.path.splitext(path)
    suffix = suffix.lower()
    if suffix not in (".gif", ".png"):
        raise InputError(f"{path!r}: an EM animation is written as .gif, or as .png frames")
    fps = float(fps)
    if not fps > 0 or not math.isfinite(fps):
        raise InputError(f"fps must be a positive number; got {fps!r}")
    frames = _EMFrames(trace, x, bins, figsize, dpi)
    if suffix == ".png":
        digits = max(3, len(str(frames.n_steps - 1)))
        written = []
        for step in range(frames.n_steps):
            name = f"{root}-{step:0{digits}d}{suffix}"
            fig = frames.show(step)
            write_atomic(name, lambda fh: fig.savefig(fh, format="png"))
            written.append(name)
            if step == 0:
                frames.freeze_layout()
        return written

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    canvas = FigureCanvasAgg(frames.fig)
    images = []
    for step in range(frames.n_steps):
        frames.show(step)
        canvas.draw()
        if step == 0:
            frames.freeze_layout()
        rgba = np.asarray(canvas.buffer_rgba())
        # GIF holds 256 colours; an adaptive palette per frame keeps the curves crisp.
        images.append(Image.fromarray(rgba[:, :, :3].copy()).quantize(
            colors=256, method=Image.Quantize.FASTOCTREE))
    delay = int(round(1000.0 / fps))
    durations = [delay] * (len(images) - 1) + [max(delay, 2000)]

    def write(fh):
        images[0].save(fh, format="GIF", save_all=True, append_images=images[1:],
                       duration=durations, loop=0)

    write_atomic(path, write)
    return [path]
