"""The data verbs through ``emix.cli.main`` in-process: results equal the library's
calls on the same columns, JSON output, families, HMMs, column matching by name, the
progress bar, warnings as one line, and the regimes verb."""

from __future__ import annotations

import csv
import json
import os
import re

import numpy as np
import pytest

import emix
from emix import cli
from emix.cli._table import read_table, write_csv


def _main(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _read_csv(path):
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


@pytest.fixture
def blobs(tmp_path, rng):
    X = np.vstack([rng.normal([0.0, 0.0], 1.0, (90, 2)), rng.normal([5.0, -3.0], 0.5, (60, 2))])
    counts = np.concatenate([rng.poisson(2.0, 90), rng.poisson(12.0, 60)])
    path = tmp_path / "blobs.csv"
    write_csv(str(path), ["id", "a", "b", "n"],
              [np.array([f"r{i}" for i in range(150)], dtype=object), X[:, 0], X[:, 1], counts])
    return path, X, counts


def test_csv_reader_and_writer_round_trip_floats_exactly(tmp_path, rng):
    values = np.concatenate([rng.normal(size=20) * 10.0 ** rng.integers(-300, 300, 20),
                             [0.1, 1 / 3, -0.0, 5e-324, 1.7976931348623157e308]])
    write_csv(str(tmp_path / "v.csv"), ["v", "i"], [values, np.arange(values.size)])
    X, names = read_table(str(tmp_path / "v.csv")).numeric()
    np.testing.assert_array_equal(X[:, 0], values)
    np.testing.assert_array_equal(X[:, 1], np.arange(values.size))
    # Semicolons, a byte-order mark, blank lines and padded cells are read as meant.
    (tmp_path / "s.csv").write_bytes("\ufeffx ; y\n1;2\n\n 3 ;4\n".encode())
    t = read_table(str(tmp_path / "s.csv"))
    X, names = t.numeric()
    assert names == ["x", "y"]
    np.testing.assert_array_equal(X, [[1, 2], [3, 4]])
    assert list(t.lines) == [2, 4]


def test_fit_json_equals_the_library_and_predict_matches_columns_by_name(blobs, tmp_path,
                                                                        capsys):
    path, X, _ = blobs
    code, out, err = _main(capsys, "fit", path, "-k", 2, "--columns", "b,a", "--seed", 5,
                           "--covariance", "diag", "-o", tmp_path / "m.emix", "--json")
    assert code == 0 and err == ""
    summary = json.loads(out)
    ref = emix.GaussianMixture(2, covariance_type="diag", random_state=5,
                               label_order="mean").fit(X[:, ::-1])
    np.testing.assert_allclose(summary["means"], ref.means_, rtol=1e-12)
    np.testing.assert_allclose(summary["mean_log_likelihood"], ref.score(X[:, ::-1]),
                               rtol=1e-12)
    np.testing.assert_allclose(summary["bic"], ref.bic(X[:, ::-1]), rtol=1e-12)
    assert summary["columns"] == ["b", "a"] and summary["n_iter"] == ref.n_iter_

    # A file with the columns in another order (and an extra one) is read by name.
    shuffled = tmp_path / "shuffled.parquet"
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"a": X[:, 0], "extra": np.ones(150), "b": X[:, 1]}), shuffled)
    code, out, err = _main(capsys, "predict", tmp_path / "m.emix", shuffled, "-o",
                           tmp_path / "l.csv", "--json")
    assert code == 0 and err == ""
    head, rows = _read_csv(tmp_path / "l.csv")
    assert head == ["component"]
    labels = np.array([int(r[0]) for r in rows])
    np.testing.assert_array_equal(labels, ref.predict(X[:, ::-1]))
    assert json.loads(out)["counts"] == np.bincount(labels, minlength=2).tolist()


