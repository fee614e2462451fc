"""Estimators over sources: a backend whose passes loop over a source's blocks.

:class:`StreamingBackend` has the interface the estimators already use
(``validate``, ``column_summary``, ``take_rows``, ``stats_pass``, ``map_rows``), so
``GaussianMixture`` and ``MixtureModel`` run the same EM problem over a file as over an
array: each ``stats_pass`` reads the source once, runs the ordinary backend's pass on
every block (NumPy, or torch with ``device=``) and adds the blocks' float64
accumulators, which is adding their statistics. Kernels see global row numbers (a kernel
driven by given responsibilities asks for rows ``start:stop`` of the whole data). Like
every backend, this module imports no family and no model.

Predictions over a source loop over its blocks with the estimator's in-memory
``_log_joint`` and either gather the (small) per-row results or write them to a file
block by block.

Missing values. Validated inside :func:`emix._validation.allow_nan` (an estimator with
``missing="em"``), a source hands out NaN for missing values and every pass reads it so;
the column summary is then taken over each column's observed values, :meth:`StreamingBackend.check_missing`
finds the rows with every value missing (counted over the whole pass, as in memory),
:meth:`~StreamingBackend.drop_rows` leaves them out, :meth:`~StreamingBackend.fill_missing`
gives the data with NaN set per column (the starts), and :meth:`~StreamingBackend.block_pass`
runs a model's own function on every block (the Gaussian pass over rows grouped by
missingness pattern). inf stays an error naming file, column and row.
"""

from __future__ import annotations

import os
import re
import warnings

import numpy as np

from .._validation import _NAN_ALLOWED, _col_label, allow_nan, describe_positions
from ..exceptions import InputError
from ._sources import Source

__all__ = [
    "SourceData",
    "StreamingBackend",
    "resolve_data_backend",
    "is_streaming",
    "random_resp",
    "initial_family_stats",
    "check_support_blocks",
    "predict_stream",
    "n_rows_of",
    "sequence_missing",
    "n_observed_rows_of",
]


class _View(Source):
    """Another source seen differently (some columns, some rows, NaN filled): what the
    views share is read from the parent; each view overrides what it changes."""

    def __init__(self, parent: Source):
        self._parent = parent
        self.label = parent.label
        self.path = parent.path
        self.n_features = parent.n_features
        self.dtype = parent.dtype
        self.column_names = parent.column_names

    @property
    def n_rows(self):
        return self._parent.n_rows

    @property
    def block_rows(self):
        return self._parent.block_rows

    def count_rows(self):
        return self._parent.count_rows()

    def describe_column(self, j):
        return self._parent.describe_column(j)


class _ColumnView(_View):
    """Some columns of another source (``MixtureModel(columns=...)``)."""

    def __init__(self, parent: Source, positions, keep_names: bool = True):
        super().__init__(parent)
        self._positions = list(positions)
        self.n_features = len(self._positions)
        names = parent.column_names
        if names is None or not keep_names:
            self.column_names = None
        else:
            self.column_names = [names[p] for p in self._positions]

    def describe_column(self, j):
        return self._parent.describe_column(self._positions[j])

    def blocks(self, allow_nan=False):
        pos = self._positions
        return (b[:, pos] for b in self._parent.blocks(allow_nan=allow_nan))


class _RowsView(_View):
    """Another source without some of its rows (those with every value missing).

    Parameters
    ----------
    parent : Source
    drop : ndarray of int, sorted
        Rows of ``parent`` (numbered as in the whole source) to leave out.
    n_rows : int
        Rows kept.
    """

    def __init__(self, parent: Source, drop, n_rows: int):
        super().__init__(parent)
        self._drop = np.asarray(drop, dtype=np.int64)
        self._kept = int(n_rows)

    @property
    def n_rows(self):
        return self._kept

    def count_rows(self):
        return self._kept

    def blocks(self, allow_nan=False):
        offset = 0
        d = self._drop
        for b in self._parent.blocks(allow_nan=allow_nan):
            n = b.shape[0]
            lo, hi = np.searchsorted(d, [offset, offset + n])
            offset += n
            if hi > lo:
                keep = np.ones(n, dtype=bool)
                keep[d[lo:hi] - (offset - n)] = False
                b = b[keep]
                if b.shape[0] == 0:
                    continue
            yield b


