"""The ``emix`` command: a thin shell over the public API.

::

    emix fit DATA -k K [--family NAME | --family NAME=COLS ...] [--covariance full]
             [--columns a,b] [--model mixture|hmm] [--seed S] -o model.emix
    emix predict model.emix DATA -o labels.csv [--proba]
    emix score model.emix DATA
    emix sample model.emix -n N -o draws.csv
    emix select DATA --k 1-9 [--families gaussian,student_t] [-o best.emix]
    emix regimes PRICES.csv [--returns] --states 3 [--walk-forward 250] -o regimes.csv
             [--plot regimes.png]
    emix explain heights|coins|casino [--iterations N] [--plot em.gif | em.png]
    emix demo heights|coins|regimes [--plot FILE.png]

DATA is a CSV file (header line of column names) or a Parquet file (``.parquet``,
needs pyarrow); ``--json`` prints machine-readable results. Errors in the arguments or
the data print one line to stderr, naming the file, column or option, and exit with
status 2; no traceback, and no output file is left behind.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .._atomic import write_atomic
from ._table import CliError

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


def _float_at_least(low: float):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not value >= low or value == float("inf"):
            raise argparse.ArgumentTypeError(f"must be a finite number >= {low}, got {text}")
        return value

    parse.__name__ = f"number >= {low}"
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
    ex.add_argument(
        "--plot", metavar="FILE", default=None,
        help="heights and coins: draw EM at work, the curves after every iteration beside "
        "the climbing log-likelihood, as an animated .gif, or as one .png per step "
        "(em.png gives em-000.png, em-001.png, ...)",
    )

    demo = sub.add_parser(
        "demo",
        help="run a worked example: maximum likelihood, then EM",
        description="Maximum likelihood with the labels known, then EM with them hidden.",
    )
    demo.add_argument("example", choices=("heights", "coins", "regimes"), help="which example")
    demo.add_argument(
        "--plot", metavar="FILE", default=None,
        help="heights: also write a figure of the fit; regimes: where to write the figure "
        "of prices and regimes (default regimes.png); .png, .pdf or .svg",
    )
    demo.add_argument("--seed", type=_int_at_least(0), default=0, metavar="S",
                      help="seed of the simulated data (default 0)")
    demo.add_argument("--n-boys", type=_int_at_least(2), default=100, metavar="N",
                      help="heights: number of boys (default 100)")
    demo.add_argument("--n-girls", type=_int_at_least(2), default=100, metavar="N",
                      help="heights: number of girls (default 100)")
    demo.add_argument("--sets", type=_int_at_least(2), default=200, metavar="N",
                      help="coins: number of sets of 10 flips (default 200)")

    _add_data_verbs(sub)
    _add_regimes(sub)
    return parser


def _add_regimes(sub) -> None:
    rg = sub.add_parser(
        "regimes", help="calm and volatile market regimes of a price file",
        description="Fit market regimes (emix.finance) to the log-returns of the prices in "
        "PRICES (or to the returns, with --returns), rows oldest first. Regime 0 is the "
        "calmest. The CSV holds, per date, the decoded regime, the causal filtered "
        "probabilities and the whole-sample smoothed ones; with --walk-forward N the model "
        "is refitted every N periods on past data only and every probability is out of "
        "sample.",
    )
    rg.add_argument("data", metavar="PRICES", help="CSV or Parquet file, one row per date")
    rg.add_argument("--returns", action="store_true",
                    help="the file holds returns, not prices")
    rg.add_argument("--states", type=_int_at_least(1), default=2, metavar="K",
                    help="number of regimes (default 2)")
    rg.add_argument("--walk-forward", type=_int_at_least(1), default=None, metavar="N",
                    help="refit every N periods on past data only (out-of-sample regimes)")
    rg.add_argument("--window", type=_int_at_least(2), default=None, metavar="W",
                    help="with --walk-forward: fit on the last W periods (default: all past)")
    rg.add_argument("--date", metavar="COLUMN", default=None,
                    help="the date column (default: one named date, time, timestamp or day, "
                    "or a first column of text)")
    rg.add_argument("--columns", metavar="A,B",
                    help="price (or return) columns (default: every column but the date)")
    rg.add_argument("--model", choices=("hmm", "gmm"), default="hmm",
                    help="hmm (regimes persist; default) or gmm (each date on its own)")
    rg.add_argument("--emission", choices=("gaussian", "student_t"), default="gaussian",
                    help="distribution of returns within a regime (default gaussian)")
    rg.add_argument("--vol-window", type=_int_at_least(2), default=None, metavar="W",
                    help="add the trailing volatility over W periods as a feature")
    rg.add_argument("--periods-per-year", type=_float_at_least(1.0), default=252.0,
                    metavar="P", help="for annualised statistics (default 252)")
    rg.add_argument("--seed", type=_int_at_least(0), default=0, metavar="S",
                    help="seed of the random starts (default 0)")
    rg.add_argument("-o", "--output", default=None, metavar="CSV",
                    help="CSV file of regimes and probabilities per date")
    rg.add_argument("--plot", default=None, metavar="FILE",
                    help="figure of the price with regimes shaded (.png, .pdf or .svg)")
    _common(rg)


def _model_and_data(p) -> None:
    """The arguments of the verbs that apply a fitted model to a file (predict, score)."""
    p.add_argument("model", metavar="MODEL", help="model file written by emix fit")
    p.add_argument("data", metavar="DATA", help="CSV or Parquet file")
    p.add_argument("--columns", metavar="A,B",
                   help="columns to read (default: those the model was fitted on)")
    p.add_argument("--block-rows", type=_int_at_least(1), default=None, metavar="N",
                   help="read DATA in blocks of N rows instead of loading it (mixtures)")
    _missing_option(p)


def _missing_option(p) -> None:
    p.add_argument("--missing", choices=("error", "em"), default="error",
                   help="empty cells, nan and Parquet nulls: an error (default), or missing "
                   "values handled by EM (em: each row by its observed values)")


def _common(p, *, json_help="print the results as JSON"):
    p.add_argument("--json", action="store_true", help=json_help)
    p.add_argument("-q", "--quiet", action="store_true",
                   help="print nothing but errors and warnings (and no progress bar)")


def _add_data_verbs(sub) -> None:
    from ..families import FAMILY_NAMES

    fit = sub.add_parser(
        "fit", help="fit a mixture or hidden Markov model to a CSV or Parquet file",
        description="Fit a mixture (or, with --model hmm, a hidden Markov model whose rows "
        "are one sequence in time order) to the numeric columns of DATA and write it to a "
        "model file that predict, score and sample read.",
    )
    fit.add_argument("data", metavar="DATA", help="CSV or Parquet (.parquet) file with a header")
    fit.add_argument("-k", "--components", dest="k", type=_int_at_least(1), required=True,
                     metavar="K", help="number of components (states)")
    fit.add_argument("-o", "--output", required=True, metavar="MODEL",
                     help="model file to write (e.g. model.emix)")
    fit.add_argument("--family", action="append", metavar="NAME[=COLS]",
                     help=f"component distribution: {', '.join(FAMILY_NAMES)} (default "
                     "gaussian); repeat as NAME=col1,col2 for a product over column groups")
    fit.add_argument("--covariance", default="full",
                     choices=("full", "tied", "diag", "spherical"),
                     help="covariance type of Gaussian and Student-t components (default full)")
    fit.add_argument("--columns", metavar="A,B", help="columns to use, by name (default all)")
    fit.add_argument("--model", choices=("mixture", "hmm"), default="mixture",
                     help="mixture (default) or hmm")
    fit.add_argument("--seed", type=_int_at_least(0), default=None, metavar="S",
                     help="seed of the random starts")
    fit.add_argument("--n-init", type=_int_at_least(1), default=1, metavar="N",
                     help="random starts; the best is kept (default 1)")
    fit.add_argument("--max-iter", type=_int_at_least(1), default=100, metavar="N",
                     help="iterations per start (default 100)")
    fit.add_argument("--tol", type=_float_at_least(0.0), default=1e-3, metavar="T",
                     help="stop when the log-likelihood per row rises by less (default 1e-3)")
    fit.add_argument("--reg-covar", type=_float_at_least(0.0), default=None, metavar="R",
                     help="added to covariance diagonals (Gaussian, Student-t)")
    fit.add_argument("--option", action="append", metavar="KEY=VALUE",
                     help="a family option, e.g. --option n_trials=10 or --option df=5")
    fit.add_argument("--block-rows", type=_int_at_least(1), default=None, metavar="N",
                     help="read DATA in blocks of N rows at every iteration instead of "
                     "loading it (mixtures; same answer, memory bounded by the block)")
    fit.add_argument("--minibatch", action="store_true",
                     help="mini-batch (stepwise) EM: one update per block of --block-rows "
                     "rows, --epochs passes over DATA (mixtures)")
    fit.add_argument("--epochs", type=_int_at_least(1), default=1, metavar="N",
                     help="passes over DATA with --minibatch (default 1)")
    _missing_option(fit)
    _common(fit)

    pred = sub.add_parser(
        "predict", help="label every row of a file with its most probable component",
        description="Write the most probable component (state, for an HMM) of every row "
        "of DATA to a CSV file; --proba adds the probabilities.",
    )
    _model_and_data(pred)
    pred.add_argument("-o", "--output", required=True, metavar="CSV",
                      help="CSV file of labels to write")
    pred.add_argument("--proba", action="store_true",
                      help="add one column of probabilities per component")
    _common(pred)

    sc = sub.add_parser(
        "score", help="log-likelihood, BIC and AIC of a file under a model",
        description="Print the log-likelihood of DATA under MODEL (total and per row), "
        "with BIC and AIC.",
    )
    _model_and_data(sc)
    _common(sc)

    sa = sub.add_parser(
        "sample", help="draw rows from a model into a CSV file",
        description="Draw N rows from MODEL (one sequence, for an HMM) and write them, "
        "with the component (state) of each, to a CSV file.",
    )
    sa.add_argument("model", metavar="MODEL", help="model file written by emix fit")
    sa.add_argument("-n", type=_int_at_least(1), required=True, metavar="N",
                    help="rows to draw")
    sa.add_argument("-o", "--output", required=True, metavar="CSV", help="CSV file to write")
    sa.add_argument("--seed", type=_int_at_least(0), default=None, metavar="S",
                    help="seed of the draws (default: the model's own)")
    _common(sa)

    se = sub.add_parser(
        "select", help="compare numbers of components (and families) by BIC",
        description="Fit every candidate and print the table of log-likelihoods and "
        "criteria; degenerate fits are listed but never chosen.",
    )
    se.add_argument("data", metavar="DATA", help="CSV or Parquet file")
    se.add_argument("--k", default="1-9", metavar="RANGE",
                    help="numbers of components: 1-9 (default), 2,4,8 or 1-3,6")
    se.add_argument("--families", metavar="A,B",
                    help=f"families to compare ({', '.join(FAMILY_NAMES)}); default gaussian")
    se.add_argument("--covariance", metavar="A,B",
                    help="covariance types to try (default full,tied,diag,spherical)")
    se.add_argument("--criterion", choices=("bic", "aic", "icl"), default="bic",
                    help="criterion that chooses (default bic)")
    se.add_argument("--columns", metavar="A,B", help="columns to use, by name (default all)")
    se.add_argument("--n-init", type=_int_at_least(1), default=3, metavar="N",
                    help="starts per candidate (default 3)")
    se.add_argument("--seed", type=_int_at_least(0), default=None, metavar="S",
                    help="seed of the random starts")
    se.add_argument("-o", "--output", default=None, metavar="MODEL",
                    help="also write the chosen model to this file")
    _common(se)


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
    from ..exceptions import EmixError

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
        if args.command == "demo":
            return _demo(args)
        if args.command == "regimes":
            from ._regimes import regimes

            return regimes(args)
        from . import _commands

        return getattr(_commands, args.command)(args)
    except KeyboardInterrupt:
        print(f"{_PROG} {args.command}: interrupted", file=sys.stderr)
        return 130
    except (_UsageError, CliError, EmixError, OSError) as exc:
        message = str(exc)
        if not message.startswith(_PROG):
            message = f"{_PROG} {args.command}: error: {message}"
        print(" ".join(message.split()), file=sys.stderr)
        return 2


def _explain(args) -> int:
    from ..explain import explain

    if args.plot is not None:
        # Checked before EM runs, so that a typo costs nothing and prints nothing.
        if args.example == "casino":
            raise CliError("--plot draws the heights and coins examples, not casino")
        from ._table import check_output

        check_output(args.plot, "--plot", (".gif", ".png"))
    trace = explain(
        args.example, n_iter=args.iterations, n_rows=args.rows, random_state=args.seed
    )
    print(trace.to_text(detailed=args.detail), end="")
    if args.plot is not None:
        from ..plots import save_em_animation

        if args.example == "heights":
            from ..datasets import load_heights

            x = load_heights(random_state=args.seed).heights
        else:
            from ..datasets import load_two_coins

            x = load_two_coins(n_sets=trace.n, random_state=args.seed).heads
        try:
            written = save_em_animation(trace, x, args.plot)
        except OSError as exc:
            raise CliError(f"cannot write {args.plot}: {exc.strerror or exc}") from None
        if len(written) == 1:
            print(f"\nAnimation of {trace.n_iter} iterations written to {written[0]}")
        else:
            print(f"\n{len(written)} frames written: {written[0]} (the start) to {written[-1]}")
    return 0


def _demo(args) -> int:
    from .. import demo

    if args.example == "regimes":
        plot = "regimes.png" if args.plot is None else args.plot
        fmt = _check_figure_path(plot)
        text, res = demo.regimes_report(seed=args.seed)
        print(text, end="")
        fig = res.plot(title="Synthetic prices: regimes found by a two-state HMM")
        _save_atomically(fig, plot, fmt)
        print(f"\nFigure written to {plot}")
        return 0
    if args.example == "coins":
        if args.plot is not None:
            raise _UsageError(
                f"{_PROG} demo: error: --plot is available for heights and regimes only")
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
        from ..plots import plot_mixture_1d

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
