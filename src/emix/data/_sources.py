"""Row-block sources: arrays, ``.npy``, CSV, Parquet and iterables of arrays.

Every source hands out checked host blocks: 2-D, ``n_features`` columns, one float dtype
(float32 kept where the data are float32, float64 otherwise), finite. Checks run on every
pass, so that a file edited between two EM iterations cannot feed a fit silently. Errors
name the file (or ``X``), the column and the row (0-based data row; a CSV's header is not
a row).

Missing values. ``blocks(allow_nan=True)`` (what an estimator with ``missing="em"``
asks for) hands out NaN where a value is missing: NaN in a ``.npy`` file or an array, an
empty CSV cell, a Parquet null. inf is an error either way.
"""

from __future__ import annotations

import csv
import io
import itertools
import os
import re
from collections.abc import Iterator

import numpy as np

from ..exceptions import InputError, NonNumericError

__all__ = [
    "Source",
    "ArraySource",
    "NpySource",
    "CsvSource",
    "ParquetSource",
    "IterableSource",
    "default_block_rows",
    "NPY_SUFFIXES",
    "CSV_SUFFIXES",
    "PARQUET_SUFFIXES",
]

NPY_SUFFIXES = (".npy",)
CSV_SUFFIXES = (".csv", ".tsv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")

# A block of about 16 MiB: large enough that per-block Python overhead (parsing calls,
# checks, one backend pass) is negligible, small enough to bound memory far below data
# that do not fit in it. The E-step still cuts each block into cache-sized pieces. At
# least 131,072 rows, so that the NumPy backend runs each block on its two threads
# (it splits only from 2 x 32,768 rows; one thread calling multi-threaded BLAS was
# measured 8x slower per row on a busy 2-core machine: 1.6 s against 0.2 s for 1e6 x 8
# rows, K=4 full, in 50,000-row against 131,072-row blocks); at most 256 MiB.
_BLOCK_BYTES = 16 << 20
_MAX_BLOCK_BYTES = 256 << 20
_MIN_BLOCK_ROWS = 131_072


