"""HMM fits over sources (.npy, CSV, Parquet, iterables) equal the in-memory fits.

Each EM iteration reads the source once in groups of whole sequences: a sequence cut by
a block is carried over to the next block. With 37 rows per block almost every block
cuts a sequence, and some sequences span several blocks.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import emix
from emix.data import source
from emix.data._sequences import sequence_groups
from emix.exceptions import InputError

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
pd = pytest.importorskip("pandas")

RTOL = 1e-9
BLOCK = 37
MEANS = np.array([[0.0, 0.0], [3.0, 1.0], [-2.0, 4.0]])
TRANS = np.array([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.05, 0.15, 0.8]])
START = dict(
    startprob_init=[0.5, 0.3, 0.2],
    transmat_init=[[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]],
)


def _rel(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def _states(rng, lengths):
    z = []
    for n in lengths:
        s = rng.integers(3)
        for _ in range(n):
            z.append(s)
            s = rng.choice(3, p=TRANS[s])
    return np.array(z)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """30 sequences of lengths 3..90 (some longer than two blocks), Gaussian and Poisson
    emissions, written as .npy, CSV and Parquet."""
    rng = np.random.default_rng(11)
    lengths = rng.integers(3, 91, 30)
    z = _states(rng, lengths)
    X = MEANS[z] + rng.normal(size=(len(z), 2)) * np.array([1.0, 0.5])
    C = rng.poisson(np.array([1.0, 6.0, 15.0])[z])[:, None].astype(np.float64)
    d = tmp_path_factory.mktemp("hmm_src")
    np.save(d / "x.npy", X)
    pd.DataFrame(X, columns=["a", "b"]).to_csv(d / "x.csv", index=False, float_format="%.17g")
    pq.write_table(pa.table({"a": X[:, 0], "b": X[:, 1]}), d / "x.parquet", row_group_size=50)
    pd.DataFrame({"n": C[:, 0]}).to_csv(d / "c.csv", index=False)
    return X, C, lengths, d


def _check_equal(got, ref, attrs):
    assert got.n_iter_ == ref.n_iter_
    for attr in ("startprob_", "transmat_") + attrs:
        assert _rel(getattr(got, attr), getattr(ref, attr)) < RTOL, attr
    assert _rel(got.lower_bounds_, ref.lower_bounds_) < RTOL


GAUSS = dict(
    covariance_type="diag", tol=1e-10, max_iter=30,
    emission_init={"means": [[0.5, 0.5], [2.0, 2.0], [-1.0, 3.0]],
                   "covariances": [[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]]},
    **START,
)


def test_gaussian_fit_over_files_equals_in_memory(data):
    X, _, lengths, d = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", emix.ConvergenceWarning)
        ref = emix.HMM(3, **GAUSS).fit(X, lengths)
        srcs = [
            source(d / "x.npy", block_rows=BLOCK),
            source(d / "x.csv", block_rows=BLOCK),
            source(d / "x.parquet", block_rows=BLOCK),
            source(lambda: (X[i : i + 41] for i in range(0, len(X), 41))),
        ]
        for src in srcs:
            got = emix.HMM(3, **GAUSS).fit(src, lengths)
            _check_equal(got, ref, ("means_", "covariances_"))
        # A plain path, at the default block size.
        got = emix.HMM(3, **GAUSS).fit(str(d / "x.parquet"), lengths)
    _check_equal(got, ref, ("means_", "covariances_"))
    assert ref.n_iter_ > 3
    assert list(got.feature_names_in_) == ["a", "b"]


def test_poisson_fit_over_csv_equals_in_memory(data):
    _, C, lengths, d = data
    kw = dict(emission="poisson", tol=1e-10, max_iter=30,
              emission_init={"rates": [[2.0], [5.0], [10.0]]}, **START)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", emix.ConvergenceWarning)
        ref = emix.HMM(3, **kw).fit(C, lengths)
        got = emix.HMM(3, **kw).fit(source(d / "c.csv", block_rows=BLOCK), lengths)
    _check_equal(got, ref, ("rates_",))


def test_seeded_start_over_a_file_equals_in_memory(data):
    X, _, lengths, d = data
    kw = dict(covariance_type="diag", tol=1e-10, max_iter=20, random_state=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", emix.ConvergenceWarning)
        ref = emix.HMM(3, **kw).fit(X, lengths)
        got = emix.HMM(3, **kw).fit(source(d / "x.npy", block_rows=BLOCK), lengths)
    _check_equal(got, ref, ("means_", "covariances_"))


def test_sequence_groups_hold_whole_sequences():
    rng = np.random.default_rng(0)
    lengths = np.array([5, 80, 1, 2, 40, 3, 70])
    X = rng.normal(size=(lengths.sum(), 2))
    blocks = [X[i : i + 17] for i in range(0, len(X), 17)]
    groups = list(sequence_groups(iter(blocks), lengths))
    np.testing.assert_array_equal(np.concatenate([g[0] for g in groups]), X)
    np.testing.assert_array_equal(np.concatenate([g[1] for g in groups]), lengths)
    for Xg, lg, row0, seq0 in groups:
        assert Xg.shape[0] == lg.sum()
        assert row0 == lengths[:seq0].sum()
        np.testing.assert_array_equal(lg, lengths[seq0 : seq0 + len(lg)])
        # Memory: a group is at most a block plus the sequence the block cut.
        assert Xg.shape[0] <= 17 + lengths.max()
    with pytest.raises(InputError, match="201 rows but the lengths of its sequences sum to 211"):
        list(sequence_groups(iter(blocks), np.append(lengths, 10)))


def test_lengths_not_matching_the_file_are_refused(data):
    X, _, lengths, d = data
    with pytest.raises(InputError, match="lengths sum to"):
        emix.HMM(3, **GAUSS).fit(source(d / "x.npy", block_rows=BLOCK), lengths[:-1])


def test_inference_on_files_equals_inference_in_memory(data):
    X, _, lengths, d = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", emix.ConvergenceWarning)
        model = emix.HMM(3, **{**GAUSS, "max_iter": 2}).fit(X, lengths)
    for path in (d / "x.npy", source(d / "x.npy", block_rows=BLOCK)):
        # Blocks of 37 rows cut sequences: each group holds whole sequences only.
        np.testing.assert_array_equal(model.predict(path, lengths), model.predict(X, lengths))
        lp, p = model.decode(path, lengths)
        lp_mem, p_mem = model.decode(X, lengths)
        assert _rel(lp, lp_mem) <= 1e-12
        np.testing.assert_array_equal(p, p_mem)
        for method in ("predict_proba", "filter", "score_samples"):
            np.testing.assert_allclose(getattr(model, method)(path, lengths),
                                       getattr(model, method)(X, lengths), rtol=1e-12, atol=1e-14)
        assert _rel(model.score(path, lengths), model.score(X, lengths)) <= 1e-12
