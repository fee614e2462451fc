"""emix.HMM: Baum-Welch for every emission family.

References are independent of emix: log-emissions from scipy.stats, and the filter,
smoother, Viterbi path and likelihood by enumerating every state path (T <= 6, K <= 3).
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as ss
from scipy.special import logsumexp

import emix
from emix import HMM
from emix.exceptions import DegenerateComponentError, DegenerateComponentWarning, InputError
from emix.models.hmm import HMMStats, _HMMProblem


# --------------------------------------------------------------------------- cases
def _spd(rng, K, D):
    A = rng.normal(size=(K, D, D))
    return A @ np.transpose(A, (0, 2, 1)) + 0.5 * np.eye(D)


def _case(name, rng, K, T):
    """``(emission, family_options, X (T, D), params, log_B (T, K) from scipy)``."""
    if name.startswith("gaussian") or name.startswith("student_t"):
        fam, ct = name.split("-")
        D = 2
        means = rng.normal(scale=2.0, size=(K, D))
        full = _spd(rng, K, D)
        X = rng.normal(scale=2.0, size=(T, D))
        if ct == "full":
            cov, dense = full, full
        elif ct == "tied":
            cov, dense = full[0], np.stack([full[0]] * K)
        elif ct == "diag":
            cov = np.diagonal(full, axis1=1, axis2=2).copy()
            dense = np.stack([np.diag(c) for c in cov])
        else:
            cov = rng.uniform(0.5, 2.0, size=K)
            dense = np.stack([c * np.eye(D) for c in cov])
        if fam == "gaussian":
            params = {"means": means, "covariances": cov}
            log_B = np.stack(
                [ss.multivariate_normal(means[k], dense[k]).logpdf(X) for k in range(K)], axis=1
            )
        else:
            df = rng.uniform(2.0, 8.0, size=K)
            params = {"means": means, "scales": cov, "df": df}
            log_B = np.stack(
                [ss.multivariate_t(means[k], dense[k], df=df[k]).logpdf(X) for k in range(K)], axis=1
            )
        return fam, {"covariance_type": ct}, X, params, log_B
    if name == "bernoulli":
        p = rng.uniform(0.1, 0.9, size=(K, 3))
        X = (rng.random((T, 3)) < 0.5).astype(float)
        log_B = np.stack([ss.bernoulli(p[k]).logpmf(X).sum(axis=1) for k in range(K)], axis=1)
        return name, {}, X, {"probabilities": p}, log_B
    if name == "categorical":
        sizes = [3, 2]
        probs = [rng.dirichlet(np.ones(c), size=K) for c in sizes]
        X = np.stack([rng.integers(0, c, T) for c in sizes], axis=1).astype(float)
        log_B = sum(np.log(probs[j][:, X[:, j].astype(int)]).T for j in range(2))
        return name, {"family_options": {"n_categories": sizes}}, X, {"probabilities": np.hstack(probs)}, log_B
    if name == "poisson":
        rates = rng.uniform(0.5, 6.0, size=(K, 2))
        X = rng.poisson(3.0, size=(T, 2)).astype(float)
        log_B = np.stack([ss.poisson(rates[k]).logpmf(X).sum(axis=1) for k in range(K)], axis=1)
        return name, {}, X, {"rates": rates}, log_B
    if name == "exponential":
        rates = rng.uniform(0.2, 3.0, size=(K, 1))
        X = rng.exponential(1.0, size=(T, 1))
        log_B = np.stack([ss.expon(scale=1 / rates[k, 0]).logpdf(X[:, 0]) for k in range(K)], axis=1)
        return name, {}, X, {"rates": rates}, log_B
    if name == "binomial":
        p = rng.uniform(0.1, 0.9, size=(K, 1))
        n = rng.integers(1, 8, T)
        X = np.stack([rng.binomial(n, 0.5), n], axis=1).astype(float)
        log_B = np.stack([ss.binom(X[:, 1], p[k, 0]).logpmf(X[:, 0]) for k in range(K)], axis=1)
        return name, {}, X, {"probabilities": p}, log_B
    raise AssertionError(name)


TIED = "tied" in __import__("emix.families.normal", fromlist=["x"]).COVARIANCE_TYPES
CASES = [
    "gaussian-full", *(["gaussian-tied"] if TIED else []), "gaussian-diag", "gaussian-spherical", "bernoulli", "categorical",
    "poisson", "exponential", "binomial", "student_t-full", "student_t-diag",
    "student_t-spherical",
]


def _frozen(emission, opts, params, startprob, transmat, K, **kw):
    """An HMM whose fit leaves every given parameter as it is (no EM iteration)."""
    return HMM(
        K, emission, startprob_init=startprob, transmat_init=transmat, emission_init=params,
        max_iter=0, **opts, **kw,
    )


def _chain(rng, K, zeros=False):
    pi = rng.dirichlet(np.ones(K))
    A = rng.dirichlet(np.ones(K), size=K)
    if zeros and K > 1:
        A[0, 1] = 0.0  # a forbidden transition
        A /= A.sum(axis=1, keepdims=True)
    return pi, A


def _enumerate(log_B, pi, A):
    """Likelihood, filtered and smoothed probabilities and the best path of one sequence
    by summing over all K^T state paths."""
    T, K = log_B.shape
    with np.errstate(divide="ignore"):
        lpi, lA = np.log(pi), np.log(A)

    def path_logp(z):
        return lpi[z[0]] + sum(lA[z[t - 1], z[t]] for t in range(1, len(z))) + sum(
            log_B[t, z[t]] for t in range(len(z))
        )

    paths = list(itertools.product(range(K), repeat=T))
    lp = np.array([path_logp(z) for z in paths])
    loglik = logsumexp(lp)
    Z = np.array(paths)
    smoothed = np.stack([np.exp(logsumexp(np.where(Z[:, None, t] == np.arange(K), lp[:, None], -np.inf), axis=0) - loglik) for t in range(T)])
    filtered = np.empty((T, K))
    for t in range(T):
        pre = list(itertools.product(range(K), repeat=t + 1))
        lq = np.array([path_logp(z) for z in pre])
        last = np.array([z[-1] for z in pre])
        f = np.array([logsumexp(lq[last == k]) if np.any(last == k) else -np.inf for k in range(K)])
        filtered[t] = np.exp(f - logsumexp(lq))
    best = int(np.argmax(lp))
    return loglik, filtered, smoothed, Z[best], lp[best]


# --------------------------------------------------------------------------- exactness
@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("K,T", [(2, 6), (3, 5)])
def test_inference_equals_enumeration_of_all_paths(name, K, T, rng):
    emission, opts, X, params, log_B = _case(name, rng, K, T)
    pi, A = _chain(rng, K, zeros=(K == 3))
    m = _frozen(emission, opts, params, pi, A, K).fit(X)
    loglik, filtered, smoothed, path, best = _enumerate(log_B, pi, A)
    steps = m.score_samples(X)
    np.testing.assert_allclose(steps.sum(), loglik, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(m.score(X), loglik / T, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(m.filter(X), filtered, atol=1e-9)
    np.testing.assert_allclose(m.predict_proba(X), smoothed, atol=1e-9)
    logprob, vpath = m.decode(X)
    np.testing.assert_array_equal(vpath, path)
    np.testing.assert_array_equal(m.predict(X), path)
    np.testing.assert_allclose(logprob, best, rtol=1e-9)
    # score_samples is the one-step predictive density: the t-th partial sum is the
    # likelihood of the prefix.
    prefix = _enumerate(log_B[:3], pi, A)[0]
    np.testing.assert_allclose(steps[:3].sum(), prefix, rtol=1e-9)


def test_several_sequences_are_independent(rng):
    emission, opts, X, params, log_B = _case("poisson", rng, 3, 9)
    pi, A = _chain(rng, 3)
    m = _frozen(emission, opts, params, pi, A, 3).fit(X)
    lengths = [4, 2, 3]
    parts = np.split(np.arange(9), np.cumsum(lengths)[:-1])
    ref = [_enumerate(log_B[p], pi, A) for p in parts]
    np.testing.assert_allclose(m.score_samples(X, lengths).sum(), sum(r[0] for r in ref), rtol=1e-10)
    np.testing.assert_allclose(m.predict_proba(X, lengths), np.vstack([r[2] for r in ref]), atol=1e-10)
    np.testing.assert_allclose(m.filter(X, lengths), np.vstack([r[1] for r in ref]), atol=1e-10)
    np.testing.assert_array_equal(m.predict(X, lengths), np.concatenate([r[3] for r in ref]))
    with pytest.raises(InputError, match="lengths sum to 8"):
        m.predict(X, [4, 4])


# --------------------------------------------------------------------------- causality
@pytest.fixture(scope="module")
def gauss_model():
    rng = np.random.default_rng(7)
    z = np.repeat([0, 1, 0, 1], 50)
    X = rng.normal(np.array([[0.0, 0.0], [2.0, 1.0]])[z], 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = HMM(2, covariance_type="diag", random_state=0, max_iter=20).fit(X)
    return m, X


@settings(max_examples=25)
@given(t=st.integers(0, 198), seed=st.integers(0, 2**31 - 1), cut=st.booleans())
def test_filter_is_causal(gauss_model, t, seed, cut):
    m, X = gauss_model
    base = m.filter(X)
    if cut:
        X2 = X[: t + 1]
    else:
        X2 = X.copy()
        X2[t + 1 :] = np.random.default_rng(seed).normal(scale=5.0, size=X2[t + 1 :].shape)
    np.testing.assert_allclose(m.filter(X2)[: t + 1], base[: t + 1], rtol=1e-12, atol=1e-14)


def test_smoother_is_not_causal(gauss_model):
    # The control for the test above: the smoothed probabilities of early rows move
    # when later rows change.
    m, X = gauss_model
    X2 = X.copy()
    X2[40:] = X2[40:][::-1]
    assert np.abs(m.predict_proba(X2)[:40] - m.predict_proba(X)[:40]).max() > 1e-3
    np.testing.assert_allclose(m.filter(X2)[:40], m.filter(X)[:40], rtol=1e-12, atol=1e-14)


# --------------------------------------------------------------------------- EM
def _sample_chain(rng, A, T):
    z = np.empty(T, dtype=int)
    z[0] = 0
    for t in range(1, T):
        z[t] = rng.choice(len(A), p=A[z[t - 1]])
    return z


@settings(max_examples=12)
@given(seed=st.integers(0, 2**31 - 1), fam=st.sampled_from(["gaussian", "poisson", "bernoulli", "student_t"]))
def test_log_likelihood_never_decreases(seed, fam):
    rng = np.random.default_rng(seed)
    z = _sample_chain(rng, np.array([[0.9, 0.1], [0.2, 0.8]]), 150)
    if fam == "poisson":
        X = rng.poisson(np.array([1.0, 4.0])[z])[:, None].astype(float)
    elif fam == "bernoulli":
        X = (rng.random((150, 2)) < np.array([0.2, 0.7])[z][:, None]).astype(float)
    else:
        X = rng.standard_t(4, size=(150, 1)) + np.array([0.0, 1.5])[z][:, None]
    m = HMM(2, fam, max_iter=30, tol=0.0, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", emix.ConvergenceWarning)
        # (A Gaussian state may collapse onto one row: named, and still monotone.)
        warnings.simplefilter("ignore", DegenerateComponentWarning)
        m.fit(X)
    lb = m.lower_bounds_
    assert np.all(np.isfinite(lb))
    assert np.all(np.diff(lb) >= -1e-9 * np.abs(lb[1:]))
    assert np.isfinite(m.transmat_).all() and np.allclose(m.transmat_.sum(axis=1), 1.0)


def test_recovers_a_two_regime_chain(rng):
    A = np.array([[0.95, 0.05], [0.1, 0.9]])
    z = _sample_chain(rng, A, 3000)
    X = rng.normal(np.array([0.0, 3.0])[z], 1.0)[:, None]
    m = HMM(2, "gaussian", label_order="mean", random_state=0).fit(X)
    np.testing.assert_allclose(m.transmat_, A, atol=0.03)
    np.testing.assert_allclose(m.means_[:, 0], [0.0, 3.0], atol=0.1)
    assert np.mean(m.predict(X) == z) > 0.97
    assert m.converged_ and m.means_.shape == (2, 1) and m.covariances_.shape == (2, 1, 1)


def test_structural_zeros_stay_zero(rng):
    # A left-right chain of three states through a sequence of rising levels.
    X = np.concatenate([rng.normal(0, 1, 60), rng.normal(4, 1, 60), rng.normal(8, 1, 60)])[:, None]
    A0 = np.array([[0.9, 0.1, 0.0], [0.0, 0.9, 0.1], [0.0, 0.0, 1.0]])
    # (The emission start must follow the chain's order: k-means numbers clusters
    # arbitrarily, and a left-right chain cannot reorder them.)
    m = HMM(3, startprob_init=[1.0, 0.0, 0.0], transmat_init=A0, means_init=[[1.0], [3.0], [7.0]],
            random_state=0).fit(X)
    assert np.all(m.transmat_[A0 == 0] == 0.0)
    assert m.startprob_[1] == 0.0 and m.startprob_[2] == 0.0
    assert np.all(np.diff(m.predict(X)) >= 0)
    # Free: startprob 0 (one nonzero), transmat 1 + 1 + 0, emission 3 * (1 + 1).
    assert m._n_parameters() == 2 + 6
    n = X.shape[0]
    np.testing.assert_allclose(m.bic(X), -2 * m.score(X) * n + 8 * np.log(n))
    np.testing.assert_allclose(m.aic(X), -2 * m.score(X) * n + 16)


def test_fixed_groups_are_not_re_estimated(rng):
    X = rng.poisson(np.repeat([1.0, 5.0, 1.0], 40))[:, None].astype(float)
    A0 = np.array([[0.7, 0.3], [0.4, 0.6]])
    rates = np.array([[2.0], [3.0]])
    m = HMM(2, "poisson", transmat_init=A0, emission_init={"rates": rates},
            fixed=("transmat", "emission")).fit(X)
    np.testing.assert_array_equal(m.transmat_, A0)
    np.testing.assert_array_equal(m.rates_, rates)
    assert not np.allclose(m.startprob_, 0.5)
    assert m._n_parameters() == 1
    m2 = HMM(2, "poisson", emission_init={"rates": rates}, fixed="startprob").fit(X)
    np.testing.assert_array_equal(m2.startprob_, [0.5, 0.5])
    with pytest.raises(InputError, match="'trans' is none of them"):
        HMM(2, "poisson", fixed=("trans",)).fit(X)


def test_several_sequences_add_statistics(rng):
    X = rng.normal(size=(30, 2))
    lengths = [12, 10, 8]
    m = HMM(2, covariance_type="full", max_iter=0, random_state=0).fit(X)
    params = m._current_params()
    fam = m.family_

    def stats(Xp, L):
        from emix.backends import resolve_backend

        prob = _HMMProblem(resolve_backend(Xp, None), Xp, fam, 2, np.asarray(L), None, frozenset())
        return prob, prob.e_step(params)

    prob, whole = stats(X, lengths)
    parts = [stats(p, [len(p)])[1] for p in np.split(X, np.cumsum(lengths)[:-1])]
    added = sum(parts[1:], parts[0])
    assert isinstance(added, HMMStats) and added.n_sequences == 3
    for a in ("start", "transitions", "occupancy"):
        np.testing.assert_allclose(getattr(whole, a), getattr(added, a), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(whole.loglik, added.loglik, rtol=1e-12)
    np.testing.assert_allclose(whole.emission.S, added.emission.S, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(whole.emission.nk, added.emission.nk, rtol=1e-12)
    # startprob re-estimated from three sequences' first rows: start / 3.
    new = prob.m_step(added, params, 1)
    np.testing.assert_allclose(new[0], added.start / 3)
    np.testing.assert_allclose(new[1].sum(axis=1), 1.0)


# --------------------------------------------------------------------------- degeneracy
def test_never_visited_state_is_named_without_nan(rng):
    X = rng.normal(size=(100, 1))
    m = HMM(3, means_init=[[-0.5], [0.5], [1000.0]], covariances_init=np.ones((3, 1, 1)), random_state=0)
    with pytest.warns(DegenerateComponentWarning, match="state 2 is never visited"):
        m.fit(X)
    assert m.degenerate_ and m.degenerate_states_.tolist() == [2]
    assert np.isfinite(m.means_).all() and np.isfinite(m.covariances_).all()
    assert np.isfinite(m.transmat_).all() and np.isfinite(m.startprob_).all()
    assert m.means_[2, 0] == 1000.0
    assert np.isfinite(m.predict_proba(X)).all()


def test_no_transitions_keep_the_transition_row(rng):
    X = rng.normal(size=(40, 1))
    A0 = np.array([[0.6, 0.4], [0.3, 0.7]])
    with pytest.warns(DegenerateComponentWarning) as record:
        m = HMM(2, transmat_init=A0, random_state=0).fit(X, lengths=[1] * 40)
    msgs = sorted(str(w.message) for w in record)
    assert len(msgs) == 2
    assert msgs[0].startswith("state 0 has no expected transitions")
    assert msgs[1].startswith("state 1 has no expected transitions")
    np.testing.assert_array_equal(m.transmat_, A0)
    assert np.isfinite(m.means_).all()


def test_collapsing_emission_raises_naming_the_state(rng):
    X = np.concatenate([rng.normal(size=60), np.full(40, 5.0)])[:, None]
    m = HMM(2, means_init=[[0.0], [5.0]], covariances_init=[[[1.0]], [[1.0]]],
            family_options={"reg_covar": 0.0})
    with pytest.raises(DegenerateComponentError, match="state 1"):
        m.fit(X)


def test_bad_initial_values_are_named():
    X = np.arange(20.0)[:, None]
    with pytest.raises(InputError, match="row 1 of transmat_init"):
        HMM(2, transmat_init=[[0.5, 0.5], [0.5, 0.6]]).fit(X)
    with pytest.raises(InputError, match="startprob_init"):
        HMM(2, startprob_init=[0.2, 0.2]).fit(X)
    with pytest.raises(InputError, match="covariances_init applies"):
        HMM(2, "poisson", covariances_init=np.ones((2, 1, 1))).fit(X)
    with pytest.raises(InputError, match="n_states=3"):
        HMM(3).fit(X[:2])


# --------------------------------------------------------------------------- API
@pytest.mark.parametrize("ct", ["full", "tied"])
def test_label_order_permutes_the_whole_model(ct, rng):
    if ct == "tied" and not TIED:
        pytest.skip("the Gaussian family has no tied covariance yet")
    z = _sample_chain(rng, np.array([[0.9, 0.1, 0.0], [0.05, 0.9, 0.05], [0.1, 0.0, 0.9]]), 600)
    X = rng.normal(np.array([5.0, -3.0, 1.0])[z], 0.7)[:, None]
    a = HMM(3, covariance_type=ct, random_state=1).fit(X)
    b = HMM(3, covariance_type=ct, random_state=1, label_order="mean").fit(X)
    perm = np.argsort(a.means_[:, 0])
    np.testing.assert_allclose(b.means_, a.means_[perm])
    np.testing.assert_allclose(b.covariances_, a.covariances_ if ct == "tied" else a.covariances_[perm])
    np.testing.assert_allclose(b.transmat_, a.transmat_[np.ix_(perm, perm)])
    np.testing.assert_allclose(b.startprob_, a.startprob_[perm])
    np.testing.assert_allclose(b.predict_proba(X), a.predict_proba(X)[:, perm], atol=1e-12)
    np.testing.assert_allclose(b.score(X), a.score(X))


def test_sample_follows_the_chain(rng):
    m = _frozen("poisson", {}, {"rates": np.array([[1.0], [20.0]])}, [1.0, 0.0],
                np.array([[0.9, 0.1], [0.3, 0.7]]), 2).fit(np.array([[1.0], [3.0]]))
    X, z = m.sample(20000, random_state=3)
    assert X.shape == (20000, 1) and z[0] == 0
    counts = np.zeros((2, 2))
    np.add.at(counts, (z[:-1], z[1:]), 1)
    np.testing.assert_allclose(counts / counts.sum(axis=1, keepdims=True), m.transmat_, atol=0.02)
    np.testing.assert_allclose([X[z == 0].mean(), X[z == 1].mean()], [1.0, 20.0], rtol=0.05)
    X2, z2 = m.sample(50, random_state=3)
    np.testing.assert_array_equal(z2, z[:50])


def test_save_load_round_trip(tmp_path, rng):
    z = _sample_chain(rng, np.array([[0.9, 0.1], [0.2, 0.8]]), 200)
    X = rng.poisson(np.array([1.0, 6.0])[z])[:, None].astype(float)
    m = HMM(2, "poisson", transmat_init=[[0.9, 0.1], [0.0, 1.0]], random_state=0).fit(X)
    m.save(tmp_path / "hmm.zip")
    r = emix.load(tmp_path / "hmm.zip")
    assert isinstance(r, HMM) and r.n_states == 2 and r.emission == "poisson"
    np.testing.assert_array_equal(r.transmat_, m.transmat_)
    np.testing.assert_array_equal(r.rates_, m.rates_)
    np.testing.assert_array_equal(r.predict_proba(X), m.predict_proba(X))
    np.testing.assert_array_equal(r.filter(X), m.filter(X))
    assert r.score(X) == m.score(X) and r._n_parameters() == m._n_parameters()
    np.testing.assert_array_equal(r.lower_bounds_, m.lower_bounds_)


def test_save_load_gaussian_float32(tmp_path, rng):
    X = rng.normal(size=(120, 2)).astype(np.float32)
    m = HMM(2, covariance_type="diag", random_state=0).fit(X)
    assert m.means_.dtype == np.float32 and m.transmat_.dtype == np.float64
    m.save(tmp_path / "g.zip")
    r = emix.load(tmp_path / "g.zip")
    np.testing.assert_array_equal(r.covariances_, m.covariances_)
    np.testing.assert_array_equal(r.predict(X), m.predict(X))


def test_product_emission(rng):
    z = _sample_chain(rng, np.array([[0.9, 0.1], [0.2, 0.8]]), 300)
    X = np.column_stack([rng.normal(np.array([0.0, 3.0])[z]), rng.poisson(np.array([1.0, 8.0])[z])])
    m = HMM(2, {"gaussian": [0], "poisson": [1]}, random_state=0, label_order="mean").fit(X)
    assert set(m.params_) == {"gaussian", "poisson"}
    assert np.mean(m.predict(X) == z) > 0.95


def test_warm_start_continues(rng):
    X = rng.normal(np.repeat([0.0, 3.0, 0.0], 50))[:, None]
    full = HMM(2, random_state=0, tol=0.0, max_iter=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", emix.ConvergenceWarning)
        full.fit(X)
        part = HMM(2, random_state=0, tol=0.0, max_iter=4, warm_start=True).fit(X)
        part.fit(X)
    np.testing.assert_allclose(part.means_, full.means_, rtol=1e-10)
    np.testing.assert_allclose(part.transmat_, full.transmat_, rtol=1e-10)


def test_numpy_and_torch_agree(rng):
    pytest.importorskip("torch")
    z = _sample_chain(rng, np.array([[0.9, 0.1], [0.2, 0.8]]), 300)
    X = rng.standard_t(5, size=(300, 2)) + np.array([[0.0, 0.0], [2.0, 1.0]])[z]
    kw = dict(random_state=0, max_iter=10, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", emix.ConvergenceWarning)
        a = HMM(2, "student_t", **kw).fit(X)
        b = HMM(2, "student_t", device="cpu", **kw).fit(X)
    np.testing.assert_allclose(b.lower_bounds_, a.lower_bounds_, rtol=1e-10)
    np.testing.assert_allclose(b.scales_, a.scales_, rtol=1e-8)
    np.testing.assert_allclose(b.df_, a.df_, rtol=1e-7)
    np.testing.assert_allclose(b.transmat_, a.transmat_, rtol=1e-8)


# --------------------------------------------------------------------------- hmmlearn
def _hmmlearn_run(model, X, pi, A, n_iter=10):
    model.startprob_ = pi
    model.transmat_ = A
    model.fit(X)
    return np.asarray(model.monitor_.history)


def _emix_run(X, pi, A, n_iter=10, **kw):
    m = HMM(len(pi), startprob_init=pi, transmat_init=A, max_iter=n_iter, tol=0.0, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", emix.ConvergenceWarning)
        m.fit(X)
    return m, m.lower_bounds_ * X.shape[0]


def _regimes(rng, T, K):
    A = np.full((K, K), 0.1 / (K - 1))
    np.fill_diagonal(A, 0.9)
    return _sample_chain(rng, A, T)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_gaussian_matches_hmmlearn_iteration_by_iteration(covariance_type, rng):
    if not TIED and covariance_type == "tied":
        pytest.skip("the Gaussian family has no tied covariance yet")
    hmm = pytest.importorskip("hmmlearn.hmm")
    K, D, T = 3, 2, 400
    z = _regimes(rng, T, K)
    X = rng.normal(size=(T, D)) + np.array([[0.0, 0.0], [2.0, 1.0], [-1.0, 2.5]])[z]
    pi = np.array([0.5, 0.3, 0.2])
    A = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.3, 0.6]])
    means = X[[0, 100, 200]] + 0.1
    cov_full = np.stack([np.cov(X.T)] * K)
    covs = {"full": cov_full, "tied": cov_full[0], "diag": np.diagonal(cov_full, axis1=1, axis2=2).copy(),
            "spherical": np.full(K, np.trace(cov_full[0]) / D)}[covariance_type]
    # hmmlearn's covariance prior off (covars_prior=0, covars_weight=1): maximum likelihood.
    ref = hmm.GaussianHMM(K, covariance_type, min_covar=0.0, covars_prior=0.0, covars_weight=1.0,
                          init_params="", params="stmc", implementation="scaling", n_iter=10,
                          tol=-np.inf)
    ref.means_ = means
    ref.covars_ = covs
    history = _hmmlearn_run(ref, X, pi, A)
    m, ours = _emix_run(X, pi, A, covariance_type=covariance_type, means_init=means,
                        covariances_init=covs, family_options={"reg_covar": 0.0})
    assert len(history) == len(ours) == 10
    np.testing.assert_allclose(ours, history, rtol=1e-6)
    np.testing.assert_allclose(m.transmat_, ref.transmat_, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(m.means_, ref.means_, rtol=1e-6, atol=1e-9)
    # hmmlearn's _covars_ are diag (K, D) and spherical (K, D) with equal columns.
    theirs = {"full": ref._covars_, "tied": ref._covars_, "diag": ref._covars_, "spherical": ref._covars_[:, 0]}
    np.testing.assert_allclose(m.covariances_, theirs[covariance_type], rtol=1e-6, atol=1e-9)


def test_categorical_and_poisson_match_hmmlearn(rng):
    hmm = pytest.importorskip("hmmlearn.hmm")
    K, T = 2, 500
    z = _regimes(rng, T, K)
    pi = np.array([0.6, 0.4])
    A = np.array([[0.7, 0.3], [0.25, 0.75]])
    # Categorical: one column of codes 0..3.
    X = np.where(z == 0, rng.choice(4, T, p=[0.5, 0.3, 0.1, 0.1]), rng.choice(4, T, p=[0.1, 0.1, 0.3, 0.5]))[:, None]
    B = np.array([[0.4, 0.3, 0.2, 0.1], [0.1, 0.2, 0.3, 0.4]])
    ref = hmm.CategoricalHMM(K, n_features=4, init_params="", params="ste",
                             implementation="scaling", n_iter=10, tol=-np.inf)
    ref.emissionprob_ = B
    history = _hmmlearn_run(ref, X, pi, A)
    m, ours = _emix_run(X.astype(float), pi, A, emission="categorical", emission_init={"probabilities": B},
                        family_options={"n_categories": 4})
    np.testing.assert_allclose(ours, history, rtol=1e-6)
    np.testing.assert_allclose(m.probabilities_, ref.emissionprob_, rtol=1e-6, atol=1e-9)
    # Poisson: two columns of counts.
    X = rng.poisson(np.array([[1.0, 4.0], [5.0, 0.5]])[z])
    lam = np.array([[2.0, 2.0], [3.0, 1.0]])
    ref = hmm.PoissonHMM(K, init_params="", params="stl", implementation="scaling", n_iter=10,
                         tol=-np.inf)
    ref.lambdas_ = lam
    history = _hmmlearn_run(ref, X, pi, A)
    m, ours = _emix_run(X.astype(float), pi, A, emission="poisson", emission_init={"rates": lam})
    np.testing.assert_allclose(ours, history, rtol=1e-6)
    np.testing.assert_allclose(m.rates_, ref.lambdas_, rtol=1e-6)
    np.testing.assert_allclose(m.transmat_, ref.transmat_, rtol=1e-6)
