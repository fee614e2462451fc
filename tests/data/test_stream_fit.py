"""Fits and predictions over sources equal the in-memory ones, in bounded memory.

From the same starting point, a fit over a .npy, CSV or Parquet file or an iterable
(with tiny blocks, so that many blocks are added) reaches the in-memory parameters to
1e-9 relative; errors in the data stop the fit and leave no model and no output file.
"""

from __future__ import annotations

import os
import tracemalloc
import warnings

import numpy as np
import pytest

import emix
from emix.data import _stream, source
from emix.exceptions import InputError

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
pd = pytest.importorskip("pandas")

NAMES = ["a", "b", "c"]
BLOCK = 113  # rows per block: 1500 rows are read as 14 blocks


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    rng = np.random.default_rng(7)
    n = 1500
    z = rng.choice(3, size=n, p=[0.5, 0.3, 0.2])
    centres = np.array([[0.0, 0.0, 0.0], [4.0, 1.0, -2.0], [-3.0, 5.0, 1.0]])
    X = centres[z] + rng.normal(size=(n, 3)) * [1.0, 0.7, 1.3]
    d = tmp_path_factory.mktemp("stream")
    np.save(d / "x.npy", X)
    pd.DataFrame(X, columns=NAMES).to_csv(d / "x.csv", index=False, float_format="%.17g")
    pq.write_table(pa.table({k: X[:, j] for j, k in enumerate(NAMES)}), d / "x.parquet",
                   row_group_size=200)
    return X, d


def sources(X, d):
    yield "npy", source(d / "x.npy", block_rows=BLOCK)
    yield "csv", source(d / "x.csv", block_rows=BLOCK)
    yield "csv-numpy", source(d / "x.csv", block_rows=BLOCK, engine="numpy")
    yield "parquet", source(d / "x.parquet", block_rows=BLOCK)
    yield "iterable", source(lambda: (X[i : i + 250] for i in range(0, len(X), 250)))


def quiet():
    """Fits stopped by max_iter on purpose: their ConvergenceWarning is expected."""
    ctx = warnings.catch_warnings()
    ctx.__enter__()
    warnings.simplefilter("ignore", emix.ConvergenceWarning)
    return _Exit(ctx)


class _Exit:
    def __init__(self, ctx):
        self.ctx = ctx

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self.ctx.__exit__(*exc)


