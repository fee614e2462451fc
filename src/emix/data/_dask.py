"""Fits on Dask collections: per-block statistics on the workers, tree-reduced.

A ``dask.array`` (or dask DataFrame) is a list of row blocks that live on the workers.
:class:`DaskBackend` has the interface of :class:`emix.data._stream.StreamingBackend`
(``validate``, ``column_summary``, ``take_rows``, ``stats_pass``), so the estimators run
the same EM problem on it: each ``stats_pass`` builds one task per row block that runs
the NumPy backend's pass on that block *on the worker*, adds the blocks' float64
accumulator dicts pairwise in a tree, and calls ``compute`` once, on whatever
``dask.distributed.Client`` is active (the threaded scheduler when none is). Only the
accumulators (K x M numbers per block) travel to the client; X never does. The kernel
(family and parameters) travels to the workers, so kernels must pickle.

Every pass computes X's blocks from its graph: ``X.persist()`` first keeps them in the
workers' memory between iterations (else each iteration re-reads them, as a streamed fit
re-reads a file). A ``compute`` costs a round trip to the scheduler (milliseconds on an
idle machine), so row blocks should be large (the default chunks of a dask array are).

Starts are drawn as in memory: k-means reads the same seeded sample of rows (one
``compute`` of at most ``KMEANS_MAX_ROWS`` rows), random responsibilities are generated
on the client block by block from the same seeded stream and shipped with each block's
task.

Predictions (``predict``, ``predict_proba``, ``score_samples``) return dask arrays: the
fitted estimator, without its callback, is mapped over the blocks lazily.

Missing values (an estimator with ``missing="em"``) are read as in memory: the column
summary over each column's observed values and the rows with every value missing found
per block on the workers, then merged (:meth:`DaskBackend.check_missing`); those rows
are left out by index (:meth:`~DaskBackend.drop_rows`); :meth:`~DaskBackend.block_pass`
runs a model's own function on every block on the workers. inf is always an error.

This module imports dask only when it is used: ``import emix`` never does.
"""

from __future__ import annotations

import copy

import numpy as np

from .._validation import _NAN_ALLOWED
from ..exceptions import InputError
from ._stream import SourceData, _nan_to_zero, _shifted_error, _Shifted, _Summary, missing_info

__all__ = ["is_dask", "DaskData", "DaskBackend", "predict_dask"]


def is_dask(X) -> bool:
    """Whether ``X`` is a dask collection (array or DataFrame), without importing dask."""
    mod = type(X).__module__ or ""
    return (mod == "dask" or mod.startswith("dask.") or mod.startswith("dask_expr")) and hasattr(
        X, "__dask_graph__"
    )


def _is_frame(X) -> bool:
    return hasattr(X, "columns") and hasattr(X, "dtypes")


def _to_array(X, *, allow_1d=True, name="X"):
    """``(dask array (N, D) float32/float64 with one column chunk, names or None)``."""
    import dask.array as da

    names = None
    if _is_frame(X):
        names = [str(c) for c in X.columns]
        for c, dt in zip(X.columns, X.dtypes):
            if not (np.issubdtype(np.dtype(dt), np.number) or np.dtype(dt) == bool):
                raise InputError(f"{name}: column {str(c)!r} is not numeric (dtype {dt})")
        dts = [np.dtype(d) for d in X.dtypes]
        arr = X.to_dask_array(lengths=True)
        dtype = np.float32 if dts and all(d == np.float32 for d in dts) else np.float64
    elif hasattr(X, "__dask_graph__") and hasattr(X, "chunks"):
        arr = X
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise InputError(f"{name} has dtype {arr.dtype}; emix needs numbers")
        dtype = np.float32 if arr.dtype == np.float32 else np.float64
    else:
        raise InputError(f"cannot read a {type(X).__name__} as a dask array")
    if arr.ndim == 1:
        if not allow_1d:
            raise InputError(f"{name} is 1-D; reshape it to (N, 1) or (1, N)")
        arr = arr[:, None]
    if arr.ndim != 2:
        raise InputError(f"{name} must be 2-D; got {arr.ndim} dimensions")
    if any(np.isnan(c) for c in arr.chunks[0]):
        arr = arr.compute_chunk_sizes()
    if arr.dtype != dtype:
        arr = arr.astype(dtype)
    if len(arr.chunks[1]) > 1:
        arr = arr.rechunk({1: -1})
    if not isinstance(arr, da.Array):  # pragma: no cover - defensive
        raise InputError(f"cannot read a {type(X).__name__} as a dask array")
    return arr, names


