"""Missing values (NaN) through files and Dask arrays equal the in-memory fits.

A .npy file with NaN, a CSV file with empty cells and a Parquet file with nulls, read in
blocks of 113 rows, give the in-memory parameters to 1e-9 (GaussianMixture full and
diag, a Poisson MixtureModel, a Gaussian HMM), with the rows whose every value is
missing dropped with one warning that counts them; a dask array (threaded scheduler)
the same. inf is an error naming file, column and row; missing='error' keeps the old
errors.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import emix
from emix._missing import MissingDataWarning
from emix.data import source
from emix.data._stream import _Summary
from emix.exceptions import InputError, NonNumericError

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
pd = pytest.importorskip("pandas")

NAMES = ["a", "b", "c"]
BLOCK = 113
ALL_MISSING = [5, 400, 401]  # rows with every value missing


def _holes(X, rng, frac=0.15):
    X = X.copy()
    X[rng.random(X.shape) < frac] = np.nan
    X[ALL_MISSING] = np.nan
    return X


def _write(d, stem, X):
    np.save(d / f"{stem}.npy", X)
    # Empty cells where values are missing (pandas' default na_rep).
    pd.DataFrame(X, columns=NAMES).to_csv(d / f"{stem}.csv", index=False, float_format="%.17g")
    table = pa.table({k: pa.array(X[:, j], from_pandas=True) for j, k in enumerate(NAMES)})
    assert table.column("a").null_count > 0  # nulls, not NaN
    pq.write_table(table, d / f"{stem}.parquet", row_group_size=200)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    rng = np.random.default_rng(11)
    n = 900
    z = rng.choice(3, size=n, p=[0.5, 0.3, 0.2])
    centres = np.array([[0.0, 0.0, 0.0], [4.0, 1.0, -2.0], [-3.0, 5.0, 1.0]])
    L = np.array([[1.0, 0, 0], [0.6, 0.8, 0], [-0.3, 0.2, 1.2]])
    G = _holes(centres[z] + rng.normal(size=(n, 3)) @ L.T, rng)
    rates = np.array([[1.0, 6.0, 2.0], [9.0, 1.0, 3.0], [3.0, 3.0, 12.0]])
    P = _holes(rng.poisson(rates[z]).astype(np.float64), rng)
    d = tmp_path_factory.mktemp("missing")
    _write(d, "g", G)
    _write(d, "p", P)
    return G, P, d


def _sources(d, stem, numpy_csv=True):
    yield "npy", source(d / f"{stem}.npy", block_rows=BLOCK)
    yield "csv", source(d / f"{stem}.csv", block_rows=BLOCK)
    if numpy_csv:
        yield "csv-numpy", source(d / f"{stem}.csv", block_rows=BLOCK, engine="numpy")
    yield "parquet", source(d / f"{stem}.parquet", block_rows=BLOCK)


def _fit(est, X, *args):
    """Fit with warnings recorded; exactly one MissingDataWarning, counting the rows."""
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        est.fit(X, *args)
    missing = [r for r in rec if issubclass(r.category, MissingDataWarning)]
    others = [r for r in rec if not issubclass(r.category, (MissingDataWarning, emix.ConvergenceWarning))]
    assert not others, [str(r.message) for r in others]
    return est, missing


def _n_all(X) -> str:
    n = int(np.isnan(X).all(axis=1).sum())
    return f"{n} rows have every value missing"


def _rel(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


@pytest.mark.parametrize("ct", ["full", "diag"])
def test_gaussian_mixture_on_files_equals_memory(data, ct):
    G, _, d = data
    kw = dict(n_components=3, covariance_type=ct, max_iter=6, tol=0.0, random_state=3)
    ref, warned = _fit(emix.GaussianMixture(**kw), G)
    assert len(warned) == 1 and _n_all(G) in str(warned[0].message)
    for kind, src in _sources(d, "g", numpy_csv=False):
        gm, warned = _fit(emix.GaussianMixture(**kw), src)
        assert len(warned) == 1, kind
        assert _n_all(G) in str(warned[0].message), kind
        assert "rows 5, " in str(warned[0].message)
        assert gm.n_iter_ == ref.n_iter_
        for attr in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
            assert _rel(getattr(gm, attr), getattr(ref, attr)) < 1e-9, (kind, attr)
        assert _rel(gm.lower_bounds_, ref.lower_bounds_) < 1e-9, kind
    # Predictions over the file: NaN rows by their observed cells, all-NaN rows the prior.
    P = gm.predict_proba(d / "g.parquet")
    assert _rel(P, ref.predict_proba(G)) < 1e-9
    np.testing.assert_allclose(P[ALL_MISSING], np.tile(ref.weights_, (len(ALL_MISSING), 1)),
                               rtol=1e-9)
    assert abs(gm.score(d / "g.csv") - ref.score(G)) < 1e-9 * abs(ref.score(G))
    # BIC counts the rows with an observed value, as in memory.
    assert gm.bic(d / "g.csv") == pytest.approx(ref.bic(G), rel=1e-9)
    n_obs = int((~np.isnan(G).all(axis=1)).sum())
    assert ref.bic(G) == pytest.approx(
        -2 * ref.score(G) * len(G) + ref._n_parameters() * np.log(n_obs), rel=1e-12)


def test_gaussian_mixture_missing_differs_from_filled(data):
    """The stream really fits the incomplete data (not, say, mean-filled values)."""
    G, _, d = data
    kw = dict(n_components=3, max_iter=10, tol=0.0, random_state=3)
    gm, _ = _fit(emix.GaussianMixture(**kw), source(d / "g.npy", block_rows=BLOCK))
    filled = np.where(np.isnan(G), np.nanmean(G, axis=0), G)[~np.isnan(G).all(axis=1)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", emix.ConvergenceWarning)
        other = emix.GaussianMixture(**kw).fit(filled)
    assert _rel(gm.covariances_, other.covariances_) > 1e-3


def test_poisson_mixture_on_files_equals_memory(data):
    _, P, d = data
    kw = dict(n_components=3, family="poisson", max_iter=8, tol=0.0, random_state=2)
    ref, warned = _fit(emix.MixtureModel(**kw), P)
    assert len(warned) == 1
    for kind, src in _sources(d, "p"):
        mm, warned = _fit(emix.MixtureModel(**kw), src)
        assert len(warned) == 1 and _n_all(P) in str(warned[0].message)
        assert _rel(mm.weights_, ref.weights_) < 1e-9, kind
        assert _rel(mm.params_["rates"], ref.params_["rates"]) < 1e-9, kind
        assert _rel(mm.lower_bounds_, ref.lower_bounds_) < 1e-9, kind
    assert _rel(mm.predict_proba(d / "p.parquet"), ref.predict_proba(P)) < 1e-9


def test_dask_arrays_equal_memory(data):
    da = pytest.importorskip("dask.array")
    G, P, _ = data
    kw = dict(n_components=3, max_iter=5, tol=0.0, random_state=3)
    ref, _ = _fit(emix.GaussianMixture(**kw), G)
    gm, warned = _fit(emix.GaussianMixture(**kw), da.from_array(G, chunks=(BLOCK, 3)))
    assert len(warned) == 1 and _n_all(G) in str(warned[0].message)
    assert _rel(gm.means_, ref.means_) < 1e-9
    assert _rel(gm.covariances_, ref.covariances_) < 1e-9
    proba = gm.predict_proba(da.from_array(G, chunks=(BLOCK, 3))).compute()
    assert _rel(proba, ref.predict_proba(G)) < 1e-9
    kw = dict(n_components=3, family="poisson", max_iter=5, tol=0.0, random_state=2)
    ref, _ = _fit(emix.MixtureModel(**kw), P)
    mm, warned = _fit(emix.MixtureModel(**kw), da.from_array(P, chunks=(BLOCK, 3)))
    assert len(warned) == 1
    assert _rel(mm.params_["rates"], ref.params_["rates"]) < 1e-9


def test_hmm_on_a_file_and_dask_equals_memory(data):
    da = pytest.importorskip("dask.array")
    G, _, d = data
    lengths = np.array([300, 250, 350])  # all-missing rows stay: they are time steps
    kw = dict(n_states=3, max_iter=4, tol=0.0, random_state=0, covariance_type="diag")
    ref, warned = _fit(emix.HMM(**kw), G, lengths)
    assert not warned
    for X in (source(d / "g.npy", block_rows=BLOCK), da.from_array(G, chunks=(BLOCK, 3))):
        hmm, warned = _fit(emix.HMM(**kw), X, lengths)
        assert not warned
        assert _rel(hmm.transmat_, ref.transmat_) < 1e-9
        assert _rel(hmm.params_["means"], ref.params_["means"]) < 1e-9
        assert _rel(hmm.lower_bounds_, ref.lower_bounds_) < 1e-9
    assert _rel(hmm.predict_proba(d / "g.npy", lengths), ref.predict_proba(G, lengths)) < 1e-9


def test_inf_is_an_error_naming_file_column_and_row(tmp_path):
    p = tmp_path / "x.csv"
    rows = [f"{i},{i % 7},{(3 * i) % 5}" for i in range(40)]
    rows[17] = "17,,2"
    rows[31] = "31,4,-inf"
    p.write_text("a,b,c\n" + "\n".join(rows) + "\n")
    for engine in ("pandas", "numpy"):
        with pytest.raises(InputError) as err:
            emix.GaussianMixture(2).fit(source(p, block_rows=8, engine=engine))
        msg = str(err.value)
        assert "\n" not in msg
        assert "x.csv" in msg and "column 'c' row 31 holds -inf" in msg, msg
    X = np.random.default_rng(0).normal(size=(30, 2))
    X[3, 0] = np.nan
    X[12, 1] = np.inf
    np.save(tmp_path / "x.npy", X)
    with pytest.raises(InputError, match=r"x\.npy: column 1 row 12 holds inf; inf is not a missing"):
        emix.MixtureModel(n_components=2, family="gaussian").fit(tmp_path / "x.npy")


def test_missing_error_keeps_the_old_errors(tmp_path):
    p = tmp_path / "x.csv"
    rows = [f"{i},{i % 7}" for i in range(20)]
    rows[9] = "9,"
    p.write_text("a,b\n" + "\n".join(rows) + "\n")
    with pytest.raises(InputError, match=r"x\.csv: column 'b' row 9 holds nan \(a missing or empty"):
        emix.GaussianMixture(2, missing="error").fit(p)
    with pytest.raises(NonNumericError, match=r"column 'b' is not numeric: row 9 .*empty cell"):
        emix.GaussianMixture(2, missing="error").fit(source(p, engine="numpy"))
    q = str(tmp_path / "x.parquet")
    pq.write_table(pa.table({"x": [1.0, 2.0, None, 4.0, 5.0], "y": [1.0, 3.0, 2.0, 5.0, 4.0]}), q)
    with pytest.raises(InputError, match=r"x\.parquet: column 'x' row 2 is missing \(null\)"):
        emix.MixtureModel(n_components=2, family="poisson", missing="error").fit(q)
    # Sources read directly stay strict unless asked.
    with pytest.raises(InputError, match="row 2 is missing"):
        list(source(q).blocks())
    np.testing.assert_array_equal(np.isnan(np.vstack(list(source(q).blocks(allow_nan=True)))),
                                  [[0, 0], [0, 0], [1, 0], [0, 0], [0, 0]])


def test_a_column_or_data_with_nothing_observed_is_refused(tmp_path):
    X = np.random.default_rng(0).normal(size=(30, 2))
    X[:, 1] = np.nan
    np.save(tmp_path / "x.npy", X)
    with pytest.raises(InputError, match=r"column 1 has no observed value"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MissingDataWarning)
            emix.GaussianMixture(2).fit(source(tmp_path / "x.npy", block_rows=7))
    np.save(tmp_path / "y.npy", np.full((10, 2), np.nan))
    with pytest.raises(InputError, match=r"every value of .*y\.npy is missing"):
        emix.GaussianMixture(1).fit(tmp_path / "y.npy")


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    block=st.integers(1, 40),
    frac=st.floats(0.0, 0.6),
    weighted=st.booleans(),
)
def test_block_summary_equals_observed_moments(seed, block, frac, weighted):
    """Merged block summaries equal each column's moments over its observed values
    (np.nanmean / np.nanvar, weighted: by direct sums), however the rows are cut."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(60, 3)) * [1.0, 10.0, 0.1] + [0.0, 5.0, -3.0]
    X[rng.random(X.shape) < frac] = np.nan
    X[:, 0][np.isnan(X[:, 0]).all()] = 1.0  # keep a value in column 0
    w = rng.random(60) if weighted else None
    s = _Summary(3)
    for a in range(0, 60, block):
        s.add(X[a : a + block], None if w is None else w[a : a + block])
    out = s.result()
    O = ~np.isnan(X)
    ww = np.ones(60) if w is None else w
    for j in range(3):
        if not O[:, j].any():
            continue
        x, v = X[O[:, j], j], ww[O[:, j]]
        mean = np.sum(v * x) / np.sum(v)
        np.testing.assert_allclose(out["mean"][j], mean, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(out["var"][j], np.sum(v * (x - mean) ** 2) / np.sum(v),
                                   rtol=1e-10, atol=1e-14)
        assert out["min"][j] == x.min() and out["max"][j] == x.max()
    assert s.n_nan == int((~O).sum())
    np.testing.assert_array_equal(s.missing_rows(), np.flatnonzero(~O.any(axis=1)))


def test_complete_files_fit_identically_with_missing_em_and_error(data, tmp_path):
    """No NaN: missing='em' (the default) reads and fits a file exactly as 'error' does."""
    G, P, _ = data
    keep = ~np.isnan(G).any(axis=1) & ~np.isnan(P).any(axis=1)
    np.save(tmp_path / "g.npy", G[keep])
    np.save(tmp_path / "p.npy", P[keep])
    for est, path in (
        (lambda m: emix.GaussianMixture(3, max_iter=4, tol=0.0, random_state=0, missing=m), "g"),
        (lambda m: emix.MixtureModel(n_components=3, family="poisson", max_iter=4, tol=0.0,
                                     random_state=0, missing=m), "p"),
    ):
        a, _ = _fit(est("em"), source(tmp_path / f"{path}.npy", block_rows=BLOCK))
        b, _ = _fit(est("error"), source(tmp_path / f"{path}.npy", block_rows=BLOCK))
        np.testing.assert_array_equal(a.lower_bounds_, b.lower_bounds_)
        np.testing.assert_array_equal(a.weights_, b.weights_)


def test_bic_on_a_wider_file_counts_rows_observed_in_the_fitted_columns(rng, tmp_path):
    # Rows 0-9 miss both fitted columns but not the extra one: they are no observation.
    A = rng.normal(size=(120, 3))
    A[:10, :2] = np.nan
    path = tmp_path / "wide.csv"
    np.savetxt(path, A, delimiter=",", header="a,b,c", comments="")
    kw = dict(n_components=2, max_iter=200, random_state=0)
    with pytest.warns(MissingDataWarning, match="10 rows"):
        gm = emix.GaussianMixture(**kw).fit(source(path, columns=["a", "b"]))
    with pytest.warns(MissingDataWarning, match="10 rows"):
        ref = emix.GaussianMixture(**kw).fit(A[:, :2])
    assert gm.bic(path) == pytest.approx(ref.bic(A[:, :2]), rel=1e-9)
    assert ref.bic(A[:, :2]) == pytest.approx(
        -2 * ref.score(A[:, :2]) * 120 + ref._n_parameters() * np.log(110), rel=1e-12)