def default_block_rows(n_features: int, itemsize: int = 8) -> int:
    """Rows per source block: about 16 MiB, at least 131,072 rows, at most 256 MiB."""
    row = max(int(n_features), 1) * itemsize
    return max(1024, min(max(_MIN_BLOCK_ROWS, _BLOCK_BYTES // row), _MAX_BLOCK_BYTES // row))


def _check_block_rows(block_rows):
    if block_rows is None:
        return None
    if isinstance(block_rows, bool) or not isinstance(block_rows, (int, np.integer)) or block_rows < 1:
        raise InputError(f"block_rows must be a positive integer; got {block_rows!r}")
    return int(block_rows)


def _float_dtype(dtypes) -> np.dtype:
    """float32 when every column is float32 (kept, as in memory), float64 otherwise."""
    dtypes = [np.dtype(d) for d in dtypes]
    if dtypes and all(d == np.float32 for d in dtypes):
        return np.dtype(np.float32)
    return np.dtype(np.float64)


class Source:
    """Rows of a data set, read in blocks, as many times as EM needs them.

    Attributes
    ----------
    label : str
        How messages name the data: the file's path, or ``X``.
    column_names : list of str or None
        Names of the columns the blocks hold (None where the data have none).
    n_features : int
    n_rows : int or None
        Known from the file's metadata or after one full pass; None before that.
    dtype : numpy dtype, float32 or float64
    block_rows : int
        Rows per block read from a file (an iterable's blocks are as given).
    path : str or None
    """

    path: str | None = None

    def __init__(self, label: str, block_rows):
        self.label = label
        self._block_rows = _check_block_rows(block_rows)
        self._n_rows: int | None = None

    # ------------------------------------------------------------------ interface
    @property
    def n_rows(self) -> int | None:
        return self._n_rows

    @property
    def block_rows(self) -> int:
        if self._block_rows is None:
            return default_block_rows(self.n_features, 8)
        return self._block_rows

    def blocks(self, allow_nan: bool = False) -> Iterator[np.ndarray]:
        """A fresh iterator over the data's blocks, each (rows, n_features), checked.

        Parameters
        ----------
        allow_nan : bool, default=False
            Hand out missing values (NaN, empty CSV cells, Parquet nulls) as NaN
            instead of refusing them.

        Raises
        ------
        InputError
            A non-numeric, missing (unless ``allow_nan``) or infinite value (naming the
            column and row), a block of the wrong width, or data that changed since the
            first pass.
        """
        return self._checked(self._raw_blocks(allow_nan=allow_nan), allow_nan)

    def count_rows(self) -> int:
        """``n_rows``, reading the data once when no metadata give it."""
        if self._n_rows is None:
            for _ in self.blocks():
                pass
        return self._n_rows

    def describe_column(self, j: int) -> str:
        names = self.column_names
        return f"column {names[j]!r}" if names is not None else f"column {j}"

    def __repr__(self) -> str:
        rows = "?" if self._n_rows is None else self._n_rows
        return f"{type(self).__name__}({self.label!r}, rows={rows}, columns={self.n_features})"

    # ------------------------------------------------------------------ internals
    def _raw_blocks(self, allow_nan: bool = False) -> Iterator[np.ndarray]:  # pragma: no cover
        raise NotImplementedError

    def _begin_pass(self) -> None:
        """Hook run before a pass reads anything (files check they are unchanged)."""

    def _end_pass(self) -> None:
        """Hook run after the last block of a complete pass."""

    def _checked(self, raw, allow_nan: bool = False) -> Iterator[np.ndarray]:
        self._begin_pass()
        D, dtype = self.n_features, self.dtype
        offset = 0
        for block in raw:
            if block.ndim == 1 and D == 1:
                block = block.reshape(-1, 1)
            if block.ndim != 2 or block.shape[1] != D:
                raise InputError(
                    f"{self.label}: the block starting at row {offset} has shape "
                    f"{tuple(block.shape)}; every block needs {D} column(s), as the first"
                )
            if block.shape[0] == 0:
                continue
            if block.dtype != dtype:
                block = block.astype(dtype)
            ok = np.isfinite(block)
            if not ok.all():
                if allow_nan:
                    self._check_no_inf(block, offset)
                    offset += block.shape[0]
                    yield block
                    continue
                i, j = (int(v) for v in np.argwhere(~ok)[0])
                raise InputError(
                    f"{self.label}: {self.describe_column(j)} row {offset + i} holds "
                    f"{block[i, j]} (a missing or empty cell reads as nan); emix needs "
                    "finite numbers"
                )
            offset += block.shape[0]
            yield block
        self._end_pass()
        if self._n_rows is None:
            self._n_rows = offset
        elif offset != self._n_rows:
            raise InputError(
                f"{self.label} changed between passes: this pass read {offset} rows, the "
                f"first {self._n_rows}; a fit needs the same data at every iteration"
            )

    def _check_no_inf(self, block: np.ndarray, offset: int) -> None:
        """inf is never a missing value: an error naming the first such cell."""
        inf = np.isinf(block)
        if inf.any():
            i, j = (int(v) for v in np.argwhere(inf)[0])
            raise InputError(
                f"{self.label}: {self.describe_column(j)} row {offset + i} holds "
                f"{block[i, j]}; inf is not a missing value: replace it with NaN (an empty "
                "cell) to have it treated as missing, or remove the row"
            )

    def _resolve_columns(self, columns, names, n_cols: int) -> list[int] | None:
        """Positions of ``columns`` (names or positions) among ``n_cols`` columns."""
        if columns is None:
            return None
        if isinstance(columns, (str, int, np.integer)):
            columns = [columns]
        out = []
        for c in columns:
            if isinstance(c, str):
                if names is None:
                    raise InputError(
                        f"{self.label} has no column names, so columns cannot name {c!r}; "
                        "give positions"
                    )
                if c not in names:
                    shown = ", ".join(repr(n) for n in list(names)[:12])
                    more = f", ... ({len(names)} in all)" if len(names) > 12 else ""
                    raise InputError(f"{self.label} has no column {c!r} (columns: {shown}{more})")
                out.append(list(names).index(c))
            elif isinstance(c, (int, np.integer)) and not isinstance(c, bool) and 0 <= c < n_cols:
                out.append(int(c))
            else:
                raise InputError(
                    f"columns must hold names or positions in 0..{n_cols - 1} of {self.label}; "
                    f"got {c!r}"
                )
        if len(set(out)) != len(out):
            raise InputError(f"columns repeats a column: {list(columns)}")
        if not out:
            raise InputError("columns is empty: choose at least one column")
        return out


class _FileSource(Source):
    """A file: its size and modification time are checked at every pass."""

    def __init__(self, path, block_rows):
        path = os.fspath(path)
        super().__init__(path, block_rows)
        self.path = path
        if os.path.isdir(path):
            raise InputError(f"{path} is a directory, not a data file")
        if not os.path.exists(path):
            raise InputError(f"{path}: no such file")
        if not os.access(path, os.R_OK):
            raise InputError(f"{path}: permission denied (the file is not readable)")
        self._signature = self._stat()

    def _stat(self):
        try:
            st = os.stat(self.path)
        except OSError as exc:
            raise InputError(f"{self.path} cannot be read any more: {exc.strerror or exc}") from None
        return (st.st_size, st.st_mtime_ns)

    def _check_unchanged(self) -> None:
        now = self._stat()
        if now != self._signature:
            what = (
                f"its size went from {self._signature[0]} to {now[0]} bytes"
                if now[0] != self._signature[0]
                else "its modification time changed"
            )
            raise InputError(
                f"{self.path} changed while emix was reading it ({what}); a fit or "
                "prediction over a file needs it unchanged from the first pass to the last"
            )

    _begin_pass = _check_unchanged
    _end_pass = _check_unchanged


# --------------------------------------------------------------------------- arrays
class ArraySource(Source):
    """An array (or DataFrame) in memory, served in blocks of ``block_rows`` rows."""

    def __init__(self, X, columns=None, block_rows=None, label: str = "X"):
        super().__init__(label, block_rows)
        from .._validation import check_array, column_names

        names = column_names(X)
        if names is not None and columns is not None:
            # Select by name before conversion, so non-numeric columns left out do not fail.
            pos = self._resolve_columns(columns, list(names), len(names))
            X = X.iloc[:, pos]
            names = names[pos]
            columns = None
        from .._validation import allow_nan

        # NaN is checked on every pass, as the estimator's ``missing`` rule asks; inf
        # is refused here already.
        with allow_nan():
            arr, names = check_array(X, name=label)
        pos = self._resolve_columns(columns, None if names is None else list(names), arr.shape[1])
        if pos is not None:
            arr = arr[:, pos]
        self._X = arr
        self.column_names = None if names is None else [str(n) for n in names]
        self.n_features = arr.shape[1]
        self.dtype = arr.dtype
        self._n_rows = arr.shape[0]

    def _raw_blocks(self, allow_nan=False):
        X, b = self._X, self.block_rows
        for a in range(0, X.shape[0], b):
            yield X[a : a + b]


# --------------------------------------------------------------------------- .npy
class NpySource(_FileSource):
    """A ``.npy`` file, memory-mapped (``np.load(mmap_mode="r")``): only the block being
    read is paged in."""

    def __init__(self, path, columns=None, block_rows=None):
        super().__init__(path, block_rows)
        arr = self._open()
        if arr.dtype.names is not None:
            raise InputError(
                f"{self.path} holds a structured array (fields {list(arr.dtype.names)}); "
                "emix reads plain numeric .npy files"
            )
        if arr.dtype.kind not in "biuf":
            raise NonNumericError(f"{self.path} has dtype {arr.dtype}, which is not numeric")
        if arr.ndim not in (1, 2):
            raise InputError(f"{self.path} holds an array of shape {arr.shape}; emix reads 1-D or 2-D")
        width = 1 if arr.ndim == 1 else arr.shape[1]
        self._pos = self._resolve_columns(columns, None, width)
        self.column_names = None
        self.n_features = width if self._pos is None else len(self._pos)
        self.dtype = _float_dtype([arr.dtype])
        self._n_rows = arr.shape[0]

    def _open(self):
        try:
            return np.load(self.path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise InputError(f"{self.path} is not a readable .npy file: {exc}") from None

    def _raw_blocks(self, allow_nan=False):
        arr = self._open()
        if arr.shape[0] != self._n_rows:
            raise InputError(
                f"{self.path} changed between passes: it now holds {arr.shape[0]} rows, "
                f"the first pass read {self._n_rows}"
            )
        if arr.ndim == 1:
            arr = arr.reshape(-1, 1)
        b = self.block_rows
        for a in range(0, arr.shape[0], b):
            blk = arr[a : a + b]
            # Copy out of the map: the block must outlive a file replaced under it, and
            # the cast is a copy anyway for anything but matching floats.
            yield np.array(blk if self._pos is None else blk[:, self._pos], dtype=self.dtype)


# --------------------------------------------------------------------------- CSV
def _sniff_delimiter(first_line: str) -> str:
    if "," in first_line:
        return ","
    for candidate in ("\t", ";"):
        if candidate in first_line:
            return candidate
    return ","


class CsvSource(_FileSource):
    """A CSV file with a header line of column names, parsed ``block_rows`` rows at a time.

    Parameters
    ----------
    engine : {None, 'pandas', 'numpy'}
        pandas' C parser when pandas is installed (about 3x faster than NumPy's
        ``loadtxt`` on 8 float columns: 0.7 s against 2.0 s for 400,000 rows, measured
        on the CI machine); NumPy otherwise.
    delimiter : str, optional
        Comma, or tab or semicolon when the header holds one and no comma.
    """

    def __init__(self, path, columns=None, block_rows=None, engine=None, delimiter=None):
        super().__init__(path, block_rows)
        if engine is None:
            try:
                import pandas  # noqa: F401

                engine = "pandas"
            except ImportError:  # pragma: no cover - pandas is in the test extra
                engine = "numpy"
        if engine not in ("pandas", "numpy"):
            raise InputError(f"engine must be 'pandas' or 'numpy'; got {engine!r}")
        self.engine = engine
        header, self._header_lines = self._read_header()
        self._delimiter = delimiter or _sniff_delimiter(header)
        names = [h.strip() for h in next(csv.reader([header], delimiter=self._delimiter))]
        for j, name in enumerate(names):
            if name == "":
                raise InputError(f"{self.path}: column {j + 1} of the header has no name")
            if name in names[:j]:
                raise InputError(f"{self.path}: the header names column {name!r} twice")
        self._all_names = names
        pos = self._resolve_columns(columns, names, len(names))
        self._pos = list(range(len(names))) if pos is None else pos
        self.column_names = [names[j] for j in self._pos]
        self.n_features = len(self._pos)
        self.dtype = np.dtype(np.float64)

    def _open_text(self):
        try:
            return open(self.path, encoding="utf-8-sig", newline="")
        except OSError as exc:
            raise InputError(f"cannot read {self.path}: {exc.strerror or exc}") from None

    def _read_header(self):
        try:
            with self._open_text() as fh:
                for n, line in enumerate(fh, start=1):
                    if line.strip():
                        return line.rstrip("\r\n"), n
        except UnicodeDecodeError as exc:
            raise InputError(
                f"{self.path} is not a UTF-8 text (CSV) file: {exc.reason} at byte {exc.start}"
            ) from None
        raise InputError(f"{self.path} is empty: a CSV file needs a header line of column names")

    def _raw_blocks(self, allow_nan=False):
        try:
            if self.engine == "pandas":
                yield from self._pandas_blocks()
            else:
                yield from self._numpy_blocks(allow_nan)
        except UnicodeDecodeError as exc:
            raise InputError(
                f"{self.path} is not a UTF-8 text (CSV) file: {exc.reason}"
            ) from None

    # pandas ---------------------------------------------------------------
    def _pandas_blocks(self):
        import pandas as pd

        # All columns are parsed (not usecols) so that a row with too many fields is an
        # error rather than silently shifted; index_col=False stops pandas from taking
        # the first column as an index when the rows are longer than the header.
        try:
            reader = pd.read_csv(
                self.path, sep=self._delimiter, chunksize=self.block_rows, header=0,
                skiprows=self._header_lines - 1, index_col=False, encoding="utf-8-sig",
                skipinitialspace=True, low_memory=False,
            )
            offset = 0
            with reader:
                for chunk in reader:
                    yield self._pandas_numeric(chunk, offset)
                    offset += len(chunk)
        except pd.errors.ParserError as exc:
            raise self._parser_error(str(exc)) from None
        except pd.errors.EmptyDataError:
            return

    def _parser_error(self, text: str) -> InputError:
        m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", text)
        if m:
            line = int(m.group(2)) + self._header_lines - 1
            return InputError(
                f"{self.path}, line {line}: {m.group(3)} fields, but the header has "
                f"{len(self._all_names)} (ragged rows)"
            )
        first = text.strip().splitlines()[0] if text.strip() else "unreadable"
        return InputError(f"{self.path} is not valid CSV: {first}")

    def _pandas_numeric(self, chunk, offset: int) -> np.ndarray:
        if chunk.shape[1] != len(self._all_names):
            raise InputError(
                f"{self.path}: rows from row {offset} have {chunk.shape[1]} fields, but the "
                f"header has {len(self._all_names)} (ragged rows)"
            )
        out = np.empty((len(chunk), self.n_features), dtype=np.float64)
        for j, p in enumerate(self._pos):
            col = chunk.iloc[:, p]
            if col.dtype.kind in "biuf":
                out[:, j] = col.to_numpy(dtype=np.float64, na_value=np.nan)
            else:
                values = col.to_numpy(dtype=object)
                out[:, j] = self._to_float(values, j, offset)
        return out

    def _to_float(self, values: np.ndarray, j: int, offset: int) -> np.ndarray:
        try:
            return values.astype(np.float64)
        except (TypeError, ValueError):
            for i, v in enumerate(values):
                try:
                    float(v)
                except (TypeError, ValueError):
                    shown = "an empty cell" if str(v).strip() == "" else repr(v)
                    raise NonNumericError(
                        f"{self.path}: {self.describe_column(j)} is not numeric: row "
                        f"{offset + i} holds {shown}. Choose numeric columns with columns=[...]"
                    ) from None
            raise  # pragma: no cover - a column fails only through a cell

    # numpy ----------------------------------------------------------------
    def _numpy_blocks(self, allow_nan=False):
        n_all = len(self._all_names)
        with self._open_text() as fh:
            for _ in range(self._header_lines):
                next(fh)
            line_no = self._header_lines
            offset = 0
            while True:
                raw = list(itertools.islice(fh, self.block_rows))
                if not raw:
                    return
                lines, numbers = [], []
                for k, line in enumerate(raw, start=line_no + 1):
                    if line.strip():
                        lines.append(line)
                        numbers.append(k)
                line_no += len(raw)
                if not lines:
                    continue
                yield self._numpy_parse(lines, numbers, offset, n_all, allow_nan)
                offset += len(lines)

    def _numpy_parse(self, lines, numbers, offset, n_all, allow_nan=False) -> np.ndarray:
        try:
            block = np.loadtxt(
                lines, delimiter=self._delimiter, dtype=np.float64, ndmin=2,
                comments=None, quotechar='"',
            )
        except ValueError:
            block = None
        if block is not None and block.shape[1] == n_all:
            return block[:, self._pos]
        # Slow path, only to name the line and column of the problem.
        for i, (line, number) in enumerate(zip(lines, numbers)):
            fields = next(csv.reader(io.StringIO(line), delimiter=self._delimiter))
            if len(fields) != n_all:
                raise InputError(
                    f"{self.path}, line {number}: {len(fields)} fields, but the header has "
                    f"{n_all} (ragged rows)"
                )
            for j, p in enumerate(self._pos):
                if allow_nan and fields[p].strip() == "":
                    continue  # an empty cell is a missing value
                try:
                    float(fields[p])
                except ValueError:
                    shown = "an empty cell" if fields[p].strip() == "" else repr(fields[p].strip())
                    raise NonNumericError(
                        f"{self.path}: {self.describe_column(j)} is not numeric: row "
                        f"{offset + i} (line {number}) holds {shown}. Choose numeric "
                        "columns with columns=[...]"
                    ) from None
        # A bad cell in a column that is not read, or empty cells: parse the chosen
        # columns only, an empty cell as NaN (missing).
        rows = [next(csv.reader(io.StringIO(line), delimiter=self._delimiter)) for line in lines]
        return np.array([[_cell(r[p]) for p in self._pos] for r in rows], dtype=np.float64)


def _cell(text: str) -> float:
    return float("nan") if text.strip() == "" else float(text)


# --------------------------------------------------------------------------- Parquet
class ParquetSource(_FileSource):
    """A Parquet file read by batches of ``block_rows`` rows (needs pyarrow)."""

    def __init__(self, path, columns=None, block_rows=None):
        super().__init__(path, block_rows)
        pq, pa = _pyarrow(self.path)
        try:
            pf = pq.ParquetFile(self.path)
        except (pa.ArrowException, OSError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(f"{self.path} is not a readable Parquet file: {first}") from None
        schema = pf.schema_arrow
        names = [str(n) for n in schema.names]
        if not names:
            raise InputError(f"{self.path} has no columns")
        pos = self._resolve_columns(columns, names, len(names))
        pos = list(range(len(names))) if pos is None else pos
        self.column_names = [names[p] for p in pos]
        self.n_features = len(pos)
        dtypes = []
        for name in self.column_names:
            t = schema.field(name).type
            if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)):
                raise NonNumericError(
                    f"{self.path}: column {name!r} is not numeric (Parquet type {t}). Choose "
                    "numeric columns with columns=[...]"
                )
            dtypes.append(np.float32 if pa.types.is_float32(t) else np.float64)
        self.dtype = _float_dtype(dtypes)
        self._n_rows = int(pf.metadata.num_rows)

    def _raw_blocks(self, allow_nan=False):
        pq, pa = _pyarrow(self.path)
        try:
            # pre_buffer (pyarrow's default) reads ahead the column chunks of every row
            # group the iterator will visit: the whole file (measured: 2.3 GB resident for
            # a 2 GB file). Unbuffered reads in 4 MiB pieces keep memory to a batch.
            pf = pq.ParquetFile(self.path, pre_buffer=False, buffer_size=1 << 22)
            offset = 0
            for batch in pf.iter_batches(batch_size=self.block_rows, columns=self.column_names):
                out = np.empty((batch.num_rows, self.n_features), dtype=self.dtype)
                for j, col in enumerate(batch.columns):
                    if col.null_count and allow_nan:
                        # A null is a missing value: NaN once the column is float64.
                        out[:, j] = col.cast(pa.float64()).to_numpy(zero_copy_only=False)
                        continue
                    if col.null_count:
                        i = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
                        raise InputError(
                            f"{self.path}: column {self.column_names[j]!r} row {offset + i} is "
                            "missing (null); emix needs finite numbers"
                        )
                    out[:, j] = col.to_numpy(zero_copy_only=False)
                offset += batch.num_rows
                yield out
        except (pa.ArrowException, OSError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(f"{self.path} could not be read: {first}") from None


def _pyarrow(path):
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError(f"reading {path} needs pyarrow: pip install 'emix[parquet]'") from None
    return pq, pa


# --------------------------------------------------------------------------- iterables
class IterableSource(Source):
    """Blocks from an iterable of arrays, or from a callable returning a fresh iterator.

    EM reads the data once per iteration: a callable is called, and a re-iterable (a
    list of arrays, an object whose ``__iter__`` starts over) is iterated, once per pass.
    A one-shot iterator (a generator) can be read once only; a second pass is an error
    that says so. Blocks are used as given (any number of rows each); 1-D blocks are one
    column; DataFrame blocks give the column names.
    """

    def __init__(self, obj, columns=None, label: str = "X"):
        super().__init__(label, None)
        self._obj = obj
        self._one_shot = not callable(obj) and iter(obj) is obj
        self._used = False
        self._columns = columns
        self._peeked = None
        first = self._peek()
        if first is None:
            raise InputError(f"{label} yielded no blocks: there are no rows to read")
        self.n_features = first.shape[1]
        self.dtype = _float_dtype([first.dtype])

    @property
    def block_rows(self) -> int:
        return 0

    def _iterator(self):
        if self._one_shot:
            if self._used:
                raise InputError(
                    f"{self.label} is a one-shot iterator that was already read; EM reads "
                    "the data once per iteration: pass a callable returning a fresh iterator "
                    "(e.g. lambda: my_blocks(path)) or a list of arrays"
                )
            self._used = True
            return self._obj
        it = self._obj() if callable(self._obj) else iter(self._obj)
        try:
            return iter(it)
        except TypeError:
            raise InputError(
                f"{self.label}: the callable returned {type(it).__name__}, not an iterator of arrays"
            ) from None

    def _convert(self, block, index: int) -> np.ndarray:
        from .._validation import column_names

        names = column_names(block)
        if index == 0 and not hasattr(self, "column_names"):
            self._all_names = None if names is None else [str(n) for n in names]
        if hasattr(block, "dtypes") and hasattr(block, "to_numpy"):
            for j, dt in enumerate(block.dtypes):
                if getattr(dt, "kind", "O") not in "biuf":
                    raise NonNumericError(
                        f"{self.label}: block {index} column {block.columns[j]!r} is not "
                        f"numeric (dtype {dt})"
                    )
            block = block.to_numpy()
        try:
            arr = np.asarray(block)
        except (TypeError, ValueError) as exc:
            raise InputError(f"{self.label}: block {index} cannot be read as an array: {exc}") from None
        if arr.dtype.kind not in "biuf":
            raise NonNumericError(f"{self.label}: block {index} has dtype {arr.dtype}, which is not numeric")
        if arr.ndim == 1:
            arr = arr.reshape(-1, 1)
        if arr.ndim != 2:
            raise InputError(f"{self.label}: block {index} has shape {arr.shape}; blocks must be 2-D")
        if self._pos is not None:
            if arr.shape[1] != self._width:
                raise InputError(
                    f"{self.label}: block {index} has {arr.shape[1]} columns, the first "
                    f"{self._width}"
                )
            arr = arr[:, self._pos]
        return arr

    def _peek(self):
        self._pos = None
        it = self._iterator()
        for first in it:
            break
        else:
            return None
        arr = self._convert(first, 0)
        self._width = arr.shape[1]
        pos = self._resolve_columns(self._columns, self._all_names, self._width)
        if pos is not None:
            self._pos = pos
            arr = arr[:, pos]
        self.column_names = (
            None if self._all_names is None
            else [self._all_names[p] for p in (pos or range(self._width))]
        )
        # A one-shot iterator's first pass must still see the block taken here.
        self._peeked = (arr, it) if self._one_shot else None
        return arr

    def _raw_blocks(self, allow_nan=False):
        if self._peeked is not None:
            first, it = self._peeked
            self._peeked = None
            yield first
            index0 = 1
        else:
            it = self._iterator()
            index0 = 0
        for i, block in enumerate(it, start=index0):
            yield self._convert(block, i)
