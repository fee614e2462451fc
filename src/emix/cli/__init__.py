"""The ``emix`` command: a thin shell over the public API.

::

    emix explain heights|coins|casino [--iterations N] [--rows N] [--detail N] [--seed S]
    emix demo heights [--plot FILE.png] [--seed S] [--n-boys N] [--n-girls N]
    emix demo coins [--sets N] [--seed S]

Errors in the arguments or the data print one line to stderr and exit with status 2;
no traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from ._atomic import write_atomic

__all__ = ["main"]

_PROG = "emix"

# File suffixes a figure may be written as, and matplotlib's name for each format.
_FIGURE_FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg"}


class _UsageError(Exception):
    """A bad command line; main prints it as one line and exits with 2."""


class _Parser(argparse.ArgumentParser):
    # argparse prints the whole usage block and calls sys.exit(2); the contract here is
    # one line on stderr, and main returning 2 so that callers and tests need no
    # SystemExit handling.
    def error(self, message: str):
        raise _UsageError(f"{self.prog}: error: {message}")


def _int_at_least(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=_PROG,
        description="emix: latent-variable models fitted by the EM algorithm.",
    )
    sub = parser.add_subparsers(dest="command", metavar="command", parser_class=_Parser)
    sub.required = True

    ex = sub.add_parser(
        "explain",
        help="show EM step by step on a built-in example",
        description="Run EM on a built-in example and print every E-step and M-step.",
    )
    ex.add_argument("example", choices=("heights", "coins", "casino"), help="which example")
    ex.add_argument(
        "--iterations", type=_int_at_least(1), default=None, metavar="N",
        help="run N iterations (default: until EM settles)",
    )
    ex.add_argument(
        "--rows", type=_int_at_least(0), default=3, metavar="N",
        help="rows shown in each E-step table (default 3)",
    )
    ex.add_argument(
        "--detail", type=_int_at_least(0), default=5, metavar="N",
        help="iterations printed in full; later ones get one line each (default 5)",
    )
    ex.add_argument(
        "--seed", type=_int_at_least(0), default=0, metavar="S",
        help="seed of the simulated data (default 0)",
    )

    demo = sub.add_parser(
        "demo",
        help="run a worked example: maximum likelihood, then EM",
        description="Maximum likelihood with the labels known, then EM with them hidden.",
    )
    demo.add_argument("example", choices=("heights", "coins"), help="which example")
    demo.add_argument(
        "--plot", metavar="FILE", default=None,
        help="heights only: also write a figure of the fit (.png, .pdf or .svg)",
    )
    demo.add_argument("--seed", type=_int_at_least(0), default=0, metavar="S",
                      help="seed of the simulated data (default 0)")
    demo.add_argument("--n-boys", type=_int_at_least(2), default=100, metavar="N",
                      help="heights: number of boys (default 100)")
    demo.add_argument("--n-girls", type=_int_at_least(2), default=100, metavar="N",
                      help="heights: number of girls (default 100)")
    demo.add_argument("--sets", type=_int_at_least(2), default=200, metavar="N",
                      help="coins: number of sets of 10 flips (default 200)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``emix`` command.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name; None reads ``sys.argv[1:]``.

    Returns
    -------
    int
        0 on success, 2 on a bad command line, bad data or an unwritable output file.
    """
    from .exceptions import EmixError

    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as exc:
        print(exc, file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help and --version print and exit on their own
        return int(exc.code or 0)
    try:
        if args.command == "explain":
            return _explain(args)
        return _demo(args)
    except (_UsageError, EmixError, OSError) as exc:
        message = str(exc)
        if not message.startswith(_PROG):
            message = f"{_PROG} {args.command}: error: {message}"
        print(" ".join(message.split()), file=sys.stderr)
        return 2


def _explain(args) -> int:
    from .explain import explain

    trace = explain(
        args.example, n_iter=args.iterations, n_rows=args.rows, random_state=args.seed
    )
    print(trace.to_text(detailed=args.detail), end="")
    return 0


def _demo(args) -> int:
    from . import demo

    if args.example == "coins":
        if args.plot is not None:
            raise _UsageError(f"{_PROG} demo: error: --plot is available for heights only")
        text, _, _ = demo.coins_report(n_sets=args.sets, seed=args.seed)
        print(text)
        return 0
    fmt = None
    if args.plot is not None:
        # Checked before the fit, so a typo in the path costs nothing and prints nothing.
        fmt = _check_figure_path(args.plot)
    text, data, model = demo.heights_report(args.n_boys, args.n_girls, args.seed)
    print(text)
    if args.plot is not None:
        from .plots import plot_mixture_1d

        fig = plot_mixture_1d(model, data.heights)
        ax = fig.axes[0]
        ax.set_xlabel("height (cm)")
        ax.set_title(f"Heights of {data.n} people: two normal curves fitted by EM")
        _save_atomically(fig, args.plot, fmt)
        print(f"\nFigure written to {args.plot}")
    return 0


def _check_figure_path(path: str) -> str:
    """matplotlib's format name for ``path``; a _UsageError if it cannot be written."""
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in _FIGURE_FORMATS:
        raise _UsageError(
            f"{_PROG} demo: error: --plot {path!r}: the file name must end in "
            f"{', '.join(_FIGURE_FORMATS)}"
        )
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise _UsageError(f"{_PROG} demo: error: --plot {path!r}: no directory {directory!r}")
    if os.path.isdir(path):
        raise _UsageError(f"{_PROG} demo: error: --plot {path!r} is a directory")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise _UsageError(
            f"{_PROG} demo: error: --plot {path!r}: directory {directory!r} is not writable"
        )
    return _FIGURE_FORMATS[suffix]


def _save_atomically(fig, path: str, fmt: str) -> None:
    """Write ``fig`` to ``path`` so that the file is either complete or untouched.

    See :func:`emix._atomic.write_atomic`; a failure is re-raised as an ``OSError`` whose
    message names ``path``, which ``main`` prints as one line.
    """
    try:
        write_atomic(path, lambda fh: fig.savefig(fh, format=fmt))
    except OSError as exc:
        raise OSError(f"cannot write {path!r}: {exc.strerror or exc}") from None

if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
