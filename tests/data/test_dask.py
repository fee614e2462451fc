"""Fits on dask arrays across a 2-process LocalCluster equal the in-memory fits.

Every per-block pass runs on the workers (X's blocks are generated there and would
refuse to be generated on the client), the answer survives a worker killed mid-fit,
and predictions are lazy dask arrays equal to the in-memory ones.
"""

from __future__ import annotations

import os
import sys
import warnings

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import emix  # noqa: E402

pytestmark = pytest.mark.slow

RTOL = 1e-9


def _rel(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def _gaussian_data(seed=0, n=900, D=3):
    rng = np.random.default_rng(seed)
    centers = np.array([[0.0] * D, [4.0] * D, [0.0, 5.0] + [-3.0] * (D - 2)])
    y = rng.integers(0, 3, n)
    return centers[y] + rng.normal(size=(n, D)) * np.array([1.0, 0.5, 2.0])[:D]


@pytest.mark.parametrize("covariance_type, holes",
                         [("full", 0.0), ("diag", 0.0), ("tied", 0.0), ("full", 0.15)])
def test_gaussian_fit_equals_in_memory(client, covariance_type, holes):
    X = _gaussian_data()
    if holes:
        # Missing cells: each worker groups its block's rows by pattern and runs the
        # incomplete-data E-step (compiled kernels included) on its own.
        rng = np.random.default_rng(5)
        hide = rng.random(X.shape) < holes
        hide[hide.all(axis=1), 0] = False
        X[hide] = np.nan
    # Persisted: the blocks stay on the workers between iterations, as a user whose
    # data fit in the cluster's memory would have them.
    Xd = da.from_array(X, chunks=(97, 3)).persist()
    kw = dict(covariance_type=covariance_type, random_state=1, tol=1e-10, max_iter=40)
    ref = emix.GaussianMixture(3, **kw).fit(X)
    got = emix.GaussianMixture(3, **kw).fit(Xd)
    assert got.n_iter_ == ref.n_iter_
    for attr in ("weights_", "means_", "covariances_"):
        assert _rel(getattr(got, attr), getattr(ref, attr)) < RTOL, attr
    assert abs(got.lower_bound_ - ref.lower_bound_) < RTOL * abs(ref.lower_bound_)


def test_poisson_fit_equals_in_memory_and_predicts_lazily(client):
    rng = np.random.default_rng(3)
    lam = np.where(rng.random((800, 1)) < 0.4, 2.0, 11.0) * np.array([1.0, 0.5])
    X = rng.poisson(lam).astype(np.float64)
    Xd = da.from_array(X, chunks=(100, 2)).persist()
    for init in ("kmeans", "random"):
        kw = dict(random_state=2, tol=1e-10, init_params=init)
        ref = emix.MixtureModel("poisson", 2, **kw).fit(X)
        got = emix.MixtureModel("poisson", 2, **kw).fit(Xd)
        assert got.n_iter_ == ref.n_iter_
        assert _rel(got.rates_, ref.rates_) < RTOL
        assert _rel(got.weights_, ref.weights_) < RTOL
    labels = got.predict(Xd)
    assert isinstance(labels, da.Array) and labels.chunks[0] == Xd.chunks[0]
    np.testing.assert_array_equal(labels.compute(), ref.predict(X))
    proba = got.predict_proba(Xd)
    assert isinstance(proba, da.Array)
    np.testing.assert_allclose(proba.compute(), ref.predict_proba(X), rtol=1e-9, atol=1e-12)
    s = got.score_samples(Xd)
    assert isinstance(s, da.Array)
    np.testing.assert_allclose(s.compute(), ref.score_samples(X), rtol=1e-9)
    assert got.score(Xd) == pytest.approx(ref.score(X), rel=1e-12)
    # A support violation is found on a worker and names its global row.
    bad = X.copy()
    bad[700, 1] = -1.0
    with pytest.raises(emix.InputError, match="row 700"):
        emix.MixtureModel("poisson", 2).fit(da.from_array(bad, chunks=(100, 2)))


def test_gaussian_predict_is_lazy_and_equal(client):
    X = _gaussian_data(seed=5)
    Xd = da.from_array(X, chunks=(200, 3))
    gm = emix.GaussianMixture(3, random_state=0).fit(X)
    labels = gm.predict(Xd)
    assert isinstance(labels, da.Array)
    np.testing.assert_array_equal(labels.compute(), gm.predict(X))
    np.testing.assert_allclose(gm.predict_proba(Xd).compute(), gm.predict_proba(X), rtol=1e-12, atol=1e-15)


# ----------------------------------------------------------------- work on the workers
N_BLOCKS, BLOCK_ROWS = 6, 150


def _make_block(i, client_pid):
    """Rows of block i, generated where the task runs: never on the client."""
    if os.getpid() == client_pid:
        raise RuntimeError("block generated on the client process")
    return _gaussian_data(seed=100 + i, n=BLOCK_ROWS)


def _generated_X(client_pid):
    from dask import delayed

    parts = [
        da.from_delayed(delayed(_make_block)(i, client_pid), (BLOCK_ROWS, 3), np.float64)
        for i in range(N_BLOCKS)
    ]
    return da.concatenate(parts, axis=0)


def _in_memory_X():
    return np.vstack([_gaussian_data(seed=100 + i, n=BLOCK_ROWS) for i in range(N_BLOCKS)])


def test_every_iteration_runs_on_the_workers(client):
    from distributed.utils import key_split

    Xd = _generated_X(os.getpid())
    with pytest.raises(RuntimeError, match="on the client"):
        Xd.compute(scheduler="sync")  # the generator indeed refuses the client
    workers = set(client.scheduler_info()["workers"])
    # A random start ships responsibilities, not rows: no row reaches the client.
    kw = dict(random_state=4, init_params="random", tol=1e-10, max_iter=15)
    iters = []
    with distributed.get_task_stream(client) as ts:
        got = emix.GaussianMixture(3, callback=lambda it, ll, p: iters.append(it), **kw)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", emix.ConvergenceWarning)
            got.fit(Xd)
    ref = emix.GaussianMixture(3, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", emix.ConvergenceWarning)
        ref.fit(_in_memory_X())
    assert _rel(got.means_, ref.means_) < RTOL
    assert _rel(got.covariances_, ref.covariances_) < RTOL
    block_tasks = [t for t in ts.data if key_split(t["key"]) == "block_stats"]
    assert {t["worker"] for t in block_tasks} <= workers
    # One task per block per pass: the start's pass(es) and one per EM iteration.
    assert len(block_tasks) % N_BLOCKS == 0
    assert len(block_tasks) // N_BLOCKS >= got.n_iter_ + 1 == len(iters) + 1
    # The fit succeeded although _make_block fails on the client: every block of X
    # was generated, and used, on a worker.


def test_survives_a_worker_killed_mid_fit(client):
    X = _gaussian_data(seed=9, n=1200)
    Xd = da.from_array(X, chunks=(100, 3))
    kw = dict(covariance_type="diag", random_state=0, tol=1e-10, max_iter=12,
              init_params="random")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", emix.ConvergenceWarning)
        ref = emix.GaussianMixture(3, **kw).fit(X)
    killed = []

    def kill_at_2(it, ll, params):
        if it == 2 and not killed:
            addr = sorted(client.scheduler_info()["workers"])[0]
            killed.append(addr)
            client.run(os._exit, 1, workers=[addr], on_error="ignore")

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = emix.GaussianMixture(3, callback=kill_at_2, **kw).fit(Xd)
    finally:
        client.wait_for_workers(2, timeout=60)
    assert killed
    # The nanny started a new worker process (a new address) in place of the killed one.
    assert killed[0] not in client.scheduler_info()["workers"]
    assert got.n_iter_ == ref.n_iter_
    assert _rel(got.means_, ref.means_) < RTOL
    assert _rel(got.covariances_, ref.covariances_) < RTOL


def test_import_emix_does_not_import_dask():
    import subprocess

    code = "import sys, emix; emix.GaussianMixture; print('dask' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
