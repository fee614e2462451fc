"""Every bad input through ``emix.cli.main``: status 2, one line naming the file, column
or option, no traceback, and no output file (nor a temporary one) left behind."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from emix import cli


@pytest.fixture
def files(tmp_path, rng):
    X = rng.normal(size=(40, 2))
    lines = ["when,a,b"] + [f"t{i},{float(x)!r},{float(y)!r}" for i, (x, y) in enumerate(X)]
    (tmp_path / "data.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "blank.csv").write_text("\n \n")
    (tmp_path / "header.csv").write_text("a,b\n")
    (tmp_path / "text.csv").write_text("a,b\n1,2\n3,x\n")
    (tmp_path / "gap.csv").write_text("a,b\n1,2\n3,\n")
    (tmp_path / "nan.csv").write_text("a,b\n1,2\n\n3,nan\n")
    (tmp_path / "ragged.csv").write_text("a,b\n1,2\n3\n")
    (tmp_path / "twice.csv").write_text("a,a\n1,2\n")
    (tmp_path / "latin1.csv").write_bytes("h\xf6he\n1\n".encode("latin-1"))
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
    (tmp_path / "junk.emix").write_bytes(b"not a model at all")
    (tmp_path / "is_a_file").write_text("x")
    assert cli.main(["fit", str(tmp_path / "data.csv"), "--columns", "a,b", "-k", "2",
                     "--seed", "0", "-o", str(tmp_path / "good.emix"), "-q"]) == 0
    good = (tmp_path / "good.emix").read_bytes()
    (tmp_path / "cut.emix").write_bytes(good[: len(good) // 2])
    return tmp_path


CASES = [
    # (argv, expected fragment of the message); {d} is the folder of the files
    (["fit", "{d}/missing.csv", "-k", "2", "-o", "{d}/o.emix"], "{d}/missing.csv: no such file"),
    (["fit", "{d}", "-k", "2", "-o", "{d}/o.emix"], "is a directory, not a data file"),
    (["fit", "{d}/empty.csv", "-k", "2", "-o", "{d}/o.emix"], "{d}/empty.csv is empty"),
    (["fit", "{d}/blank.csv", "-k", "2", "-o", "{d}/o.emix"], "{d}/blank.csv is empty"),
    (["fit", "{d}/header.csv", "-k", "1", "-o", "{d}/o.emix"], "has a header but no rows"),
    (["fit", "{d}/text.csv", "-k", "1", "-o", "{d}/o.emix"],
     "{d}/text.csv: column 'b' is not numeric: line 3 holds 'x'"),
    (["fit", "{d}/gap.csv", "-k", "1", "-o", "{d}/o.emix"],
     "column 'b' is not numeric: line 3 holds an empty cell"),
    (["fit", "{d}/nan.csv", "-k", "1", "-o", "{d}/o.emix"],
     "column 'b' line 4 holds nan; emix needs finite numbers"),
    (["fit", "{d}/ragged.csv", "-k", "1", "-o", "{d}/o.emix"],
     "{d}/ragged.csv, line 3: 1 fields, but the header has 2"),
    (["fit", "{d}/twice.csv", "-k", "1", "-o", "{d}/o.emix"], "names column 'a' twice"),
    (["fit", "{d}/latin1.csv", "-k", "1", "-o", "{d}/o.emix"], "is not a UTF-8 text"),
    (["fit", "{d}/bad.parquet", "-k", "1", "-o", "{d}/o.emix"],
     "{d}/bad.parquet is not a readable Parquet file"),
    (["fit", "{d}/data.csv", "-k", "2", "-o", "{d}/o.emix"],
     "column 'when' is not numeric: line 2 holds 't0'; choose the numeric columns with --columns"),
    (["fit", "{d}/data.csv", "--columns", "a,zz", "-k", "2", "-o", "{d}/o.emix"],
     "{d}/data.csv has no column 'zz' (columns: 'when', 'a', 'b')"),
    (["fit", "{d}/data.csv", "--columns", "a,a", "-k", "2", "-o", "{d}/o.emix"],
     "names a column twice"),
    (["fit", "{d}/data.csv", "--columns", "a", "-k", "41", "-o", "{d}/o.emix"],
     "-k 41 is more than the 40 rows of {d}/data.csv"),
    (["fit", "{d}/data.csv", "--columns", "a", "-k", "0", "-o", "{d}/o.emix"],
     "argument -k/--components: must be at least 1, got 0"),
    (["fit", "{d}/data.csv", "--columns", "a", "-k", "2", "-o", "{d}/nowhere/o.emix"],
     "-o {d}/nowhere/o.emix: no directory"),
    (["fit", "{d}/data.csv", "--columns", "a", "-k", "2", "-o", "{d}/is_a_file/o.emix"],
     "no directory"),
    (["fit", "{d}/data.csv", "--columns", "a", "-k", "2", "-o", "{d}"], "is a directory"),
    (["fit", "{d}/data.csv", "--columns", "a", "-k", "2", "--family", "gamma", "-o", "{d}/o"],
     "--family 'gamma': unknown family"),
    (["fit", "{d}/data.csv", "--columns", "a", "-k", "2", "--family", "poisson", "-o", "{d}/o"],
     "Poisson data must be non-negative integer counts; row 0, column 'a'"),
    (["fit", "{d}/data.csv", "-k", "2", "--family", "gaussian=a", "--family", "poisson",
      "-o", "{d}/o"], "give one family, or several as NAME=COLUMNS"),
    (["fit", "{d}/data.csv", "-k", "2", "--family", "gaussian=a", "--columns", "b",
      "-o", "{d}/o"], "both choose columns"),
    (["fit", "{d}/data.csv", "-k", "2", "--family", "gaussian=a", "--family", "poisson=a",
      "-o", "{d}/o"], "column 'a' belongs to two families"),
    (["fit", "{d}/data.csv", "--columns", "a", "-k", "2", "--option", "df", "-o", "{d}/o"],
     "--option 'df': expected KEY=VALUE"),
    (["fit", "{d}/data.csv", "--columns", "a", "-k", "2", "--option", "df=3", "-o", "{d}/o"],
     "--option df: the Gaussian mixture takes no such option"),
    (["fit", "{d}/data.csv", "--columns", "a", "-k", "2", "--tol", "-1", "-o", "{d}/o"],
     "argument --tol: must be a finite number >= 0.0, got -1"),
    (["fit", "{d}/data.csv", "--columns", "a", "-k", "2", "--model", "hm", "-o", "{d}/o"],
     "argument --model: invalid choice: 'hm'"),
    (["fit", "{d}/data.csv", "-k", "2"], "the following arguments are required: -o/--output"),
    (["predict", "{d}/junk.emix", "{d}/data.csv", "-o", "{d}/o.csv"],
     "{d}/junk.emix is not a valid emix model file: not a zip archive"),
    (["predict", "{d}/cut.emix", "{d}/data.csv", "-o", "{d}/o.csv"],
     "{d}/cut.emix is not a valid emix model file"),
    (["predict", "{d}/none.emix", "{d}/data.csv", "-o", "{d}/o.csv"],
     "{d}/none.emix: no such file"),
    (["predict", "{d}/good.emix", "{d}/text.csv", "-o", "{d}/o.csv"],
     "{d}/text.csv: column 'b' is not numeric: line 3 holds 'x'"),
    (["predict", "{d}/good.emix", "{d}/data.csv", "--columns", "a", "-o", "{d}/o.csv"],
     "the model reads 2 columns, but {d}/data.csv has 1 (a); choose them with --columns"),
    (["predict", "{d}/good.emix", "{d}/data.csv", "-o", "{d}/nowhere/o.csv"], "no directory"),
    (["score", "{d}/cut.emix", "{d}/data.csv"], "{d}/cut.emix is not a valid emix model file"),
    (["score", "{d}/good.emix", "{d}/empty.csv"], "{d}/empty.csv is empty"),
    (["sample", "{d}/good.emix", "-n", "0", "-o", "{d}/o.csv"], "-n: must be at least 1, got 0"),
    (["sample", "{d}/good.emix", "-n", "5", "-o", "{d}/nowhere/o.csv"], "no directory"),
    (["sample", "{d}/junk.emix", "-n", "5", "-o", "{d}/o.csv"], "not a valid emix model file"),
    (["select", "{d}/data.csv", "--columns", "a", "--k", "3-1"], "--k '3-1': ranges run upwards"),
    (["select", "{d}/data.csv", "--columns", "a", "--k", "two"], "--k 'two': expected numbers"),
    (["select", "{d}/data.csv", "--columns", "a", "--k", "1-50"],
     "--k 1-50: 50 components is more than the 40 rows"),
    (["select", "{d}/data.csv", "--columns", "a", "--families", "gaussian,gamma"],
     "--family 'gamma': unknown family"),
    (["select", "{d}/data.csv", "--columns", "a", "--k", "1-2", "-o", "{d}/nowhere/b.emix"],
     "no directory"),
    (["explain", "casino", "--plot", "{d}/em.gif"], "--plot draws the heights and coins"),
    (["explain", "coins", "--plot", "{d}/em.mp4"], "must end in .gif, .png"),
    (["explain", "coins", "--plot", "{d}/nowhere/em.gif"], "no directory"),
]


@pytest.mark.parametrize(("argv", "message"), CASES, ids=[" ".join(c[0][:2]) + f" {i}"
                                                          for i, c in enumerate(CASES)])
def test_error_is_one_line_status_2_and_no_output(files, capsys, argv, message):
    before = sorted(os.listdir(files))
    argv = [a.format(d=files) for a in argv]
    code = cli.main(argv)
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"emix {argv[0]}: error: ")
    assert message.format(d=files) in lines[0]
    assert sorted(os.listdir(files)) == before


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root may write anywhere")
def test_unwritable_directory(files, capsys):
    locked = files / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code = cli.main(["fit", str(files / "data.csv"), "--columns", "a", "-k", "2",
                         "-o", str(locked / "m.emix")])
    finally:
        locked.chmod(0o700)
    err = capsys.readouterr().err
    assert code == 2 and "is not writable" in err and os.listdir(locked) == []


def test_a_write_that_fails_midway_leaves_nothing(files, capsys, monkeypatch):
    # What an unwritable path looks like when the check before the fit cannot see it
    # (a full disk, a read-only mount): the writer fails after some bytes.
    import emix._atomic

    real = emix._atomic.os.fsync

    def fail(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(emix._atomic.os, "fsync", fail)
    target = files / "labels.csv"
    code = cli.main(["predict", str(files / "good.emix"), str(files / "data.csv"),
                     "-o", str(target)])
    err = capsys.readouterr().err
    monkeypatch.setattr(emix._atomic.os, "fsync", real)
    assert code == 2
    assert err.strip() == f"emix predict: error: cannot write {target}: No space left on device"
    assert not target.exists()
    assert not [n for n in os.listdir(files) if n.endswith(".tmp")]


def test_parquet_without_pyarrow_is_one_line(files, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    (files / "x.parquet").write_bytes(b"PAR1")
    code = cli.main(["fit", str(files / "x.parquet"), "-k", "1", "-o", str(files / "o.emix")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().endswith("needs pyarrow: pip install 'emix[parquet]'")
    assert not (files / "o.emix").exists()


def test_a_degenerate_fit_names_the_file(tmp_path, capsys):
    # Three distinct values for three components with no regularisation: the fit must
    # collapse; the library's error arrives as one line prefixed by the file.
    (tmp_path / "d.csv").write_text("v\n" + "\n".join(["1", "1", "2", "2", "3", "3"]) + "\n")
    code = cli.main(["fit", str(tmp_path / "d.csv"), "-k", "4", "--reg-covar", "0",
                     "-o", str(tmp_path / "m.emix")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith(f"emix fit: error: {tmp_path / 'd.csv'}: ")
    assert not (tmp_path / "m.emix").exists()
    np.testing.assert_equal(os.listdir(tmp_path), ["d.csv"])
