"""The ``emix`` command line: explain and demo, one-line errors with status 2."""

from __future__ import annotations

import os

import pytest

from emix import cli

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("example", ["heights", "coins"])
def test_explain_prints_the_trace(capsys, example):
    code, out, err = _run(capsys, "explain", example, "--iterations", "2", "--rows", "2")
    assert code == 0 and err == ""
    assert "Iteration 1" in out and "Iteration 2" in out and "Iteration 3" not in out
    assert "E-step" in out and "M-step" in out and "log-likelihood" in out


def test_explain_runs_to_convergence_by_default(capsys):
    code, out, _ = _run(capsys, "explain", "coins", "--detail", "1", "--seed", "4")
    assert code == 0
    assert "EM stopped after" in out and "one line each" in out
    assert "seed 4" in out


# The installed script and ``python -m emix`` run as subprocesses in
# tests/cli/test_installed_emix.py, beside the other acceptance runs.


def test_top_level_help_lists_every_verb(capsys):
    code, out, _ = _run(capsys, "--help")
    assert code == 0
    for verb in ("fit", "predict", "score", "sample", "select", "regimes", "explain", "demo"):
        assert f"    {verb} " in out


def test_demo_heights_writes_a_png(capsys, tmp_path):
    target = tmp_path / "out.png"
    code, out, err = _run(capsys, "demo", "heights", "--plot", str(target), "--seed", "1")
    assert code == 0, err
    assert "Part 2. Labels hidden" in out and f"Figure written to {target}" in out
    data = target.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 1000
    assert os.listdir(tmp_path) == ["out.png"]  # no temporary file left behind


def test_demo_coins(capsys):
    code, out, _ = _run(capsys, "demo", "coins", "--sets", "100")
    assert code == 0
    assert "Part 1. Coins known" in out and "Part 2. Coins hidden" in out
    assert "P(heads)" in out


def test_a_failed_write_leaves_the_old_file_untouched(capsys, tmp_path, monkeypatch):
    import emix.plots

    target = tmp_path / "fig.png"
    target.write_bytes(b"old figure")

    class Axes:
        def set_xlabel(self, *args):
            pass

        def set_title(self, *args):
            pass

    class Broken:
        def __init__(self):
            self.axes = [Axes()]

        def savefig(self, fh, format):
            fh.write(PNG_SIGNATURE + b"half")
            raise OSError("No space left on device")

    monkeypatch.setattr(emix.plots, "plot_mixture_1d", lambda model, X: Broken())
    code, _, err = _run(capsys, "demo", "heights", "--plot", str(target))
    assert code == 2
    expected = f"emix demo: error: cannot write {str(target)!r}: No space left on device"
    assert err.strip() == expected
    assert target.read_bytes() == b"old figure"
    assert os.listdir(tmp_path) == ["fig.png"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["explain", "dice"], "invalid choice: 'dice'"),
        (["explain", "coins", "--iterations", "0"], "--iterations: must be at least 1, got 0"),
        (["explain", "coins", "--iterations", "many"], "expected a whole number, got 'many'"),
        (["explain", "heights", "--rows", "-2"], "--rows: must be at least 0, got -2"),
        (["explain", "heights", "--seed", "1.5"], "expected a whole number, got '1.5'"),
        (["demo", "dice"], "invalid choice: 'dice'"),
        (["demo", "heights", "--plot", "{missing}/x.png"], "no directory"),
        (["demo", "heights", "--plot", "{tmp}/x.jpg"], "must end in .png, .pdf, .svg"),
        (["demo", "heights", "--plot", "{file}/x.png"], "no directory"),
        (["demo", "heights", "--plot", "{tmp}"], "must end in"),
        (["demo", "coins", "--plot", "{tmp}/x.png"], "--plot is available for heights and regimes only"),
        (["demo", "heights", "--n-boys", "1"], "--n-boys: must be at least 2, got 1"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        ([], "the following arguments are required: command"),
    ],
)
def test_errors_are_one_line_with_status_2(capsys, tmp_path, argv, message):
    (tmp_path / "file.txt").write_text("not a directory")
    argv = [a.format(tmp=tmp_path, missing=tmp_path / "nowhere", file=tmp_path / "file.txt")
            for a in argv]
    code, out, err = _run(capsys, *argv)
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], err
    assert lines[0].startswith("emix")
    assert "Traceback" not in err


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root may write anywhere")
def test_unwritable_directory_is_reported(capsys, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code, out, err = _run(capsys, "demo", "heights", "--plot", str(locked / "x.png"))
    finally:
        locked.chmod(0o700)
    assert code == 2 and out == "" and "not writable" in err


def test_help_exits_zero(capsys):
    code, out, _ = _run(capsys, "explain", "--help")
    assert code == 0 and "--iterations" in out
