"""``emix regimes``: market regimes of a price (or return) file, through emix.finance.

The file's rows are dates, oldest first. A date column (``--date``, or one named
date/time/timestamp/day, or a text first column) keeps the dates: the output CSV
repeats the file's own date text on every row, and the figure's axis shows dates when
pandas can read them. Without a date column, rows are numbered.
"""

from __future__ import annotations

import numpy as np

from ._commands import _about, _columns_option, _print_json, _reported_warnings
from ._table import CliError, Table, check_output, read_table, write_csv

__all__ = ["regimes"]

_DATE_NAMES = ("date", "datetime", "time", "timestamp", "day")
FIGURE_SUFFIXES = (".png", ".pdf", ".svg")


def _date_column(table: Table, option: str | None) -> str | None:
    if option is not None:
        table.column(option)  # names the file and its columns when absent
        return option
    for name in table.names:
        if name.strip().lower() in _DATE_NAMES:
            return name
    first = table.columns[0] if table.columns else None
    if first is not None and first.dtype.kind == "O" and table.n_rows:
        try:
            float(first[0])
        except (TypeError, ValueError):
            return table.names[0]
    return None


def _parse_dates(table: Table, name: str):
    """The date column as a pandas DatetimeIndex, or None without pandas."""
    try:
        import pandas as pd
    except ImportError:
        return None
    raw = table.column(name)
    try:
        index = pd.DatetimeIndex(pd.to_datetime(raw.astype(str), format="mixed"))
    except (ValueError, TypeError, OverflowError):
        for i, cell in enumerate(raw):
            try:
                pd.to_datetime(str(cell))
            except (ValueError, TypeError, OverflowError):
                raise CliError(f"{table.path}: column {name!r} does not hold dates: "
                               f"{table._where(i)} holds {str(cell)!r}") from None
        raise CliError(f"{table.path}: column {name!r} does not hold dates") from None
    steps = np.flatnonzero(np.diff(index.asi8) <= 0)
    if steps.size:
        i = int(steps[0]) + 1
        raise CliError(f"{table.path}: column {name!r} is not in increasing date order: "
                       f"{table._where(i)} holds {str(raw[i])!r} after {str(raw[i - 1])!r}")
    return index


def regimes(args) -> int:
    from .. import finance

    if args.output is not None:
        check_output(args.output, "-o")
    if args.plot is not None:
        check_output(args.plot, "--plot", FIGURE_SUFFIXES)
    table = read_table(args.data)
    date = _date_column(table, args.date)
    columns = _columns_option(args.columns)
    if columns is None:
        columns = [n for n in table.names if n != date]
    elif date in columns:
        raise CliError(f"--columns {args.columns!r} names the date column {date!r}")
    X, names = table.numeric(columns)
    index = None if date is None else _parse_dates(table, date)
    values = X[:, 0] if X.shape[1] == 1 else X
    if index is not None:
        import pandas as pd

        values = (pd.Series(values, index=index, name=names[0]) if X.shape[1] == 1
                  else pd.DataFrame(values, index=index, columns=names))
    what = "returns" if args.returns else "prices"
    common = dict(model=args.model, emission=args.emission, volatility_window=args.vol_window,
                  random_state=args.seed, periods_per_year=args.periods_per_year)
    with _reported_warnings("regimes"), _about(args.data, names):
        if args.walk_forward is None:
            res = finance.detect_regimes(**{what: values}, n_regimes=args.states, **common)
        else:
            res = finance.walk_forward(**{what: values}, n_regimes=args.states,
                                       refit_every=args.walk_forward, window=args.window,
                                       **common)
    T = len(res.regime)
    # The results cover the last T rows: prices lose their first row to the first
    # return, a volatility feature its first window - 1.
    rows = np.arange(table.n_rows - T, table.n_rows)
    R = np.asarray(res.returns, dtype=np.float64).reshape(T, -1)
    header, cols = [], []
    if date is not None:
        header.append(date)
        cols.append(table.column(date)[rows])
    ret_names = [f"{n}_return" if not args.returns else n for n in names][: R.shape[1]]
    if R.shape[1] > len(ret_names):
        ret_names += [f"feature_{j}" for j in range(len(ret_names), R.shape[1])]
    header += ret_names
    cols += [R[:, j] for j in range(R.shape[1])]
    header.append("regime")
    cols.append(np.asarray(res.regime))
    K = res.n_regimes
    if args.walk_forward is None:
        header.append("filtered_regime")
        cols.append(np.asarray(res.filtered_regime))
        for k in range(K):
            header.append(f"filtered_{k}")
            cols.append(res.filtered[:, k])
        for k in range(K):
            header.append(f"smoothed_{k}")
            cols.append(res.smoothed[:, k])
    else:
        for k in range(K):
            header.append(f"filtered_{k}")
            cols.append(res.filtered[:, k])
    if args.output is not None:
        write_csv(args.output, header, cols)
    if args.plot is not None:
        from . import _save_atomically

        fig = res.plot()
        _save_atomically(fig, args.plot, args.plot.rsplit(".", 1)[-1].lower())
    _report(args, res, table, T)
    return 0


def _report(args, res, table, T) -> None:
    K = res.n_regimes
    regime = np.asarray(res.regime)
    known = regime >= 0
    share = np.bincount(regime[known], minlength=K) / max(int(known.sum()), 1)
    if args.json:
        out = {"data": args.data, "n_periods": T, "n_regimes": K, "output": args.output,
               "plot": args.plot, "share_decoded": share}
        if args.walk_forward is None:
            s = res.stats
            out.update(mean=s.mean, volatility=s.volatility,
                       annualized_volatility=s.annualized_volatility, share=s.share,
                       expected_duration=s.expected_duration, transmat=s.transmat,
                       loglik=s.loglik, bic=s.bic, bic_by_k=s.bic_by_k, best_k=s.best_k)
        else:
            out.update(refit_every=args.walk_forward,
                       refit_rows=np.asarray(res.refit_positions),
                       n_refits=len(res.refit_positions))
        _print_json(out)
        return
    if args.quiet:
        return
    kind = "walk-forward, out of sample" if args.walk_forward is not None else "whole sample"
    print(f"{args.data}: {T} periods, {K} regimes (0 = calmest; {kind})")
    if args.walk_forward is None:
        print(res.stats)
    else:
        print(f"  {len(res.refit_positions)} refits, every {args.walk_forward} periods; "
              f"{int((~known).sum())} periods before the first fit have no regime")
        print("  share of time: " + "  ".join(f"{k}: {s:.1%}" for k, s in enumerate(share)))
    if args.output is not None:
        print(f"Regimes written to {args.output}")
    if args.plot is not None:
        print(f"Figure written to {args.plot}")