class _FilledView(_View):
    """Another source with every missing value (NaN) set to its column's ``values``."""

    def __init__(self, parent: Source, values):
        super().__init__(parent)
        self._values = np.asarray(values, dtype=parent.dtype)

    def blocks(self, allow_nan=False):
        for b in self._parent.blocks(allow_nan=True):
            yield np.where(np.isnan(b), self._values, b)


class SourceData:
    """What an estimator holds in place of an array when it reads a source.

    Attributes
    ----------
    source : Source
    shape : (N, D)
    dtype : numpy dtype
    summary : dict or None
        The unweighted column summary, kept from the pass that counted the rows.
    allow_nan : bool
        Whether passes read missing values as NaN (the estimator's ``missing="em"``)
        rather than refusing them.
    """

    ndim = 2

    def __init__(self, src: Source, n_rows: int, summary=None, allow_nan: bool = False):
        self.source = src
        self.shape = (int(n_rows), int(src.n_features))
        self.dtype = src.dtype
        self.summary = summary
        self.allow_nan = bool(allow_nan)
        # (n_nan, all-missing rows) found by the pass that made ``summary``.
        self.missing_scan = None

    def blocks(self):
        """The source's blocks, NaN read as the estimator's rule says."""
        return self.source.blocks(allow_nan=self.allow_nan)

    def __getitem__(self, key):
        # Only the column selection MixtureModel makes: X[:, [positions]]. Like an
        # array's columns, the selection carries no names (the model keeps them).
        if not (isinstance(key, tuple) and len(key) == 2 and key[0] == slice(None)):
            raise TypeError("a source can only be indexed by columns: X[:, [j, ...]]")
        return SourceData(_ColumnView(self.source, key[1], keep_names=False), self.shape[0],
                          allow_nan=self.allow_nan)

    def __repr__(self) -> str:
        return f"SourceData({self.source!r})"


def is_streaming(X) -> bool:
    return isinstance(X, SourceData)


def _as_source(X) -> Source:
    if isinstance(X, SourceData):
        return X.source
    from . import source

    return source(X)


def resolve_data_backend(X, device=None):
    """The backend for ``X``: a :class:`StreamingBackend` for a path, Source or
    SourceData, else :func:`emix.backends.resolve_backend`'s."""
    from ..backends import resolve_backend
    from . import is_source_like

    from ._dask import DaskData, is_dask

    if isinstance(X, DaskData) or is_dask(X):
        # Dask: per-block passes on the workers (emix.data._dask).
        from ._dask import DaskBackend

        return DaskBackend(resolve_backend(None, device))
    if is_source_like(X) or isinstance(X, SourceData):
        return StreamingBackend(resolve_backend(None, device))
    return resolve_backend(X, device)


# --------------------------------------------------------------------------- summaries
class _Summary:
    """Weighted column moments combined across blocks (Chan, Golub and LeVeque's
    parallel formula: each block's mean and centred sum of squares, merged pairwise, so
    no sum of squares of raw values cancels).

    Each column has its own weight total, that of its observed values: a block with
    missing values (NaN) adds each column's observed values only. Blocks without NaN
    take the same arithmetic as before missing values existed, so complete data give
    the same numbers bit for bit. The rows with every value missing and the number of
    missing cells are counted on the way.

    Parameters
    ----------
    D : int
    offset : int
        The global number of the first row this summary will see.
    """

    def __init__(self, D: int, offset: int = 0):
        self.n = 0
        self.offset = int(offset)
        self.W = np.zeros(D)
        self.mean = np.zeros(D)
        self.m2 = np.zeros(D)
        self.lo = np.full(D, np.inf)
        self.hi = np.full(D, -np.inf)
        self.n_nan = 0
        self.all_missing: list = []

    def add(self, Xb: np.ndarray, wb) -> None:
        Z = Xb.astype(np.float64, copy=False)
        row0 = self.offset + self.n
        self.n += Z.shape[0]
        nan = np.isnan(Z)
        if nan.any():
            return self._add_missing(Z, wb, nan, row0)
        self.lo = np.minimum(self.lo, Z.min(axis=0))
        self.hi = np.maximum(self.hi, Z.max(axis=0))
        Wb = float(Z.shape[0]) if wb is None else float(np.sum(wb, dtype=np.float64))
        if Wb <= 0:
            return
        mb = (Z.sum(axis=0) if wb is None else wb @ Z) / Wb
        C = Z - mb
        m2b = np.einsum("nd,nd->d", C, C) if wb is None else wb @ (C * C)
        self._merge(Wb, mb, m2b)

    def _merge(self, Wb, mb, m2b) -> None:
        W = self.W + Wb
        delta = mb - self.mean
        pos = W > 0
        safe = np.where(pos, W, 1.0)
        self.mean = np.where(pos, self.mean + delta * (Wb / safe), self.mean)
        self.m2 = np.where(pos, self.m2 + m2b + delta * delta * (self.W * Wb / safe), self.m2)
        self.W = W

    def _add_missing(self, Z, wb, nan, row0) -> None:
        O = ~nan
        self.n_nan += int(nan.sum())
        allm = np.flatnonzero(nan.all(axis=1))
        if allm.size:
            self.all_missing.append(allm + row0)
        self.lo = np.minimum(self.lo, np.where(O, Z, np.inf).min(axis=0))
        self.hi = np.maximum(self.hi, np.where(O, Z, -np.inf).max(axis=0))
        w = np.ones(Z.shape[0]) if wb is None else np.asarray(wb, dtype=np.float64)
        Wb = w @ O  # (D,): the weight of each column's observed values
        has = Wb > 0
        mb = np.where(has, (w @ np.where(O, Z, 0.0)) / np.where(has, Wb, 1.0), 0.0)
        C = np.where(O, Z - mb, 0.0)
        self._merge(Wb, mb, w @ (C * C))

    def missing_rows(self) -> np.ndarray:
        """Rows (global numbers, sorted) with every value missing, int64."""
        if not self.all_missing:
            return np.zeros(0, dtype=np.int64)
        return np.concatenate(self.all_missing).astype(np.int64)

    def result(self) -> dict:
        pos = self.W > 0
        var = np.where(pos, self.m2 / np.where(pos, self.W, 1.0), 0.0)
        return {"mean": self.mean, "var": np.maximum(var, 0.0), "min": self.lo,
                "max": self.hi, "n": self.n}