def rel(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def start(ct):
    means = np.array([[0.5, 0.2, 0.1], [3.0, 1.5, -1.0], [-2.0, 4.0, 0.0]])
    prec = {"full": np.stack([np.eye(3)] * 3), "tied": np.eye(3) * 2.0,
            "diag": np.ones((3, 3)), "spherical": np.ones(3)}[ct]
    return dict(weights_init=[0.4, 0.3, 0.3], means_init=means, precisions_init=prec)


@pytest.mark.parametrize("ct", ["full", "tied", "diag", "spherical"])
def test_gaussian_from_the_same_start_equals_in_memory(data, ct):
    X, d = data
    kw = dict(covariance_type=ct, tol=0.0, max_iter=15, **start(ct))
    with quiet():
        ref = emix.GaussianMixture(3, **kw).fit(X)
    for name, src in sources(X, d):
        with quiet():
            gm = emix.GaussianMixture(3, **kw).fit(src)
        for attr in ("weights_", "means_", "covariances_"):
            assert rel(getattr(gm, attr), getattr(ref, attr)) < 1e-9, (name, attr)
        assert rel(gm.lower_bounds_, ref.lower_bounds_) < 1e-12, name
        assert gm.n_iter_ == ref.n_iter_ == 15


def test_poisson_from_the_same_start_equals_in_memory(data):
    X, d = data
    rng = np.random.default_rng(3)
    Y = rng.poisson(np.where(rng.random((1200, 1)) < 0.4, 2.0, 8.0), size=(1200, 3)).astype(float)
    np.save(d / "y.npy", Y)
    pd.DataFrame(Y, columns=NAMES).to_csv(d / "y.csv", index=False)
    pq.write_table(pa.table({k: Y[:, j] for j, k in enumerate(NAMES)}), d / "y.parquet",
                   row_group_size=100)
    kw = dict(tol=0.0, max_iter=20, weights_init=[0.5, 0.5],
              params_init={"rates": np.array([[1.0, 1.0, 1.0], [5.0, 5.0, 5.0]])})
    with quiet():
        ref = emix.MixtureModel("poisson", 2, **kw).fit(Y)
    for src in (source(d / "y.npy", block_rows=BLOCK), source(d / "y.csv", block_rows=BLOCK),
                source(d / "y.parquet", block_rows=BLOCK), source([Y[:700], Y[700:]])):
        with quiet():
            m = emix.MixtureModel("poisson", 2, **kw).fit(src)
        assert rel(m.rates_, ref.rates_) < 1e-9 and rel(m.weights_, ref.weights_) < 1e-9
        assert rel(m.lower_bounds_, ref.lower_bounds_) < 1e-12
    # Support is checked over every block, rows numbered in the whole file.
    Y[1000, 2] = -1.0
    np.save(d / "neg.npy", Y)
    with pytest.raises(InputError, match=r"neg\.npy.*row 1000"):
        emix.MixtureModel("poisson", 2).fit(source(d / "neg.npy", block_rows=BLOCK))


@pytest.mark.parametrize("init", ["kmeans", "k-means++", "random_from_data", "ward", "random"])
def test_seeded_starts_draw_what_the_in_memory_fit_draws(data, init, monkeypatch):
    X, d = data
    # Force the block-wise random responsibilities (PCG64 jumps) at this size.
    monkeypatch.setattr(_stream, "_SMALL_RESP", 0)
    monkeypatch.setattr(emix.em.init, "KMEANS_MAX_ROWS", 500)
    monkeypatch.setattr(emix.models.mixture, "KMEANS_MAX_ROWS", 500)
    monkeypatch.setattr(emix.models.mixture_model, "KMEANS_MAX_ROWS", 500)
    kw = dict(init_params=init, random_state=11, max_iter=5, tol=1e-12)
    with quiet():
        ref = emix.GaussianMixture(3, **kw).fit(X)
    with quiet():
        gm = emix.GaussianMixture(3, **kw).fit(str(d / "x.npy"))
    assert rel(gm.means_, ref.means_) < 1e-9
    if init != "ward":
        with quiet():
            ref = emix.MixtureModel("exponential", 2, **kw).fit(np.abs(X))
        np.save(d / "abs.npy", np.abs(X))
        with quiet():
            m = emix.MixtureModel("exponential", 2, **kw).fit(source(d / "abs.npy", block_rows=BLOCK))
        assert rel(m.rates_, ref.rates_) < 1e-9


def test_sample_weights_with_a_source(data):
    X, d = data
    w = np.random.default_rng(5).random(len(X)) * 3
    kw = dict(tol=0.0, max_iter=8, **start("full"))
    with quiet():
        ref = emix.GaussianMixture(3, **kw).fit(X, sample_weight=w)
    with quiet():
        gm = emix.GaussianMixture(3, **kw).fit(source(d / "x.parquet", block_rows=BLOCK), sample_weight=w)
    assert rel(gm.means_, ref.means_) < 1e-9 and rel(gm.covariances_, ref.covariances_) < 1e-9
    assert gm.score(d / "x.csv", sample_weight=w) == pytest.approx(ref.score(X, sample_weight=w), rel=1e-12)


def test_predictions_over_a_source_and_to_files(data, tmp_path):
    X, d = data
    gm = emix.GaussianMixture(3, random_state=0).fit(str(d / "x.csv"))
    assert list(gm.feature_names_in_) == NAMES
    df = pd.DataFrame(X, columns=NAMES)
    csv = str(d / "x.csv")
    np.testing.assert_array_equal(gm.predict(csv), gm.predict(df))
    np.testing.assert_allclose(gm.predict_proba(csv), gm.predict_proba(df), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(gm.score_samples(csv), gm.score_samples(df), rtol=1e-12)
    assert gm.score(csv) == pytest.approx(gm.score(df), rel=1e-13)
    assert gm.bic(csv) == pytest.approx(gm.bic(df), rel=1e-13)
    # Columns are taken by the names the model was fitted on.
    pd.DataFrame({"z": 1.0, "c": X[:, 2], "a": X[:, 0], "b": X[:, 1]}).to_csv(
        tmp_path / "shuffled.csv", index=False, float_format="%.17g")
    np.testing.assert_array_equal(gm.predict(tmp_path / "shuffled.csv"), gm.predict(df))

    out = gm.predict(source(csv, block_rows=BLOCK), out=tmp_path / "labels.csv")
    assert out == str(tmp_path / "labels.csv")
    back = pd.read_csv(out)
    assert list(back.columns) == ["component"]
    np.testing.assert_array_equal(back["component"].to_numpy(), gm.predict(df))
    gm.predict_proba(csv, out=tmp_path / "p.npy")
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), gm.predict_proba(df), rtol=1e-12, atol=1e-300)
    gm.score_samples(csv, out=tmp_path / "s.parquet")
    got = pq.read_table(tmp_path / "s.parquet")["log_density"].to_numpy()
    np.testing.assert_allclose(got, gm.score_samples(df), rtol=1e-12)
    gm.predict_proba(df, out=tmp_path / "p.csv")  # an array in memory, written in blocks
    np.testing.assert_allclose(pd.read_csv(tmp_path / "p.csv").to_numpy(), gm.predict_proba(df), rtol=1e-15)
    with pytest.raises(InputError, match="must end in"):
        gm.predict(csv, out=tmp_path / "labels.txt")