class DaskData(SourceData):
    """What an estimator holds in place of an array when it fits a dask array.

    Attributes
    ----------
    array : dask.array.Array of shape (N, D), one chunk across the columns
    offsets : ndarray of shape (n_blocks + 1,), int64
        First row of every block, then N.
    shape : (N, D)
    dtype : numpy dtype
    summary : dict or None
    """

    ndim = 2

    def __init__(self, array, summary=None, allow_nan: bool = False):
        self.array = array
        self.offsets = np.concatenate([[0], np.cumsum(array.chunks[0])]).astype(np.int64)
        self.shape = (int(array.shape[0]), int(array.shape[1]))
        self.dtype = np.dtype(array.dtype)
        self.summary = summary
        self.label = "X"
        # Whether NaN is a missing value (missing="em") rather than an error.
        self.allow_nan = bool(allow_nan)
        self.missing_scan = None

    def blocks_delayed(self):
        """One ``Delayed`` per row block, each an ndarray (rows, D) on a worker."""
        return list(self.array.to_delayed().ravel())

    def __getitem__(self, key):
        if not (isinstance(key, tuple) and len(key) == 2 and key[0] == slice(None)):
            raise TypeError("a dask-backed X can only be indexed by columns: X[:, [j, ...]]")
        return DaskData(self.array[:, list(key[1])], allow_nan=self.allow_nan)

    def __repr__(self) -> str:
        return f"DaskData({self.array!r})"


# --------------------------------------------------------------------------- worker tasks
def _check_block(Xb, offset: int, names, allow_nan: bool = False):
    ok = np.isfinite(Xb)
    if not ok.all():
        bad = np.isinf(Xb) if allow_nan else ~ok
        if not bad.any():
            return
        i, j = (int(v) for v in np.argwhere(bad)[0])
        col = f"column {names[j]!r}" if names is not None else f"column {j}"
        if allow_nan:
            raise InputError(
                f"X: {col} row {offset + i} holds {Xb[i, j]}; inf is not a missing value: "
                "replace it with NaN to have it treated as missing, or remove the row"
            )
        raise InputError(f"X: {col} row {offset + i} holds {Xb[i, j]}; emix needs finite numbers")


def _block_summary(Xb, wb, offset, names, allow_nan=False):
    Xb = np.asarray(Xb)
    _check_block(Xb, offset, names, allow_nan)
    s = _Summary(Xb.shape[1], offset)
    if Xb.shape[0]:
        s.add(Xb, wb)
    return s


def _merge_summaries(*parts: _Summary) -> _Summary:
    """Chan, Golub and LeVeque's pairwise update of blocks' moments, left to right."""
    out = parts[0]
    for b in parts[1:]:
        out = _merge_two(out, b)
    return out


def _merge_two(a: _Summary, b: _Summary) -> _Summary:
    out = _Summary(len(a.mean), a.offset)
    out.n = a.n + b.n
    out.lo = np.minimum(a.lo, b.lo)
    out.hi = np.maximum(a.hi, b.hi)
    out.n_nan = a.n_nan + b.n_nan
    out.all_missing = a.all_missing + b.all_missing
    # Per column: the weight of its observed values (equal across columns without NaN).
    W = a.W + b.W
    out.W = W
    pos = W > 0
    safe = np.where(pos, W, 1.0)
    delta = b.mean - a.mean
    out.mean = np.where(pos, a.mean + delta * (b.W / safe), 0.0)
    out.m2 = np.where(pos, a.m2 + b.m2 + delta * delta * (a.W * b.W / safe), 0.0)
    return out


def _block_stats(inner, Xb, wb, kernel, offset, block_size, width):
    """One block's accumulators (float64 dict), on the worker."""
    Xb = np.asarray(Xb)
    if hasattr(kernel, "for_block"):
        k = kernel.for_block(Xb, offset)
    else:
        k = _Shifted(kernel, offset)
    acc = inner.stats_pass(Xb, wb, k, block_size=block_size, width=width)
    return {name: np.array(v, dtype=np.float64) for name, v in acc.items()}