def missing_info(summary: _Summary, *, name: str, label: str, column_names, fitting: bool,
                 stacklevel: int):
    """:class:`emix._missing.MissingInfo` of data summarised block by block, with the
    checks and the warning :func:`emix._missing.check_missing` makes in memory.

    Parameters
    ----------
    summary : _Summary
        An unweighted pass over every block (NaN allowed, inf already refused).
    label : str
        How messages name the data (the file's path, or ``X``).
    """
    from .._missing import MissingDataWarning, MissingInfo

    N = summary.n
    drop = summary.missing_rows()
    all_missing = np.zeros(N, dtype=bool)
    all_missing[drop] = True
    n_obs = N - int(drop.size)
    if fitting and summary.n_nan:
        if n_obs == 0:
            raise InputError(f"every value of {label} is missing (NaN): there is nothing to fit")
        if drop.size:
            n_all = int(drop.size)
            warnings.warn(
                f"{n_all} row{'s have' if n_all != 1 else ' has'} every value missing and "
                f"{'were' if n_all != 1 else 'was'} ignored ({describe_positions(drop)}"
                f"{'' if label == name else ' of ' + label})",
                MissingDataWarning,
                stacklevel=stacklevel,
            )
        empty = np.flatnonzero(summary.W <= 0)
        if empty.size:
            raise InputError(
                f"{label}: {_col_label(int(empty[0]), column_names)} has no observed value: "
                "nothing can be estimated for it; drop the column"
            )
    return MissingInfo(bool(summary.n_nan), all_missing, n_obs, int(summary.n_nan))


def sequence_missing(backend, X, labels) -> bool:
    """Whether sequences read in blocks (a source or Dask array, read with NaN as a
    missing value) have missing values, with an HMM's checks: data with no observed
    value, or a column with none, are errors; rows with every value missing stay (they
    are time steps). One pass (none when the column summary was already taken).

    Parameters
    ----------
    backend : StreamingBackend or DaskBackend
    X : SourceData or DaskData of shape (T, D)
    labels : column names for messages, or None
    """
    info = backend.check_missing(X, name="X", column_names=labels, fitting=False)
    if not info.any_missing:
        return False
    from .._missing import check_observed

    check_observed(info.n_observed_rows, np.flatnonzero(X.missing_scan.W <= 0),
                   column_names=labels)
    return True


# --------------------------------------------------------------------------- kernels
class _Shifted:
    """A pass kernel seen from one block: its rows numbered as in the whole source."""

    def __init__(self, kernel, offset: int):
        self.kernel = kernel
        self.offset = offset
        self.acc_shapes = kernel.acc_shapes

    def setup(self, ops):
        return self.kernel.setup(ops)

    def block(self, ops, st, Xb, wb, acc, start, stop):
        self.kernel.block(ops, st, Xb, wb, acc, start + self.offset, stop + self.offset)


