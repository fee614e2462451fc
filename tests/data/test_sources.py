"""emix.data sources: every kind yields the data's rows in blocks, checked, once per call;
every bad input is an InputError naming the file, the column and the row."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from emix.data import CsvSource, IterableSource, source
from emix.data._stream import _Summary
from emix.exceptions import InputError, NonNumericError

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
pd = pytest.importorskip("pandas")

NAMES = ["a", "b", "c"]


@pytest.fixture
def X(rng):
    return rng.normal(size=(1001, 3)) * [1.0, 10.0, 0.1] + [0.0, 5.0, -3.0]


def write_csv(path, X, names=NAMES):
    pd.DataFrame(X, columns=names).to_csv(path, index=False, float_format="%.17g")
    return str(path)


def write_parquet(path, X, names=NAMES, row_group_size=128):
    pq.write_table(pa.table({n: X[:, j] for j, n in enumerate(names)}), path,
                   row_group_size=row_group_size)
    return str(path)


def all_rows(src):
    blocks = list(src.blocks())
    return np.vstack(blocks), [b.shape[0] for b in blocks]


@pytest.mark.parametrize("kind", ["npy", "csv-pandas", "csv-numpy", "parquet", "array",
                                  "list", "callable"])
def test_blocks_give_the_rows_in_order_every_pass(tmp_path, X, kind):
    if kind == "npy":
        np.save(tmp_path / "x.npy", X)
        src = source(tmp_path / "x.npy", block_rows=97)
    elif kind.startswith("csv"):
        src = source(write_csv(tmp_path / "x.csv", X), block_rows=97, engine=kind[4:])
    elif kind == "parquet":
        src = source(write_parquet(tmp_path / "x.parquet", X), block_rows=97)
    elif kind == "array":
        src = source(X, block_rows=97)
    elif kind == "list":
        src = source([X[:300], X[300:301], X[301:]])
    else:
        src = source(lambda: (X[i : i + 200] for i in range(0, len(X), 200)))
    for _ in range(2):  # a fresh iterator each call
        got, sizes = all_rows(src)
        np.testing.assert_array_equal(got, X)
    assert src.n_rows == len(X) and src.n_features == 3
    if kind in ("npy", "array", "parquet") or kind.startswith("csv"):
        assert max(sizes) == 97 and len(sizes) == -(-len(X) // 97)
    if kind.startswith("csv") or kind == "parquet":
        assert src.column_names == NAMES


def test_columns_by_name_and_position(tmp_path, X):
    path = write_csv(tmp_path / "x.csv", X)
    src = source(path, columns=["c", "a"], block_rows=50)
    assert src.column_names == ["c", "a"]
    np.testing.assert_array_equal(all_rows(src)[0], X[:, [2, 0]])
    src = source(write_parquet(tmp_path / "x.parquet", X), columns=["b"])
    np.testing.assert_array_equal(all_rows(src)[0], X[:, [1]])
    np.save(tmp_path / "x.npy", X)
    np.testing.assert_array_equal(all_rows(source(tmp_path / "x.npy", columns=[2, 1]))[0], X[:, [2, 1]])
    df = pd.DataFrame(X, columns=NAMES).assign(text="t")
    np.testing.assert_array_equal(all_rows(source(df, columns=["b", "a"]))[0], X[:, [1, 0]])
    with pytest.raises(InputError, match=r"x\.csv has no column 'z' \(columns: 'a', 'b', 'c'\)"):
        source(path, columns=["a", "z"])
    with pytest.raises(InputError, match="has no column names"):
        source(tmp_path / "x.npy", columns=["a"])
    with pytest.raises(InputError, match="repeats"):
        source(path, columns=["a", "a"])


def test_float32_is_kept_where_the_data_are_float32(tmp_path, X):
    X32 = X.astype(np.float32)
    np.save(tmp_path / "x.npy", X32)
    assert source(tmp_path / "x.npy").dtype == np.float32
    p = write_parquet(tmp_path / "x.parquet", X32)
    src = source(p)
    assert src.dtype == np.float32
    np.testing.assert_array_equal(all_rows(src)[0], X32)
    np.save(tmp_path / "i.npy", np.arange(12).reshape(6, 2))
    assert source(tmp_path / "i.npy").dtype == np.float64


def test_generator_is_read_once_and_says_so():
    X = np.arange(20.0).reshape(10, 2)
    src = source(iter([X[:4], X[4:]]))
    np.testing.assert_array_equal(all_rows(src)[0], X)
    with pytest.raises(InputError, match="one-shot iterator.*callable"):
        list(src.blocks())


def test_iterable_errors():
    X = np.arange(20.0).reshape(10, 2)
    with pytest.raises(InputError, match="block starting at row 4 has shape \\(6, 3\\)"):
        list(source([X[:4], np.ones((6, 3))]).blocks())
    with pytest.raises(InputError, match="yielded no blocks"):
        IterableSource(lambda: iter([]))
    with pytest.raises(NonNumericError, match="block 1 has dtype <U1"):
        list(source(lambda: iter([X[:4], np.array([["a", "b"]])])).blocks())
    state = {"n": 10}
    src = source(lambda: iter([X[: state["n"]]]))
    list(src.blocks())
    state["n"] = 9
    with pytest.raises(InputError, match="changed between passes: this pass read 9 rows, the first 10"):
        list(src.blocks())
    with pytest.raises(InputError, match=r"X: column 1 row 7 holds nan"):
        bad = X.copy()
        bad[7, 1] = np.nan
        list(source([bad[:5], bad[5:]]).blocks())


def test_missing_unreadable_and_unknown_files(tmp_path):
    with pytest.raises(InputError, match=r"nope\.csv: no such file"):
        source(tmp_path / "nope.csv")
    with pytest.raises(InputError, match="is a directory"):
        source(tmp_path)
    (tmp_path / "x.xlsx").write_text("a")
    with pytest.raises(InputError, match=r"x\.xlsx: unknown kind of data file"):
        source(tmp_path / "x.xlsx")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(InputError, match=r"bad\.parquet is not a readable Parquet file"):
        source(tmp_path / "bad.parquet")
    (tmp_path / "bad.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(InputError, match=r"bad\.npy is not a readable \.npy file"):
        source(tmp_path / "bad.npy")
    (tmp_path / "bin.csv").write_bytes(b"a,b\n1,\xff\xfe\n")
    with pytest.raises(InputError, match=r"bin\.csv is not a UTF-8 text"):
        list(source(tmp_path / "bin.csv").blocks())
    (tmp_path / "empty.csv").write_text("\n\n")
    with pytest.raises(InputError, match=r"empty\.csv is empty"):
        source(tmp_path / "empty.csv")
    if os.geteuid() != 0:
        p = tmp_path / "locked.csv"
        p.write_text("a\n1\n")
        p.chmod(0)
        with pytest.raises(InputError, match="permission denied"):
            source(p)


@pytest.mark.parametrize("engine", ["pandas", "numpy"])
def test_csv_cells_and_rows_named(tmp_path, engine):
    p = tmp_path / "t.csv"
    rows = [f"{i},{2 * i},{3 * i}" for i in range(50)]
    bad = rows.copy()
    bad[37] = "37,hello,111"
    p.write_text("a,b,c\n" + "\n".join(bad) + "\n")
    with pytest.raises(NonNumericError, match=r"t\.csv: column 'b' is not numeric: row 37 .*'hello'"):
        list(CsvSource(p, block_rows=8, engine=engine).blocks())
    # The bad column left out is never parsed as a number.
    got = np.vstack(list(CsvSource(p, columns=["a", "c"], block_rows=8, engine=engine).blocks()))
    assert got.shape == (50, 2)
    bad = rows.copy()
    bad[20] = "20,40,60,80"
    p.write_text("a,b,c\n" + "\n".join(bad) + "\n")
    with pytest.raises(InputError, match=r"t\.csv, line 22: 4 fields, but the header has 3"):
        list(CsvSource(p, block_rows=8, engine=engine).blocks())
    bad = rows.copy()
    bad[44] = "44,,132"
    p.write_text("a,b,c\n" + "\n".join(bad) + "\n")
    with pytest.raises(InputError, match=r"t\.csv: column 'b' .*row 44"):
        list(CsvSource(p, block_rows=8, engine=engine).blocks())
    p.write_text("a,b,a\n1,2,3\n")
    with pytest.raises(InputError, match="names column 'a' twice"):
        CsvSource(p, engine=engine)


def test_csv_delimiters_and_blank_lines(tmp_path):
    p = tmp_path / "t.tsv"
    p.write_text("a\tb\n1\t2\n\n3\t4\n")
    for engine in ("pandas", "numpy"):
        got = np.vstack(list(CsvSource(p, engine=engine).blocks()))
        np.testing.assert_array_equal(got, [[1, 2], [3, 4]])


def test_parquet_non_numeric_and_null_named(tmp_path):
    p = str(tmp_path / "t.parquet")
    pq.write_table(pa.table({"x": [1.0, 2.0, 3.0], "name": ["a", "b", "c"]}), p)
    with pytest.raises(NonNumericError, match=r"t\.parquet: column 'name' is not numeric"):
        source(p)
    np.testing.assert_array_equal(all_rows(source(p, columns=["x"]))[0], [[1], [2], [3]])
    pq.write_table(pa.table({"x": [1.0, 2.0, None, 4.0]}), p, row_group_size=2)
    with pytest.raises(InputError, match=r"t\.parquet: column 'x' row 2 is missing \(null\)"):
        list(source(p, block_rows=2).blocks())
    pq.write_table(pa.table({"x": [1.0, 2.0, float("inf"), 4.0]}), p)
    with pytest.raises(InputError, match=r"t\.parquet: column 'x' row 2 holds inf"):
        list(source(p, block_rows=2).blocks())


def test_npy_non_numeric_and_shape(tmp_path):
    np.save(tmp_path / "s.npy", np.array(["a", "b"]))
    with pytest.raises(NonNumericError, match=r"s\.npy has dtype <U1"):
        source(tmp_path / "s.npy")
    np.save(tmp_path / "c.npy", np.zeros((2, 2, 2)))
    with pytest.raises(InputError, match=r"shape \(2, 2, 2\)"):
        source(tmp_path / "c.npy")
    x = np.arange(6.0)
    x[4] = np.nan
    np.save(tmp_path / "n.npy", x)
    with pytest.raises(InputError, match=r"n\.npy: column 0 row 4 holds nan"):
        list(source(tmp_path / "n.npy", block_rows=3).blocks())


@pytest.mark.parametrize("kind", ["npy", "csv", "parquet"])
def test_a_file_changed_between_passes_is_refused(tmp_path, X, kind):
    if kind == "npy":
        path = tmp_path / "x.npy"
        np.save(path, X)
        rewrite = lambda: np.save(path, X[:-1])  # noqa: E731
    elif kind == "csv":
        path = write_csv(tmp_path / "x.csv", X)
        rewrite = lambda: write_csv(path, X * 2)  # noqa: E731
    else:
        path = write_parquet(tmp_path / "x.parquet", X)
        rewrite = lambda: write_parquet(path, X[:-5])  # noqa: E731
    src = source(path, block_rows=100)
    all_rows(src)
    time.sleep(0.01)
    rewrite()
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    with pytest.raises(InputError, match="changed while emix was reading it"):
        all_rows(src)
    # Changed in the middle of a pass: noticed at its end.
    src = source(path, block_rows=100)
    it = src.blocks()
    next(it)
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 2 * 10**9))
    with pytest.raises(InputError, match="changed while emix was reading it"):
        list(it)


def test_chan_summary_equals_the_whole_data(rng):
    X = rng.normal(size=(500, 4)) * 1e3 + 1e6
    w = rng.random(500) * (rng.random(500) > 0.2)
    s = _Summary(4)
    for a, b in [(0, 7), (7, 7), (7, 300), (300, 301), (301, 500)]:
        s.add(X[a:b], w[a:b]) if b > a else None
    out = s.result()
    mean = w @ X / w.sum()
    var = w @ (X - mean) ** 2 / w.sum()
    np.testing.assert_allclose(out["mean"], mean, rtol=1e-14)
    np.testing.assert_allclose(out["var"], var, rtol=1e-10)
    np.testing.assert_array_equal(out["min"], X.min(axis=0))
    assert out["n"] == 500


def test_source_dispatch():
    X = np.arange(12.0).reshape(6, 2)
    assert type(source(X)).__name__ == "ArraySource"
    assert type(source([[1.0, 2.0], [3.0, 4.0]])).__name__ == "ArraySource"
    assert type(source([X[:2], X[2:]])).__name__ == "IterableSource"
    assert source(source(X)) is not None
    with pytest.raises(InputError, match="already has"):
        source(source(X), block_rows=3)
    with pytest.raises(InputError, match="block_rows must be a positive integer"):
        source(X, block_rows=0)
    with pytest.raises(InputError, match="CSV files only"):
        source(X, engine="numpy")