def test_bad_data_leave_no_model_and_no_output_file(data, tmp_path):
    X, d = data
    lines = (d / "x.csv").read_text().splitlines()
    lines[1201] = lines[1201].split(",")[0] + ",oops," + lines[1201].split(",")[2]
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines) + "\n")
    gm = emix.GaussianMixture(3, random_state=0)
    with pytest.raises(InputError, match=r"bad\.csv: column 'b' is not numeric: row 1200"):
        gm.fit(source(bad, block_rows=BLOCK))
    assert not hasattr(gm, "means_")
    gm.fit(pd.DataFrame(X, columns=NAMES))
    out = tmp_path / "labels.csv"
    out.write_text("previous\n")
    with pytest.raises(InputError, match="row 1200"):
        gm.predict(source(bad, block_rows=BLOCK), out=out)
    assert out.read_text() == "previous\n"
    assert sorted(os.listdir(tmp_path)) == ["bad.csv", "labels.csv"]


def test_a_file_changed_during_a_fit_stops_it(data, tmp_path):
    X, d = data
    path = tmp_path / "x.npy"
    np.save(path, X)
    state = {"done": False}

    def touch(iteration, ll, params):
        if iteration == 3 and not state["done"]:
            state["done"] = True
            st = os.stat(path)
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))

    gm = emix.GaussianMixture(3, random_state=0, callback=touch, tol=0.0, max_iter=10)
    with pytest.raises(InputError, match=r"x\.npy changed while emix was reading it"):
        gm.fit(str(path))
    assert not hasattr(gm, "means_")


def test_mixture_model_columns_and_delegated_gaussian_on_a_file(data):
    X, d = data
    csv = str(d / "x.csv")
    m = emix.MixtureModel("gaussian", 3, columns=["c", "a"], random_state=0).fit(csv)
    ref = emix.MixtureModel("gaussian", 3, columns=["c", "a"], random_state=0).fit(
        pd.DataFrame(X, columns=NAMES))
    assert rel(m.means_, ref.means_) < 1e-9
    np.testing.assert_array_equal(m.predict(csv), ref.predict(pd.DataFrame(X, columns=NAMES)))
    Z = np.abs(X)
    np.save(d / "z.npy", Z)
    m = emix.MixtureModel({"exponential": [0], "gaussian": [1, 2]}, 2, random_state=0).fit(
        source(d / "z.npy", block_rows=BLOCK))
    ref = emix.MixtureModel({"exponential": [0], "gaussian": [1, 2]}, 2, random_state=0).fit(Z)
    assert rel(m.weights_, ref.weights_) < 1e-9


def test_memory_is_bounded_by_the_block_not_the_file(tmp_path, monkeypatch):
    # The start's sample is capped at KMEANS_MAX_ROWS rows (100,000, as in memory); a
    # test-sized file would be smaller than that, so the cap is lowered here.
    monkeypatch.setattr(emix.models.mixture, "KMEANS_MAX_ROWS", 5000)
    rng = np.random.default_rng(1)
    X = np.concatenate([rng.normal(size=(60_000, 8)), rng.normal(3.0, 1.0, size=(60_000, 8))])
    path = tmp_path / "big.npy"
    np.save(path, X)  # 7.7 MB on disk
    data_bytes = X.nbytes
    del X
    src = source(path, block_rows=1024)  # 66 kB blocks
    kw = dict(covariance_type="full", max_iter=3, tol=0.0, random_state=0)
    gm = emix.GaussianMixture(2, **kw)
    tracemalloc.start()
    try:
        with quiet():
            gm.fit(src)
        gm.score(src)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < data_bytes / 4, peak
    assert gm.n_iter_ == 3
    tracemalloc.start()
    try:
        src2 = source(path, block_rows=1024)
        with quiet():
            emix.GaussianMixture(2, max_iter=3, tol=0.0, means_init=gm.means_, weights_init=gm.weights_,
                                 precisions_init=gm.precisions_).fit(src2)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Without the sample only blocks and their temporaries remain.
    assert peak < data_bytes / 8, peak


def test_blocks_run_on_the_torch_backend(data):
    pytest.importorskip("torch")
    X, d = data
    kw = dict(tol=0.0, max_iter=6, **start("full"))
    with quiet():
        ref = emix.GaussianMixture(3, **kw).fit(X)
        gm = emix.GaussianMixture(3, device="cpu", **kw).fit(source(d / "x.npy", block_rows=BLOCK))
    assert rel(gm.means_, ref.means_) < 1e-9 and rel(gm.covariances_, ref.covariances_) < 1e-9
    np.testing.assert_array_equal(gm.predict(d / "x.npy"), ref.predict(X))