class StreamingBackend:
    """Passes over a source's blocks, each block run by an in-memory backend.

    Parameters
    ----------
    inner : NumpyBackend or TorchBackend
        Runs each block (a torch backend receives the block as a tensor on its device).
    """

    name = "stream"

    def __init__(self, inner):
        self.inner = inner
        self.device = getattr(inner, "device", None)

    def __repr__(self) -> str:
        return f"StreamingBackend({self.inner!r})"

    # ------------------------------------------------------------------ arrays
    def validate(self, X, *, name="X", min_rows=1, allow_1d=True, n_features=None,
                 estimator_name="the model"):
        """The source behind ``X`` with its row count, and its column names.

        Reads the data once when the row count is not in the file's metadata (a CSV
        file, an iterable), keeping that pass's column summary.

        Returns
        -------
        SourceData, ndarray of str or None
        """
        # Inside emix._validation.allow_nan() (missing="em") passes read NaN.
        nan_ok = _NAN_ALLOWED.get()
        if isinstance(X, SourceData):
            data = X
            if data.allow_nan != nan_ok:
                data = SourceData(X.source, X.shape[0], X.summary, nan_ok)
        else:
            src = _as_source(X)
            if n_features is not None and src.n_features != n_features:
                raise InputError(
                    f"{src.label} has {src.n_features} columns, but {estimator_name} is "
                    f"expecting {n_features} features as input"
                )
            scan = None
            if src.n_rows is None:
                scan = self._scan(src, None, nan_ok)
            data = SourceData(src, src.n_rows, None if scan is None else scan.result(), nan_ok)
            if scan is not None:
                data.missing_scan = scan
        N = data.shape[0]
        if N < min_rows:
            raise InputError(f"{data.source.label} is empty: 0 rows of data")
        names = data.source.column_names
        return data, None if names is None else np.asarray(names, dtype=object)

    def to_numpy(self, a) -> np.ndarray:
        return np.asarray(self.inner.to_numpy(a))

    def asarray_like(self, a, X) -> np.ndarray:
        # Weights stay on the host; each block's slice moves with the block.
        return np.asarray(a)

    def numpy_dtype(self, X) -> np.dtype:
        return np.dtype(X.dtype)

    def ops(self, dtype):
        return self.inner.ops(dtype)

    def _blocks(self, X: SourceData):
        offset = 0
        for Xb in X.blocks():
            yield offset, Xb
            offset += Xb.shape[0]

    def _device(self, Xb, wb):
        if self.inner.name == "numpy":
            return Xb, wb
        # The source checked the block by the estimator's rule (NaN only when allowed).
        with allow_nan(True):
            Xd, _ = self.inner.validate(Xb)
        return Xd, None if wb is None else self.inner.asarray_like(wb, Xd)

    def _scan(self, src: Source, w, allow_nan: bool = False) -> _Summary:
        s = _Summary(src.n_features)
        offset = 0
        for Xb in src.blocks(allow_nan=allow_nan):
            n = Xb.shape[0]
            s.add(Xb, None if w is None else w[offset : offset + n])
            offset += n
        return s

    def column_summary(self, X: SourceData, w, block=None) -> dict:
        """Weighted column means, variances, minima, maxima and the row count, in one
        pass (or none: the unweighted summary of the counting pass is kept). With
        missing values each column's over its observed values."""
        if w is None and X.summary is not None:
            return X.summary
        scan = self._scan(X.source, None if w is None else np.asarray(w, dtype=np.float64),
                          X.allow_nan)
        out = scan.result()
        if w is None:
            X.summary = out
            X.missing_scan = scan
        return out

    # ------------------------------------------------------------------ missing values
    def check_missing(self, X: SourceData, *, name="X", column_names=None, fitting=True,
                      stacklevel=3):
        """Where the missing values are, found in one pass over the blocks (none when
        the counting pass already read them): :func:`emix._missing.check_missing`'s
        answer and checks for data read in blocks.

        Returns
        -------
        emix._missing.MissingInfo
            ``all_missing`` (N,) bool: the rows with every value missing.
        """
        if X.missing_scan is None:
            self.column_summary(X, None)
        return missing_info(X.missing_scan, name=name, label=X.source.label,
                            column_names=column_names, fitting=fitting,
                            stacklevel=stacklevel + 1)

    def drop_rows(self, X: SourceData, drop) -> SourceData:
        """X without the rows where ``drop`` (N,) bool is True (every value missing).

        The rows kept are numbered 0.. in order, as after ``X[~drop]`` in memory, so a
        start draws the same rows. Their column summary is X's (the dropped rows have no
        observed value), with the row count corrected.
        """
        drop = np.asarray(drop, dtype=bool)
        idx = np.flatnonzero(drop)
        if idx.size == 0:
            return X
        n = X.shape[0] - idx.size
        out = SourceData(_RowsView(X.source, idx, n), n, None, X.allow_nan)
        if X.summary is not None:
            out.summary = dict(X.summary, n=n)
        return out

    def fill_missing(self, X: SourceData, values) -> SourceData:
        """X with every NaN of column j set to ``values[j]`` (D,), read so block by block."""
        return SourceData(_FilledView(X.source, values), X.shape[0], None, False)

    def block_pass(self, X: SourceData, sample_weight, fn):
        """``fn`` on every block, the results added: a model's own block computation
        (its rows grouped as it needs) over data read in blocks.

        Parameters
        ----------
        X : SourceData of shape (N, D)
        sample_weight : ndarray of shape (N,) or None, host
        fn : callable ``(inner, Xb, wb, offset) -> value``
            Called with the in-memory backend, the block (rows, D) on its device, the
            block's weights (rows,) or None, and its first row's number; the values
            must support ``+``.
        """
        total = None
        for offset, Xb in self._blocks(X):
            n = Xb.shape[0]
            wb = None if sample_weight is None else np.asarray(sample_weight[offset : offset + n])
            Xd, wd = self._device(Xb, wb)
            value = fn(self.inner, Xd, wd, offset)
            total = value if total is None else total + value
        return total

    def take_rows(self, X: SourceData, idx) -> np.ndarray:
        """Rows ``idx`` (any order, repeats allowed) as float64 (k, D), in one pass."""
        idx = np.asarray(idx, dtype=np.intp).ravel()
        if idx.size == 0:
            return np.empty((0, X.shape[1]))
        uniq, inv = np.unique(idx, return_inverse=True)
        if uniq[0] < 0 or uniq[-1] >= X.shape[0]:
            raise InputError(f"row index out of range 0..{X.shape[0] - 1}")
        out = np.empty((len(uniq), X.shape[1]))
        for offset, Xb in self._blocks(X):
            lo, hi = np.searchsorted(uniq, [offset, offset + Xb.shape[0]])
            if hi > lo:
                out[lo:hi] = Xb[uniq[lo:hi] - offset]
            if hi == len(uniq):
                break
        return out[inv]

    # ------------------------------------------------------------------ passes
    def stats_pass(self, X: SourceData, sample_weight, kernel, *, block_size=None, width=None):
        """One pass of ``kernel`` over every block; the blocks' accumulators summed.

        A kernel with ``for_block(Xb, offset)`` is asked for the kernel of each block
        (responsibilities computed from the block's rows); any other kernel sees the
        rows numbered as in the whole source.
        """
        total = None
        for offset, Xb in self._blocks(X):
            n = Xb.shape[0]
            wb = None if sample_weight is None else sample_weight[offset : offset + n]
            if hasattr(kernel, "for_block"):
                k = kernel.for_block(Xb, offset)
            else:
                k = _Shifted(kernel, offset)
            Xd, wd = self._device(Xb, wb)
            acc = self.inner.stats_pass(Xd, wd, k, block_size=block_size, width=width)
            if total is None:
                total = {name: np.array(v, dtype=np.float64) for name, v in acc.items()}
            else:
                for name, v in acc.items():
                    total[name] += v
        return total

    def sequence_pass(self, X: SourceData, lengths, fn):
        """``fn`` on every group of whole sequences (one read of the source; a sequence
        cut by a block is carried over to the next, see
        :func:`emix.data._sequences.sequence_groups`); the results added.

        Parameters
        ----------
        X : SourceData of shape (T, D)
        lengths : ndarray of int of shape (S,), summing to T
        fn : callable ``(inner, Xg, lengths_g, row0, seq0) -> value``
            Called with the in-memory backend, the group's rows (rows_g, D), the lengths
            of its sequences, its first row and its first sequence's number; the values
            must support ``+``.
        """
        from ._sequences import sequence_groups

        total = None
        for Xg, lg, row0, seq0 in sequence_groups(X.blocks(), lengths, X.source.label):
            Xd, _ = self._device(Xg, None)
            value = fn(self.inner, Xd, lg, row0, seq0)
            total = value if total is None else total + value
        return total

    def map_rows(self, X: SourceData, kernel, *, block_size=None, width=None, out_dtype=None):
        """``kernel.rows`` over every block, gathered (N, n_out) on the host."""
        out = np.empty((X.shape[0], kernel.n_out), dtype=X.dtype if out_dtype is None else out_dtype)
        for offset, Xb in self._blocks(X):
            Xd, _ = self._device(Xb, None)
            rows = self.inner.map_rows(Xd, kernel, block_size=block_size, width=width,
                                       out_dtype=out_dtype)
            out[offset : offset + Xb.shape[0]] = self.inner.to_numpy(rows)
        return out


