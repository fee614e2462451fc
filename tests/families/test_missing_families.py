"""The missing-value protocol of the column-independent families (Bernoulli, categorical,
Poisson, exponential, binomial, products) through the mixture kernels.

References are independent of the protocol: the observed-data log-density is a sum of
scipy.stats log-pmfs/pdfs over the observed cells, and the expected statistics are
sums over every completion of a row's missing cells (enumerated) of the family's own
complete-data features, weighted by their conditional probabilities.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats as ss

from emix.backends.numpy_backend import NumpyBackend, NumpyOps
from emix.families.bernoulli import Bernoulli
from emix.families.categorical import Categorical
from emix.families.exponential import Exponential
from emix.families.poisson import Poisson
from emix.families.binomial import Binomial
from emix.families.product import Product
from emix.models._kernels import GivenRespKernel, LogJointKernel, MixtureKernel, stats_from_acc

K = 2


def _summary(X):
    return {"mean": np.nanmean(X, axis=0), "var": np.nanvar(X, axis=0),
            "min": np.nanmin(X, axis=0), "max": np.nanmax(X, axis=0), "n": X.shape[0]}


def _case(name, rng, N=9):
    """``(bound family, params, X with NaN, cell logpmf(k, X) -> (N, D), support values
    per column for enumeration or None)``."""
    if name == "poisson":
        rates = rng.uniform(0.5, 4.0, size=(K, 3))
        X = rng.poisson(2.0, size=(N, 3)).astype(float)
        fam, params = Poisson(), {"rates": rates}
        cell = lambda k, Z: ss.poisson(rates[k]).logpmf(Z)  # noqa: E731
        support = [np.arange(40)] * 3  # P(x >= 40) < 1e-25 at rate 4
    elif name == "bernoulli":
        p = rng.uniform(0.1, 0.9, size=(K, 3))
        X = (rng.random((N, 3)) < 0.5).astype(float)
        fam, params = Bernoulli(), {"probabilities": p}
        cell = lambda k, Z: ss.bernoulli(p[k]).logpmf(Z)  # noqa: E731
        support = [np.arange(2)] * 3
    elif name == "categorical":
        sizes = [3, 2]
        probs = [rng.dirichlet(np.ones(c), size=K) for c in sizes]
        X = np.stack([rng.integers(0, c, N) for c in sizes], axis=1).astype(float)
        fam, params = Categorical(sizes), {"probabilities": np.hstack(probs)}

        def cell(k, Z):
            return np.stack([np.log(probs[j][k][Z[:, j].astype(int)]) for j in range(2)], axis=1)

        support = [np.arange(c) for c in sizes]
    elif name == "binomial":
        p = rng.uniform(0.1, 0.9, size=(K, 2))
        X = rng.binomial(5, 0.5, size=(N, 2)).astype(float)
        fam, params = Binomial(n_trials=5), {"probabilities": p}
        cell = lambda k, Z: ss.binom(5, p[k]).logpmf(Z)  # noqa: E731
        support = [np.arange(6)] * 2
    elif name == "exponential":
        rates = rng.uniform(0.3, 3.0, size=(K, 2))
        X = rng.exponential(1.0, size=(N, 2))
        fam, params = Exponential(), {"rates": rates}
        cell = lambda k, Z: ss.expon(scale=1.0 / rates[k]).logpdf(Z)  # noqa: E731
        support = None
    else:
        raise AssertionError(name)
    X[1, 0] = np.nan
    X[3, 1:] = np.nan
    X[4] = np.nan
    X[6, -1] = np.nan
    fam = fam.bind(_summary(X), X.shape[1])
    return fam, params, X, cell, support


NAMES = ["poisson", "bernoulli", "categorical", "binomial", "exponential"]


def _direct_log_joint(cell, X, weights):
    """``log w_k + sum over observed cells of log p(x_d | k)``, shape (N, K)."""
    O = ~np.isnan(X)
    Z = np.where(O, X, 0.0)
    return np.stack([np.log(weights[k]) + np.where(O, cell(k, Z), 0.0).sum(axis=1)
                     for k in range(K)], axis=1)


@pytest.mark.parametrize("name", NAMES)
def test_log_joint_is_the_marginal_of_the_observed_cells(name, rng):
    fam, params, X, cell, _ = _case(name, rng)
    weights = np.array([0.3, 0.7])
    L = NumpyBackend().map_rows(X, LogJointKernel(fam, params, weights), block_size=4)
    want = _direct_log_joint(cell, X, weights)
    np.testing.assert_allclose(L, want, rtol=1e-12, atol=1e-12)
    # The row with nothing observed has the prior.
    np.testing.assert_allclose(L[4], np.log(weights), rtol=1e-15)


def _expected_features_by_enumeration(fam, params, X, support, k):
    """``E[T(x_n) | x_n,obs, z = k]`` of every row, (N, M), by enumerating completions."""
    ops = NumpyOps(np.float64)
    out = []
    for row in X:
        miss = np.flatnonzero(np.isnan(row))
        full = np.repeat(row[None, :], 1, axis=0)
        lp = np.zeros(1)
        if miss.size:
            values = np.array(list(itertools.product(*[support[d] for d in miss])), dtype=float)
            full = np.repeat(row[None, :], len(values), axis=0)
            full[:, miss] = values
            lp = sum(_cell_logp(fam, params, k, d, values[:, i]) for i, d in enumerate(miss))
        out.append(fam.features(ops, full) @ np.exp(lp))
    return np.array(out)


def _cell_logp(fam, params, k, d, v):
    if isinstance(fam, Poisson):
        return ss.poisson(params["rates"][k, d]).logpmf(v)
    if isinstance(fam, Bernoulli):
        return ss.bernoulli(params["probabilities"][k, d]).logpmf(v)
    if isinstance(fam, Binomial):
        return ss.binom(fam.n_trials, params["probabilities"][k, d]).logpmf(v)
    if isinstance(fam, Categorical):
        return np.log(fam.split(params["probabilities"])[d][k, v.astype(int)])
    raise AssertionError(fam)


@pytest.mark.parametrize("name", ["poisson", "bernoulli", "categorical", "binomial"])
def test_statistics_are_expected_complete_data_features(name, rng):
    fam, params, X, cell, support = _case(name, rng)
    weights = np.array([0.4, 0.6])
    sw = rng.uniform(0.5, 2.0, X.shape[0])
    acc = NumpyBackend().stats_pass(X, sw, MixtureKernel(fam, params, weights), block_size=4)
    stats = stats_from_acc(acc, X.shape[0], fam)
    L = _direct_log_joint(cell, X, weights)
    R = np.exp(L - np.logaddexp.reduce(L, axis=1, keepdims=True)) * sw[:, None]
    want = np.stack([R[:, k] @ _expected_features_by_enumeration(fam, params, X, support, k)
                     for k in range(K)])
    np.testing.assert_allclose(stats.S, want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(stats.nk, R.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats.loglik, sw @ np.logaddexp.reduce(L, axis=1), rtol=1e-12)


def test_exponential_statistics_use_the_component_means(rng):
    fam, params, X, cell, _ = _case("exponential", rng)
    weights = np.array([0.5, 0.5])
    acc = NumpyBackend().stats_pass(X, None, MixtureKernel(fam, params, weights))
    L = _direct_log_joint(cell, X, weights)
    R = np.exp(L - np.logaddexp.reduce(L, axis=1, keepdims=True))
    O = ~np.isnan(X)
    want = np.stack([R[:, k] @ np.where(O, X, 1.0 / params["rates"][k]) for k in range(K)])
    np.testing.assert_allclose(acc["S"], want, rtol=1e-12)


def test_binomial_heads_and_trials_rows_without_a_count_carry_no_binomial_information(rng):
    fam = Binomial()
    X = np.array([[2, 5], [np.nan, 4], [1, np.nan], [3, 3], [np.nan, np.nan]], dtype=float)
    fam = fam.bind(_summary(X), 2)
    p = np.array([[0.3], [0.8]])
    weights = np.array([0.5, 0.5])
    L = NumpyBackend().map_rows(X, LogJointKernel(fam, {"probabilities": p}, weights))
    for i in (1, 2, 4):
        np.testing.assert_allclose(L[i], np.log(weights))
    np.testing.assert_allclose(L[0], np.log(weights) + ss.binom(5, p[:, 0]).logpmf(2))
    acc = NumpyBackend().stats_pass(X, None, MixtureKernel(fam, {"probabilities": p}, weights))
    R = np.exp(L - np.logaddexp.reduce(L, axis=1, keepdims=True))
    heads = R[[0, 3]].T @ np.array([2.0, 3.0])
    tails = R[[0, 3]].T @ np.array([3.0, 0.0])
    np.testing.assert_allclose(acc["S"], np.stack([heads, tails], axis=1), rtol=1e-12)


def test_product_composes_its_parts(rng):
    pf, pp, PX, pcell, _ = _case("poisson", rng)
    bf, bp, BX, bcell, _ = _case("bernoulli", rng)
    X = np.hstack([PX, BX])
    prod = Product([(Poisson(), [0, 1, 2]), (Bernoulli(), [3, 4, 5])]).bind(_summary(X), 6)
    params = {"0:rates": pp["rates"], "1:probabilities": bp["probabilities"]}
    weights = np.array([0.5, 0.5])
    L = NumpyBackend().map_rows(X, LogJointKernel(prod, params, weights))
    want = _direct_log_joint(pcell, PX, weights) + _direct_log_joint(bcell, BX, weights) - np.log(weights)
    np.testing.assert_allclose(L, want, rtol=1e-12)
    acc = NumpyBackend().stats_pass(X, None, MixtureKernel(prod, params, weights))
    R = np.exp(want - np.logaddexp.reduce(want, axis=1, keepdims=True))
    # Given the product's responsibilities, each part's expected statistics are its own.
    for fam, Xp, p, off in ((pf, PX, pp, 0), (bf, BX, bp, 3)):
        part = MixtureKernel(fam, p, weights)
        st = NumpyOps(np.float64)
        state = part.setup(st)
        Lp, ctx = part.missing_log_joint(st, state, Xp, ~np.isnan(Xp))
        S, _ = fam.missing_stats(st, state["missing"], ctx, R.T.copy())
        w = fam.feature_width()
        col = 0 if off == 0 else pf.feature_width()
        np.testing.assert_allclose(acc["S"][:, col : col + w], S, rtol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_complete_blocks_take_the_complete_path_bit_for_bit(name, rng):
    fam, params, X, _, _ = _case(name, rng, N=50)
    X = X[~np.isnan(X).any(axis=1)]
    weights = np.array([0.3, 0.7])
    a = NumpyBackend().stats_pass(X, None, MixtureKernel(fam, params, weights, missing=True))
    b = NumpyBackend().stats_pass(X, None, MixtureKernel(fam, params, weights, missing=False))
    for key in b:
        np.testing.assert_array_equal(a[key], b[key])


@pytest.mark.parametrize("name", NAMES)
def test_the_start_fills_missing_cells_with_observed_column_means(name, rng):
    fam, params, X, _, _ = _case(name, rng, N=40)
    R = rng.dirichlet(np.ones(K), size=X.shape[0])
    acc = NumpyBackend().stats_pass(X, None, GivenRespKernel(fam, lambda i, j: R[i:j], K),
                                    block_size=7)
    filled = np.where(np.isnan(X), np.nanmean(X, axis=0), X)
    want = R.T @ fam.features(NumpyOps(np.float64), filled).T
    np.testing.assert_allclose(stats_from_acc(acc, X.shape[0], fam).S, want, rtol=1e-12)


def test_a_gaussian_start_with_missing_cells_is_positive_definite(rng):
    """Per-feature observed means (pairwise deletion) can give an indefinite start on
    correlated data; filled rows cannot."""
    from emix import HMM

    fails = 0
    for seed in range(5):
        r = np.random.default_rng(seed)
        C = np.full((4, 4), 0.95) + 0.05 * np.eye(4)
        X = r.multivariate_normal(np.zeros(4), C, 60)
        X[r.random(X.shape) < 0.5] = np.nan
        X[np.isnan(X).all(axis=1), 0] = 0.0
        m = HMM(2, "gaussian", covariance_type="full", random_state=seed, max_iter=0).fit(X)
        fails += not np.all(np.linalg.eigvalsh(m.covariances_) > 0)
    assert fails == 0


@pytest.mark.parametrize("name", NAMES)
def test_torch_cpu_equals_numpy(name, rng):
    pytest.importorskip("torch")
    from emix.backends.torch_backend import TorchBackend

    fam, params, X, _, _ = _case(name, rng, N=30)
    weights = np.array([0.3, 0.7])
    sw = rng.uniform(0.5, 2.0, X.shape[0])
    a = NumpyBackend().stats_pass(X, sw, MixtureKernel(fam, params, weights), block_size=8)
    b = TorchBackend("cpu").stats_pass(X, sw, MixtureKernel(fam, params, weights), block_size=8)
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-12, atol=1e-12)
    La = NumpyBackend().map_rows(X, LogJointKernel(fam, params, weights))
    Lb = TorchBackend("cpu").map_rows(X, LogJointKernel(fam, params, weights))
    np.testing.assert_allclose(La, Lb, rtol=1e-12)
    R = rng.dirichlet(np.ones(K), size=X.shape[0])
    ga = NumpyBackend().stats_pass(X, None, GivenRespKernel(fam, lambda i, j: R[i:j], K))
    gb = TorchBackend("cpu").stats_pass(X, None, GivenRespKernel(fam, lambda i, j: R[i:j], K))
    np.testing.assert_allclose(stats_from_acc(ga, 30, fam).S, stats_from_acc(gb, 30, fam).S,
                               rtol=1e-12)