def test_product_family_and_options(blobs, tmp_path, capsys):
    path, X, counts = blobs
    code, out, err = _main(capsys, "fit", path, "-k", 2, "--family", "gaussian=a,b",
                           "--family", "poisson=n", "--seed", 0, "-o", tmp_path / "p.emix",
                           "--json")
    assert code == 0, err
    model = emix.load(tmp_path / "p.emix")
    ref = emix.MixtureModel([("gaussian", [0, 1]), ("poisson", [2])], 2,
                            random_state=0).fit(np.column_stack([X, counts]))
    np.testing.assert_allclose(json.loads(out)["log_likelihood"], 150 * ref.score(
        np.column_stack([X, counts])), rtol=1e-10)
    assert list(model.feature_names_in_) == ["a", "b", "n"]
    code, out, err = _main(capsys, "sample", tmp_path / "p.emix", "-n", 30, "-o",
                           tmp_path / "s.csv", "--seed", 2)
    head, rows = _read_csv(tmp_path / "s.csv")
    assert code == 0 and head == ["a", "b", "n", "component"] and len(rows) == 30
    assert all(float(r[2]) == int(float(r[2])) >= 0 for r in rows)  # Poisson draws

    # A family option reaches the family: Student-t with fixed degrees of freedom.
    code, out, err = _main(capsys, "fit", path, "-k", 2, "--columns", "a,b", "--family",
                           "student_t", "--option", "df=4", "--option", "reg_covar=1e-5",
                           "--seed", 0, "-o", tmp_path / "t.emix", "-q")
    assert code == 0, err
    assert out == ""
    np.testing.assert_array_equal(emix.load(tmp_path / "t.emix").df_, [4.0, 4.0])


def test_hmm_fit_predict_score_sample(tmp_path, rng, capsys):
    # A persistent two-state chain: the HMM recovers the states.
    z = np.repeat([0, 1, 0, 1], [60, 40, 50, 50])
    x = np.where(z == 0, rng.normal(0.0, 1.0, 200), rng.normal(6.0, 1.0, 200))
    write_csv(str(tmp_path / "s.csv"), ["x"], [x])
    code, out, err = _main(capsys, "fit", tmp_path / "s.csv", "-k", 2, "--model", "hmm",
                           "--seed", 0, "-o", tmp_path / "h.emix", "--json")
    assert code == 0, err
    summary = json.loads(out)
    ref = emix.HMM(2, random_state=0, label_order="mean").fit(x[:, None])
    np.testing.assert_allclose(summary["transmat"], ref.transmat_, rtol=1e-10)
    code, _, err = _main(capsys, "predict", tmp_path / "h.emix", tmp_path / "s.csv", "-o",
                         tmp_path / "l.csv", "--proba")
    head, rows = _read_csv(tmp_path / "l.csv")
    assert code == 0 and head == ["state", "p0", "p1"]
    np.testing.assert_array_equal([int(r[0]) for r in rows], z)
    code, out, _ = _main(capsys, "score", tmp_path / "h.emix", tmp_path / "s.csv", "--json")
    np.testing.assert_allclose(json.loads(out)["mean_log_likelihood"], ref.score(x[:, None]),
                               rtol=1e-12)
    code, out, _ = _main(capsys, "sample", tmp_path / "h.emix", "-n", 25, "-o",
                         tmp_path / "d.csv", "--seed", 3)
    head, rows = _read_csv(tmp_path / "d.csv")
    assert code == 0 and head == ["x", "state"] and len(rows) == 25


def test_select_prints_the_table_and_saves_the_best(blobs, tmp_path, capsys):
    path, X, _ = blobs
    code, out, err = _main(capsys, "select", path, "--columns", "a,b", "--k", "1-3",
                           "--covariance", "full,spherical", "--seed", 0,
                           "-o", tmp_path / "best.emix")
    assert code == 0, err
    ref = emix.select(X, n_components=[1, 2, 3], covariance_types=["full", "spherical"],
                      random_state=0)
    assert str(ref) in out
    assert f"Best by BIC: gaussian, {ref.n_components} components" in out
    best = emix.load(tmp_path / "best.emix")
    np.testing.assert_allclose(best.means_, ref.best_model.means_, rtol=1e-12)
    code, out, _ = _main(capsys, "select", path, "--columns", "a,b", "--k", "1,2",
                         "--covariance", "full", "--json", "--seed", 0)
    table = json.loads(out)["table"]
    assert [r["n_components"] for r in table] == [1, 2]


