"""Input checking shared by the fitters and :func:`emix.mle.log_likelihood`.

Every check raises :class:`~emix.exceptions.InputError` (or ``NonNumericError``) with a
message that names the argument and the offending positions, so that a user with a
million rows can find the bad ones.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping

import numpy as np

from ..exceptions import InputError, NonNumericError

# Error messages list at most this many offending positions; beyond that the count says
# enough, and a message the length of the data helps nobody.
_MAX_POSITIONS_SHOWN = 10


def _list_some(items, describe) -> str:
    """``describe(item)`` for the first few ``items``, then how many more there are.

    Parameters
    ----------
    items : sequence
        Anything with ``len`` and slicing (a list, an index array, rows of ``argwhere``).
    describe : callable ``item -> str``

    Returns
    -------
    str
        ``"a, b, c"``, or ``"a, b, ..., j, and 5 more"`` beyond
        ``_MAX_POSITIONS_SHOWN`` items.
    """
    shown = ", ".join(describe(item) for item in items[:_MAX_POSITIONS_SHOWN])
    more = len(items) - _MAX_POSITIONS_SHOWN
    if more > 0:
        shown += f", and {more} more"
    return shown


def _describe_positions(name: str, values: np.ndarray, idx: np.ndarray) -> str:
    # float() first: NumPy 2 would otherwise print "np.float64(-1.5)".
    return _list_some(idx, lambda i: f"{name}[{i}] = {float(values[i])!r}")


def _refuse_all_equal(used: np.ndarray, consequence: str) -> None:
    """Raise when every positively weighted value is the same, saying what that breaks.

    Parameters
    ----------
    used : ndarray of shape (m,), m >= 1
        The values with positive weight.
    consequence : str
        Why the family cannot be fitted to one repeated value; ends the message.

    Raises
    ------
    InputError
    """
    if np.all(used == used[0]):
        raise InputError(
            f"all {used.size} (positively weighted) values of x are equal to "
            f"{float(used[0])!r}: {consequence}"
        )


def _is_missing_scalar(v: object) -> bool:
    # pandas' nullable dtypes turn missing entries into pd.NA when converted to an object
    # array; recognise it by type name so that pandas is never imported here.
    return v is None or type(v).__name__ in {"NAType", "NaTType"}


def _as_float_vector(x: object, name: str) -> np.ndarray:
    """Convert list / array / pandas Series to a 1-D float64 array, or raise naming why.

    Missing values (None, NaN, pd.NA) become NaN here and are reported by the caller's
    finiteness check, so the user gets one message listing every bad position.
    """
    if isinstance(x, (str, bytes)):
        raise NonNumericError(f"{name} must be a sequence of numbers, got a string: {x!r}")
    if isinstance(x, Mapping):
        raise NonNumericError(
            f"{name} must be a sequence of numbers, got a {type(x).__name__}; "
            "pass its values instead"
        )
    try:
        arr = np.asarray(x)
    except (ValueError, TypeError) as exc:
        # NumPy refuses ragged nested lists; say so in terms of the user's argument.
        raise InputError(f"{name} must be a flat sequence of numbers: {exc}") from exc

    if arr.ndim == 0:
        raise InputError(f"{name} must be a one-dimensional sequence of values, got a scalar")
    if arr.ndim == 2 and arr.shape[1] == 1:
        # A single-column DataFrame or an (n, 1) array is unambiguous: one variable.
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise InputError(
            f"{name} must be one-dimensional (one variable), got an array of shape {arr.shape}"
        )
    if arr.size == 0:
        raise InputError(f"{name} is empty: at least one observation is needed")

    kind = arr.dtype.kind
    if kind in "biuf":
        return arr.astype(np.float64, copy=True)
    if kind == "c":
        raise NonNumericError(f"{name} holds complex numbers; only real values can be fitted")
    if kind in "USV":
        raise NonNumericError(
            f"{name} must hold numbers, but {name}[0] is {str(arr[0])!r} (text); "
            "convert strings to numbers before fitting"
        )
    if kind in "mM":
        raise NonNumericError(
            f"{name} holds dates or time spans ({arr.dtype}); convert them to numbers first"
        )

    # Object arrays: pandas Series of mixed or nullable type, lists with None, ...
    out = np.empty(arr.shape[0], dtype=np.float64)
    for i, v in enumerate(arr):
        if _is_missing_scalar(v):
            out[i] = np.nan
        elif isinstance(v, (numbers.Real, np.bool_)):
            out[i] = float(v)
        else:
            raise NonNumericError(
                f"{name} must hold numbers, but {name}[{i}] is {v!r} ({type(v).__name__})"
            )
    return out


def _check_finite(arr: np.ndarray, name: str) -> None:
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise InputError(
            f"{name} contains {bad.size} missing (NaN) or infinite value(s): "
            f"{_describe_positions(name, arr, bad)}; drop or impute them before fitting"
        )


def _check_weights(sample_weight: object, n_rows: int) -> np.ndarray:
    """Validate frequency weights; return them as float64, shape (n_rows,)."""
    if sample_weight is None:
        return np.ones(n_rows)
    w = _as_float_vector(sample_weight, "sample_weight")
    if w.shape[0] != n_rows:
        raise InputError(
            f"sample_weight has {w.shape[0]} entries but x has {n_rows}; "
            "they must have the same length"
        )
    _check_finite(w, "sample_weight")
    neg = np.flatnonzero(w < 0)
    if neg.size:
        raise InputError(
            "sample_weight must be non-negative; negative weight(s) at "
            f"{_describe_positions('sample_weight', w, neg)}"
        )
    if not float(w.sum()) > 0.0:
        raise InputError("all sample weights are zero: there is nothing to fit")
    return w


def _prepare(x: object, sample_weight: object) -> tuple[np.ndarray, np.ndarray, float]:
    """Validate data and weights; return ``(x, w, sum_w)``, both arrays of shape (n,)."""
    xs = _as_float_vector(x, "x")
    _check_finite(xs, "x")
    w = _check_weights(sample_weight, xs.shape[0])
    return xs, w, float(w.sum())


# --------------------------------------------------------------------------------------
# Supports. Each takes the float64 data of shape (n,) and raises naming the positions.
# --------------------------------------------------------------------------------------


def _check_nonnegative(xs: np.ndarray, what: str) -> None:
    neg = np.flatnonzero(xs < 0)
    if neg.size:
        raise InputError(
            f"the {what} distribution needs x >= 0; negative value(s) at "
            f"{_describe_positions('x', xs, neg)}"
        )


def _check_positive(xs: np.ndarray, what: str) -> None:
    bad = np.flatnonzero(xs <= 0)
    if bad.size:
        raise InputError(
            f"the {what} distribution needs x > 0; zero or negative value(s) at "
            f"{_describe_positions('x', xs, bad)}"
        )


def _check_counts(xs: np.ndarray, what: str) -> None:
    neg = np.flatnonzero(xs < 0)
    if neg.size:
        raise InputError(
            f"the {what} distribution needs non-negative integer counts; negative "
            f"value(s) at {_describe_positions('x', xs, neg)}"
        )
    frac = np.flatnonzero(xs != np.floor(xs))
    if frac.size:
        raise InputError(
            f"the {what} distribution needs whole-number counts; fractional value(s) at "
            f"{_describe_positions('x', xs, frac)}"
        )


def _check_zero_one(xs: np.ndarray) -> None:
    bad = np.flatnonzero((xs != 0.0) & (xs != 1.0))
    if bad.size:
        raise InputError(
            "the Bernoulli distribution needs outcomes coded 0 or 1; other value(s) at "
            f"{_describe_positions('x', xs, bad)}"
        )


def _check_trials(n_trials: object, n_rows: int) -> np.ndarray:
    """Validate a binomial number of trials; return it broadcast to shape (n_rows,)."""
    if n_trials is None:
        raise InputError(
            "the binomial distribution needs n_trials, the known number of trials "
            "(a whole number, or one per row of x)"
        )
    if isinstance(n_trials, (numbers.Real, np.number)) and not isinstance(n_trials, bool):
        t = np.full(n_rows, float(n_trials))
        name = "n_trials"
        if not (np.isfinite(t[0]) and t[0] >= 1 and t[0] == np.floor(t[0])):
            raise InputError(f"n_trials must be a whole number >= 1, got {n_trials!r}")
        return t
    t = _as_float_vector(n_trials, "n_trials")
    name = "n_trials"
    if t.shape[0] != n_rows:
        raise InputError(
            f"n_trials has {t.shape[0]} entries but x has {n_rows}; give one number of "
            "trials per row, or a single number for all rows"
        )
    _check_finite(t, name)
    bad = np.flatnonzero((t < 1) | (t != np.floor(t)))
    if bad.size:
        raise InputError(
            "n_trials must hold whole numbers >= 1; bad value(s) at "
            f"{_describe_positions(name, t, bad)}"
        )
    return t


def _check_successes(xs: np.ndarray, trials: np.ndarray) -> None:
    _check_counts(xs, "binomial")
    over = np.flatnonzero(xs > trials)
    if over.size:
        shown = _list_some(
            over, lambda i: f"x[{i}] = {float(xs[i])!r} > n_trials = {float(trials[i])!r}"
        )
        raise InputError(
            f"the binomial distribution needs 0 <= x <= n_trials; more successes than "
            f"trials at {shown}"
        )


# --------------------------------------------------------------------------------------
# Matrices (multivariate normal) and labels (categorical)
# --------------------------------------------------------------------------------------


def _as_float_matrix(x: object) -> np.ndarray:
    """Convert array-like data to float64 of shape (n, D); 1-D input is one column."""
    if isinstance(x, (str, bytes)):
        raise NonNumericError(f"x must be an array of numbers, got a string: {x!r}")
    columns = getattr(x, "columns", None)
    try:
        arr = np.asarray(x)
    except (ValueError, TypeError) as exc:
        raise InputError(f"x must be a rectangular array of numbers: {exc}") from exc
    if arr.ndim == 1:
        # Falls through to the finiteness check below, like every other input.
        arr = _as_float_vector(arr, "x")[:, None]
    if arr.ndim != 2:
        raise InputError(
            f"x must be two-dimensional (rows are observations, columns variables), got "
            f"an array of shape {arr.shape}"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InputError(f"x is empty (shape {arr.shape}): at least one observation is needed")
    if arr.dtype.kind in "biuf":
        out = arr.astype(np.float64, copy=True)
    else:
        cols = [
            _as_float_vector(arr[:, j], f"x[:, {j}]" if columns is None else repr(columns[j]))
            for j in range(arr.shape[1])
        ]
        out = np.column_stack(cols)
    bad = np.argwhere(~np.isfinite(out))
    if bad.size:
        shown = _list_some(
            bad, lambda ij: f"x[{ij[0]}, {ij[1]}] = {float(out[tuple(ij)])!r}"
        )
        raise InputError(
            f"x contains {bad.shape[0]} missing (NaN) or infinite value(s): {shown}; "
            "drop or impute them before fitting"
        )
    return out


def _label(v: object) -> object:
    # NumPy scalars become Python ones so that names read "p[a]", not "p[np.str_('a')]".
    return v.item() if isinstance(v, np.generic) else v


def _as_label_vector(x: object) -> list:
    """Convert array-like categorical data to a list of hashable labels, length n."""
    if isinstance(x, (str, bytes)):
        raise InputError(f"x must be a sequence of category labels, got a string: {x!r}")
    if isinstance(x, Mapping):
        raise InputError(
            f"x must be a sequence of category labels, got a {type(x).__name__}; "
            "pass its values instead"
        )
    try:
        arr = np.asarray(x, dtype=object) if not isinstance(x, np.ndarray) else x
    except (ValueError, TypeError) as exc:
        raise InputError(f"x must be a flat sequence of category labels: {exc}") from exc
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise InputError(
            f"x must be one-dimensional (one label per observation), got an array of "
            f"shape {arr.shape}"
        )
    if arr.size == 0:
        raise InputError("x is empty: at least one observation is needed")
    labels = [_label(v) for v in arr]
    missing = [
        i
        for i, v in enumerate(labels)
        if _is_missing_scalar(v) or (isinstance(v, float) and math.isnan(v))
    ]
    if missing:
        shown = _list_some(missing, lambda i: f"x[{i}]")
        raise InputError(
            f"x contains {len(missing)} missing label(s) (None or NaN) at {shown}; drop "
            "them or give them a category of their own"
        )
    try:
        for v in labels[:1]:
            hash(v)
    except TypeError as exc:
        raise InputError(f"category labels must be hashable: {exc}") from exc
    return labels
