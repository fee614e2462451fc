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
"""

from __future__ import annotations

import os
import re

import numpy as np

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
]


class _ColumnView(Source):
    """Some columns of another source (``MixtureModel(columns=...)``)."""

    def __init__(self, parent: Source, positions, keep_names: bool = True):
        self._parent = parent
        self._positions = list(positions)
        self.label = parent.label
        self.path = parent.path
        self.n_features = len(self._positions)
        self.dtype = parent.dtype
        names = parent.column_names
        if names is None or not keep_names:
            self.column_names = None
        else:
            self.column_names = [names[p] for p in self._positions]

    @property
    def n_rows(self):
        return self._parent.n_rows

    @property
    def block_rows(self):
        return self._parent.block_rows

    def count_rows(self):
        return self._parent.count_rows()

    def describe_column(self, j):
        return self._parent.describe_column(self._positions[j])

    def blocks(self):
        pos = self._positions
        return (b[:, pos] for b in self._parent.blocks())


class SourceData:
    """What an estimator holds in place of an array when it reads a source.

    Attributes
    ----------
    source : Source
    shape : (N, D)
    dtype : numpy dtype
    summary : dict or None
        The unweighted column summary, kept from the pass that counted the rows.
    """

    ndim = 2

    def __init__(self, src: Source, n_rows: int, summary=None):
        self.source = src
        self.shape = (int(n_rows), int(src.n_features))
        self.dtype = src.dtype
        self.summary = summary

    def __getitem__(self, key):
        # Only the column selection MixtureModel makes: X[:, [positions]]. Like an
        # array's columns, the selection carries no names (the model keeps them).
        if not (isinstance(key, tuple) and len(key) == 2 and key[0] == slice(None)):
            raise TypeError("a source can only be indexed by columns: X[:, [j, ...]]")
        return SourceData(_ColumnView(self.source, key[1], keep_names=False), self.shape[0])

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
    no sum of squares of raw values cancels)."""

    def __init__(self, D: int):
        self.n = 0
        self.W = 0.0
        self.mean = np.zeros(D)
        self.m2 = np.zeros(D)
        self.lo = np.full(D, np.inf)
        self.hi = np.full(D, -np.inf)

    def add(self, Xb: np.ndarray, wb) -> None:
        Z = Xb.astype(np.float64, copy=False)
        self.n += Z.shape[0]
        self.lo = np.minimum(self.lo, Z.min(axis=0))
        self.hi = np.maximum(self.hi, Z.max(axis=0))
        Wb = float(Z.shape[0]) if wb is None else float(np.sum(wb, dtype=np.float64))
        if Wb <= 0:
            return
        mb = (Z.sum(axis=0) if wb is None else wb @ Z) / Wb
        C = Z - mb
        m2b = np.einsum("nd,nd->d", C, C) if wb is None else wb @ (C * C)
        W = self.W + Wb
        delta = mb - self.mean
        self.mean = self.mean + delta * (Wb / W)
        self.m2 = self.m2 + m2b + delta * delta * (self.W * Wb / W)
        self.W = W

    def result(self) -> dict:
        var = self.m2 / self.W if self.W > 0 else np.zeros_like(self.m2)
        return {"mean": self.mean, "var": np.maximum(var, 0.0), "min": self.lo,
                "max": self.hi, "n": self.n}


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
        if isinstance(X, SourceData):
            data = X
        else:
            src = _as_source(X)
            if n_features is not None and src.n_features != n_features:
                raise InputError(
                    f"{src.label} has {src.n_features} columns, but {estimator_name} is "
                    f"expecting {n_features} features as input"
                )
            summary = None
            if src.n_rows is None:
                summary = self._summarise(src, None)
            data = SourceData(src, src.n_rows, summary)
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
        for Xb in X.source.blocks():
            yield offset, Xb
            offset += Xb.shape[0]

    def _device(self, Xb, wb):
        if self.inner.name == "numpy":
            return Xb, wb
        Xd, _ = self.inner.validate(Xb)
        return Xd, None if wb is None else self.inner.asarray_like(wb, Xd)

    def _summarise(self, src: Source, w) -> dict:
        s = _Summary(src.n_features)
        offset = 0
        for Xb in src.blocks():
            n = Xb.shape[0]
            s.add(Xb, None if w is None else w[offset : offset + n])
            offset += n
        return s.result()

    def column_summary(self, X: SourceData, w, block=None) -> dict:
        """Weighted column means, variances, minima, maxima and the row count, in one
        pass (or none: the unweighted summary of the counting pass is kept)."""
        if w is None and X.summary is not None:
            return X.summary
        out = self._summarise(X.source, None if w is None else np.asarray(w, dtype=np.float64))
        if w is None:
            X.summary = out
        return out

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
        for Xg, lg, row0, seq0 in sequence_groups(X.source.blocks(), lengths, X.source.label):
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

        labels, _ = nearest((np.asarray(Xb, dtype=np.float64) - self.mean) / self.sd, self.centers)
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
        centers = (backend.take_rows(X, idx) - mean) / sd
    else:
        if N > KMEANS_MAX_ROWS:
            sub = np.sort(rng.choice(N, KMEANS_MAX_ROWS, replace=False))
        else:
            sub = np.arange(N)
        Z = (backend.take_rows(X, sub) - mean) / sd
        ws = np.ones(len(sub)) if w is None else w[sub]
        if method == "k-means++":
            centers = Z[kmeans_plusplus(Z, ws, K, rng)]
        else:
            centers = kmeans(Z, ws, K, rng)
    return problem._pass(_NearestKernel(problem.family, K, mean, sd, centers))


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
            family.check_support(np.asarray(Xb, dtype=np.float64), names)
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
        return _as_source(X).count_rows()
    return int(np.shape(X)[0])


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
    for Xb in src.blocks():
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
