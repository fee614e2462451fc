"""emix.mle.log_likelihood against scipy.stats log-densities, and the fit dispatcher."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from emix.exceptions import InputError
from emix.mle import (
    FAMILIES,
    fit,
    fit_bernoulli,
    fit_binomial,
    fit_categorical,
    fit_multivariate_normal,
    log_likelihood,
)

RNG = np.random.default_rng(20261123)
X_REAL = RNG.normal(1.0, 2.0, 40)
X_POS = RNG.gamma(2.0, 1.5, 40)
X_COUNT = RNG.poisson(3.0, 40).astype(float)
X_01 = (RNG.random(40) < 0.4).astype(float)
TRIALS = RNG.integers(5, 12, 40)
X_BINOM = RNG.binomial(TRIALS, 0.3).astype(float)
W = RNG.uniform(0.0, 3.0, 40)

# (family, data, params away from any MLE, scipy reference log-density of each point)
CASES = [
    ("normal", X_REAL, {"mean": 0.3, "sd": 1.7}, lambda x: stats.norm.logpdf(x, 0.3, 1.7)),
    ("exponential", X_POS, {"rate": 0.8}, lambda x: stats.expon.logpdf(x, scale=1 / 0.8)),
    ("poisson", X_COUNT, {"rate": 2.2}, lambda x: stats.poisson.logpmf(x, 2.2)),
    ("bernoulli", X_01, {"p": 0.25}, lambda x: stats.bernoulli.logpmf(x, 0.25)),
    ("binomial", X_BINOM, {"p": 0.2, "n_trials": TRIALS},
     lambda x: stats.binom.logpmf(x, TRIALS, 0.2)),
    ("gamma", X_POS, {"shape": 1.3, "scale": 2.1},
     lambda x: stats.gamma.logpdf(x, 1.3, scale=2.1)),
    ("lognormal", X_POS, {"mu": 0.4, "sigma": 0.9},
     lambda x: stats.lognorm.logpdf(x, 0.9, scale=math.exp(0.4))),
    ("student_t", X_REAL, {"df": 2.5, "loc": 0.5, "scale": 1.2},
     lambda x: stats.t.logpdf(x, 2.5, 0.5, 1.2)),
    ("student_t", X_REAL, {"df": math.inf, "loc": 0.5, "scale": 1.2},
     lambda x: stats.norm.logpdf(x, 0.5, 1.2)),
    # Huge df: within 1e-8 of the normal, which the gammaln difference must not blur.
    ("student_t", X_REAL, {"df": 3e9, "loc": 0.5, "scale": 1.2},
     lambda x: stats.t.logpdf(x, 3e9, 0.5, 1.2)),
]


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize(("family", "x", "params", "ref"), CASES)
def test_log_likelihood_matches_scipy(family, x, params, ref, weighted):
    w = W if weighted else np.ones(x.size)
    got = log_likelihood(family, x, params, sample_weight=w if weighted else None)
    assert got == pytest.approx(float(np.dot(w, ref(x))), rel=1e-9)


def test_log_likelihood_multivariate_normal_and_categorical_match_scipy():
    x = RNG.normal(size=(30, 3))
    mean = np.array([0.1, -0.2, 0.3])
    cov = np.array([[1.0, 0.3, 0.1], [0.3, 2.0, -0.4], [0.1, -0.4, 0.7]])
    params = {f"mean[{i}]": mean[i] for i in range(3)}
    params.update({f"cov[{i},{j}]": cov[i, j] for i in range(3) for j in range(i, 3)})
    ref = stats.multivariate_normal.logpdf(x, mean, cov)
    assert log_likelihood("multivariate_normal", x, params) == pytest.approx(ref.sum(), rel=1e-12)
    assert log_likelihood("mvn", x, params, sample_weight=W[:30]) == pytest.approx(
        W[:30] @ ref, rel=1e-12
    )
    labels = ["a", "b", "b", "c", "a", "b"]
    probs = {"p[a]": 0.2, "p[b]": 0.5, "p[c]": 0.3}
    expected = 2 * math.log(0.2) + 3 * math.log(0.5) + math.log(0.3)
    assert log_likelihood("categorical", labels, probs) == pytest.approx(expected, rel=1e-14)


@pytest.mark.parametrize("family", FAMILIES)
def test_log_likelihood_at_the_fit_is_the_reported_loglik(family):
    data = {
        "normal": X_REAL, "exponential": X_POS, "poisson": X_COUNT, "bernoulli": X_01,
        "binomial": X_BINOM, "gamma": X_POS, "lognormal": X_POS,
        "student_t": stats.t.rvs(3, size=60, random_state=3),
        "multivariate_normal": RNG.normal(size=(25, 2)),
        "categorical": list("abcabcaab"),
    }[family]
    kw = {"n_trials": TRIALS} if family == "binomial" else {}
    res = fit(family, data, **kw)
    assert res.family == family
    # An MLEResult carries its fixed quantities (the binomial trials) along.
    assert log_likelihood(family, data, res) == pytest.approx(res.loglik, rel=1e-12)
    if family != "binomial":
        assert log_likelihood(family, data, res.params) == pytest.approx(res.loglik, rel=1e-12)


def test_ball_draws_seventy_black_of_a_hundred():
    draws = [1] * 70 + [0] * 30
    res = fit_bernoulli(draws)
    assert res.params["p"] == 0.7  # exactly
    grid = np.linspace(0.0, 1.0, 101)
    curve = [log_likelihood("bernoulli", draws, {"p": p}) for p in grid]
    assert grid[int(np.argmax(curve))] == pytest.approx(0.7)
    assert curve[0] == -math.inf and curve[-1] == -math.inf
    assert max(curve) == pytest.approx(res.loglik, rel=1e-14)


@pytest.mark.parametrize(
    ("family", "x", "params"),
    [
        ("bernoulli", [0, 1], {"p": -0.1}),
        ("bernoulli", [0, 1], {"p": 1.1}),
        ("bernoulli", [0, 1], {"p": float("nan")}),
        ("bernoulli", [0, 1], {"p": 0.0}),  # a 1 is impossible at p = 0
        ("binomial", [1, 2], {"p": 1.5, "n_trials": 3}),
        ("normal", [0.0, 1.0], {"mean": 0.0, "sd": 0.0}),
        ("normal", [0.0, 1.0], {"mean": 0.0, "sd": -1.0}),
        ("normal", [0.0, 1.0], {"mean": math.inf, "sd": 1.0}),
        ("exponential", [1.0], {"rate": 0.0}),
        ("exponential", [1.0], {"rate": -2.0}),
        ("poisson", [1.0], {"rate": -0.5}),
        ("poisson", [1.0], {"rate": 0.0}),
        ("gamma", [1.0], {"shape": 0.0, "scale": 1.0}),
        ("gamma", [1.0], {"shape": 2.0, "scale": -1.0}),
        ("lognormal", [1.0], {"mu": 0.0, "sigma": 0.0}),
        ("student_t", [1.0], {"df": 0.0, "loc": 0.0, "scale": 1.0}),
        ("student_t", [1.0], {"df": 2.0, "loc": 0.0, "scale": 0.0}),
        ("categorical", ["a", "b"], {"p[a]": 0.5, "p[b]": 0.6}),
        ("categorical", ["a", "b"], {"p[a]": -0.5, "p[b]": 1.5}),
        ("multivariate_normal", [[0.0, 1.0], [1.0, 0.0]],
         {"mean[0]": 0, "mean[1]": 0, "cov[0,0]": 1, "cov[0,1]": 2, "cov[1,1]": 1}),
    ],
)
def test_log_likelihood_is_minus_inf_outside_the_parameter_space(family, x, params):
    assert log_likelihood(family, x, params) == -math.inf


def test_log_likelihood_on_the_boundary_where_the_data_allow_it():
    assert log_likelihood("bernoulli", [0, 0, 0], {"p": 0.0}) == 0.0
    assert log_likelihood("poisson", [0, 0], {"rate": 0.0}) == 0.0
    # A zero-weight row does not turn -inf into nan.
    assert log_likelihood("bernoulli", [0, 1], {"p": 0.0}, sample_weight=[1, 0]) == 0.0


def test_log_likelihood_errors_name_the_problem():
    with pytest.raises(InputError, match="unknown family 'weibull'; choose one of normal"):
        log_likelihood("weibull", [1.0], {})
    with pytest.raises(InputError, match="missing 'sd'"):
        log_likelihood("normal", [1.0], {"mean": 0.0})
    with pytest.raises(InputError, match=r"params\['p'\] must be a number, got 'x'"):
        log_likelihood("bernoulli", [1.0], {"p": "x"})
    with pytest.raises(InputError, match="binomial distribution needs n_trials"):
        log_likelihood("binomial", [1.0], {"p": 0.5})
    with pytest.raises(InputError, match=r"coded 0 or 1; other value\(s\) at x\[1\] = 2.0"):
        log_likelihood("bernoulli", [1, 2], {"p": 0.5})
    with pytest.raises(InputError, match=r"unknown category\(ies\) in x: x\[2\] = 'd'"):
        log_likelihood("categorical", ["a", "b", "d"], {"p[a]": 0.5, "p[b]": 0.5})
    with pytest.raises(InputError, match="must be a mapping"):
        log_likelihood("normal", [1.0], [0.0, 1.0])
    with pytest.raises(InputError, match="2-dimensional normal but x has 3 column"):
        log_likelihood("multivariate_normal", np.zeros((2, 3)),
                       {"mean[0]": 0, "mean[1]": 0, "cov[0,0]": 1, "cov[0,1]": 0,
                        "cov[1,1]": 1})
    with pytest.raises(InputError, match=r"miss cov\[1,1\]"):
        log_likelihood("multivariate_normal", np.zeros((2, 2)),
                       {"mean[0]": 0, "mean[1]": 0, "cov[0,0]": 1, "cov[0,1]": 0})


@pytest.mark.parametrize(
    ("alias", "family"),
    [("Gaussian", "normal"), ("t", "student_t"), ("Student-t", "student_t"),
     ("log-normal", "lognormal"), ("MVN", "multivariate_normal"), ("expon", "exponential")],
)
def test_fit_accepts_aliases(alias, family):
    data = {"normal": X_REAL, "student_t": stats.t.rvs(3, size=50, random_state=1),
            "lognormal": X_POS, "multivariate_normal": RNG.normal(size=(20, 2)),
            "exponential": X_POS}[family]
    assert fit(alias, data).family == family


def test_fit_dispatch_errors():
    with pytest.raises(InputError, match="unknown family 'cauchy'"):
        fit("cauchy", [1.0, 2.0])
    with pytest.raises(InputError, match="the normal fit takes no keyword argument"):
        fit("normal", [1.0, 2.0], n_trials=3)
    with pytest.raises(InputError, match="family must be a string"):
        fit(3, [1.0, 2.0])
    assert fit("binomial", [3, 5, 4], n_trials=10).params["p"] == pytest.approx(0.4)
    res = fit("categorical", ["x", "y"], categories=["y", "x", "z"])
    assert res.fixed["categories"] == ("y", "x", "z")


def test_array_parameters_are_exposed():
    x = RNG.normal(size=(40, 2))
    res = fit_multivariate_normal(x)
    assert res.arrays["mean"].shape == (2,) and res.arrays["cov"].shape == (2, 2)
    assert res.param_names == ("mean[0]", "mean[1]", "cov[0,0]", "cov[0,1]", "cov[1,1]")
    assert res.arrays["cov"][1, 0] == res.params["cov[0,1]"]
    with pytest.raises(ValueError, match="read-only"):
        res.arrays["mean"][0] = 1.0
    cat = fit_categorical([2, 1, 2, 3])
    np.testing.assert_array_equal(cat.arrays["p"], [0.25, 0.5, 0.25])
    assert cat.param_names == ("p[1]", "p[2]", "p[3]")
    binom = fit_binomial([1, 2], n_trials=[3, 4])
    np.testing.assert_array_equal(binom.fixed["n_trials"], [3, 4])
