"""One test battery for every family in the registry, run through emix.MixtureModel.

Each family gets the same checks: the statistics of two blocks add up to those of the
whole; a weighted fit equals a fit on repeated rows; sampling then fitting recovers the
parameters; values outside the support are refused naming row and column; save and
load round-trip exactly; NumPy and torch (CPU) give the same fit; and the log-likelihood
never decreases (a property test over random data and starts).

A family is picked up from the registry (``emix.families.FAMILY_NAMES``); the only thing
it needs here is an entry in ``CASES``: constructor options, example true parameters of a
two-component mixture whose components are well apart, the tolerances of recovery, and
values outside its support. A registered family without an entry fails loudly.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import emix
from emix.backends.numpy_backend import NumpyBackend
from emix.families import FAMILY_NAMES, family_class
from emix.models._kernels import GivenRespKernel, MixtureKernel, stats_from_acc

WEIGHTS = np.array([0.4, 0.6])

# name -> options (constructor keywords), params (true parameters, K = 2), tol
# ({param: (atol, rtol)} for recovery from N_RECOVER rows), bad (values outside the
# support: each is put in row 5, column 1 and must be named).
CASES = {
    "gaussian": dict(
        options={"covariance_type": "full", "reg_covar": 0.0},
        params={
            "means": [[0.0, 0.0], [5.0, 3.0]],
            "covariances": [[[1.0, 0.3], [0.3, 1.0]], [[0.5, 0.0], [0.0, 2.0]]],
        },
        tol={"means": (0.15, 0.0), "covariances": (0.2, 0.1)},
        bad=[],  # every finite value is in the support
    ),
    "student_t": dict(
        options={"covariance_type": "full", "reg_covar": 0.0},
        params={
            "means": [[0.0, 0.0], [8.0, 5.0]],
            "scales": [[[1.0, 0.3], [0.3, 1.0]], [[0.5, 0.0], [0.0, 2.0]]],
            "df": [4.0, 8.0],
        },
        tol={"means": (0.15, 0.0), "scales": (0.25, 0.15), "df": (4.0, 0.0)},
        bad=[],
    ),
    "bernoulli": dict(
        options={},
        params={"probabilities": [[0.9, 0.2, 0.7], [0.1, 0.8, 0.4]]},
        tol={"probabilities": (0.06, 0.0)},
        bad=[0.5, 2.0, -1.0],
    ),
    "categorical": dict(
        # Three columns: with two, a two-component mixture is not identifiable.
        options={"n_categories": [3, 2, 3]},
        params={
            "probabilities": [
                [0.7, 0.2, 0.1, 0.85, 0.15, 0.6, 0.3, 0.1],
                [0.1, 0.2, 0.7, 0.2, 0.8, 0.1, 0.3, 0.6],
            ]
        },
        tol={"probabilities": (0.06, 0.0)},
        bad=[-1.0, 0.5, 2.0],  # column 1 has codes 0 and 1 only
    ),
    "poisson": dict(
        options={},
        params={"rates": [[2.0, 10.0], [9.0, 1.0]]},
        tol={"rates": (0.1, 0.06)},
        bad=[-1.0, 1.5],
    ),
    "exponential": dict(
        options={},
        params={"rates": [[4.0, 0.25], [0.2, 3.0]]},
        tol={"rates": (0.0, 0.15)},
        bad=[-0.5],
    ),
    "binomial": dict(
        options={"n_trials": 10},
        params={"probabilities": [[0.85, 0.3], [0.3, 0.75]]},
        tol={"probabilities": (0.04, 0.0)},
        bad=[11.0, -1.0, 2.5],
    ),
}

N_RECOVER = 3000


def _family(name):
    """A fresh family object, or a skip when its module is not written yet."""
    try:
        cls = family_class(name)
    except (ImportError, AttributeError) as exc:
        pytest.skip(f"family {name!r} is registered but not importable yet: {exc}")
    if name not in CASES:
        pytest.fail(
            f"family {name!r} has no entry in CASES of tests/families/test_battery.py: add "
            "its options, example parameters, tolerances and out-of-support values"
        )
    return cls(**CASES[name]["options"])


def _true_params(name):
    return {k: np.asarray(v, dtype=np.float64) for k, v in CASES[name]["params"].items()}


def _sampler(name):
    """The family bound for sampling (its width fixed by the example parameters)."""
    fam = _family(name)
    D = _n_columns(name)
    summary = {"mean": np.ones(D), "var": np.ones(D), "min": np.zeros(D), "max": np.ones(D), "n": 1}
    fam = fam.bind(summary, D)
    return fam, fam.validate_params(_true_params(name), 2)


def _n_columns(name):
    return {"categorical": 3, "bernoulli": 3}.get(name, 2)


def _draw(name, n, rng, weights=WEIGHTS):
    """Rows (n, D) from the example mixture, and their components (n,)."""
    fam, params = _sampler(name)
    counts = rng.multinomial(n, weights)
    X = np.vstack([fam.sample(params, k, int(c), rng) for k, c in enumerate(counts)])
    y = np.repeat(np.arange(len(counts)), counts)
    perm = rng.permutation(n)
    return np.asarray(X, dtype=np.float64)[perm], y[perm]


def _model(name, **kw):
    return emix.MixtureModel(_family(name), 2, **kw)


def _fit(model, X, **kw):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=emix.ConvergenceWarning)
        return model.fit(X, **kw)


def _start(name):
    """A deterministic start near, not at, the truth (so EM has work to do)."""
    fam, params = _sampler(name)
    fp = {k: v.copy() for k, v in params.items()}
    key = next(k for k in fam.param_names if k in ("means", "rates", "probabilities"))
    if key == "means":
        fp[key] = fp[key] + 0.5
    elif key == "rates":
        fp[key] = fp[key] * 1.3
    else:
        fp[key] = 0.8 * fp[key] + 0.2 * fp[key][::-1]
    return dict(weights_init=[0.5, 0.5], params_init=fp)


families = pytest.mark.parametrize("name", FAMILY_NAMES)


# --------------------------------------------------------------------------- (a)
@families
def test_statistics_of_two_blocks_add_up_to_the_whole(name, rng):
    X, _ = _draw(name, 203, rng)
    w = rng.random(len(X)) * 2.0
    backend = NumpyBackend()
    summary = backend.column_summary(X, w)
    fam = _family(name).bind(summary, X.shape[1])
    _, params = _sampler(name)
    resp = rng.dirichlet(np.ones(2), size=len(X))
    kernels = [
        lambda: MixtureKernel(fam, params, WEIGHTS),
        lambda: GivenRespKernel(fam, lambda a, b, off=0: resp[a + off : b + off], 2),
    ]
    for make in kernels:
        whole = stats_from_acc(
            backend.stats_pass(X, w, make(), block_size=64, width=fam.feature_width()), len(X), fam
        )
        cut = 77
        first = stats_from_acc(backend.stats_pass(X[:cut], w[:cut], make(), block_size=16), cut, fam)
        k2 = make()
        if isinstance(k2, GivenRespKernel):
            k2 = GivenRespKernel(fam, lambda a, b: resp[a + cut : b + cut], 2)
        second = stats_from_acc(backend.stats_pass(X[cut:], w[cut:], k2, block_size=50), len(X) - cut, fam)
        total = first + second
        scale = np.abs(whole.S).max()
        np.testing.assert_allclose(total.S, whole.S, rtol=1e-12, atol=1e-13 * scale)
        np.testing.assert_allclose(total.nk, whole.nk, rtol=1e-12)
        assert total.loglik == pytest.approx(whole.loglik, rel=1e-12, abs=1e-12)
        assert total.weight_sum == pytest.approx(w.sum(), rel=1e-13)
        assert total.n_rows == len(X)
        for k, v in whole.extra.items():
            np.testing.assert_allclose(total.extra[k], v, rtol=1e-11, atol=1e-12 * np.abs(v).max())
        # The statistics are the weighted sums the M-step reads: nk from the weights.
        if isinstance(k2, GivenRespKernel):
            np.testing.assert_allclose(whole.nk, w @ resp, rtol=1e-12)


# --------------------------------------------------------------------------- (b)
@families
def test_weighted_fit_equals_repeated_rows(name, rng):
    X, _ = _draw(name, 120, rng)
    counts = rng.integers(0, 4, len(X))
    counts[:3] = 1
    kw = dict(**_start(name), tol=0, max_iter=6)
    a = _fit(_model(name, **kw), X, sample_weight=counts)
    b = _fit(_model(name, **kw), np.repeat(X, counts, axis=0))
    # At convergence one run may stop an iteration early on a round-off fall (the
    # monitor's stall rule); the iterations both made agree.
    n = min(len(a.lower_bounds_), len(b.lower_bounds_))
    assert abs(len(a.lower_bounds_) - len(b.lower_bounds_)) <= 1
    np.testing.assert_allclose(a.lower_bounds_[:n], b.lower_bounds_[:n], rtol=1e-10)
    np.testing.assert_allclose(a.weights_, b.weights_, rtol=1e-8)
    for k in a.family_.param_names:
        np.testing.assert_allclose(getattr(a, f"{k}_"), getattr(b, f"{k}_"), rtol=1e-8, atol=1e-12)


# --------------------------------------------------------------------------- (c)
def _aligned(fitted, true_params, fam):
    """The permutation of the fitted components closest to the true ones."""
    best, best_cost = None, np.inf
    for perm in itertools.permutations(range(2)):
        perm = list(perm)
        cost = sum(
            float(np.sum((np.asarray(fitted[k])[perm] - v) ** 2) / (np.sum(v**2) + 1e-12))
            for k, v in true_params.items()
        )
        if cost < best_cost:
            best, best_cost = perm, cost
    return best


@families
def test_sampling_then_fitting_recovers_the_parameters(name, rng):
    X, _ = _draw(name, N_RECOVER, rng)
    m = _fit(_model(name, random_state=0, n_init=2, tol=1e-6, max_iter=300), X)
    _, truth = _sampler(name)
    fitted = m.params_
    perm = _aligned(fitted, truth, m.family_)
    np.testing.assert_allclose(m.weights_[perm], WEIGHTS, atol=0.04)
    for k, (atol, rtol) in CASES[name]["tol"].items():
        np.testing.assert_allclose(
            np.asarray(fitted[k])[perm], truth[k], atol=atol, rtol=rtol, err_msg=f"{name} {k}"
        )
    # The fit is a maximum: no worse than the truth on its own data.
    ll_true = _fit(_model(name, weights_init=WEIGHTS, params_init=truth, max_iter=1), X).lower_bounds_[0]
    assert m.lower_bound_ >= ll_true - 1e-9


# --------------------------------------------------------------------------- (d)
@families
def test_values_outside_the_support_are_named(name, rng):
    fam = _family(name)
    bad_values = CASES[name]["bad"]
    X, _ = _draw(name, 40, rng)
    m = _fit(_model(name, random_state=0, max_iter=5), X)
    if not bad_values:
        # Real-valued families: every finite value is in; NaN/inf are refused for all.
        Xb = X.copy()
        Xb[5, 1] = 1e300
        fam.bind(NumpyBackend().column_summary(X, None), X.shape[1]).check_support(Xb)
        Xb[5, 1] = np.inf
        with pytest.raises(emix.InputError, match=r"row 5|inf"):
            m.predict(Xb)
        # NaN is a missing value by default (missing="em"); an error with "error".
        Xb[5, 1] = np.nan
        m.set_params(missing="error")
        with pytest.raises(emix.InputError, match=r"row 5|NaN"):
            m.predict(Xb)
        return
    for v in bad_values:
        Xb = X.copy()
        Xb[5, 1] = v
        with pytest.raises(emix.InputError, match=r"row 5, column 1\b"):
            _model(name).fit(Xb)
        with pytest.raises(emix.InputError, match=r"row 5, column 1\b"):
            m.score_samples(Xb)
    # DataFrames: the column by name.
    pd = pytest.importorskip("pandas")
    Xb = X.copy()
    Xb[5, 1] = bad_values[0]
    df = pd.DataFrame(Xb, columns=[f"c{j}" for j in range(X.shape[1])])
    with pytest.raises(emix.InputError, match=r"row 5, column 'c1'"):
        _model(name).fit(df)


# --------------------------------------------------------------------------- (e)
@families
def test_save_and_load_round_trip_exactly(name, rng, tmp_path):
    from emix import io as emix_io

    X, _ = _draw(name, 200, rng)
    m = _fit(_model(name, random_state=0, max_iter=20), X)
    path = tmp_path / f"{name}.emix"
    emix_io.save(m, path)
    back = emix.load(path)
    assert type(back) is emix.MixtureModel
    np.testing.assert_array_equal(back.weights_, m.weights_)
    for k in m.family_.param_names:
        np.testing.assert_array_equal(getattr(back, f"{k}_"), getattr(m, f"{k}_"))
    np.testing.assert_array_equal(back.score_samples(X), m.score_samples(X))
    assert back.family_.get_config() == m.family_.get_config()


# --------------------------------------------------------------------------- (f)
@families
def test_numpy_and_torch_cpu_give_the_same_fit(name, rng):
    pytest.importorskip("torch")
    from emix.backends.torch_backend import TorchBackend

    if not hasattr(TorchBackend, "stats_pass"):
        pytest.skip("the torch backend has no stats_pass yet")
    X, _ = _draw(name, 300, rng)
    kw = dict(**_start(name), tol=0, max_iter=10)
    a = _fit(_model(name, **kw), X)
    b = _fit(_model(name, device="cpu", **kw), X)
    np.testing.assert_allclose(b.lower_bounds_, a.lower_bounds_, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(b.weights_, a.weights_, rtol=1e-10, atol=1e-10)
    for k in a.family_.param_names:
        np.testing.assert_allclose(getattr(b, f"{k}_"), getattr(a, f"{k}_"), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(b.score_samples(X), a.score_samples(X), rtol=1e-10, atol=1e-10)


# --------------------------------------------------------------------------- (g)
@families
@settings(max_examples=8)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(25, 160), init=st.sampled_from(["random", "kmeans"]))
def test_log_likelihood_never_decreases(name, seed, n, init):
    rng = np.random.default_rng(seed)
    # Random mixing weights and data; a random start.
    w = rng.dirichlet([2.0, 2.0])
    X, _ = _draw(name, n, rng, weights=w)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=emix.ConvergenceWarning)
        warnings.filterwarnings("ignore", category=emix.DegenerateComponentWarning)
        try:
            m = _model(name, init_params=init, random_state=seed, tol=0, max_iter=15).fit(X)
        except emix.InputError as exc:
            # A start can leave a component empty on tiny data; that is refused by name.
            assert "empty" in str(exc) or "distinct" in str(exc)
            return
    h = m.lower_bounds_
    assert np.all(np.isfinite(h))
    drops = h[:-1] - h[1:]
    assert np.all(drops <= 1e-9 * np.maximum(np.abs(h[:-1]), 1.0)), (name, h)