def _add_accs(*accs: dict) -> dict:
    out = {name: np.array(v, dtype=np.float64) for name, v in accs[0].items()}
    for acc in accs[1:]:
        for name in out:
            out[name] += acc[name]
    return out


def _check_support_block(family, Xb, offset, names):
    try:
        # NaN (missing) set to 0, in every built-in family's support, as in memory.
        family.check_support(_nan_to_zero(np.asarray(Xb, dtype=np.float64)), names)
    except InputError as exc:
        raise _shifted_error(exc, offset, "X") from None
    return True


def _all_true(*flags):
    return all(flags)


def _sequence_block(fn, inner, Xb, lengths, row0, seq0):
    return fn(inner, np.asarray(Xb), np.asarray(lengths, dtype=np.int64), row0, seq0)


def _map_sequence_block(fn, Xb, lengths, row0, seq0):
    return fn(np.asarray(Xb), np.asarray(lengths, dtype=np.int64), row0, seq0)


def _first_sequences(X: DaskData, lengths) -> np.ndarray:
    """The number of the first sequence of every block (then S), int64
    (n_blocks + 1,); an InputError when a block starts inside a sequence."""
    ends = np.concatenate([[0], np.cumsum(lengths)])
    o = X.offsets
    first = np.searchsorted(ends, o)
    if not np.array_equal(ends[np.minimum(first, len(ends) - 1)], o):
        cut = int(o[np.flatnonzero(~np.isin(o, ends))[0]])
        raise InputError(
            f"X: a row block starts at row {cut}, inside a sequence; blocks must hold "
            "whole sequences (DaskBackend.align_to_sequences rechunks them)"
        )
    return first


def _fn_block(fn, inner, Xb, wb, offset):
    return fn(inner, np.asarray(Xb), wb, offset)


def _fill_block(Xb, values):
    return np.where(np.isnan(Xb), values, Xb)


def _add_values(*parts):
    out = parts[0]
    for p in parts[1:]:
        out = out + p
    return out


# Inputs per reduction task: few levels (each level moves results between workers,
# which costs more than adding them), yet no task waits on every block.
SPLIT_EVERY = 8


def _tree(parts, combine):
    """Reduction of a list of Delayed values in a tree of fan-in ``SPLIT_EVERY``; the
    order of the additions is fixed, so a pass gives the same numbers on any cluster."""
    from dask import delayed

    parts = list(parts)
    op = delayed(combine, pure=True)
    while len(parts) > 1:
        parts = [
            op(*parts[i : i + SPLIT_EVERY]) if len(parts[i : i + SPLIT_EVERY]) > 1 else parts[i]
            for i in range(0, len(parts), SPLIT_EVERY)
        ]
    return parts[0]


class _BlockResp:
    """Given responsibilities of one block, addressed by global row numbers."""

    def __init__(self, R: np.ndarray, offset: int):
        self.R = R
        self.offset = offset

    def __call__(self, a, b):
        return self.R[a - self.offset : b - self.offset]


