"""Mini-batch (stepwise) EM: the schedule, the running statistics, partial_fit and
fit(algorithm='minibatch') over a stream, against full-batch EM."""

from __future__ import annotations

import numpy as np
import pytest

import emix
from emix.em.stepwise import StepwiseState, check_schedule, step_size
from emix.exceptions import InputError
from emix.families._base import MixtureStats
from emix.families import gaussian as G

CENTERS = np.array([[0.0, 0.0], [9.0, 0.0], [0.0, 9.0]])


def blobs(rng, n, centers=CENTERS, sd=1.0):
    z = rng.integers(0, len(centers), n)
    return centers[z] + sd * rng.standard_normal((n, centers.shape[1])), z


# ---------------------------------------------------------------------- schedule
@pytest.mark.parametrize("alpha", [0.5, 0.0, -1.0, 1.0001, 2.0, float("nan"), "fast"])
def test_alpha_outside_half_open_interval_is_refused(alpha):
    with pytest.raises(InputError, match="step_alpha"):
        check_schedule(alpha, 2.0)
    X = np.random.default_rng(0).standard_normal((50, 2))
    with pytest.raises(InputError, match="step_alpha"):
        emix.GaussianMixture(2, random_state=0).partial_fit(X, step_alpha=alpha)
    with pytest.raises(InputError, match="step_alpha"):
        emix.GaussianMixture(2, random_state=0).fit(X, algorithm="minibatch", step_alpha=alpha)


@pytest.mark.parametrize("t0", [-0.5, float("inf")])
def test_negative_or_infinite_offset_is_refused(t0):
    with pytest.raises(InputError, match="step_offset"):
        check_schedule(0.7, t0)


def test_step_sizes_follow_the_documented_formula():
    assert step_size(1, 0.6, 2.0) == pytest.approx(3.0**-0.6, rel=1e-15)
    assert step_size(10, 1.0, 0.0) == pytest.approx(0.1, rel=1e-15)
    gammas = [step_size(t, 0.6, 2.0) for t in range(1, 50)]
    assert all(0 < g < 1 for g in gammas) and np.all(np.diff(gammas) < 0)
    assert check_schedule(1, 0) == (1.0, 0.0)


def _family_stats(rng, K=3, M=2):
    nk = rng.uniform(1, 5, K)
    W = float(nk.sum())
    return MixtureStats(rng.normal(size=(K, M)), nk, float(rng.normal()), W, int(rng.integers(5, 50)))


def test_alpha_one_offset_one_is_the_running_mean_of_unit_weight_statistics(rng):
    # gamma_t = 1/(t+1): after n batches every batch's per-unit-weight statistics
    # count 1/n, which is the plain average.
    state = StepwiseState(1.0, 1.0)
    batches = [_family_stats(rng) for _ in range(4)]
    for b in batches:
        state.update(b)
    mean_S = np.mean([b.S / b.weight_sum for b in batches], axis=0)
    mean_nk = np.mean([b.nk / b.weight_sum for b in batches], axis=0)
    np.testing.assert_allclose(state.stats.S, mean_S, rtol=1e-13)
    np.testing.assert_allclose(state.stats.nk, mean_nk, rtol=1e-13)
    assert state.stats.weight_sum == pytest.approx(1.0, rel=1e-14)
    total = sum(b.weight_sum for b in batches)
    s = state.for_m_step()
    assert s.weight_sum == pytest.approx(total, rel=1e-13)
    assert s.n_rows == sum(b.n_rows for b in batches)


def test_default_schedule_weights_batches_by_their_steps(rng):
    state = StepwiseState()
    a, b = _family_stats(rng), _family_stats(rng)
    state.update(a)
    gamma = state.update(b)
    assert gamma == pytest.approx(3.0**-0.6)
    expect = (1 - gamma) * a.S / a.weight_sum + gamma * b.S / b.weight_sum
    np.testing.assert_allclose(state.stats.S, expect, rtol=1e-13)