# --------------------------------------------------------------------------- starts
# Below this many responsibilities the in-memory draw is used as it is.
_SMALL_RESP = 1 << 20


def random_resp(rng: np.random.Generator, N: int, K: int):
    """Random responsibilities as a function of a row range, without holding (N, K).

    ``resp(a, b)`` equals rows ``a:b`` of ``rng.random((N, K))`` normalised per row,
    which is what an in-memory fit draws, and ``rng`` is advanced past those N K draws,
    so the rest of the fit sees the same stream too. Each row range is regenerated by
    jumping a copy of the generator ahead (PCG64's ``advance``); generators without it
    (or small problems) draw the whole matrix.

    Returns
    -------
    callable ``(a, b) -> ndarray of shape (b - a, K)``
    """
    bg = rng.bit_generator
    if N * K <= _SMALL_RESP or type(bg).__name__ not in ("PCG64", "PCG64DXSM"):
        resp = rng.random((N, K))
        resp /= resp.sum(axis=1, keepdims=True)
        return lambda a, b: resp[a:b]
    state = bg.state
    bg.advance(N * K)
    cls = type(bg)

    def resp(a, b):
        g = cls()
        g.state = state
        g.advance(a * K)
        r = np.random.Generator(g).random((b - a, K))
        r /= r.sum(axis=1, keepdims=True)
        return r

    return resp


