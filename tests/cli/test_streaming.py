"""``emix fit/predict/score --block-rows N``: the file is read in blocks (an emix.data
source) and the answer equals the in-memory command's; ``--minibatch`` runs stepwise EM;
bad files give the same one-line errors with status 2 and no output."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import emix
from emix import cli

CENTERS = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])


def _main(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def files(tmp_path, rng):
    z = rng.integers(0, 3, 1_500)
    X = CENTERS[z] + rng.standard_normal((1_500, 2))
    counts = rng.poisson(np.array([2.0, 15.0, 40.0])[z])
    lines = ["when,a,b,n"] + [
        f"t{i},{float(x)!r},{float(y)!r},{int(c)}" for i, ((x, y), c) in enumerate(zip(X, counts))
    ]
    (tmp_path / "data.csv").write_text("\n".join(lines) + "\n")
    pytest.importorskip("pyarrow")
    import pandas as pd

    pd.DataFrame({"when": [f"t{i}" for i in range(len(X))], "a": X[:, 0], "b": X[:, 1],
                  "n": counts}).to_parquet(tmp_path / "data.parquet")
    return tmp_path, X, counts


def _close(a, b):
    np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_block_rows_fit_equals_in_memory_fit(files, capsys, suffix):
    d, X, _ = files
    data = d / f"data.{suffix}"
    code, out_mem, _ = _main(capsys, "fit", data, "-k", 3, "--columns", "b,a", "--seed", 3,
                             "-o", d / "mem.emix", "--json")
    assert code == 0
    code, out_str, _ = _main(capsys, "fit", data, "-k", 3, "--columns", "b,a", "--seed", 3,
                             "-o", d / "str.emix", "--block-rows", 128, "--json")
    assert code == 0
    mem, st = emix.load(d / "mem.emix"), emix.load(d / "str.emix")
    for attr in ("weights_", "means_", "covariances_"):
        _close(getattr(st, attr), getattr(mem, attr))
    assert st.n_iter_ == mem.n_iter_
    assert list(st.feature_names_in_) == ["b", "a"]
    jm, js = json.loads(out_mem), json.loads(out_str)
    assert js["n_rows"] == jm["n_rows"] == len(X)
    for key in ("mean_log_likelihood", "bic", "aic"):
        assert js[key] == pytest.approx(jm[key], rel=1e-9)
    # and against the library directly on the same columns
    ref = emix.GaussianMixture(3, random_state=3, label_order="mean").fit(X[:, ::-1])
    _close(st.means_, ref.means_)


def test_block_rows_fit_of_a_poisson_mixture(files, capsys):
    d, _, counts = files
    argv = ["fit", d / "data.csv", "-k", 3, "--family", "poisson", "--columns", "n", "--seed", 1]
    assert _main(capsys, *argv, "-o", d / "mem.emix")[0] == 0
    assert _main(capsys, *argv, "-o", d / "str.emix", "--block-rows", 200, "-q")[0] == 0
    mem, st = emix.load(d / "mem.emix"), emix.load(d / "str.emix")
    _close(st.weights_, mem.weights_)
    _close(st.rates_, mem.rates_)


def test_block_rows_predict_and_score_equal_in_memory(files, capsys):
    d, _, _ = files
    assert _main(capsys, "fit", d / "data.csv", "-k", 3, "--columns", "a,b", "--seed", 0,
                 "-o", d / "m.emix", "-q")[0] == 0
    for suffix in ("csv", "parquet"):
        data = d / f"data.{suffix}"
        assert _main(capsys, "predict", d / "m.emix", data, "-o", d / "p1.csv", "--proba")[0] == 0
        assert _main(capsys, "predict", d / "m.emix", data, "-o", d / "p2.csv", "--proba",
                     "--block-rows", 100)[0] == 0
        p1 = np.loadtxt(d / "p1.csv", delimiter=",", skiprows=1)
        p2 = np.loadtxt(d / "p2.csv", delimiter=",", skiprows=1)
        np.testing.assert_array_equal(p1[:, 0], p2[:, 0])
        _close(p2, p1)
        code, out1, _ = _main(capsys, "score", d / "m.emix", data, "--json")
        code2, out2, _ = _main(capsys, "score", d / "m.emix", data, "--json", "--block-rows", 64)
        assert code == code2 == 0
        s1, s2 = json.loads(out1), json.loads(out2)
        assert s2["n_rows"] == s1["n_rows"]
        for key in ("mean_log_likelihood", "log_likelihood", "bic", "aic"):
            assert s2[key] == pytest.approx(s1[key], rel=1e-9)


def test_minibatch_fit_is_close_to_full_batch(files, capsys):
    d, X, _ = files
    assert _main(capsys, "fit", d / "data.parquet", "-k", 3, "--columns", "a,b", "--seed", 0,
                 "-o", d / "full.emix", "-q")[0] == 0
    code, out, _ = _main(capsys, "fit", d / "data.parquet", "-k", 3, "--columns", "a,b",
                         "--seed", 0, "-o", d / "mb.emix", "--block-rows", 250,
                         "--minibatch", "--epochs", 2)
    assert code == 0
    assert "mini-batch EM: 12 batches" in out
    full, mb = emix.load(d / "full.emix"), emix.load(d / "mb.emix")
    src = emix.data.source(str(d / "data.parquet"), columns=["a", "b"])
    assert abs(mb.score(src) - full.score(src)) <= 0.01 * abs(full.score(src))


ERRORS = [
    # (file contents or None for the fixture's, argv tail, fragments of the message)
    ("a,b\n1,2\n3,x\n", ["-k", "1"], ["text.csv: column 'b' is not numeric", "'x'",
                                     "--columns"]),
    ("a,b\n1,2\n3,nan\n", ["-k", "1"], ["text.csv: column 'b'", "nan", "finite"]),
    ("a,b\n", ["-k", "1"], ["text.csv has a header but no rows"]),
    ("", ["-k", "1"], ["text.csv is empty"]),
    ("a,a\n1,2\n", ["-k", "1"], ["text.csv", "column 'a' twice"]),
    (None, ["-k", "2"], ["data.csv: column 'when' is not numeric", "--columns"]),
    (None, ["-k", "2", "--columns", "a,zz"], ["data.csv", "no column 'zz'"]),
    (None, ["-k", "2", "--columns", "a", "--family", "poisson"],
     ["Poisson data must be non-negative integer counts", "column 'a'"]),
    (None, ["-k", "2", "--columns", "a,b", "--model", "hmm"], ["stream mixtures only"]),
    (None, ["-k", "5000", "--columns", "a,b"], ["-k 5000 is more than the 1500 rows"]),
]


@pytest.mark.parametrize(("text", "tail", "fragments"), ERRORS)
def test_streaming_errors_are_one_line_status_2_and_no_output(files, capsys, text, tail, fragments):
    d, _, _ = files
    data = d / "data.csv"
    if text is not None:
        data = d / "text.csv"
        data.write_text(text)
    before = sorted(os.listdir(d))
    code, out, err = _main(capsys, "fit", data, *tail, "-o", d / "o.emix", "--block-rows", 1)
    assert code == 2 and out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("emix fit: error: ")
    assert lines[0].count(str(data)) <= 1
    for fragment in fragments:
        assert fragment in lines[0]
    assert sorted(os.listdir(d)) == before


def test_streaming_predict_errors(files, capsys):
    d, _, _ = files
    assert _main(capsys, "fit", d / "data.csv", "-k", 2, "--columns", "a,b", "--seed", 0,
                 "-o", d / "m.emix", "-q")[0] == 0
    (d / "text.csv").write_text("a,b\n1,2\n3,x\n")
    before = sorted(os.listdir(d))
    for argv, fragment in [
        (["predict", d / "m.emix", d / "text.csv", "-o", d / "o.csv"], "column 'b' is not numeric"),
        (["predict", d / "m.emix", d / "data.csv", "--columns", "a", "-o", d / "o.csv"],
         "the model reads 2 columns, but"),
        (["score", d / "m.emix", d / "missing.csv"], "missing.csv: no such file"),
        (["predict", d / "m.emix", d / "data.csv", "-o", d / "o.csv", "--block-rows", 0],
         "--block-rows"),
    ]:
        if "--block-rows" not in argv:
            argv = argv + ["--block-rows", 3]
        code, out, err = _main(capsys, *argv)
        assert code == 2 and out == "" and len(err.splitlines()) == 1, err
        assert fragment in err
    assert sorted(os.listdir(d)) == before
