"""Peer and brute-force references for the non-Gaussian mixture families.

From the same start, ``emix.MixtureModel`` takes the same EM path as

* pomegranate 1.x's ``GeneralMixtureModel`` (Poisson, exponential, Bernoulli and
  categorical components; a test-only dependency, skipped where it is not installed);
* a hand-written EM that loops over rows and components in plain Python with the
  textbook densities (every family, binomial included, and no peer needed; the
  per-family tests check the same densities against scipy.stats).

Both run a fixed number of iterations; every iteration's log-likelihood and the final
parameters must agree.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from emix import MixtureModel
from emix.exceptions import ConvergenceWarning

N_ITER = 12


def fit_emix(family, X, weights, params, n_iter=N_ITER, **options):
    """``n_iter`` EM iterations of MixtureModel from the given start (tol=0, so every
    iteration runs and the model warns that it did not converge)."""
    m = MixtureModel(
        family, len(weights), weights_init=weights, params_init=params, tol=0.0,
        max_iter=n_iter, family_options=options or None,
    )
    with pytest.warns(ConvergenceWarning):
        m.fit(X)
    assert m.n_iter_ == n_iter
    return m


# --------------------------------------------------------------------- brute force
def _log_density(family, x, theta, n_trials=None):
    """log p(x | theta) of one row, one column at a time, from the textbook formulas."""
    total = 0.0
    for d, v in enumerate(x):
        t = theta[d]
        if family == "poisson":
            total += v * math.log(t) - t - math.lgamma(v + 1)
        elif family == "exponential":
            total += math.log(t) - t * v
        elif family == "bernoulli":
            total += math.log(t if v == 1 else 1.0 - t)
        elif family == "binomial":
            total += math.log(math.comb(n_trials, int(v))) + v * math.log(t) + (n_trials - v) * math.log(1 - t)
        elif family == "categorical":
            total += math.log(t[int(v)])
    return total


def _m_step(family, X, r, n_trials=None):
    """The weighted MLE of one component from its responsibilities r (N,)."""
    nk = sum(r)
    D = len(X[0])
    if family in ("poisson", "bernoulli"):
        return [sum(r[i] * X[i][d] for i in range(len(X))) / nk for d in range(D)]
    if family == "exponential":
        return [nk / sum(r[i] * X[i][d] for i in range(len(X))) for d in range(D)]
    if family == "binomial":
        return [sum(r[i] * X[i][d] for i in range(len(X))) / (n_trials * nk) for d in range(D)]
    if family == "categorical":
        return [
            [sum(r[i] for i in range(len(X)) if X[i][d] == c) / nk for c in range(3)]
            for d in range(D)
        ]
    raise AssertionError(family)


def brute_force_em(family, X, weights, thetas, n_iter=N_ITER, n_trials=None):
    """EM written as plainly as possible: rows and components in Python loops.

    Returns the log-likelihood before every M-step, the final weights and parameters.
    """
    X = X.tolist()
    weights = list(weights)
    history = []
    for _ in range(n_iter):
        resp, loglik = [], 0.0
        for x in X:
            joint = [math.log(w) + _log_density(family, x, t, n_trials) for w, t in zip(weights, thetas)]
            top = max(joint)
            norm = top + math.log(sum(math.exp(j - top) for j in joint))
            loglik += norm
            resp.append([math.exp(j - norm) for j in joint])
        history.append(loglik / len(X))
        cols = [[row[k] for row in resp] for k in range(len(weights))]
        weights = [sum(c) / len(X) for c in cols]
        thetas = [_m_step(family, X, c, n_trials) for c in cols]
    return np.array(history), np.array(weights), thetas


def _data(family, rng, n=120):
    if family == "poisson":
        X = np.vstack([rng.poisson([2.0, 8.0], (n // 2, 2)), rng.poisson([6.0, 1.0], (n // 2, 2))])
        return X.astype(float), np.array([[1.0, 2.0], [5.0, 4.0]]), {}
    if family == "exponential":
        X = np.vstack([rng.exponential([1.0, 5.0], (n // 2, 2)), rng.exponential([4.0, 0.5], (n // 2, 2))])
        return X, np.array([[2.0, 0.5], [0.5, 1.0]]), {}
    if family == "bernoulli":
        X = np.vstack([rng.random((n // 2, 3)) < [0.9, 0.2, 0.6], rng.random((n // 2, 3)) < [0.1, 0.7, 0.5]])
        return X.astype(float), np.array([[0.6, 0.4, 0.5], [0.3, 0.5, 0.45]]), {}
    if family == "binomial":
        X = np.vstack([rng.binomial(6, [0.2, 0.8], (n // 2, 2)), rng.binomial(6, [0.7, 0.3], (n // 2, 2))])
        return X.astype(float), np.array([[0.4, 0.6], [0.5, 0.5]]), {"n_trials": 6}
    if family == "categorical":
        X = np.column_stack([rng.choice(3, n, p=[0.6, 0.3, 0.1]), rng.choice(3, n, p=[0.2, 0.2, 0.6])])
        start = np.array([[0.5, 0.3, 0.2, 0.3, 0.3, 0.4], [0.2, 0.4, 0.4, 0.4, 0.4, 0.2]])
        return X.astype(float), start, {"n_categories": 3}
    raise AssertionError(family)


def _param_name(family):
    return {"poisson": "rates", "exponential": "rates"}.get(family, "probabilities")


@pytest.mark.parametrize("family", ["poisson", "exponential", "bernoulli", "binomial", "categorical"])
def test_same_path_as_a_brute_force_em(rng, family):
    X, start, options = _data(family, rng)
    weights = np.array([0.4, 0.6])
    if family == "categorical":
        thetas = [[list(row[:3]), list(row[3:])] for row in start]
    else:
        thetas = [list(row) for row in start]
    history, w_ref, t_ref = brute_force_em(family, X, weights, thetas, n_trials=options.get("n_trials"))
    m = fit_emix(family, X, weights, {_param_name(family): start}, **options)
    np.testing.assert_allclose(m.lower_bounds_, history, rtol=1e-12)
    np.testing.assert_allclose(m.weights_, w_ref, rtol=1e-10)
    got = getattr(m, _param_name(family) + "_")
    np.testing.assert_allclose(got, np.array(t_ref).reshape(got.shape), rtol=1e-10, atol=1e-14)
    assert history[-1] > history[0]


# --------------------------------------------------------------------- pomegranate
def _import_pomegranate():
    """pomegranate's mixture and distributions modules, or skip.

    pomegranate imports apricot (submodular selection) for initialisers these tests never
    use, and apricot compiles its numba functions at import: 10 s or more of the suite
    on two cores. A stand-in module serves that import only; it is removed again, so
    nothing else sees it.
    """
    import sys
    import types

    pytest.importorskip("torch")
    if "pomegranate.gmm" not in sys.modules and "apricot" not in sys.modules:
        stub = types.ModuleType("apricot")
        stub.FacilityLocationSelection = stub.FeatureBasedSelection = None
        sys.modules["apricot"] = stub
        try:
            gmm = pytest.importorskip("pomegranate.gmm")
        finally:
            del sys.modules["apricot"]
    else:
        gmm = pytest.importorskip("pomegranate.gmm")
    from pomegranate import distributions

    return gmm, distributions


def _pomegranate_path(make, X_torch, weights, n_iter=N_ITER):
    """Per-iteration mean log-likelihood and the model after ``n_iter`` EM steps.

    ``fit`` with ``max_iter=1`` runs one E-step and one M-step from the current
    parameters; the log-likelihood is taken before each.
    """
    import torch

    gmm, _ = _import_pomegranate()
    model = gmm.GeneralMixtureModel(make(), priors=torch.tensor(weights), max_iter=1, tol=-math.inf)
    history = []
    for _ in range(n_iter):
        history.append(float(model.log_probability(X_torch).sum()) / X_torch.shape[0])
        model.fit(X_torch)
    return np.array(history), model


@pytest.mark.parametrize("family", ["poisson", "exponential", "bernoulli", "categorical"])
def test_same_path_as_pomegranate(rng, family):
    _, pd = _import_pomegranate()
    import torch

    X, start, options = _data(family, rng, n=400)
    weights = np.array([0.4, 0.6])
    if family == "poisson":
        make = lambda: [pd.Poisson(torch.tensor(r)) for r in start]  # noqa: E731
        read = lambda d: d.lambdas  # noqa: E731
    elif family == "exponential":
        # pomegranate's exponential is parametrised by the scale, 1 / rate.
        make = lambda: [pd.Exponential(torch.tensor(1.0 / r)) for r in start]  # noqa: E731
        read = lambda d: 1.0 / d.scales  # noqa: E731
    elif family == "bernoulli":
        make = lambda: [pd.Bernoulli(torch.tensor(p)) for p in start]  # noqa: E731
        read = lambda d: d.probs  # noqa: E731
    else:
        make = lambda: [pd.Categorical(torch.tensor(p.reshape(2, 3))) for p in start]  # noqa: E731
        read = lambda d: d.probs.reshape(-1)  # noqa: E731
    Xt = torch.tensor(X.astype(np.int64) if family == "categorical" else X)
    history, model = _pomegranate_path(make, Xt, weights)
    m = fit_emix(family, X, weights, {_param_name(family): start}, **options)
    # pomegranate casts sample weights to float32 inside its E-step, so its
    # responsibilities carry float32 round-off.
    np.testing.assert_allclose(m.lower_bounds_, history, rtol=1e-6)
    np.testing.assert_allclose(m.weights_, model.priors.detach().numpy(), rtol=1e-5)
    theirs = np.stack([read(d).detach().numpy() for d in model.distributions])
    np.testing.assert_allclose(getattr(m, _param_name(family) + "_"), theirs, rtol=1e-5)
    assert history[-1] > history[0]