# --------------------------------------------------------------------------- backend
class DaskBackend:
    """Passes over a dask array's row blocks, each block run on a worker.

    Parameters
    ----------
    inner : NumpyBackend
        Runs each block on its worker (pickled there with the task).
    """

    name = "dask"

    def __init__(self, inner):
        self.inner = inner
        self.device = getattr(inner, "device", None)

    def __repr__(self) -> str:
        return f"DaskBackend({self.inner!r})"

    def validate(self, X, *, name="X", min_rows=1, allow_1d=True, n_features=None,
                 estimator_name="the model"):
        """The dask array behind ``X`` (row-block sizes known) and its column names.

        Returns
        -------
        DaskData, ndarray of str or None
        """
        nan_ok = _NAN_ALLOWED.get()  # missing="em": NaN is a missing value
        if isinstance(X, DaskData):
            if X.allow_nan != nan_ok:
                X = DaskData(X.array, X.summary, nan_ok)
            return X, None
        arr, names = _to_array(X, allow_1d=allow_1d, name=name)
        if n_features is not None and arr.shape[1] != n_features:
            raise InputError(
                f"{name} has {arr.shape[1]} features, but {estimator_name} is expecting "
                f"{n_features} features as input"
            )
        if arr.shape[0] < min_rows:
            raise InputError(f"{name} is empty: 0 rows of data")
        return DaskData(arr, allow_nan=nan_ok), None if names is None else np.asarray(names, dtype=object)

    def to_numpy(self, a) -> np.ndarray:
        # Weights and other per-row vectors: small next to X, gathered once.
        if is_dask(a):
            return np.asarray(a.compute())
        return np.asarray(a)

    def asarray_like(self, a, X) -> np.ndarray:
        return np.asarray(a)

    def numpy_dtype(self, X) -> np.dtype:
        return np.dtype(X.dtype)

    def ops(self, dtype):
        return self.inner.ops(dtype)

    def _weights(self, X: DaskData, w):
        o = X.offsets
        return [None if w is None else np.asarray(w[o[i] : o[i + 1]]) for i in range(len(o) - 1)]

    def column_summary(self, X: DaskData, w, block=None, names=None) -> dict:
        """Weighted column moments, minima, maxima and the row count, computed on the
        workers (every value checked finite on the way) in one ``compute``."""
        import dask
        from dask import delayed

        if w is None and X.summary is not None:
            return X.summary
        op = delayed(_block_summary, pure=True)
        parts = [
            op(b, wb, int(X.offsets[i]), names, X.allow_nan)
            for i, (b, wb) in enumerate(zip(X.blocks_delayed(), self._weights(X, w)))
        ]
        (s,) = dask.compute(_tree(parts, _merge_summaries))
        out = s.result()
        if w is None:
            X.summary = out
            X.missing_scan = s
        return out

    # ------------------------------------------------------------------ missing values
    def check_missing(self, X: DaskData, *, name="X", column_names=None, fitting=True,
                      stacklevel=3):
        """Where the missing values are: each block's rows with every value missing and
        its count of NaN, found on the workers with the column summary (one
        ``compute``), summed; the checks of :func:`emix._missing.check_missing`.

        Returns
        -------
        emix._missing.MissingInfo
        """
        if X.missing_scan is None:
            X.summary = None
            self.column_summary(X, None, names=None if column_names is None else list(column_names))
        return missing_info(X.missing_scan, name=name, label="X", column_names=column_names,
                            fitting=fitting, stacklevel=stacklevel + 1)

    def drop_rows(self, X: DaskData, drop) -> DaskData:
        """X without the rows where ``drop`` (N,) bool is True, by index (lazily); the
        rows kept are numbered 0.. in order, as ``X[~drop]`` in memory."""
        drop = np.asarray(drop, dtype=bool)
        if not drop.any():
            return X
        keep = np.flatnonzero(~drop)
        out = DaskData(X.array[keep], None, X.allow_nan)
        if X.summary is not None:
            out.summary = dict(X.summary, n=int(keep.size))
        return out

    def fill_missing(self, X: DaskData, values) -> DaskData:
        """X with every NaN of column j set to ``values[j]`` (D,), lazily."""
        v = np.asarray(values, dtype=X.dtype)
        return DaskData(X.array.map_blocks(_fill_block, v, dtype=X.dtype), None, False)

    def block_pass(self, X: DaskData, sample_weight, fn):
        """``fn`` on every row block on the workers, the results added in a tree (one
        ``compute``); see :meth:`emix.data._stream.StreamingBackend.block_pass`.

        Parameters
        ----------
        fn : picklable callable ``(inner, Xb, wb, offset) -> value``
        """
        import dask
        from dask import delayed

        op = delayed(_fn_block, pure=True)
        shared = delayed(fn, pure=True)
        o = X.offsets
        parts = [
            op(shared, self.inner, b, wb, int(o[i]))
            for i, (b, wb) in enumerate(zip(X.blocks_delayed(), self._weights(X, sample_weight)))
            if o[i + 1] > o[i]
        ]
        (total,) = dask.compute(_tree(parts, _add_values))
        return total

    def take_rows(self, X: DaskData, idx) -> np.ndarray:
        """Rows ``idx`` (any order, repeats allowed) as float64 (k, D), one ``compute``
        that brings only those rows to the client."""
        idx = np.asarray(idx, dtype=np.intp).ravel()
        if idx.size == 0:
            return np.empty((0, X.shape[1]))
        uniq, inv = np.unique(idx, return_inverse=True)
        if uniq[0] < 0 or uniq[-1] >= X.shape[0]:
            raise InputError(f"row index out of range 0..{X.shape[0] - 1}")
        rows = np.asarray(X.array[uniq].compute(), dtype=np.float64)
        return rows[inv]

    def _kernel_for(self, kernel, a: int, b: int):
        # A kernel driven by responsibilities given on the client (a random start: a
        # closure over the seeded stream, which cannot travel) gets this block's rows of
        # them, materialised here: N K numbers in all, as an in-memory start holds.
        resp = getattr(kernel, "resp", None)
        if resp is None or isinstance(resp, _BlockResp):
            return kernel
        k = copy.copy(kernel)
        k.resp = _BlockResp(np.asarray(resp(a, b), dtype=np.float64), a)
        return k

    def stats_pass(self, X: DaskData, sample_weight, kernel, *, block_size=None, width=None):
        """One pass of ``kernel``: a task per row block on the workers, the blocks'
        accumulators added in a tree, one ``compute``.

        Returns
        -------
        dict of name -> float64 ndarray
        """
        import dask
        from dask import delayed

        op = delayed(_block_stats, pure=True)
        shared = delayed(kernel, pure=True) if getattr(kernel, "resp", None) is None else None
        o = X.offsets
        parts = []
        for i, (b, wb) in enumerate(zip(X.blocks_delayed(), self._weights(X, sample_weight))):
            a, e = int(o[i]), int(o[i + 1])
            k = shared if shared is not None else self._kernel_for(kernel, a, e)
            parts.append(op(self.inner, b, wb, k, a, block_size, width))
        (total,) = dask.compute(_tree(parts, _add_accs))
        return total

    def align_to_sequences(self, X: DaskData, lengths) -> DaskData:
        """``X`` with every row block made of whole sequences.

        A sequence's forward-backward needs all its rows in one task, so blocks that cut
        a sequence are rechunked (lazily: the rows move between workers when a pass
        first computes them). Whole sequences are grouped greedily into blocks of about
        ``X``'s largest block; a sequence longer than that gets a block of its own.

        Parameters
        ----------
        X : DaskData of shape (T, D)
        lengths : ndarray of int of shape (S,), positive, summing to T

        Returns
        -------
        DaskData of shape (T, D)
        """
        lengths = np.asarray(lengths, dtype=np.int64)
        ends = np.concatenate([[0], np.cumsum(lengths)])
        if np.isin(X.offsets, ends).all():
            return X
        target = max(int(c) for c in X.array.chunks[0])
        chunks, cur = [], 0
        for n in lengths.tolist():
            if cur and cur + n > target:
                chunks.append(cur)
                cur = 0
            cur += n
        chunks.append(cur)
        return DaskData(X.array.rechunk({0: tuple(chunks)}), X.summary, X.allow_nan)

    def sequence_pass(self, X: DaskData, lengths, fn):
        """``fn`` on every row block with the lengths of its sequences, on the workers;
        the results added in a tree, one ``compute``.

        Parameters
        ----------
        X : DaskData of shape (T, D), blocks on sequence boundaries
            (:meth:`align_to_sequences`).
        lengths : ndarray of int of shape (S,)
        fn : picklable callable ``(inner, Xb, lengths_b, row0, seq0) -> value``
            Called with the NumPy backend, the block (rows, D), the lengths of its
            sequences, its first row and its first sequence's number; the values must
            support ``+``.

        Returns
        -------
        The sum of ``fn``'s values over the blocks.
        """
        import dask
        from dask import delayed

        lengths = np.asarray(lengths, dtype=np.int64)
        o = X.offsets
        first = _first_sequences(X, lengths)
        op = delayed(_sequence_block, pure=True)
        shared = delayed(fn, pure=True)
        parts = [
            op(shared, self.inner, b, lengths[first[i] : first[i + 1]], int(o[i]), int(first[i]))
            for i, b in enumerate(X.blocks_delayed())
            if o[i + 1] > o[i]
        ]
        (total,) = dask.compute(_tree(parts, _add_values))
        return total

    def map_sequences(self, X: DaskData, lengths, fn, *, dtype, width=None):
        """``fn`` on every row block of whole sequences, lazily: a dask array of the
        blocks' results stacked along the rows, chunked as ``X``.

        Parameters
        ----------
        X : DaskData of shape (T, D), blocks on sequence boundaries
        lengths : ndarray of int of shape (S,)
        fn : picklable callable ``(Xb, lengths_b, row0, seq0) -> ndarray``
            Returns shape (rows,) or (rows, width).
        dtype : numpy dtype of the result
        width : int or None

        Returns
        -------
        dask.array.Array of shape (T,) or (T, width)
        """
        import dask.array as da
        from dask import delayed

        lengths = np.asarray(lengths, dtype=np.int64)
        o = X.offsets
        first = _first_sequences(X, lengths)
        op = delayed(_map_sequence_block, pure=True)
        f = delayed(fn, pure=True)
        parts = []
        for i, b in enumerate(X.blocks_delayed()):
            n = int(o[i + 1] - o[i])
            if n == 0:
                continue
            shape = (n,) if width is None else (n, width)
            task = op(f, b, lengths[first[i] : first[i + 1]], int(o[i]), int(first[i]))
            parts.append(da.from_delayed(task, shape, dtype))
        return da.concatenate(parts, axis=0)

    def check_support_blocks(self, X: DaskData, family, names) -> None:
        """The family's support check on every block, on the workers."""
        import dask
        from dask import delayed

        op = delayed(_check_support_block, pure=True)
        fam = delayed(family, pure=True)
        parts = [op(fam, b, int(X.offsets[i]), names) for i, b in enumerate(X.blocks_delayed())]
        dask.compute(_tree(parts, _all_true))


