"""HMM fits over many sequences on a 2-process LocalCluster equal the in-memory fits.

X's row blocks are rechunked on sequence boundaries (forward-backward needs a whole
sequence in one task); every block's E-step runs on a worker and the blocks'
statistics are tree-added, one ``compute`` per iteration.
"""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import emix  # noqa: E402
from emix.data._dask import DaskBackend, DaskData  # noqa: E402

pytestmark = pytest.mark.slow

RTOL = 1e-9
MEANS = np.array([[0.0, 0.0], [3.0, 1.0], [-2.0, 4.0]])
TRANS = np.array([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.05, 0.15, 0.8]])


def _rel(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def _sequences(seed=0, S=40):
    """S sequences of lengths 15..80 from a 3-state Gaussian HMM: (X (T, 2), lengths)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(15, 81, S)
    z = []
    for n in lengths:
        s = rng.integers(3)
        for _ in range(n):
            z.append(s)
            s = rng.choice(3, p=TRANS[s])
    z = np.array(z)
    return MEANS[z] + rng.normal(size=(len(z), 2)) * np.array([1.0, 0.5]), lengths


START = dict(
    startprob_init=[0.5, 0.3, 0.2],
    transmat_init=[[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]],
    emission_init={"means": [[0.5, 0.5], [2.0, 2.0], [-1.0, 3.0]],
                   "covariances": [[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]]},
)


def _check_equal(got, ref):
    assert got.n_iter_ == ref.n_iter_
    for attr in ("startprob_", "transmat_", "means_", "covariances_"):
        assert _rel(getattr(got, attr), getattr(ref, attr)) < RTOL, attr
    assert _rel(got.lower_bounds_, ref.lower_bounds_) < RTOL


def test_misaligned_blocks_are_rechunked_on_sequence_boundaries():
    X, lengths = _sequences()
    Xd = DaskData(da.from_array(X, chunks=(97, 2)))
    ends = np.concatenate([[0], np.cumsum(lengths)])
    assert not np.isin(Xd.offsets, ends).all()
    backend = DaskBackend(None)
    aligned = backend.align_to_sequences(Xd, lengths)
    assert np.isin(aligned.offsets, ends).all()
    assert aligned.offsets[-1] == len(X)
    # Blocks stay near the original size: whole sequences grouped up to 97 rows (or
    # one longer sequence alone).
    sizes = np.diff(aligned.offsets)
    assert np.all((sizes <= 97) | np.isin(sizes, lengths))
    np.testing.assert_array_equal(aligned.array.compute(), X)
    # Already aligned blocks are left alone.
    assert backend.align_to_sequences(aligned, lengths) is aligned
    # A pass over misaligned blocks refuses, naming the row where a sequence is cut.
    cut = int(Xd.offsets[np.flatnonzero(~np.isin(Xd.offsets, ends))[0]])
    with pytest.raises(emix.InputError, match=f"row {cut}, inside a sequence"):
        backend.sequence_pass(Xd, lengths, None)


@pytest.mark.filterwarnings("ignore::emix.exceptions.ConvergenceWarning")
def test_fit_equals_in_memory_from_the_same_start(client):
    X, lengths = _sequences()
    Xd = da.from_array(X, chunks=(97, 2)).persist()
    # A fixed number of iterations (each is a round of tasks on the cluster).
    kw = dict(covariance_type="diag", tol=0.0, max_iter=6, **START)
    ref = emix.HMM(3, **kw).fit(X, lengths)
    iters = []
    with distributed.get_task_stream(client) as ts:
        got = emix.HMM(3, callback=lambda it, ll, p: iters.append(it), **kw).fit(Xd, lengths)
    _check_equal(got, ref)
    assert got.n_iter_ > 3
    # The E-step of every block ran on a worker, in every iteration.
    from distributed.utils import key_split

    workers = set(client.scheduler_info()["workers"])
    block_tasks = [t for t in ts.data if key_split(t["key"]) == "sequence_block"]
    assert block_tasks and {t["worker"] for t in block_tasks} <= workers
    n_blocks = len(DaskBackend(None).align_to_sequences(DaskData(Xd), lengths).offsets) - 1
    assert len(block_tasks) % n_blocks == 0
    assert len(block_tasks) // n_blocks >= got.n_iter_ == len(iters)

    # Inference on the workers, lazily, equals the in-memory results.
    for method in ("predict", "predict_proba", "filter", "score_samples"):
        out = getattr(got, method)(Xd, lengths)
        assert isinstance(out, da.Array), method
        want = getattr(ref, method)(X, lengths)
        if method == "predict":
            np.testing.assert_array_equal(out.compute(), want)
        else:
            np.testing.assert_allclose(out.compute(), want, rtol=1e-9, atol=1e-12)
    lp, path = got.decode(Xd, lengths)
    lp_ref, path_ref = ref.decode(X, lengths)
    assert lp == pytest.approx(lp_ref, rel=1e-9)
    np.testing.assert_array_equal(path, path_ref)
    assert got.score(Xd, lengths) == pytest.approx(ref.score(X, lengths), rel=1e-9)


@pytest.mark.parametrize("init_params", ["kmeans", "random"])
def test_seeded_start_equals_in_memory(client, init_params):
    X, lengths = _sequences(seed=1, S=20)
    Xd = da.from_array(X, chunks=(150, 2))
    kw = dict(covariance_type="diag", tol=1e-10, max_iter=40, random_state=3,
              init_params=init_params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", emix.ConvergenceWarning)
        ref = emix.HMM(3, **kw).fit(X, lengths)
        got = emix.HMM(3, **kw).fit(Xd, lengths)
    _check_equal(got, ref)


def test_impossible_row_is_numbered_globally(client):
    X, lengths = _sequences(seed=2, S=10)
    model = emix.HMM(3, covariance_type="diag", tol=1e-10, max_iter=5, **START)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", emix.ConvergenceWarning)
        model.fit(X, lengths)
    # A start in state 0 only, which the transitions never leave; then a row far from
    # state 0 has probability 0 in float64.
    model.startprob_ = np.array([1.0, 0.0, 0.0])
    model.transmat_ = np.eye(3)
    bad = X.copy()
    row = int(np.cumsum(lengths)[6]) + 3
    bad[row] = [1e6, 1e6]
    want = f"row {row} \\(sequence 7\\)"
    with pytest.raises(emix.DegenerateComponentError, match=want):
        model.predict_proba(bad, lengths)
    with pytest.raises(emix.DegenerateComponentError, match=want):
        model.predict_proba(da.from_array(bad, chunks=(60, 2)), lengths).compute()


def test_import_emix_does_not_import_dask():
    import subprocess

    code = "import sys, emix; emix.HMM; print('dask' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
