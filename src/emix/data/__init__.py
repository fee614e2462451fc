"""Data that do not fit in memory: sources of row blocks, read once per EM iteration.

``fit``, ``score``, ``score_samples``, ``predict`` and ``predict_proba`` of
:class:`emix.GaussianMixture` and :class:`emix.MixtureModel` accept a path or a
:class:`Source` in place of an array::

    gm = emix.GaussianMixture(8).fit("ticks.parquet")
    gm.fit(emix.data.source("ticks.csv", columns=["bid", "ask"], block_rows=200_000))
    gm.predict("ticks.parquet", out="labels.csv")      # written in blocks, atomically

Because the E-step returns additive statistics, a fit over a file is the same algorithm
as in memory with a different loop: every iteration reads the blocks once, runs the
ordinary backend pass on each and adds their statistics, so memory is bounded by the
block size whatever the file size. From the same starting parameters the answer equals
the in-memory fit's up to round-off.

What a fit reads, in passes over the data:

1. the column summary (rows, weighted means and variances combined across blocks with
   Chan's parallel formula, minima, maxima), checking every value on the way;
2. the start: ``kmeans``/``k-means++``/``ward`` draw the same seeded sample of at most
   ``emix.em.init.KMEANS_MAX_ROWS`` (100,000) row indices as an in-memory fit of the
   same data would (a uniform sample without replacement; Ward's systematic one), read
   those rows in one pass, run k-means++/k-means on them, and then one pass assigns every
   row to its nearest centre; ``random`` responsibilities are generated block by block
   from the seeded stream (equal to the in-memory ones for NumPy's PCG64/Philox
   generators);
3. one pass per EM iteration.

Files are checked at every pass: a file whose size or modification time changed since
the first pass, or that yields a different number of rows, stops the fit with an
:class:`emix.InputError` and leaves the model as it was.

Missing values. With the estimators' ``missing="em"`` (the default) a NaN in a ``.npy``
file or an array, an empty CSV cell and a Parquet null are missing values, fitted as in
memory (exact EM for incomplete data; the same parameters up to round-off): the column
summary is taken over each column's observed values, rows with every value missing are
counted over the whole pass and left out of a mixture's fit with one warning, a
GaussianMixture groups each block's incomplete rows by missingness pattern, and the
start sees the same rows with the same missing cells. inf is always an error naming the
file, column and row; ``missing="error"`` keeps NaN an error. Dask arrays are read the
same way, block by block on the workers. ``Source.blocks()`` itself refuses NaN unless
asked with ``blocks(allow_nan=True)``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np

from ..exceptions import InputError
from ._sources import (
    CSV_SUFFIXES,
    NPY_SUFFIXES,
    PARQUET_SUFFIXES,
    ArraySource,
    CsvSource,
    IterableSource,
    NpySource,
    ParquetSource,
    Source,
    default_block_rows,
)

__all__ = [
    "source",
    "is_source_like",
    "Source",
    "ArraySource",
    "NpySource",
    "CsvSource",
    "ParquetSource",
    "IterableSource",
    "default_block_rows",
]


def source(data, columns=None, block_rows=None, **options) -> Source:
    """A :class:`Source` of row blocks over ``data``.

    Parameters
    ----------
    data : path, ndarray, DataFrame, iterable of arrays, callable or Source
        * a path: ``.npy`` (memory-mapped), ``.csv``/``.tsv``/``.txt`` (a header line of
          column names), ``.parquet``/``.pq`` (needs pyarrow);
        * an array (N, D) or DataFrame in memory (blocks are views of it);
        * a list or tuple of 2-D arrays, any other iterable of arrays, or a callable
          returning a fresh iterator of arrays (one call per pass: the way to stream
          from a reader of your own). A one-shot iterator can be read only once, which
          a fit cannot do.
        * a Source (returned as it is when nothing else is given).
    columns : list of str or int, optional
        The columns to read, by name (CSV and Parquet headers, DataFrame columns) or
        position, in this order. All by default.
    block_rows : int, optional
        Rows per block read from a file or array (default: about 16 MiB of float64 per
        block, at least 131,072 rows, see :func:`default_block_rows`). An iterable's
        blocks are used as given.
    **options
        ``engine`` and ``delimiter`` for CSV (see :class:`CsvSource`).

    Returns
    -------
    Source
    """
    if isinstance(data, Source):
        if columns is not None or block_rows is not None or options:
            raise InputError("source(): a Source already has its columns and block size")
        return data
    if isinstance(data, (str, os.PathLike)):
        path = os.fspath(data)
        if os.path.isdir(path):
            raise InputError(f"{path} is a directory, not a data file")
        if not os.path.exists(path):
            raise InputError(f"{path}: no such file")
        low = path.lower()
        if low.endswith(NPY_SUFFIXES):
            src = NpySource(path, columns, block_rows)
        elif low.endswith(PARQUET_SUFFIXES):
            src = ParquetSource(path, columns, block_rows)
        elif low.endswith(CSV_SUFFIXES):
            return CsvSource(path, columns, block_rows, **options)
        else:
            raise InputError(
                f"{path}: unknown kind of data file; emix reads "
                f"{', '.join(NPY_SUFFIXES + CSV_SUFFIXES + PARQUET_SUFFIXES)}"
            )
        _no_options(options)
        return src
    _no_options(options)
    if callable(data) and not _is_array_like(data):
        return IterableSource(data, columns)
    if isinstance(data, (list, tuple)) and data and all(
        _is_array_like(b) and np.ndim(b) == 2 for b in data
    ):
        return IterableSource(data, columns)
    if _is_array_like(data) or isinstance(data, (list, tuple)):
        return ArraySource(data, columns, block_rows)
    if isinstance(data, Iterable):
        return IterableSource(data, columns)
    raise InputError(
        f"cannot read {type(data).__name__} as data: give a path, an array, an iterable "
        "of arrays or a callable returning one"
    )


def _no_options(options):
    if options:
        raise InputError(f"source(): options {sorted(options)} apply to CSV files only")


def _is_array_like(x) -> bool:
    return isinstance(x, np.ndarray) or (hasattr(x, "dtypes") and hasattr(x, "to_numpy")) or (
        hasattr(x, "__array__") and hasattr(x, "shape")
    )


def is_source_like(X) -> bool:
    """Whether an estimator should read ``X`` in blocks: a Source or a path."""
    return isinstance(X, (Source, str, os.PathLike))
