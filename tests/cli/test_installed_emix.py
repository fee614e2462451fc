"""Acceptance: the installed ``emix`` script, run as a subprocess on real files.

Each process pays for Python and ``import emix`` (about a second), so the processes of
one test run side by side; the many smaller checks of the same ``main`` run in-process
in the other files of this folder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

VERBS = ("fit", "predict", "score", "sample", "select", "regimes", "explain", "demo")


def _emix() -> str:
    script = Path(sys.executable).with_name("emix")
    if script.exists():
        return str(script)
    found = shutil.which("emix")
    if found is None:
        pytest.skip("the emix console script is not installed (pip install -e .)")
    return found


def _run_all(commands, cwd, env=None):
    """Run argument lists concurrently; results in the same order.

    A list that starts with ``-m`` runs ``python -m emix ...`` instead of the script.
    """
    env = {**os.environ, "PYTHONWARNINGS": "error", **(env or {})}
    env.pop("EMIX_PROGRESS", None)
    procs = [subprocess.Popen([sys.executable, *c] if c[0] == "-m" else [_emix(), *c],
                              cwd=cwd, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for c in commands]
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=180)
        out.append((p.returncode, stdout, stderr))
    return out


def _chain(commands, cwd):
    """Run argument lists one after another (each needs the last one's file)."""
    results = []
    for c in commands:
        (res,) = _run_all([c], cwd)
        results.append(res)
        if res[0] != 0:
            break
    return results


def _write_data(tmp_path, rng):
    X = np.vstack([rng.normal([0.0, 0.0], 1.0, (120, 2)), rng.normal([6.0, 3.0], 0.7, (80, 2))])
    counts = rng.poisson(4.0, 200)
    with open(tmp_path / "data.csv", "w") as fh:
        fh.write("day,x,y,visits\n")
        for i, ((a, b), c) in enumerate(zip(X, counts)):
            fh.write(f"2024-01-{i:03d},{float(a)!r},{float(b)!r},{c}\n")
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"day": [f"d{i}" for i in range(200)], "x": X[:, 0],
                             "y": X[:, 1], "visits": counts}), tmp_path / "data.parquet")
    return X


def test_every_verb_has_help_and_python_dash_m_is_the_same_command(tmp_path):
    results = _run_all([[v, "--help"] for v in VERBS] + [["-m", "emix", "explain", "dice"]],
                       tmp_path)
    for verb, (code, out, err) in zip(VERBS, results):
        assert code == 0, (verb, err)
        assert out.startswith(f"usage: emix {verb}"), verb
        assert err == ""
    code, out, err = results[-1]
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and "invalid choice: 'dice'" in err
    assert "--family" in results[0][1] and "--proba" in results[1][1]
    assert "-n N" in results[3][1] and "--k RANGE" in results[4][1]
    assert "--walk-forward N" in results[5][1] and "--plot FILE" in results[6][1]


def _steps(suffix):
    data = f"data.{suffix}"
    return [
        ["fit", data, "-k", "2", "--columns", "x,y", "--seed", "3", "-o", f"m-{suffix}.emix",
         "--json"],
        ["predict", f"m-{suffix}.emix", data, "-o", f"labels-{suffix}.csv", "--proba"],
        ["score", f"m-{suffix}.emix", data, "--json"],
        ["sample", f"m-{suffix}.emix", "-n", "50", "-o", f"draws-{suffix}.csv", "--seed", "1"],
    ]


