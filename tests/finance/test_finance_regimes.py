"""detect_regimes and walk_forward: no look-ahead, coverage of the volatile days, labels
stable across seeds, scale invariance, statistics by hand, pandas round trip."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats as sps

import emix
from emix.datasets import load_regime_prices
from emix.exceptions import InputError
from emix.finance import detect_regimes, walk_forward


@pytest.fixture(scope="module")
def data():
    return load_regime_prices(1500, random_state=0)


@pytest.fixture(scope="module")
def fitted(data):
    return detect_regimes(prices=data.prices, random_state=0)


# ---------------------------------------------------------------- (b) coverage
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_volatile_regime_covers_the_true_volatile_days(seed):
    data = load_regime_prices(1500, random_state=seed)
    res = detect_regimes(prices=data.prices, random_state=seed, select_k=False)  # defaults, no reg_covar
    truth = data.regimes == 1
    assert np.mean(res.regime[truth] == 1) >= 0.90
    assert np.mean(res.filtered_regime[truth] == 1) >= 0.90
    assert np.mean(res.regime[~truth] == 1) <= 0.05
    # Regime 1 is the volatile one, at about 3% a day against 1%.
    assert res.stats.volatility[1] == pytest.approx(0.03, rel=0.1)
    assert res.stats.volatility[0] == pytest.approx(0.01, rel=0.1)


def test_student_t_and_gmm_also_find_the_volatile_days(data):
    truth = data.regimes == 1
    for kw in ({"emission": "student_t"}, {"model": "gmm"}):
        res = detect_regimes(prices=data.prices, random_state=0, select_k=False, **kw)
        # A mixture has no persistence: a quiet day in a volatile spell looks calm, so
        # it catches only about half of them (the HMM's transitions fix that).
        assert np.mean(res.smoothed[truth, 1] > 0.5) >= (0.9 if kw.get("model") != "gmm" else 0.5), kw
        assert np.mean(res.smoothed[~truth, 1] > 0.5) <= 0.1


# ---------------------------------------------------------------- (a) no look-ahead
def test_filtered_probabilities_ignore_the_future(data, fitted):
    r = data.returns
    model = fitted.model
    np.testing.assert_allclose(model.filter(r), fitted.filtered, rtol=0, atol=1e-12)
    rng = np.random.default_rng(7)
    for t in (0, 299, 700, 1200):
        changed = r.copy()
        changed[t + 1:] = rng.standard_t(3, size=r.size - t - 1) * 0.05
        appended = np.concatenate([r[: t + 1], rng.normal(0, 0.05, 50)])
        for other in (changed, appended, r[: t + 1]):
            # Equal up to the round-off of the blocked log-density pass.
            np.testing.assert_allclose(model.filter(other)[: t + 1], model.filter(r)[: t + 1],
                                       rtol=1e-12, atol=1e-15)


def test_filter_of_a_truncated_series_equals_the_full_filter_prefix(data, fitted):
    # Given the fitted model, the probability at t is the same whether or not the later
    # data exist (hypothesis-free exhaustive check on a stride of cut points).
    full = fitted.model.filter(data.returns)
    for t in range(5, 1500, 97):
        np.testing.assert_allclose(fitted.model.filter(data.returns[: t + 1])[-1], full[t],
                                   rtol=1e-12, atol=1e-15)


def test_walk_forward_ignores_the_future(data):
    r = data.returns[:900]
    kw = dict(n_regimes=2, refit_every=150, min_train=300, random_state=3)
    base = walk_forward(r, **kw)
    t = 640
    changed = r.copy()
    changed[t + 1:] = np.random.default_rng(1).normal(0, 0.08, r.size - t - 1)
    for other in (changed, r[: t + 1], np.concatenate([r, r[:100]])):
        wf = walk_forward(other, **kw)
        # The fits before t are identical (same rows, same seeds); the filter agrees up to
        # the round-off of the blocked log-density pass.
        np.testing.assert_allclose(wf.filtered[: t + 1], base.filtered[: t + 1], rtol=1e-12, atol=1e-15)
        for s, m, mb in zip(wf.refit_positions, wf.models, base.models):
            if s <= t:  # a fit made before t saw the same rows, so it is the same fit
                np.testing.assert_array_equal(m.estimator.transmat_, mb.estimator.transmat_)
                np.testing.assert_array_equal(m.estimator.covariances_, mb.estimator.covariances_)
        np.testing.assert_array_equal(wf.regime[: t + 1], base.regime[: t + 1])
    assert np.all(base.regime[:300] == -1) and np.all(np.isnan(base.filtered[:300]))
    np.testing.assert_array_equal(base.refit_positions, [300, 450, 600, 750])


def test_walk_forward_is_a_causal_filter_of_each_fit(data):
    r = data.returns[:800]
    wf = walk_forward(r, 2, refit_every=200, window=300, random_state=0)
    np.testing.assert_array_equal(wf.refit_positions, [300, 500, 700])
    np.testing.assert_array_equal(wf.train_starts, [0, 200, 400])
    for s, a, m in zip(wf.refit_positions, wf.train_starts, wf.models):
        b = min(s + 200, 800)
        # The block's probabilities: the fit's filter run from its first training row.
        np.testing.assert_allclose(wf.filtered[s:b], m.estimator.filter(r[a:b, None])[s - a:], atol=1e-12)
        # The fit saw only its window: refitting it from scratch gives the same means.
        assert m.estimator.n_features_in_ == 1
    # Labels aligned: every fit's regime 1 is the more volatile.
    for m in wf.models:
        cov = m.estimator.covariances_.ravel()
        assert cov[1] > cov[0]


def test_walk_forward_out_of_sample_coverage(data):
    wf = walk_forward(prices=data.prices, refit_every=100, random_state=0)
    ok = wf.regime >= 0
    truth = data.regimes == 1
    assert np.mean(wf.regime[ok & truth] == 1) >= 0.85
    assert np.mean(wf.regime[ok & ~truth] == 1) <= 0.10


# ---------------------------------------------------------------- (c) labels
def test_labels_identical_across_seeds_reaching_the_same_solution(data):
    X = data.returns[:, None]
    fits = [emix.HMM(2, random_state=s, init_params="random", label_order="volatility", tol=1e-8,
                     family_options={"reg_covar": 1e-10}).fit(X) for s in (1, 2, 3, 4)]
    # The raw EM order differs across these seeds: check that at least two differ ...
    raw = [emix.HMM(2, random_state=s, init_params="random", tol=1e-8,
                    family_options={"reg_covar": 1e-10}).fit(X).covariances_.ravel() for s in (1, 2, 3, 4)]
    assert len({bool(c[0] < c[1]) for c in raw}) == 2
    # ... while the volatility order is the same solution under the same labels.
    for f in fits[1:]:
        np.testing.assert_allclose(f.covariances_, fits[0].covariances_, rtol=1e-5)
        np.testing.assert_allclose(f.transmat_, fits[0].transmat_, rtol=1e-4)
        np.testing.assert_array_equal(f.predict(X), fits[0].predict(X))
    assert fits[0].covariances_.ravel()[0] < fits[0].covariances_.ravel()[1]
    for model in ("hmm", "gmm"):
        a = detect_regimes(data.returns, model=model, random_state=11, n_init=3, select_k=False)
        b = detect_regimes(data.returns, model=model, random_state=12, n_init=3, select_k=False)
        np.testing.assert_array_equal(a.regime, b.regime)
        np.testing.assert_allclose(a.filtered, b.filtered, atol=1e-6)
        assert a.stats.volatility[0] < a.stats.volatility[1]


def test_volatility_order_for_student_t_and_three_regimes():
    from emix.models.hmm import emission_variances

    rng = np.random.default_rng(0)
    r = np.concatenate([rng.normal(0, s, 400) for s in (0.03, 0.01, 0.06, 0.01)])
    res = detect_regimes(r, n_regimes=3, emission="student_t", random_state=0, select_k=False)
    m = res.model.estimator
    v = emission_variances(m.family_, m._current_params()[2])
    assert np.all(np.diff(v) > 0)
    np.testing.assert_allclose(np.sqrt(v), [0.01, 0.03, 0.06], rtol=0.15)
    truth = np.repeat([1, 0, 2, 0], 400)
    assert np.mean(res.regime == truth) > 0.9
    with pytest.raises(InputError, match="volatility"):
        emix.HMM(2, "poisson", label_order="volatility").fit(rng.poisson(3, (50, 1)))


# ---------------------------------------------------------------- (d) scale
@pytest.mark.parametrize("model", ["hmm", "gmm"])
def test_scale_invariance(data, model):
    r = data.returns[:1000]
    base = detect_regimes(r, model=model, random_state=0, select_k=False)
    for c in (1e-2, 1e2):
        res = detect_regimes(r * c, model=model, random_state=0, select_k=False)
        np.testing.assert_array_equal(res.regime, base.regime)
        np.testing.assert_allclose(res.filtered, base.filtered, atol=1e-7)
        np.testing.assert_allclose(res.stats.volatility, base.stats.volatility * c, rtol=1e-6)
        assert res.model.reg_covar == pytest.approx(base.model.reg_covar * c * c, rel=1e-9)
        # The log-likelihood of a density shifts by -T log c.
        assert res.stats.loglik == pytest.approx(base.stats.loglik - r.size * math.log(c), rel=1e-7)


def test_regularisation_is_relative(data):
    res = detect_regimes(data.returns, random_state=0, select_k=False)
    assert res.model.reg_covar == pytest.approx(1e-6 * data.returns.var())
    assert res.model.estimator.family_.reg_covar == res.model.reg_covar


# ---------------------------------------------------------------- (e) stats
def test_stats_by_hand(data, fitted):
    r, P, s = data.returns, fitted.smoothed, fitted.stats
    hmm = fitted.model.estimator
    np.testing.assert_allclose(P, hmm.predict_proba(r[:, None]), atol=1e-12)
    for k in range(2):
        w = P[:, k]
        mean = np.sum(w * r) / np.sum(w)
        vol = np.sqrt(np.sum(w * (r - mean) ** 2) / np.sum(w))
        assert s.mean[k] == pytest.approx(mean, rel=1e-10)
        assert s.volatility[k] == pytest.approx(vol, rel=1e-10)
        assert s.annualized_mean[k] == pytest.approx(252 * mean, rel=1e-10)
        assert s.annualized_volatility[k] == pytest.approx(vol * math.sqrt(252), rel=1e-10)
        assert s.share[k] == pytest.approx(np.mean(w), rel=1e-10)
        assert s.expected_duration[k] == pytest.approx(1 / (1 - hmm.transmat_[k, k]), rel=1e-10)
        # A Gaussian HMM's M-step: the emission is the weighted mean and variance (to tol).
        assert math.sqrt(hmm.covariances_.ravel()[k]) == pytest.approx(vol, rel=1e-3)
    np.testing.assert_allclose(s.transmat, hmm.transmat_)
    # Log-likelihood: the sum of the one-step predictive log-densities, by hand from the filter.
    F = fitted.filtered
    pred = np.vstack([hmm.startprob_, F[:-1] @ hmm.transmat_])
    dens = np.column_stack([sps.norm.pdf(r, hmm.means_[k, 0], math.sqrt(hmm.covariances_.ravel()[k]))
                            for k in range(2)])
    loglik = np.sum(np.log(np.sum(pred * dens, axis=1)))
    assert s.loglik == pytest.approx(loglik, rel=1e-9)
    # Free parameters of a 2-state 1-D Gaussian HMM: 1 start + 2 transitions + 2 means + 2 variances.
    assert s.n_parameters == 7
    assert s.bic == pytest.approx(-2 * loglik + 7 * math.log(1500), rel=1e-9)
    one = emix.HMM(1, family_options={"reg_covar": 1e-6 * r.var()}).fit(r[:, None])
    bic1 = -2 * np.sum(sps.norm.logpdf(r, r.mean(), r.std())) + 2 * math.log(1500)
    assert one.bic(r[:, None]) == pytest.approx(bic1, rel=1e-6)
    assert s.bic_by_k[0] == pytest.approx(bic1, rel=1e-6)
    assert s.bic_by_k[1] == pytest.approx(s.bic, rel=1e-12)
    assert s.best_k == 2
    text = str(s)
    assert "lowest at K=2" in text and "regime" in text


def test_gmm_stats_use_weights_as_transitions(data):
    res = detect_regimes(data.returns, model="gmm", random_state=0, n_init=0, select_k=False)
    w = res.model.estimator.weights_[res.model.order]
    np.testing.assert_allclose(res.stats.transmat, np.tile(w, (2, 1)))
    np.testing.assert_allclose(res.stats.expected_duration, 1 / (1 - w))
    np.testing.assert_array_equal(res.filtered, res.smoothed)
    assert res.stats.n_parameters == 5


def test_periods_per_year(data):
    res = detect_regimes(data.returns, random_state=0, select_k=False, periods_per_year=52)
    np.testing.assert_allclose(res.stats.annualized_volatility, res.stats.volatility * math.sqrt(52))


# ---------------------------------------------------------------- pandas, features, errors
def test_pandas_round_trip_and_model_filter(data):
    pd = pytest.importorskip("pandas")
    prices = data.to_series()
    res = detect_regimes(prices=prices, random_state=0, select_k=False)
    df = res.to_frame()
    assert df.index.equals(prices.index[1:])
    assert list(df.columns) == ["price", "regime", "filtered_regime", "filtered_0", "filtered_1",
                                "smoothed_0", "smoothed_1"]
    np.testing.assert_allclose(df["price"].to_numpy(), data.returns)
    rets = emix.finance.log_returns(prices)
    P = res.model.filter(rets)
    assert isinstance(P, pd.DataFrame) and P.index.equals(rets.index)
    np.testing.assert_allclose(P.to_numpy(), res.filtered)
    np.testing.assert_array_equal(res.model.decode(rets), res.regime)
    assert res.stats.to_frame().shape == (2, 6)
    assert res.dates[0] == np.datetime64(prices.index[1])


def test_volatility_feature_and_several_assets(data):
    pd = pytest.importorskip("pandas")
    r = data.returns
    res = detect_regimes(r, volatility_window=10, random_state=0, select_k=False)
    assert res.filtered.shape == (1491, 2) and res.returns.shape == (1491,)
    np.testing.assert_array_equal(res.returns, r[9:])
    # The model computes the feature itself, causally.
    np.testing.assert_allclose(res.model.filter(r), res.filtered, atol=1e-12)
    np.testing.assert_array_equal(res.model.filter(r[:600])[-1], res.filtered[590])
    truth = data.regimes[9:] == 1
    assert np.mean(res.regime[truth] == 1) >= 0.9
    two = pd.DataFrame({"a": r, "b": 0.5 * r + 0.01 * np.random.default_rng(123).normal(size=r.size)})
    res2 = detect_regimes(two, random_state=0, select_k=False)
    assert res2.stats.volatility.shape == (2, 2) and res2.returns.shape == (1500, 2)
    assert np.mean(res2.regime[data.regimes == 1] == 1) >= 0.9
    assert list(res2.to_frame().columns[:2]) == ["a", "b"]


def test_bad_arguments(data):
    r = data.returns
    with pytest.raises(InputError, match="exactly one"):
        detect_regimes()
    with pytest.raises(InputError, match="exactly one"):
        detect_regimes(r, prices=data.prices)
    with pytest.raises(InputError, match="model"):
        detect_regimes(r, model="lstm")
    with pytest.raises(InputError, match="emission"):
        detect_regimes(r, emission="poisson")
    with pytest.raises(InputError, match="constant"):
        detect_regimes(np.zeros(50))
    with pytest.raises(InputError, match="too few"):
        detect_regimes(r[:3], n_regimes=2)
    with pytest.raises(InputError, match="periods_per_year"):
        detect_regimes(r, periods_per_year=0)
    with pytest.raises(InputError, match="NaN at row 3"):
        detect_regimes(np.array([0.01, 0.02, -0.01, np.nan, 0.0]))
    with pytest.raises(InputError, match="min_train"):
        walk_forward(r[:100], min_train=100)
    with pytest.raises(InputError, match="random_state"):
        walk_forward(r, random_state=np.random.default_rng(0))


def test_import_finance_loads_neither_pandas_nor_matplotlib():
    code = ("import sys, numpy as np, emix.finance as F\n"
            "from emix.datasets import load_regime_prices\n"
            "F.detect_regimes(prices=load_regime_prices(300).prices, random_state=0)\n"
            "print(','.join(m for m in ('pandas', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


# ---------------------------------------------------------------- invariants
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@given(t=st.integers(0, 1499), scale=st.floats(0.0, 20.0), seed=st.integers(0, 2**16))
def test_no_look_ahead_property(fitted, data, t, scale, seed):
    # Any rewrite of the returns after t (any size, including wild ones) leaves every
    # filtered probability at or before t unchanged (up to the round-off of the blocked
    # log-density pass, ~1e-16; a leak of information would move them by far more).
    r = data.returns.copy()
    r[t + 1:] = scale * np.random.default_rng(seed).normal(0, 0.01, r.size - t - 1)
    np.testing.assert_allclose(fitted.model.filter(r)[: t + 1], fitted.filtered[: t + 1],
                               rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("freq,ppy", [("weekly", 52), ("intraday", 252 * 78)])
def test_other_frequencies_fit_without_tuning(freq, ppy):
    data = load_regime_prices(3000, random_state=4)
    if freq == "weekly":
        # Weekly returns: sums of 5 daily log-returns (variance ~5e-4 and ~4.5e-3).
        r, truth = data.returns.reshape(-1, 5).sum(axis=1), data.regimes[::5] == 1
    else:
        # 5-minute bars: the same path with volatilities shrunk by sqrt(78) (variance ~1e-6).
        r, truth = data.returns / math.sqrt(78), data.regimes == 1
    res = detect_regimes(r, random_state=0, periods_per_year=ppy)
    assert np.mean(res.regime[truth] == 1) >= 0.9
    assert res.stats.best_k == 2
    np.testing.assert_allclose(res.stats.annualized_volatility[0], 0.01 * math.sqrt(252), rtol=0.15)
