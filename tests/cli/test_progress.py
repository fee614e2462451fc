"""The progress bar: silent for the first second, throttled, erased at the end."""

from __future__ import annotations

import io

import pytest

from emix.cli._progress import Progress


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


class Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture(autouse=True)
def _no_override(monkeypatch):
    monkeypatch.delenv("EMIX_PROGRESS", raising=False)


def test_silent_first_second_then_throttled_then_erased():
    clock, term = Clock(), Terminal()
    bar = Progress("emix fit", 100, stream=term, clock=clock)
    for it in range(1, 11):  # a fast fit: 10 iterations in 0.9 s
        clock.t = it * 0.09
        assert bar(it, -1.5) is False
    assert term.getvalue() == ""
    clock.t = 1.2
    bar(11, -1.25)
    assert term.getvalue() == ("\remix fit: [##..................] iteration 11/100, "
                               "log-likelihood per row -1.25, 1 s")
    clock.t = 1.25  # within 0.1 s of the last draw: not redrawn
    bar(12, -1.2)
    assert bar.draws == 1
    clock.t = 1.4
    bar(100, -1.0)
    assert bar.draws == 2 and "[####################] iteration 100/100" in term.getvalue()
    width = bar.width
    bar.close()
    assert term.getvalue().endswith("\r" + " " * width + "\r")
    bar.close()  # a second close writes nothing
    assert term.getvalue().count("\r") == 4


def test_restarts_are_counted():
    clock, term = Clock(), Terminal()
    bar = Progress("emix fit", 10, n_init=3, stream=term, clock=clock)
    clock.t = 5.0
    for run in range(3):
        for it in (1, 2, 3):
            clock.t += 1.0
            bar(it, -2.0)
    assert "run 1/3" in term.getvalue() and "run 3/3" in term.getvalue()
    assert bar.run == 3


@pytest.mark.parametrize(("env", "tty", "quiet", "shown"), [
    (None, True, False, True),
    (None, False, False, False),
    (None, True, True, False),
    ("always", False, False, True),
    ("always", False, True, False),
    ("never", True, False, False),
])
def test_when_it_is_on(monkeypatch, env, tty, quiet, shown):
    if env is not None:
        monkeypatch.setenv("EMIX_PROGRESS", env)
    clock = Clock()
    stream = Terminal() if tty else io.StringIO()
    bar = Progress("x", 5, quiet=quiet, stream=stream, clock=clock)
    clock.t = 2.0
    bar(1, 0.5)
    assert bool(stream.getvalue()) is shown