def test_fit_predict_score_sample_round_trip_csv_and_parquet(tmp_path, rng):
    import emix

    X = _write_data(tmp_path, rng)
    # The two chains run side by side, step by step (each step reads the last one's file).
    steps = list(zip(_steps("csv"), _steps("parquet")))
    results = {"csv": [], "parquet": []}
    for pair in steps:
        for suffix, res in zip(("csv", "parquet"), _run_all(pair, tmp_path)):
            assert res[0] == 0, res[2]
            assert res[2] == ""  # no warnings, no progress bar (stderr is not a tty)
            results[suffix].append(res)

    ref = emix.GaussianMixture(2, random_state=3, label_order="mean").fit(X)
    from scipy.special import logsumexp
    from scipy.stats import multivariate_normal

    for suffix, (fit, pred, score, sample) in results.items():
        fitted = json.loads(fit[1])
        model = emix.load(tmp_path / f"m-{suffix}.emix")
        assert list(model.feature_names_in_) == ["x", "y"] and fitted["columns"] == ["x", "y"]
        # The model the command wrote is the library's fit of the same columns and seed.
        np.testing.assert_allclose(model.means_, ref.means_, rtol=1e-12)
        np.testing.assert_allclose(fitted["weights"], ref.weights_, rtol=1e-12)
        assert fitted["n_rows"] == 200 and fitted["converged"] is True

        labels = np.genfromtxt(tmp_path / f"labels-{suffix}.csv", delimiter=",", names=True)
        assert labels.dtype.names == ("component", "p0", "p1")
        np.testing.assert_array_equal(labels["component"], ref.predict(X))
        np.testing.assert_allclose(np.column_stack([labels["p0"], labels["p1"]]),
                                   ref.predict_proba(X), rtol=1e-12, atol=1e-300)

        # The log-likelihood against an independent one: scipy's densities of the fit.
        dens = np.column_stack([np.log(w) + multivariate_normal(m, c).logpdf(X) for w, m, c
                                in zip(model.weights_, model.means_, model.covariances_)])
        scored = json.loads(score[1])
        np.testing.assert_allclose(scored["log_likelihood"], logsumexp(dens, axis=1).sum(),
                                   rtol=1e-10)
        assert scored["n_rows"] == 200 and scored["bic"] > -2 * scored["log_likelihood"]

        draws = np.genfromtxt(tmp_path / f"draws-{suffix}.csv", delimiter=",", names=True)
        assert draws.dtype.names == ("x", "y", "component") and draws.shape == (50,)
        model.set_params(random_state=1)
        expected, comp = model.sample(50)
        # CSV holds the shortest repr of every float: the draws read back exactly.
        np.testing.assert_array_equal(np.column_stack([draws["x"], draws["y"]]), expected)
        np.testing.assert_array_equal(draws["component"], comp)
    assert len(os.listdir(tmp_path)) == 2 + 2 * 3  # no temporary file left behind


def test_bad_inputs_exit_2_with_one_line_and_no_file(tmp_path, rng):
    _write_data(tmp_path, rng)
    (tmp_path / "model.emix").write_bytes(b"PK\x03\x04 not really a zip archive")
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "a_file").write_text("x")
    # Every bad input of the acceptance list as a real process (run side by side);
    # tests/cli/test_errors.py runs many more cases through main().
    commands = [
        ["fit", "missing.csv", "-k", "2", "-o", "out1.emix"],
        ["fit", "empty.csv", "-k", "2", "-o", "out2.emix"],
        ["fit", "data.csv", "-k", "2", "-o", "out3.emix"],  # 'day' is not numeric
        ["fit", "data.csv", "--columns", "x,nope", "-k", "2", "-o", "out4.emix"],
        ["fit", "data.csv", "--columns", "x,y", "-k", "500", "-o", "out5.emix"],
        # Unwritable even for root: the parent of the output is a regular file.
        ["fit", "data.csv", "--columns", "x,y", "-k", "2", "-o", "a_file/out6.emix"],
        ["predict", "model.emix", "data.csv", "-o", "out7.csv"],
    ]
    expected = [
        "missing.csv: no such file",
        "empty.csv is empty",
        "column 'day' is not numeric: line 2 holds '2024-01-000'",
        "nope",
        "500",
        "a_file",
        "model.emix is not a valid emix model file",
    ]
    before = sorted(os.listdir(tmp_path))
    for (code, out, err), message in zip(_run_all(commands, tmp_path), expected):
        assert code == 2, err
        assert out == ""
        lines = err.splitlines()
        assert len(lines) == 1, err
        assert lines[0].startswith("emix ") and message in lines[0], err
        assert "Traceback" not in err
    assert sorted(os.listdir(tmp_path)) == before
