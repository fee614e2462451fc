"""The NumPy backend's multi-threaded passes: same statistics as one thread, repeatable,
and the BLAS thread setting restored."""

from __future__ import annotations

import numpy as np
import pytest

from emix.backends import _blas
from emix.backends import numpy_backend as nb
from emix.families import gaussian as G
from emix.families import gaussian_kernel as GK  # noqa: E402

pytestmark = pytest.mark.skipif(
    not _blas.available() or _blas.cpu_count() < 2,
    reason="needs OpenBLAS and two cores for a threaded pass",
)

COV_TYPES = ("full", "tied", "diag", "spherical")


def _setup(rng, ct, dtype):
    N, D, K = 5000, 4, 3
    X = (rng.normal(size=(N, D)) + rng.integers(0, K, N)[:, None] * 2.0).astype(dtype)
    w = rng.uniform(0.5, 2.0, N)
    frame = G.Frame.from_data(X.mean(0).astype(float), X.var(0).astype(float))
    be = nb.NumpyBackend()
    kw = dict(covariance_type=ct, frame=frame, n_components=K, block_size=300)
    R = rng.dirichlet(np.ones(K), N)
    params, _ = G.m_step(GK.mixture_pass(be, X, w, None, resp=lambda a, b: R[a:b], **kw), 1e-6)
    return be, X, w, G.estep_plan(params, frame), kw


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("ct", COV_TYPES)
def test_threaded_pass_equals_serial(rng, monkeypatch, ct, dtype):
    be, X, w, plan, kw = _setup(rng, ct, dtype)
    monkeypatch.setattr(nb, "_MIN_ROWS_PER_THREAD", 100)
    assert nb._threads_for(len(X), kw["block_size"]) >= 2
    threaded = GK.mixture_pass(be, X, w, plan, **kw)
    again = GK.mixture_pass(be, X, w, plan, **kw)
    L_threaded = GK.log_joint(be, X, plan, block_size=300)
    monkeypatch.setattr(nb, "_MIN_ROWS_PER_THREAD", 10**12)
    serial = GK.mixture_pass(be, X, w, plan, **kw)
    L_serial = GK.log_joint(be, X, plan, block_size=300)
    # Same machine, same partition: bit for bit.
    assert np.array_equal(threaded.resp_moments, again.resp_moments)
    assert threaded.loglik == again.loglik
    # Against one thread only the order of the float64 sums differs.
    np.testing.assert_allclose(threaded.resp_moments, serial.resp_moments, rtol=1e-12,
                               atol=1e-12 * np.abs(serial.resp_moments).max())
    assert threaded.loglik == pytest.approx(serial.loglik, rel=1e-12)
    if ct == "tied":
        np.testing.assert_allclose(threaded.scatter, serial.scatter, rtol=1e-12)
    assert np.array_equal(L_threaded, L_serial)


def test_blas_threads_restored(rng, monkeypatch):
    be, X, w, plan, kw = _setup(rng, "full", np.float64)
    monkeypatch.setattr(nb, "_MIN_ROWS_PER_THREAD", 100)
    before = [get() for _, get in _blas._find()]
    GK.mixture_pass(be, X, w, plan, **kw)
    assert [get() for _, get in _blas._find()] == before
    with _blas.single_threaded():
        with _blas.single_threaded():
            assert all(get() == 1 for _, get in _blas._find())
        assert all(get() == 1 for _, get in _blas._find())
    assert [get() for _, get in _blas._find()] == before


def test_threaded_pass_works_in_a_forked_child(rng, monkeypatch):
    """A child forked after a threaded pass must not wait on its parent's pool threads."""
    import multiprocessing as mp

    be, X, w, plan, kw = _setup(rng, "diag", np.float64)
    monkeypatch.setattr(nb, "_MIN_ROWS_PER_THREAD", 100)
    parent = GK.mixture_pass(be, X, w, plan, **kw)  # creates the pool in this process
    ctx = mp.get_context("fork")
    q = ctx.Queue()

    def child():
        q.put(float(GK.mixture_pass(be, X, w, plan, **kw).loglik))

    p = ctx.Process(target=child)
    p.start()
    p.join(timeout=60)
    alive = p.is_alive()
    if alive:
        p.kill()
    assert not alive, "the forked child hung on the inherited thread pool"
    assert q.get(timeout=5) == parent.loglik


def test_thread_count_follows_the_cores_given(monkeypatch):
    # No ceiling below the machine: 16 cores give 16 threads on data big enough for them.
    monkeypatch.setattr(_blas, "cpu_count", lambda: 16)
    monkeypatch.delenv("EMIX_NUM_THREADS", raising=False)
    assert nb._threads_for(16 * nb._MIN_ROWS_PER_THREAD, 4096) == 16
    # ... and never more threads than blocks or than rows justify.
    assert nb._threads_for(16 * nb._MIN_ROWS_PER_THREAD, 16 * nb._MIN_ROWS_PER_THREAD // 4) == 4
    assert nb._threads_for(5 * nb._MIN_ROWS_PER_THREAD, 4096) == 5
    monkeypatch.setenv("EMIX_NUM_THREADS", "4")
    assert nb._threads_for(16 * nb._MIN_ROWS_PER_THREAD, 4096) == 4
    monkeypatch.setenv("EMIX_NUM_THREADS", "many")
    with pytest.raises(ValueError, match="EMIX_NUM_THREADS"):
        nb._threads_for(16 * nb._MIN_ROWS_PER_THREAD, 4096)