class _NearestKernel:
    """Hard responsibilities: every row to its nearest centre in standardised units, as
    ``MixtureModel``'s in-memory start assigns them, computed block by block."""

    def __init__(self, family, K, mean, sd, centers):
        from ..models._kernels import GivenRespKernel

        self._make = GivenRespKernel
        self.family, self.K = family, K
        self.mean, self.sd, self.centers = mean, sd, centers
        self.acc_shapes = GivenRespKernel(family, None, K).acc_shapes

    def for_block(self, Xb, offset):
        from ..em.init import nearest

        Z = (np.asarray(Xb, dtype=np.float64) - self.mean) / self.sd
        # Missing cells at their column's mean (0 standardised), as in memory.
        labels, _ = nearest(_nan_to_zero(Z), self.centers)
        R = np.eye(self.K)[labels]
        return self._make(self.family, lambda a, b: R[a:b], self.K)


def initial_family_stats(problem, summary, w, rng, method: str, K: int):
    """``MixtureModel``'s starting statistics over a source, drawn as in memory.

    The same seeded draws as the in-memory start: k-means on the same sample of at most
    ``KMEANS_MAX_ROWS`` rows (read in one pass), then one pass assigning every row to
    its nearest centre; ``random`` responsibilities block by block (:func:`random_resp`).
    """
    from ..em.init import KMEANS_MAX_ROWS, kmeans, kmeans_plusplus, random_rows

    backend, X, N = problem.backend, problem.X, problem.N
    if method == "random":
        return problem.given_resp_stats(random_resp(rng, N, K))
    sd = np.sqrt(summary["var"])
    sd = np.where(sd > 0, sd, 1.0)
    mean = summary["mean"]
    if method == "random_from_data":
        idx = random_rows(np.ones(N) if w is None else w, K, rng)
        centers = _nan_to_zero((backend.take_rows(X, idx) - mean) / sd)
    else:
        if N > KMEANS_MAX_ROWS:
            sub = np.sort(rng.choice(N, KMEANS_MAX_ROWS, replace=False))
        else:
            sub = np.arange(N)
        Z = _nan_to_zero((backend.take_rows(X, sub) - mean) / sd)
        ws = np.ones(len(sub)) if w is None else w[sub]
        if method == "k-means++":
            centers = Z[kmeans_plusplus(Z, ws, K, rng)]
        else:
            centers = kmeans(Z, ws, K, rng)
    return problem._pass(_NearestKernel(problem.family, K, mean, sd, centers))


