"""Categorical family: kernels against scipy.stats.multinomial, the M-step against the
closed form, monotone EM, layout and support errors, end-to-end fits."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.special import logsumexp

from emix import MixtureModel
from emix.backends.numpy_backend import NumpyBackend
from emix.exceptions import InputError
from emix.families import get_family
from emix.families.categorical import Categorical
from emix.models._kernels import GivenRespKernel, LogJointKernel, MixtureKernel, stats_from_acc

BK = NumpyBackend()
SIZES = (3, 2, 4)
# (K=2, 3 + 2 + 4): every column's probabilities side by side.
P = np.array(
    [
        [0.7, 0.2, 0.1, 0.9, 0.1, 0.1, 0.2, 0.3, 0.4],
        [0.1, 0.3, 0.6, 0.2, 0.8, 0.5, 0.3, 0.1, 0.1],
    ]
)
W = np.array([0.4, 0.6])


def bound(X, n_categories=None):
    return Categorical(n_categories).bind(BK.column_summary(X, None), X.shape[1])


def draw(rng, n, probs=P, weights=W, sizes=SIZES):
    z = rng.choice(len(weights), size=n, p=weights)
    o = np.concatenate([[0], np.cumsum(sizes)])
    X = np.empty((n, len(sizes)))
    for i in range(n):
        for j, c in enumerate(sizes):
            X[i, j] = rng.choice(c, p=probs[z[i], o[j] : o[j + 1]])
    return X, z


def e_step(fam, X, probs, weights, w=None, block_size=16):
    kernel = MixtureKernel(fam, {"probabilities": probs}, weights)
    acc = BK.stats_pass(X, w, kernel, block_size=block_size, width=fam.feature_width())
    return stats_from_acc(acc, len(X), fam)


def scipy_log_joint(X, probs, weights, sizes=SIZES):
    """``log w_k + sum_j log p_kj[x_j]`` by scipy.stats.multinomial with one trial."""
    o = np.concatenate([[0], np.cumsum(sizes)])
    out = np.empty((X.shape[0], len(weights)))
    for k in range(len(weights)):
        total = np.full(X.shape[0], np.log(weights[k]))
        for j, c in enumerate(sizes):
            onehot = np.eye(c)[X[:, j].astype(int)]
            total += stats.multinomial.logpmf(onehot, 1, probs[k, o[j] : o[j + 1]])
        out[:, k] = total
    return out


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 2e-5)])
def test_log_joint_matches_scipy(rng, dtype, tol):
    X, _ = draw(rng, 97)
    fam = bound(X, list(SIZES))
    assert fam.feature_width() == 9
    L = BK.map_rows(X.astype(dtype), LogJointKernel(fam, {"probabilities": P}, W), block_size=11)
    assert L.shape == (97, 2) and L.dtype == dtype
    np.testing.assert_allclose(L, scipy_log_joint(X, P, W), rtol=tol, atol=tol)


def test_features_are_one_hot_per_column():
    from emix.backends.numpy_backend import NumpyOps

    X = np.array([[2, 0, 3], [0, 1, 0]], dtype=np.float32)
    fam = bound(X, [3, 2, 4])
    F = fam.features(NumpyOps(np.float32), X)
    assert F.shape == (9, 2) and F.dtype == np.float32
    np.testing.assert_array_equal(F[:, 0], [0, 0, 1, 1, 0, 0, 0, 0, 1])
    np.testing.assert_array_equal(F[:, 1], [1, 0, 0, 0, 1, 1, 0, 0, 0])


def test_sizes_inferred_from_data_or_given():
    X = np.array([[0, 4], [2, 1]], dtype=np.float64)
    assert bound(X).sizes == (3, 5)
    assert bound(X, 6).sizes == (6, 6)
    assert bound(X, [3, 7]).sizes == (3, 7)
    assert bound(X).get_config() == {"n_categories": [3, 5]}
    assert Categorical(4).get_config() == {"n_categories": 4}
    with pytest.raises(InputError, match="3 column.*data have 2"):
        bound(X, [3, 4, 5])
    for bad in (0, [2, -1], 2.5, "three", [True]):
        with pytest.raises(InputError, match="n_categories"):
            Categorical(bad)


def test_m_step_is_weighted_closed_form(rng):
    X, _ = draw(rng, 90)
    fam = bound(X, list(SIZES))
    R = rng.dirichlet(np.ones(2), size=90)
    w = rng.uniform(0.1, 3.0, 90)
    acc = BK.stats_pass(X, w, GivenRespKernel(fam, lambda a, b: R[a:b], 2), block_size=16, width=9)
    params, issues = fam.m_step(stats_from_acc(acc, 90, fam), None)
    Rw = R * w[:, None]
    for j, pj in enumerate(fam.split(params["probabilities"])):
        counts = np.stack([Rw[X[:, j] == c].sum(axis=0) for c in range(SIZES[j])], axis=1)
        np.testing.assert_allclose(pj, counts / Rw.sum(axis=0)[:, None], rtol=1e-12)
        np.testing.assert_allclose(pj.sum(axis=1), 1.0, rtol=1e-15)
    assert issues == []


def test_em_increases_loglik_and_matches_scipy(rng):
    X, _ = draw(rng, 300)
    fam = bound(X)
    probs = np.hstack([rng.dirichlet(np.ones(c), size=2) for c in SIZES])
    weights = np.array([0.5, 0.5])
    history = []
    for _ in range(25):
        s = e_step(fam, X, probs, weights)
        assert s.loglik == pytest.approx(logsumexp(scipy_log_joint(X, probs, weights), axis=1).sum(), rel=1e-12)
        history.append(s.loglik)
        probs = fam.m_step(s, {"probabilities": probs})[0]["probabilities"]
        weights = s.nk / s.weight_sum
    assert np.all(np.diff(history) >= -1e-9 * abs(history[-1]))
    assert history[-1] > history[0]


@settings(max_examples=15)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(5, 40), K=st.integers(1, 3))
def test_em_never_decreases(seed, n, K):
    g = np.random.default_rng(seed)
    X = np.column_stack([g.integers(0, 3, n), g.integers(0, 2, n)]).astype(np.float64)
    fam = bound(X, [3, 2])
    probs = np.hstack([g.dirichlet(np.ones(3), size=K), g.dirichlet(np.ones(2), size=K)])
    weights = g.dirichlet(np.ones(K))
    prev = -np.inf
    for _ in range(8):
        s = e_step(fam, X, probs, weights, block_size=7)
        assert s.loglik >= prev - 1e-9 * max(1.0, abs(prev))
        prev = s.loglik
        probs = fam.m_step(s, {"probabilities": probs})[0]["probabilities"]
        weights = s.nk / s.weight_sum


def test_statistics_add_over_blocks_and_weights_repeat_rows(rng):
    X, _ = draw(rng, 60)
    fam = bound(X, list(SIZES))
    whole = e_step(fam, X, P, W)
    parts = e_step(fam, X[:31], P, W) + e_step(fam, X[31:], P, W)
    np.testing.assert_allclose(parts.S, whole.S, rtol=1e-12)
    assert parts.loglik == pytest.approx(whole.loglik, rel=1e-12)
    counts = rng.integers(0, 4, 60)
    weighted = e_step(fam, X, P, W, w=counts.astype(np.float64))
    repeated = e_step(fam, np.repeat(X, counts, axis=0), P, W)
    np.testing.assert_allclose(weighted.S, repeated.S, rtol=1e-12)
    assert weighted.loglik == pytest.approx(repeated.loglik, rel=1e-12)


def test_unseen_category_has_zero_probability_exactly(rng):
    """A category no row of a component takes gets probability 0 (log clamped)."""
    X = np.array([[0], [1], [0], [1]], dtype=np.float64)
    fam = bound(X, [3])
    s = e_step(fam, X, np.array([[0.2, 0.3, 0.5]]), np.ones(1))
    p = fam.m_step(s, None)[0]["probabilities"]
    np.testing.assert_array_equal(p, [[0.5, 0.5, 0.0]])
    assert e_step(fam, X, p, np.ones(1)).loglik == pytest.approx(4 * np.log(0.5), rel=1e-14)


def test_support_error_names_row_and_column():
    names = np.array(["colour", "size"], dtype=object)
    with pytest.raises(InputError, match=r"row 1, column 'size'.*-1"):
        Categorical().check_support(np.array([[0, 1], [2, -1.0]]), names)
    with pytest.raises(InputError, match=r"row 0, column 0.*1\.5"):
        Categorical().check_support(np.array([[1.5, 1.0]]))
    fam = bound(np.array([[0, 1], [2, 1.0]]))
    with pytest.raises(InputError, match=r"n_categories.*row 0, column 1 is 2"):
        fam.check_support(np.array([[0, 2.0]]))
    # Sizes given to the constructor are checked before binding too (MixtureModel checks
    # the support first).
    with pytest.raises(InputError, match=r"row 1, column 1 is 3"):
        MixtureModel("categorical", 1, family_options={"n_categories": [2, 3]}).fit(
            np.array([[0, 1], [1, 3]])
        )


def test_validate_params_and_counts():
    fam = Categorical([3, 2]).bind({"max": np.array([2.0, 1.0])}, 2)
    assert fam.n_parameters(4) == 4 * (2 + 1)
    good = [[0.2, 0.3, 0.5, 0.5, 0.5]]
    assert fam.validate_params({"probabilities": good}, 1)["probabilities"].shape == (1, 5)
    with pytest.raises(InputError, match="column 1 must sum to 1.*component 0"):
        fam.validate_params({"probabilities": [[0.2, 0.3, 0.5, 0.5, 0.6]]}, 1)
    with pytest.raises(InputError, match=r"shape \(K, 5\)"):
        fam.validate_params({"probabilities": [[0.5, 0.5]]}, 1)
    with pytest.raises(InputError, match="non-negative"):
        fam.validate_params({"probabilities": [[1.2, -0.2, 0.0, 0.5, 0.5]]}, 1)
    means = fam.component_means({"probabilities": np.array(good)})
    np.testing.assert_allclose(means, [[0.3 + 1.0, 0.5]])
    assert isinstance(get_family("categorical", n_categories=3), Categorical)


def test_sample_then_fit_recovers(rng):
    fam = Categorical(list(SIZES)).bind({}, 3)
    n = 10000
    draws = np.vstack([fam.sample({"probabilities": P}, k, n, rng) for k in range(2)])
    assert draws.shape == (2 * n, 3)
    np.testing.assert_allclose(np.bincount(draws[:n, 2].astype(int), minlength=4) / n, P[0, 5:], atol=0.015)
    m = MixtureModel("categorical", 2, n_init=3, random_state=0, tol=1e-9, max_iter=1000).fit(draws)
    order = np.argsort(-m.probabilities_[:, 0])  # component 0 of P favours code 0
    np.testing.assert_allclose(m.probabilities_[order], P, atol=0.03)
    np.testing.assert_allclose(m.weights_, [0.5, 0.5], atol=0.03)


def test_mixture_model_end_to_end(rng):
    X, _ = draw(rng, 400)
    m = MixtureModel("categorical", 2, random_state=1, tol=1e-8, max_iter=300).fit(X)
    assert m.probabilities_.shape == (2, 9)
    ref = logsumexp(scipy_log_joint(X, m.probabilities_, m.weights_), axis=1)
    np.testing.assert_allclose(m.score_samples(X), ref, rtol=1e-10)
    assert np.all(np.diff(m.lower_bounds_) >= -1e-9 * abs(m.lower_bounds_[-1]))
    assert m._n_parameters() == 2 * (2 + 1 + 3) + 1
    # New data are read with the fitted layout: a code beyond it is refused.
    with pytest.raises(InputError, match="row 0, column 1"):
        m.score_samples(np.array([[0.0, 2.0, 0.0]]))


def test_numpy_and_torch_fit_agree(rng):
    pytest.importorskip("torch")
    X, _ = draw(rng, 200)
    kw = dict(random_state=3, tol=1e-10, max_iter=15)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter may be reached; both runs alike
        a = MixtureModel("categorical", 2, **kw).fit(X)
        b = MixtureModel("categorical", 2, device="cpu", **kw).fit(X)
    np.testing.assert_allclose(b.probabilities_, a.probabilities_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(b.lower_bounds_, a.lower_bounds_, rtol=1e-10)