# --------------------------------------------------------------------------- predictions
def _predict_block(Xb, est, method):
    from ._stream import _per_row

    L = np.asarray(est._log_joint(np.asarray(Xb), method))
    return _per_row(method, L)


def predict_dask(est, X, method: str):
    """``predict``, ``predict_proba`` or ``score_samples`` of a dask X, as a lazy dask
    array (N,) or (N, K) chunked as X's rows.

    ``score`` returns a float (one ``compute`` of the mean of ``score_samples``).
    """
    est._check_is_fitted(method)
    arr, names = _to_array(X, allow_1d=getattr(est, "n_features_in_", None) == 1)
    fitted = getattr(est, "feature_names_in_", None)
    if names is not None and fitted is not None and list(names) != list(fitted):
        missing = [n for n in fitted if n not in names]
        if missing:
            raise InputError(
                f"X has no column {missing[0]!r}, which {type(est).__name__} was fitted on"
            )
        arr = arr[:, [names.index(n) for n in fitted]]
    D = getattr(est, "n_features_in_", arr.shape[1])
    if arr.shape[1] != D:
        raise InputError(
            f"X has {arr.shape[1]} features, but {type(est).__name__} is expecting {D} "
            "features as input"
        )
    # The copy that travels to the workers: no callback (a user's closure may hold a
    # client or open files) and no names (blocks are plain arrays; names were matched).
    worker_est = copy.copy(est)
    if hasattr(worker_est, "callback"):
        worker_est.callback = None
    if hasattr(worker_est, "feature_names_in_"):
        del worker_est.feature_names_in_
    gm = getattr(worker_est, "gaussian_mixture_", None)
    if gm is not None and hasattr(gm, "feature_names_in_"):
        gm = copy.copy(gm)
        del gm.feature_names_in_
        gm.callback = None
        worker_est.gaussian_mixture_ = gm
    from dask import delayed

    est_d = delayed(worker_est, pure=True)
    what = "score_samples" if method == "score" else method
    if what == "predict_proba":
        K = int(est.n_components)
        out = arr.map_blocks(_predict_block, est_d, what, dtype=np.float64,
                             chunks=(arr.chunks[0], (K,)))
    else:
        dtype = np.int64 if what == "predict" else np.float64
        out = arr.map_blocks(_predict_block, est_d, what, dtype=dtype, drop_axis=1,
                             chunks=(arr.chunks[0],))
    if method == "score":
        return float(out.mean().compute())
    return out