def _nan_to_zero(Z: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(Z), 0.0, Z) if np.isnan(Z).any() else Z


_ROW = re.compile(r"\brow (\d+)")


def _shifted_error(exc: InputError, offset: int, label: str) -> InputError:
    """The error of a block with its row renumbered as in the whole source."""
    msg = _ROW.sub(lambda m: f"row {int(m.group(1)) + offset}", str(exc), count=1)
    if label not in msg:
        msg = f"{label}: {msg}"
    return type(exc)(msg)


def check_support_blocks(backend, X: SourceData, family, names) -> None:
    """The family's support check over every block (one pass), rows numbered globally."""
    if hasattr(backend, "check_support_blocks"):  # Dask: checked on the workers
        return backend.check_support_blocks(X, family, names)
    for offset, Xb in backend._blocks(X):
        try:
            # A missing cell (NaN) is in no family's support question: 0 is in every
            # built-in family's support, as in memory.
            family.check_support(_nan_to_zero(np.asarray(Xb, dtype=np.float64)), names)
        except InputError as exc:
            raise _shifted_error(exc, offset, X.source.label) from None


# --------------------------------------------------------------------------- predictions
class _NamedBlock:
    """A block carrying column names, so that the estimator's in-memory prediction code
    checks them as it would a DataFrame's (once per source, not a warning per block)."""

    def __init__(self, X: np.ndarray, names):
        self._X = X
        self.columns = list(names)
        self.dtypes = [X.dtype] * X.shape[1]
        self.shape = X.shape
        self.ndim = 2

    def to_numpy(self):
        return self._X


def n_rows_of(X) -> int:
    """Rows of an array-like or a source (counted by reading it when needed)."""
    from . import is_source_like

    if isinstance(X, SourceData):
        return X.shape[0]
    if is_source_like(X):
        src = _as_source(X)
        if src.n_rows is not None:
            return src.n_rows
        # Counting reads NaN too: whether it is allowed is the estimator's question.
        return int(sum(b.shape[0] for b in src.blocks(allow_nan=True)))
    return int(np.shape(X)[0])


def n_observed_rows_of(X, est=None) -> int:
    """Rows of a path, Source or dask array with at least one observed (non-NaN) value:
    one pass over the blocks (a ``compute`` for Dask); inf is an error. With a fitted
    ``est``, only the columns it was fitted on count (a file may hold more)."""
    import warnings

    from ._dask import is_dask

    if is_dask(X):
        from ._dask import _to_array

        arr, _ = _to_array(X)
        return int((~np.isnan(arr).all(axis=1)).sum().compute())
    if est is not None:
        with warnings.catch_warnings():
            # The same column checks as the prediction pass, which has warned already.
            warnings.simplefilter("ignore", UserWarning)
            src, _ = _prediction_source(est, X, "score")
    else:
        src = X.source if isinstance(X, SourceData) else _as_source(X)
    return int(sum(int((~np.isnan(b).all(axis=1)).sum()) for b in src.blocks(allow_nan=True)))


def _prediction_source(est, X, method: str):
    """The source to predict on, with the model's columns chosen by name where both
    have names, and how each block is handed to ``_log_joint``."""
    import warnings

    est._check_is_fitted(method)
    src = _as_source(X)
    fitted = getattr(est, "feature_names_in_", None)
    names = src.column_names
    if fitted is not None and names is not None and list(names) != list(fitted):
        missing = [n for n in fitted if n not in names]
        if missing:
            raise InputError(
                f"{src.label} has no column {missing[0]!r}, which {type(est).__name__} was "
                f"fitted on (its columns: {list(fitted)})"
            )
        src = _ColumnView(src, [list(names).index(n) for n in fitted])
        names = list(fitted)
    if fitted is not None and names is None:
        warnings.warn(
            f"{src.label} has no column names, but {type(est).__name__} was fitted with "
            "feature names",
            UserWarning,
            stacklevel=4,
        )
        return src, lambda Xb: _NamedBlock(Xb, fitted)
    if fitted is None and names is not None:
        warnings.warn(
            f"{src.label} has column names, but {type(est).__name__} was fitted without "
            "feature names",
            UserWarning,
            stacklevel=4,
        )
        return src, lambda Xb: Xb
    if fitted is not None:
        return src, lambda Xb: _NamedBlock(Xb, fitted)
    return src, lambda Xb: Xb


