"""Tables in and out for the ``emix`` command: CSV and Parquet in, CSV out.

Reading needs no pandas: CSV goes through the standard library's ``csv`` module and
NumPy's number parsing; Parquet through pyarrow, imported only when a ``.parquet`` file
is read. Every problem is a :class:`CliError` whose message names the file, the column
and, where there is one, the line (CSV) or row (Parquet), so that ``main`` can print it
as one line.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .._atomic import write_atomic

__all__ = ["CliError", "Table", "check_output", "read_table", "write_csv"]

PARQUET_SUFFIXES = (".parquet", ".pq")


class CliError(Exception):
    """A problem with the command line, a file or its data; printed as one line."""


@dataclass
class Table:
    """Named columns of one file, as read.

    Attributes
    ----------
    path : str
    names : list of str, length C
    columns : list of ndarray, length C
        Each of shape (N,): float64 for numeric columns (checked finite when taken by
        :meth:`numeric`), str (object) where the file holds text.
    lines : ndarray of shape (N,), int, optional
        The line of the file each row came from (CSV); None for Parquet.
    """

    path: str
    names: list
    columns: list
    lines: np.ndarray | None = None

    @property
    def n_rows(self) -> int:
        return len(self.columns[0]) if self.columns else 0

    def _where(self, i: int) -> str:
        # CSV users count lines in an editor (the header is line 1); Parquet has rows.
        if self.lines is None:
            return f"row {i}"
        return f"line {int(self.lines[i])}"

    def column(self, name: str) -> np.ndarray:
        """The raw column ``name``, shape (N,); a CliError naming the file if absent."""
        try:
            return self.columns[self.names.index(name)]
        except ValueError:
            shown = ", ".join(repr(n) for n in self.names[:12])
            more = f", ... ({len(self.names)} in all)" if len(self.names) > 12 else ""
            raise CliError(f"{self.path} has no column {name!r} (columns: {shown}{more})") from None

    def numeric(self, names: Sequence[str] | None = None, *, option: str = "--columns",
                missing: str = "error") -> tuple[np.ndarray, list]:
        """The chosen columns as one float64 matrix.

        Parameters
        ----------
        names : sequence of str, optional
            Columns to take, in this order; all columns by default.
        option : str
            The option that chooses columns, named in the hint when a default column is
            not numeric.
        missing : {'error', 'em'}
            ``'em'`` (``--missing em``): an empty cell or ``nan`` is a missing value,
            NaN in X; ``'error'``: an error naming the cell. inf is always an error.

        Returns
        -------
        X : ndarray of shape (N, len(names)), float64, finite or (with 'em') NaN
        names : list of str
        """
        chosen = list(self.names) if names is None else list(names)
        if not chosen:
            raise CliError(f"{self.path} has no columns")
        if self.n_rows == 0:
            raise CliError(f"{self.path} has a header but no rows of data")
        X = np.empty((self.n_rows, len(chosen)), dtype=np.float64)
        for j, name in enumerate(chosen):
            raw = self.column(name)
            hint = "" if names is not None else f"; choose the numeric columns with {option}"
            X[:, j] = self._to_float(raw, name, hint, missing == "em")
        return X, chosen

    def _to_float(self, raw: np.ndarray, name: str, hint: str, em: bool = False) -> np.ndarray:
        if raw.dtype.kind == "f":
            values = raw
        else:
            if em:  # an empty cell is a missing value
                raw = np.where(np.asarray([str(c).strip() == "" for c in raw], dtype=bool),
                               "nan", raw).astype(object)
            try:
                values = np.asarray(raw, dtype=np.float64)
            except (TypeError, ValueError):
                # Find the first cell that fails, to name it.
                for i, cell in enumerate(raw):
                    try:
                        float(cell)
                    except (TypeError, ValueError):
                        empty = str(cell).strip() == ""
                        shown = "an empty cell" if empty else repr(cell)
                        # An empty cell is usually a missing value, not a text column.
                        why = (" (a missing value? --missing em fits with missing values)"
                               if empty and not em else hint)
                        raise CliError(
                            f"{self.path}: column {name!r} is not numeric: {self._where(i)} "
                            f"holds {shown}{why}"
                        ) from None
                raise CliError(f"{self.path}: column {name!r} is not numeric{hint}") from None
        bad = np.flatnonzero(np.isinf(values) if em else ~np.isfinite(values))
        if bad.size and em:
            i = int(bad[0])
            raise CliError(
                f"{self.path}: column {name!r} {self._where(i)} holds {raw[i]!s}; inf is not a "
                "missing value: leave the cell empty to have it treated as missing"
            )
        if bad.size:
            i = int(bad[0])
            nan = not np.isinf(values[i])
            raise CliError(
                f"{self.path}: column {name!r} {self._where(i)} holds {raw[i]!s}; "
                f"emix needs finite numbers ({bad.size} such cell{'s' if bad.size > 1 else ''})"
                + ("; --missing em fits with missing values" if nan else "")
            )
        return values


def read_table(path: str, missing: str = "error") -> Table:
    """Read a CSV or Parquet file (by its suffix) into a :class:`Table`.

    With ``missing="em"`` a Parquet null in a numeric column reads as NaN (a missing
    value) instead of being an error.
    """
    if os.path.isdir(path):
        raise CliError(f"{path} is a directory, not a data file")
    if not os.path.exists(path):
        raise CliError(f"{path}: no such file")
    if path.lower().endswith(PARQUET_SUFFIXES):
        return _read_parquet(path, missing == "em")
    return _read_csv(path)


def _read_csv(path: str) -> Table:
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            text = fh.read()
    except UnicodeDecodeError as exc:
        raise CliError(f"{path} is not a UTF-8 text (CSV) file: {exc.reason} at byte "
                       f"{exc.start}") from None
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not text.strip():
        raise CliError(f"{path} is empty")
    first = text.split("\n", 1)[0]
    # Comma unless the header line shows another common delimiter and no comma.
    delimiter = ","
    if "," not in first:
        for candidate in ("\t", ";"):
            if candidate in first:
                delimiter = candidate
                break
    try:
        rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    except csv.Error as exc:
        raise CliError(f"{path} is not valid CSV: {exc}") from None
    # Blank lines (often one at the end) carry nothing; a line of empty cells (",,") is a
    # row whose every value is missing, so that labels stay aligned with the rows.
    numbered = [(n, r) for n, r in enumerate(rows, start=1)
                if r and (len(r) > 1 or r[0].strip())]
    header_line, header = numbered[0]
    names = [h.strip() for h in header]
    for j, name in enumerate(names):
        if name == "":
            raise CliError(f"{path}: column {j + 1} of the header has no name")
        if name in names[:j]:
            raise CliError(f"{path}: the header names column {name!r} twice")
    body = numbered[1:]
    for line, row in body:
        if len(row) != len(names):
            raise CliError(
                f"{path}, line {line}: {len(row)} fields, but the header has {len(names)}"
            )
    columns = [np.array([row[j].strip() for _, row in body], dtype=object)
               for j in range(len(names))]
    return Table(path, names, columns, lines=np.array([line for line, _ in body]))


def _read_parquet(path: str, nulls_as_nan: bool = False) -> Table:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise CliError(
            f"reading {path} needs pyarrow: pip install 'emix[parquet]'"
        ) from None
    import pyarrow as pa

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CliError(f"{path} is not a readable Parquet file: {first}") from None
    names = [str(n) for n in table.column_names]
    if table.num_columns == 0:
        raise CliError(f"{path} is empty")
    columns = []
    for name, col in zip(names, table.columns):
        t = col.type
        numeric = pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
        if col.null_count and numeric and nulls_as_nan:
            columns.append(np.asarray(col.cast(pa.float64()).to_numpy(zero_copy_only=False),
                                      dtype=np.float64))
        elif col.null_count:
            i = int(np.flatnonzero(np.asarray(col.is_null().to_numpy(zero_copy_only=False)))[0])
            arr = col.to_numpy(zero_copy_only=False)
            if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t):
                raise CliError(
                    f"{path}: column {name!r} row {i} is missing (null); emix needs finite "
                    "numbers"
                )
            columns.append(np.asarray(arr, dtype=object))
        elif pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t):
            columns.append(np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64))
        else:
            columns.append(np.asarray(col.to_numpy(zero_copy_only=False), dtype=object))
    return Table(path, names, columns)


def check_output(path: str, option: str, suffixes: Sequence[str] | None = None) -> None:
    """Refuse an output path that cannot be written, before any work is done.

    Parameters
    ----------
    path : str
    option : str
        The option that named it (``-o``, ``--plot``), for the message.
    suffixes : sequence of str, optional
        Allowed endings (lower case); any when None.
    """
    if suffixes is not None and not path.lower().endswith(tuple(suffixes)):
        raise CliError(f"{option} {path}: the file name must end in {', '.join(suffixes)}")
    if os.path.isdir(path):
        raise CliError(f"{option} {path} is a directory")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise CliError(f"{option} {path}: no directory {directory}")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise CliError(f"{option} {path}: directory {directory} is not writable")


def _cell(value) -> str:
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if math.isnan(v):
            return "nan"
        # repr is the shortest text that reads back to the same float.
        return repr(v) if math.isfinite(v) else ("inf" if v > 0 else "-inf")
    if isinstance(value, (np.integer, int)):
        return str(int(value))
    return str(value)


def write_csv(path: str, names: Sequence[str], columns: Sequence[np.ndarray]) -> None:
    """Write columns under a header, whole or not at all (:func:`write_atomic`).

    Parameters
    ----------
    path : str
    names : sequence of str, length C
    columns : sequence of ndarray, each of shape (N,)
    """
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(list(names))
    cols = [c.tolist() if isinstance(c, np.ndarray) else list(c) for c in columns]
    for row in zip(*cols):
        writer.writerow([_cell(v) for v in row])
    data = buf.getvalue().encode("utf-8")
    try:
        write_atomic(path, lambda fh: fh.write(data))
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or exc}") from None