def test_progress_bar_when_forced_and_silent_otherwise(blobs, tmp_path, capsys, monkeypatch):
    path, _, _ = blobs
    argv = ["fit", path, "-k", 2, "--columns", "a,b", "--seed", 0, "-o", tmp_path / "m.emix",
            "--tol", 0, "--max-iter", 5]
    monkeypatch.setenv("EMIX_PROGRESS", "always")
    code, out, err = _main(capsys, *argv)
    assert code == 0
    assert "emix fit: [" in err and "iteration 5/5" in err and "log-likelihood per row" in err
    assert re.search("\r +\r", err)  # erased before anything else is printed
    code, out, err = _main(capsys, *argv, "--quiet")
    assert code == 0 and out == "" and "emix fit: [" not in err
    monkeypatch.delenv("EMIX_PROGRESS")
    code, out, err = _main(capsys, *argv)
    assert code == 0 and "emix fit: [" not in err  # stderr is not a terminal here


def test_warnings_are_one_line_each(tmp_path, capsys):
    (tmp_path / "d.csv").write_text("v\n" + "\n".join(str(v) for v in range(30)) + "\n")
    code, out, err = _main(capsys, "fit", tmp_path / "d.csv", "-k", 2, "--max-iter", 1,
                           "--tol", 0, "--seed", 0, "-o", tmp_path / "m.emix")
    assert code == 0
    lines = err.splitlines()
    assert lines and all(ln.startswith("emix fit: warning: ") for ln in lines)
    assert any("converge" in ln for ln in lines)


@pytest.fixture
def prices(tmp_path):
    from emix.datasets.prices import load_regime_prices

    data = load_regime_prices(400, random_state=2)
    days = np.datetime_as_string(np.asarray(data.dates, dtype="datetime64[D]"))
    write_csv(str(tmp_path / "px.csv"), ["Date", "close"],
              [np.array(days, dtype=object), data.prices])
    return tmp_path / "px.csv", data, days


def test_regimes_equal_detect_regimes_and_keep_the_dates(prices, tmp_path, capsys):
    pd = pytest.importorskip("pandas")
    from emix import finance

    path, data, days = prices
    code, out, err = _main(capsys, "regimes", path, "--states", 2, "-o", tmp_path / "r.csv",
                           "--plot", tmp_path / "r.png", "--json")
    assert code == 0, err
    head, rows = _read_csv(tmp_path / "r.csv")
    assert head == ["Date", "close_return", "regime", "filtered_regime", "filtered_0",
                    "filtered_1", "smoothed_0", "smoothed_1"]
    ref = finance.detect_regimes(prices=pd.Series(data.prices, index=pd.DatetimeIndex(days)),
                                 n_regimes=2, random_state=0)
    assert [r[0] for r in rows] == list(days[1:])
    np.testing.assert_array_equal([int(r[2]) for r in rows], ref.regime)
    np.testing.assert_allclose([[float(v) for v in r[4:6]] for r in rows], ref.filtered,
                               rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose([float(r[1]) for r in rows], np.diff(np.log(data.prices)),
                               rtol=1e-12)
    summary = json.loads(out)
    np.testing.assert_allclose(summary["bic"], ref.stats.bic, rtol=1e-12)
    assert (tmp_path / "r.png").read_bytes().startswith(b"\x89PNG")


def test_regimes_walk_forward_and_returns_file(prices, tmp_path, capsys):
    path, data, days = prices
    r = np.diff(np.log(data.prices))
    write_csv(str(tmp_path / "ret.csv"), ["r"], [r])  # no dates: rows are numbered
    code, out, err = _main(capsys, "regimes", tmp_path / "ret.csv", "--returns",
                           "--walk-forward", 100, "-o", tmp_path / "w.csv")
    assert code == 0, err
    head, rows = _read_csv(tmp_path / "w.csv")
    assert head == ["r", "regime", "filtered_0", "filtered_1"]
    regime = np.array([int(x[1]) for x in rows])
    first = int(np.argmax(regime >= 0))
    assert first > 0 and np.all(regime[:first] == -1) and rows[0][2] == "nan"
    assert "refits, every 100 periods" in out


def test_demo_regimes_writes_its_figure(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = _main(capsys, "demo", "regimes")
    assert code == 0, err
    assert "Volatile days labelled volatile" in out and "Figure written to regimes.png" in out
    assert (tmp_path / "regimes.png").read_bytes().startswith(b"\x89PNG")
    assert os.listdir(tmp_path) == ["regimes.png"]