def _block_results(est, X, method: str):
    """``(offset, log-joint (rows, K) float64)`` for every block of X."""
    src, wrap = _prediction_source(est, X, method)
    offset = 0
    # The estimator's rule for NaN: its in-memory prediction sees each block's NaN.
    nan_ok = getattr(est, "missing", "error") == "em"
    for Xb in src.blocks(allow_nan=nan_ok):
        try:
            L = est._log_joint(wrap(Xb), method)
        except InputError as exc:
            raise _shifted_error(exc, offset, src.label) from None
        yield offset, np.asarray(L)
        offset += Xb.shape[0]


def _per_row(method: str, L: np.ndarray) -> np.ndarray:
    from ..models._mixture_base import logsumexp_rows

    if method == "predict":
        return np.argmax(L, axis=1)
    lse = logsumexp_rows(L)
    if method == "score_samples":
        return lse
    return np.exp(L - lse[:, None])


def predict_stream(est, X, method: str, out=None, sample_weight=None):
    """``score``, ``score_samples``, ``predict`` or ``predict_proba`` over a source.

    Parameters
    ----------
    est : a fitted mixture estimator
    X : path, Source or array
    method : {'score', 'score_samples', 'predict', 'predict_proba'}
    out : path, optional
        Write the per-row results to this file (``.csv``, ``.npy`` or ``.parquet``) in
        blocks, atomically (the file appears whole or not at all), and return its path.

    Returns
    -------
    float (score), ndarray of shape (N,) or (N, K), or the path written
    """
    if method == "score":
        total = 0.0
        wsum = 0.0
        w = None
        if sample_weight is not None:
            from .._validation import check_sample_weight

            w = check_sample_weight(np.asarray(sample_weight), n_rows_of(X))
        for offset, L in _block_results(est, X, "score"):
            s = _per_row("score_samples", L)
            if w is None:
                total += float(np.sum(s, dtype=np.float64))
                wsum += s.shape[0]
            else:
                wb = w[offset : offset + s.shape[0]]
                total += float(np.dot(wb, s))
                wsum += float(wb.sum())
        return total / wsum
    if out is None:
        parts = [_per_row(method, L) for _, L in _block_results(est, X, method)]
        return np.concatenate(parts, axis=0)
    return _write(os.fspath(out), est, X, method)


def _columns_for(method: str, K: int) -> list:
    if method == "predict":
        return ["component"]
    if method == "score_samples":
        return ["log_density"]
    return [f"p{k}" for k in range(K)]


def _write(path: str, est, X, method: str) -> str:
    from .._atomic import write_atomic

    low = path.lower()
    if os.path.isdir(path):
        raise InputError(f"out={path} is a directory")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise InputError(f"out={path}: no directory {directory}")
    K = int(est.n_components)
    names = _columns_for(method, K)

    def results():
        for _, L in _block_results(est, X, method):
            yield _per_row(method, L)

    if low.endswith(".csv"):
        fmt = "%d" if method == "predict" else "%.17g"

        def write(fh):
            fh.write((",".join(names) + "\n").encode())
            for r in results():
                np.savetxt(fh, r.reshape(r.shape[0], -1), fmt=fmt, delimiter=",")
    elif low.endswith(".npy"):
        N = n_rows_of(X)
        dtype = np.dtype(np.int64) if method == "predict" else np.dtype(np.float64)
        shape = (N, K) if method == "predict_proba" else (N,)

        def write(fh):
            np.lib.format.write_array_header_2_0(
                fh, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                     "shape": shape}
            )
            n = 0
            for r in results():
                fh.write(np.ascontiguousarray(r, dtype=dtype).tobytes())
                n += r.shape[0]
            if n != N:
                raise InputError(f"{path}: wrote {n} rows, expected {N}; the data changed")
    elif low.endswith((".parquet", ".pq")):
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise InputError(f"writing {path} needs pyarrow: pip install 'emix[parquet]'") from None

        def write(fh):
            writer = None
            try:
                for r in results():
                    r2 = r.reshape(r.shape[0], -1)
                    table = pa.table({n: r2[:, j] for j, n in enumerate(names)})
                    if writer is None:
                        writer = pq.ParquetWriter(fh, table.schema)
                    writer.write_table(table)
            finally:
                if writer is not None:
                    writer.close()
    else:
        raise InputError(f"out={path}: the file name must end in .csv, .npy or .parquet")
    try:
        write_atomic(path, write)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path
