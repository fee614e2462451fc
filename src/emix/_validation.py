"""Input checks that name the problem: which argument, which rows, which columns.

NumPy's own errors ("could not convert string to float") say neither where nor why; every
check here does, so that a user with a million-row file can find the bad line.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import numbers

import numpy as np

from .exceptions import InputError, NonNumericError

__all__ = [
    "check_array",
    "check_sample_weight",
    "column_names",
    "describe_positions",
    "check_int",
    "check_float",
    "check_weights_init",
    "allow_nan",
]

# Inside ``allow_nan()`` the finiteness checks let NaN through (missing values, see
# emix._missing) and still refuse inf. A context variable rather than a keyword so
# that every backend's ``validate`` honours it without a new argument.
_NAN_ALLOWED = contextvars.ContextVar("emix_nan_allowed", default=False)


@contextlib.contextmanager
def allow_nan(enabled: bool = True):
    """Let the data checks accept NaN (missing values) inside the ``with`` block."""
    token = _NAN_ALLOWED.set(bool(enabled))
    try:
        yield
    finally:
        _NAN_ALLOWED.reset(token)

_MAX_LISTED = 5


def describe_positions(idx, noun: str = "rows") -> str:
    """``"rows 3, 17, 99 and 12 more"`` for a list of indices."""
    idx = [int(i) for i in np.asarray(idx).ravel()]
    shown = ", ".join(str(i) for i in idx[:_MAX_LISTED])
    more = f" and {len(idx) - _MAX_LISTED} more" if len(idx) > _MAX_LISTED else ""
    return f"{noun} {shown}{more}"


def column_names(X):
    """Column names of a DataFrame-like object as an array of str, else None.

    scikit-learn's rule: names are used only when every column name is a string.
    """
    cols = getattr(X, "columns", None)
    if cols is None or not hasattr(X, "dtypes"):
        return None
    names = list(cols)
    if names and all(isinstance(c, str) for c in names):
        return np.asarray(names, dtype=object)
    return None


def _col_label(j: int, names) -> str:
    if names is not None:
        return f"column {names[j]!r} (index {j})"
    return f"column {j}"


def _to_float_columnwise(values: np.ndarray, names, name: str, column_offset: int = 0) -> np.ndarray:
    """Convert an object/str array to float64, naming the first bad cell.

    ``column_offset`` is the position of ``values``'s first column in the whole table.
    """
    out = np.empty(values.shape, dtype=np.float64)
    for j in range(values.shape[1]):
        col = values[:, j]
        try:
            out[:, j] = col.astype(np.float64)
        except (TypeError, ValueError) as exc:
            for i, v in enumerate(col):
                try:
                    float(v)
                except (TypeError, ValueError) as cell_exc:
                    reason = str(cell_exc)
                    break
            else:  # pragma: no cover - the column failed as a whole only
                i, v, reason = 0, col[0], str(exc)
            raise NonNumericError(
                f"{name} {_col_label(j + column_offset, names)} is not numeric: row {i} holds {v!r} "
                f"({reason}). Encode categories as numbers or drop the column."
            ) from None
    return out


def as_2d(arr, name: str = "X", allow_1d: bool = True):
    """The shape rules every backend shares: 1-D is one feature; 0-D and >2-D fail.

    Works on anything with ``ndim``, ``shape`` and ``reshape`` (NumPy arrays, tensors).
    """
    if arr.ndim == 0:
        raise InputError(f"{name} must be a 1-D or 2-D array; got a scalar {arr!r}")
    if arr.ndim == 1:
        if not allow_1d:
            raise InputError(
                f"{name} is 1-D with {arr.shape[0]} values. Reshape your data: use "
                "X.reshape(-1, 1) for one feature or X.reshape(1, -1) for one row."
            )
        return arr.reshape(-1, 1)
    if arr.ndim > 2:
        raise InputError(f"{name} must be 2-D (rows x features); got shape {tuple(arr.shape)}")
    return arr


def check_array(
    X,
    *,
    name: str = "X",
    min_rows: int = 1,
    allow_1d: bool = True,
    n_features: int | None = None,
    estimator_name: str = "the model",
):
    """Validate a data matrix and return it as a float ndarray (N, D).

    Parameters
    ----------
    X : array-like of shape (N, D) or (N,)
        NumPy array, nested list, pandas DataFrame or Series. 1-D input is one feature.
    min_rows : int
    allow_1d : bool
        When False, 1-D input is an error (used for prediction on a model fitted on
        several features, where a 1-D array is almost always one row).
    n_features : int, optional
        Expected number of columns (prediction).

    Returns
    -------
    X : ndarray of shape (N, D), float32 or float64 (float32 kept, others to float64)
    names : ndarray of str or None
        Column names when X is a DataFrame with string column names.
    """
    names = column_names(X)
    if hasattr(X, "tocsr") or type(X).__module__.startswith("scipy.sparse"):
        raise InputError(
            f"{name} is a sparse matrix; Gaussian mixtures need dense data. Convert it "
            "with X.toarray() if it fits in memory."
        )
    if hasattr(X, "dtypes") and hasattr(X, "to_numpy"):
        X = _frame_to_numpy(X, names, name)
    try:
        arr = np.asarray(X)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} cannot be read as an array: {exc}") from None
    if arr.dtype.kind == "c":
        raise InputError(f"Complex data not supported: {name} has complex dtype {arr.dtype}")
    one_d = arr.ndim == 1
    arr = as_2d(arr, name, allow_1d)
    if arr.dtype.kind in "OUSV" or arr.dtype.kind == "M" or arr.dtype.kind == "m":
        if arr.dtype.kind in "MmV":
            raise NonNumericError(f"{name} has dtype {arr.dtype}, which is not numeric")
        arr = _to_float_columnwise(arr, names, name)
    elif arr.dtype == np.float32 or arr.dtype == np.float64:
        pass
    elif arr.dtype.kind in "biuf":
        arr = arr.astype(np.float32 if arr.dtype == np.float16 else np.float64)
    else:
        raise NonNumericError(f"{name} has dtype {arr.dtype}, which is not numeric")
    check_shape(
        arr.shape, name=name, min_rows=min_rows, n_features=n_features,
        estimator_name=estimator_name, one_d=one_d,
    )
    _check_finite(arr, names, name)
    return arr, names


def _frame_to_numpy(df, names, name):
    """DataFrame to ndarray, naming a non-numeric column before NumPy fails on it."""
    dtypes = list(df.dtypes) if hasattr(df.dtypes, "__iter__") else [df.dtypes]
    for j, dt in enumerate(dtypes):
        kind = getattr(dt, "kind", "O")
        if kind not in "biuf":
            values = np.asarray(df.iloc[:, j] if df.ndim == 2 else df, dtype=object)
            _to_float_columnwise(values.reshape(-1, 1), names, name, column_offset=j)
    arr = df.to_numpy()
    if arr.dtype == object:
        arr = arr.astype(np.float64)
    return arr


def check_shape(
    shape, *, name: str, min_rows: int, n_features: int | None, estimator_name: str,
    one_d: bool,
) -> None:
    """Rows, columns and the expected feature count of a 2-D shape (every backend)."""
    N, D = shape
    if D == 0:
        raise InputError(
            f"{name} has no columns: 0 feature(s) (shape={tuple(shape)}) while a minimum of "
            "1 is required."
        )
    if N < min_rows:
        if N == 0:
            raise InputError(
                f"{name} is empty: 0 rows (shape {tuple(shape)}); at least {min_rows} needed"
            )
        raise InputError(f"{name} has {N} sample(s) (rows); at least {min_rows} are needed")
    if n_features is not None and D != n_features:
        raise InputError(
            f"X has {D} features, but {estimator_name} is expecting {n_features} features "
            "as input"
            + (". Reshape your data: 1-D input is read as one feature" if one_d else "")
        )


def raise_nan_inf(name: str, found, names=None) -> None:
    """The error for non-finite data, naming rows and columns (every backend).

    Parameters
    ----------
    found : list of (what, count, rows, cols)
        ``what`` is "NaN" or "inf"; ``rows`` and ``cols`` are the indices holding it.
        Inside :func:`allow_nan` NaN entries are ignored (and nothing is raised when
        only NaN was found).
    """
    if _NAN_ALLOWED.get():
        # NaN is a missing value here; only inf is an error.
        found = [f for f in found if f[0] != "NaN"]
        if not found:
            return
    parts = []
    for what, count, rows, cols in found:
        col_txt = ", ".join(_col_label(j, names) for j in cols[:_MAX_LISTED])
        if len(cols) > _MAX_LISTED:
            col_txt += f" and {len(cols) - _MAX_LISTED} more"
        parts.append(f"{what} in {count} cell(s): {describe_positions(rows)}; {col_txt}")
    raise InputError(
        f"{name} contains NaN or inf: " + "; ".join(parts) + ". Remove or impute those rows."
    )


def _check_finite(arr: np.ndarray, names, name: str) -> None:
    if np.isfinite(arr).all():
        return
    found = []
    checks = ((np.isnan, "NaN"), (np.isinf, "inf"))
    if _NAN_ALLOWED.get():
        checks = checks[1:]
    for test, what in checks:
        mask = test(arr)
        if mask.any():
            found.append((what, int(mask.sum()), np.flatnonzero(mask.any(axis=1)),
                          np.flatnonzero(mask.any(axis=0))))
    raise_nan_inf(name, found, names)


def check_sample_weight(sample_weight, n_rows: int, *, dtype=np.float64):
    """Validate sample weights: length, finiteness, sign, a positive total.

    Returns
    -------
    ndarray of shape (N,) or None (None means every weight is 1)
    """
    if sample_weight is None:
        return None
    if hasattr(sample_weight, "to_numpy"):
        sample_weight = sample_weight.to_numpy()
    try:
        sw = np.asarray(sample_weight, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"sample_weight must be numeric: {exc}") from None
    if sw.ndim == 0:
        sw = np.full(n_rows, float(sw))
    if sw.ndim != 1:
        raise InputError(
            f"sample_weight must be 1-D with one weight per row; got shape {sw.shape}"
        )
    if sw.shape[0] != n_rows:
        raise InputError(
            f"sample_weight has {sw.shape[0]} entries but X has {n_rows} rows; they must "
            "match (sample_weight.shape == (n_samples,))"
        )
    bad = ~np.isfinite(sw)
    if bad.any():
        raise InputError(f"sample_weight is NaN or inf at {describe_positions(np.flatnonzero(bad))}")
    neg = sw < 0
    if neg.any():
        first = int(np.flatnonzero(neg)[0])
        raise InputError(
            f"sample_weight must be non-negative; negative at "
            f"{describe_positions(np.flatnonzero(neg))} (row {first} has {sw[first]:g})"
        )
    if sw.sum() <= 0:
        raise InputError(
            "sample_weight sums to zero (every weight is 0): at least one row needs a "
            "positive weight"
        )
    return sw.astype(dtype, copy=False)


def check_int(value, name: str, *, low: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputError(f"{name} must be an integer; got {value!r}")
    if low is not None and value < low:
        raise InputError(f"{name} must be >= {low}; got {value}")
    return int(value)


def check_float(value, name: str, *, low: float | None = None, strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputError(f"{name} must be a number; got {value!r}")
    v = float(value)
    if not np.isfinite(v):
        raise InputError(f"{name} must be finite; got {value!r}")
    if low is not None and (v <= low if strict else v < low):
        raise InputError(f"{name} must be {'>' if strict else '>='} {low}; got {value!r}")
    return v


def check_weights_init(weights_init, n_components: int) -> np.ndarray:
    """Validate user-given starting mixture weights, the same way for every model.

    Parameters
    ----------
    weights_init : array-like of shape (n_components,)
    n_components : int

    Returns
    -------
    ndarray of shape (n_components,), float64

    Raises
    ------
    InputError
        When the shape is wrong, a weight is negative, NaN or inf, or the weights do not
        sum to 1 (to within 1e-6).
    """
    K = n_components
    w = np.asarray(weights_init, dtype=np.float64)
    if w.shape != (K,):
        raise InputError(f"weights_init must have shape ({K},); got {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise InputError(f"weights_init must be finite and non-negative; got {w}")
    if not math.isclose(w.sum(), 1.0, abs_tol=1e-6):
        raise InputError(f"weights_init must sum to 1; they sum to {w.sum():.6g}")
    return w
