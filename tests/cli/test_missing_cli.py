"""``emix fit/predict/score --missing em``: empty CSV cells and Parquet nulls are
missing values; the fit equals the library's on the same data with NaN, in memory and
with ``--block-rows``; without the option they stay errors; inf is always one."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import emix
from emix import cli
from emix._missing import MissingDataWarning


def _main(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def holes(tmp_path):
    rng = np.random.default_rng(5)
    z = rng.integers(0, 2, 300)
    X = np.array([[0.0, 0.0], [5.0, 3.0]])[z] + rng.standard_normal((300, 2))
    X[rng.random(X.shape) < 0.12] = np.nan
    X[[7, 150]] = np.nan  # lines of empty cells: rows with every value missing
    cell = lambda v: "" if np.isnan(v) else repr(float(v))  # noqa: E731
    lines = ["a,b"] + [f"{cell(x)},{cell(y)}" for x, y in X]
    (tmp_path / "h.csv").write_text("\n".join(lines) + "\n")
    return tmp_path, X


def test_fit_predict_score_with_missing_em_equal_the_library(holes, capsys):
    d, X = holes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingDataWarning)
        ref = emix.GaussianMixture(2, label_order="mean", random_state=1).fit(X)
    n_all = int(np.isnan(X).all(axis=1).sum())
    for extra in ([], ["--block-rows", 64]):
        out = d / f"m{len(extra)}.emix"
        code, _, err = _main(capsys, "fit", d / "h.csv", "-k", 2, "--seed", 1, "--missing", "em",
                             "-o", out, "-q", *extra)
        assert code == 0, err
        assert f"{n_all} rows have every value missing" in err
        m = emix.load(out)
        np.testing.assert_allclose(m.means_, ref.means_, rtol=1e-9)
        np.testing.assert_allclose(m.covariances_, ref.covariances_, rtol=1e-9)
    code, _, err = _main(capsys, "predict", d / "m0.emix", d / "h.csv", "-o", d / "p.csv",
                         "--missing", "em", "--proba")
    assert code == 0, err
    P = np.loadtxt(d / "p.csv", delimiter=",", skiprows=1)
    assert P.shape == (300, 3)  # one line per data row, all-missing rows included
    np.testing.assert_allclose(P[:, 1:], ref.predict_proba(X), rtol=1e-9, atol=1e-12)
    code, out, err = _main(capsys, "score", d / "m0.emix", d / "h.csv", "--missing", "em",
                           "--json", "--block-rows", 50)
    assert code == 0, err
    assert json.loads(out)["mean_log_likelihood"] == pytest.approx(ref.score(X), rel=1e-9)


def test_without_missing_em_empty_cells_stay_errors_and_inf_always(holes, capsys, tmp_path):
    d, _ = holes
    code, _, err = _main(capsys, "fit", d / "h.csv", "-k", 2, "-o", d / "x.emix")
    assert code == 2 and "holds an empty cell" in err and "\n" not in err.strip()
    p = tmp_path / "inf.csv"
    p.write_text("a,b\n1,2\n,3\n4,inf\n5,6\n")
    for extra in ([], ["--block-rows", 2]):
        code, _, err = _main(capsys, "fit", p, "-k", 1, "-o", d / "y.emix", "--missing", "em",
                             *extra)
        assert code == 2 and "column 'b'" in err and "inf" in err, err
        assert "\n" not in err.strip()


def test_parquet_nulls_with_missing_em(tmp_path, capsys):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rng = np.random.default_rng(2)
    X = rng.standard_normal((120, 2)) + [[0.0, 1.0]]
    X[rng.random(X.shape) < 0.1] = np.nan
    pq.write_table(pa.table({"a": pa.array(X[:, 0], from_pandas=True),
                             "b": pa.array(X[:, 1], from_pandas=True)}), tmp_path / "n.parquet")
    code, _, err = _main(capsys, "fit", tmp_path / "n.parquet", "-k", 1, "-o", tmp_path / "m.emix")
    assert code == 2 and "is missing (null)" in err
    code, _, err = _main(capsys, "fit", tmp_path / "n.parquet", "-k", 1, "--missing", "em",
                         "-o", tmp_path / "m.emix", "-q")
    assert code == 0, err
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingDataWarning)
        ref = emix.GaussianMixture(1).fit(X)
    np.testing.assert_allclose(emix.load(tmp_path / "m.emix").means_, ref.means_, rtol=1e-9)


def test_streamed_fit_counts_rows_with_an_observed_value(tmp_path, capsys):
    # A line of empty cells is a row with nothing observed: it is reported, and BIC's
    # log n counts only the observed rows, streamed or not.
    import json

    from emix.cli import main

    path = tmp_path / "holes.csv"
    path.write_text("a,b\n1,2\n,\n4,5\n6,7\n2,3.5\n8,6\n")
    out = {}
    for mode, extra in (("memory", []), ("stream", ["--block-rows", "2"])):
        code = main(["fit", str(path), "-k", "1", "-o", str(tmp_path / f"{mode}.emix"),
                     "--missing", "em", "--json", "--quiet", *extra])
        assert code == 0
        out[mode] = json.loads(capsys.readouterr().out)
    for s in out.values():
        assert s["n_rows"] == 6 and s["n_observed_rows"] == 5
    assert out["stream"]["bic"] == pytest.approx(out["memory"]["bic"], rel=1e-9)
    p = 5  # 2 means + 3 covariance entries
    assert out["memory"]["bic"] == pytest.approx(
        -2 * out["memory"]["log_likelihood"] + p * np.log(5), rel=1e-9)