@pytest.mark.parametrize("ct", ["full", "tied", "diag", "spherical"])
def test_gaussian_statistics_about_different_anchors_are_mixed_in_one_frame(rng, ct):
    # Two batches' statistics taken about different anchors: the running statistics,
    # moved to the origin, equal the mix of both moved to the origin first.
    K, D = 3, 2
    X = rng.normal(size=(60, D))
    resp = rng.dirichlet(np.ones(K), size=60)
    frame = G.Frame(np.zeros(D), 1.0)
    M = G.n_features_of(ct, D)

    def stats_of(rows):
        feats = []
        for x in X[rows]:
            if ct == "full":
                iu, ju = np.triu_indices(D)
                f = np.concatenate([np.outer(x, x)[iu, ju], x, [1.0]])
            elif ct == "diag":
                f = np.concatenate([x * x, x, [1.0]])
            elif ct == "spherical":
                f = np.concatenate([[x @ x], x, [1.0]])
            else:
                f = np.concatenate([x, [1.0]])
            feats.append(f)
        F = np.asarray(feats)
        assert F.shape[1] == M
        scatter = X[rows].T @ X[rows] if ct == "tied" else None
        return G.GaussianStats(ct, frame, resp[rows].T @ F, scatter, 0.0, float(len(rows)), len(rows))

    s1, s2 = stats_of(np.arange(0, 25)), stats_of(np.arange(25, 60))
    state = StepwiseState(0.8, 1.0)
    state.update(s1.reanchor(rng.normal(size=(K, D))))
    gamma = state.update(s2.reanchor(rng.normal(size=(K, D))))
    got = state.stats.reanchor(None)
    want = (1 - gamma) * s1.resp_moments / 25 + gamma * s2.resp_moments / 35
    np.testing.assert_allclose(got.resp_moments, want, rtol=1e-10, atol=1e-12)
    if ct == "tied":
        # The tied scatter is the total; moving anchors changes it by the same algebra.
        want_sc = (1 - gamma) * s1.scatter / 25 + gamma * s2.scatter / 35
        np.testing.assert_allclose(got.scatter, want_sc, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------- acceptance
def _stream(X, rows):
    """A callable source: a fresh iterator of blocks on every pass (a stream)."""
    return emix.data.source(lambda: (X[i : i + rows] for i in range(0, len(X), rows)))


@pytest.mark.parametrize("n_epochs", [1, 2])
def test_minibatch_on_a_stream_is_within_one_percent_of_full_batch(rng, n_epochs):
    X, _ = blobs(rng, 24_000)
    full = emix.GaussianMixture(3, random_state=0).fit(X)
    mb = emix.GaussianMixture(3, random_state=0).fit(
        _stream(X, 2_000), algorithm="minibatch", n_epochs=n_epochs
    )
    assert mb.n_batches_seen_ == 12 * n_epochs
    ll_full, ll_mb = full.score(X), mb.score(X)
    assert abs(ll_mb - ll_full) <= 0.01 * abs(ll_full)
    assert ll_mb <= ll_full + 1e-9  # full-batch EM is the maximiser here
    order = np.argsort(mb.means_[:, 0] + 10 * mb.means_[:, 1])
    np.testing.assert_allclose(mb.means_[order], CENTERS, atol=0.1)


def test_minibatch_from_parquet_and_npy_files(rng, tmp_path):
    X, _ = blobs(rng, 9_000)
    np.save(tmp_path / "x.npy", X)
    pytest.importorskip("pyarrow")
    import pandas as pd

    pd.DataFrame(X, columns=["u", "v"]).to_parquet(tmp_path / "x.parquet")
    full = emix.GaussianMixture(3, random_state=0).fit(X)
    for path in (tmp_path / "x.npy", tmp_path / "x.parquet"):
        mb = emix.GaussianMixture(3, random_state=0).fit(
            str(path), algorithm="minibatch", batch_rows=1_500
        )
        assert mb.n_batches_seen_ == 6
        assert abs(mb.score(str(path)) - full.score(X)) <= 0.01 * abs(full.score(X))
    assert list(mb.feature_names_in_) == ["u", "v"]


@pytest.mark.parametrize("ct", ["full", "diag"])
def test_minibatch_with_anchored_statistics_keeps_precision(rng, ct):
    # Tight clusters far apart relative to their spread: every batch's statistics are
    # taken about the current means (anchored), which move between batches, so the
    # running statistics must be moved to the new anchors before each mix.
    X, _ = blobs(rng, 12_000, centers=CENTERS * 1e3, sd=0.5)
    kw = dict(covariance_type=ct, random_state=0)
    g = emix.GaussianMixture(3, **kw)
    g.partial_fit(X[:1_000])
    g.partial_fit(X[1_000:2_000])
    assert g._stepwise.stats.anchors is not None
    full = emix.GaussianMixture(3, **kw).fit(X)
    mb = emix.GaussianMixture(3, **kw).fit(X, algorithm="minibatch", batch_rows=1_000, n_epochs=2)
    assert abs(mb.score(X) - full.score(X)) <= 0.01 * abs(full.score(X))
    sd = np.sqrt(mb.covariances_ if ct == "diag" else np.diagonal(mb.covariances_, axis1=1, axis2=2))
    np.testing.assert_allclose(sd, 0.5, rtol=0.05)


def test_poisson_minibatch_and_partial_fit(rng):
    rates = np.array([[1.0, 30.0], [30.0, 1.0], [60.0, 60.0]])
    z = rng.integers(0, 3, 15_000)
    X = rng.poisson(rates[z]).astype(np.float64)
    full = emix.MixtureModel("poisson", n_components=3, n_init=3, random_state=0).fit(X)
    mb = emix.MixtureModel("poisson", n_components=3, random_state=0).fit(
        X, algorithm="minibatch", batch_rows=1_500
    )
    assert abs(mb.score(X) - full.score(X)) <= 0.01 * abs(full.score(X))
    np.testing.assert_allclose(np.sort(mb.rates_, axis=0), np.sort(rates, axis=0), rtol=0.05)
    m = emix.MixtureModel("poisson", n_components=3, random_state=0)
    for i in range(4):
        m.partial_fit(X[i * 500 : (i + 1) * 500])
        labels = m.predict(X)
        assert labels.shape == (len(X),)
        # Every true cluster maps to one label (well separated): agreement is high.
        agree = max(np.mean(labels[z == k] == np.bincount(labels[z == k]).argmax()) for k in range(3))
        assert agree > 0.97
    assert m.n_batches_seen_ == 4 and m.lower_bounds_.shape == (4,)


# ---------------------------------------------------------------------- partial_fit
def test_partial_fit_predicts_after_every_call_and_improves(rng):
    X, z = blobs(rng, 6_000)
    g = emix.GaussianMixture(3, random_state=0)
    scores = []
    for i in range(6):
        g.partial_fit(X[i * 1_000 : (i + 1) * 1_000])
        assert g.predict(X[:5]).shape == (5,)
        assert np.allclose(g.predict_proba(X[:5]).sum(axis=1), 1.0)
        assert g.weights_.sum() == pytest.approx(1.0)
        scores.append(g.score(X))
    assert g.n_iter_ == 6 and g.step_size_ == pytest.approx(step_size(5, 0.6, 2.0))
    full = emix.GaussianMixture(3, random_state=0).fit(X)
    assert abs(scores[-1] - full.score(X)) <= 0.01 * abs(full.score(X))


def test_failed_partial_fit_changes_nothing(rng):
    X, _ = blobs(rng, 2_000)
    g = emix.GaussianMixture(3, random_state=0).partial_fit(X[:1_000])
    means, n = g.means_.copy(), g.n_batches_seen_
    with pytest.raises(InputError):
        g.partial_fit(np.ones((10, 3)))
    bad = X[1_000:].copy()
    bad[7, 1] = np.inf  # NaN is a missing value; inf is always an error
    with pytest.raises(InputError, match="inf"):
        g.partial_fit(bad)
    bad[7, 1] = np.nan
    with pytest.raises(InputError, match="NaN"):
        g.set_params(missing="error").partial_fit(bad)
    g.set_params(missing="em")
    np.testing.assert_array_equal(g.means_, means)
    assert g.n_batches_seen_ == n and g._stepwise.t == n - 1
    g.partial_fit(X[1_000:])
    assert g.n_batches_seen_ == n + 1


def test_fit_after_partial_fit_starts_over(rng):
    X, _ = blobs(rng, 3_000)
    g = emix.GaussianMixture(3, random_state=0).partial_fit(X[:500])
    g.fit(X)
    ref = emix.GaussianMixture(3, random_state=0).fit(X)
    np.testing.assert_allclose(g.means_, ref.means_, rtol=1e-12)
    g.partial_fit(X[:500])
    assert g.n_batches_seen_ == 1


def test_float32_minibatch(rng):
    X, _ = blobs(rng, 8_000)
    X32 = X.astype(np.float32)
    mb = emix.GaussianMixture(3, random_state=0).fit(X32, algorithm="minibatch", batch_rows=1_000)
    assert mb.means_.dtype == np.float32 and mb.covariances_.dtype == np.float32
    full = emix.GaussianMixture(3, random_state=0).fit(X)
    assert abs(mb.score(X32) - full.score(X)) <= 0.01 * abs(full.score(X))
    m = emix.MixtureModel("poisson", n_components=2, random_state=0)
    m.partial_fit(np.abs(np.round(X32[:500])))
    assert m.rates_.dtype == np.float32


def test_minibatch_arguments_are_checked(rng):
    X, _ = blobs(rng, 300)
    g = emix.GaussianMixture(2, random_state=0)
    with pytest.raises(InputError, match="algorithm"):
        g.fit(X, algorithm="online")
    with pytest.raises(InputError, match="n_epochs"):
        g.fit(X, algorithm="minibatch", n_epochs=0)
    with pytest.raises(InputError, match="batch_rows"):
        g.fit(X, algorithm="minibatch", batch_rows=0)
    with pytest.raises(InputError, match="sample_weight"):
        g.fit(X, algorithm="minibatch", batch_rows=100, sample_weight=np.ones(299))
    assert not hasattr(g, "means_")


def test_gaussian_family_of_mixture_model_steps_through_gaussian_mixture(rng):
    X, _ = blobs(rng, 4_000)
    m = emix.MixtureModel("gaussian", n_components=3, random_state=0)
    g = emix.GaussianMixture(3, random_state=0)
    for i in range(4):
        m.partial_fit(X[i * 1_000 : (i + 1) * 1_000])
        g.partial_fit(X[i * 1_000 : (i + 1) * 1_000])
    np.testing.assert_allclose(m.means_, g.means_, rtol=1e-12)
    assert m.n_batches_seen_ == 4
