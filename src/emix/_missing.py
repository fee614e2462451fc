"""Missing values (NaN) in the data: the checks every estimator shares.

NaN in X means "missing". With ``missing="em"`` (the default) the estimators treat the
missing cells as more hidden variables (exact EM for incomplete data, Dempster, Laird
and Rubin 1977): a row's log-likelihood is the marginal of its observed cells and its
statistics are the expected complete-data statistics given them. ``missing="error"``
keeps the strict behaviour: NaN is an :class:`emix.exceptions.InputError`.

inf is never a missing value: it is always an error naming the cell.

This module holds what is independent of the family: the keyword's values, the check
(:func:`check_missing`), the warning, and small helpers that work on NumPy arrays and
torch tensors alike.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ._validation import _col_label, allow_nan, describe_positions
from .exceptions import InputError

__all__ = [
    "MISSING_MODES",
    "MissingDataWarning",
    "MissingInfo",
    "check_missing_mode",
    "check_missing",
    "observed_mask",
    "fill_missing",
    "nan_mask",
    "take",
    "allow_nan",
    "n_observed_rows",
]

MISSING_MODES = ("em", "error")


class MissingDataWarning(UserWarning):
    """Some rows of the data carry no information (every value missing) and were ignored."""


def warn_all_missing(rows: np.ndarray, *, stacklevel: int) -> None:
    """The one :class:`MissingDataWarning` of a fit: ``rows`` (sorted row numbers) had
    every value missing and were ignored."""
    n = len(rows)
    warnings.warn(
        f"{n} row{'s have' if n != 1 else ' has'} every value missing and "
        f"{'were' if n != 1 else 'was'} ignored ({describe_positions(np.asarray(rows))})",
        MissingDataWarning,
        stacklevel=stacklevel + 1,
    )


def check_missing_mode(missing) -> str:
    """Validate the estimators' ``missing`` keyword."""
    if not isinstance(missing, str) or missing not in MISSING_MODES:
        raise InputError(f"missing must be one of {MISSING_MODES}; got {missing!r}")
    return missing


@dataclass(frozen=True)
class MissingInfo:
    """Where the data's missing cells are, as :func:`check_missing` found them.

    Attributes
    ----------
    any_missing : bool
        Whether any cell is NaN.
    all_missing : ndarray of shape (N,), bool
        Rows whose every value is NaN.
    n_observed_rows : int
        Rows with at least one observed value.
    n_missing_cells : int
    """

    any_missing: bool
    all_missing: np.ndarray
    n_observed_rows: int
    n_missing_cells: int

    @property
    def any_all_missing(self) -> bool:
        return bool(self.n_observed_rows < self.all_missing.shape[0])


def _is_torch(X) -> bool:
    return type(X).__module__.startswith("torch")


def nan_mask(X) -> np.ndarray:
    """``isnan(X)`` as a host boolean array (N, D), for a NumPy array or a tensor."""
    if _is_torch(X):
        import torch

        return torch.isnan(X).cpu().numpy()
    return np.isnan(np.asarray(X))


def take(X, idx):
    """Rows ``idx`` of X, on X's own device and in its dtype (NumPy array or tensor)."""
    idx = np.asarray(idx, dtype=np.intp)
    if _is_torch(X):
        import torch

        return X[torch.as_tensor(idx, dtype=torch.int64, device=X.device)]
    return X[idx]


def check_missing(
    X, missing: str, *, name: str = "X", column_names=None, fitting: bool = True,
    stacklevel: int = 3,
) -> MissingInfo:
    """Check the missing cells of a validated data matrix.

    Parameters
    ----------
    X : ndarray or tensor of shape (N, D), float
        Already through the backend's ``validate`` (inside :func:`allow_nan` when
        ``missing="em"``).
    missing : {'em', 'error'}
    column_names : ndarray of str, optional
        Names for messages.
    fitting : bool
        When fitting, rows whose every value is NaN are reported with one
        :class:`MissingDataWarning` that counts them (the caller drops them). At
        prediction time they get the model's prior, silently.

    Returns
    -------
    MissingInfo

    Raises
    ------
    InputError
        On inf anywhere (naming the first cell), on NaN with ``missing="error"``, and
        when fitting on data of which no row has an observed value.
    """
    check_missing_mode(missing)
    N = X.shape[0]
    if _all_finite(X):
        return MissingInfo(False, np.zeros(N, dtype=bool), N, 0)
    nan = nan_mask(X)
    if _is_torch(X):
        import torch

        inf = torch.isinf(X).cpu().numpy()
    else:
        inf = np.isinf(np.asarray(X))
    if inf.any():
        i, j = (int(v) for v in np.argwhere(inf)[0])
        rows = np.flatnonzero(inf.any(axis=1))
        raise InputError(
            f"{name} contains inf in {int(inf.sum())} cell(s): row {i}, "
            f"{_col_label(j, column_names)} holds {'-' if _value(X, i, j) < 0 else ''}inf "
            f"({describe_positions(rows)}). inf is not a missing value: replace it "
            "with NaN to have it treated as missing, or remove those rows."
        )
    n_nan = int(nan.sum())
    if n_nan and missing == "error":
        rows = np.flatnonzero(nan.any(axis=1))
        cols = np.flatnonzero(nan.any(axis=0))
        cols_txt = ", ".join(_col_label(int(j), column_names) for j in cols[:5])
        if len(cols) > 5:
            cols_txt += f" and {len(cols) - 5} more"
        raise InputError(
            f"{name} contains NaN or inf: NaN in {n_nan} cell(s): {describe_positions(rows)}; "
            f"{cols_txt}. Remove or impute those rows, or pass missing='em' to fit with "
            "them (missing cells as hidden variables)."
        )
    all_missing = nan.all(axis=1) if n_nan else np.zeros(N, dtype=bool)
    n_obs = int(N - all_missing.sum())
    if fitting and n_nan:
        if n_obs == 0:
            check_observed(0, None, name=name)
        if n_obs < N:
            warn_all_missing(np.flatnonzero(all_missing), stacklevel=stacklevel)
        check_observed(n_obs, np.flatnonzero(nan.all(axis=0)), name=name,
                       column_names=column_names)
    return MissingInfo(bool(n_nan), all_missing, n_obs, n_nan)


def check_observed(n_observed_rows: int, empty_cols, *, name: str = "X",
                   column_names=None) -> None:
    """The errors of data to fit with no observed value at all, or with a column that
    has none (``empty_cols``: such columns' indices, or None)."""
    if n_observed_rows == 0:
        raise InputError(f"every value of {name} is missing (NaN): there is nothing to fit")
    if empty_cols is not None and len(empty_cols):
        raise InputError(
            f"{_col_label(int(empty_cols[0]), column_names)} of {name} has no observed "
            "value: nothing can be estimated for it; drop the column"
        )


def _all_finite(X) -> bool:
    if _is_torch(X):
        import torch

        return bool(torch.isfinite(X).all())
    return bool(np.isfinite(np.asarray(X)).all())


def _value(X, i: int, j: int) -> float:
    return float(X[i, j])


def observed_mask(ops, Xb):
    """``isfinite(Xb)`` in the kernel's namespace: True where a cell is observed.

    Data reaching a kernel hold no inf (checked first), so not finite means NaN.

    Parameters
    ----------
    Xb : array of shape (rows, D)

    Returns
    -------
    bool array of shape (rows, D)
    """
    return ops.isfinite(Xb)


def fill_missing(ops, Xb, O, value):
    """``Xb`` with its missing cells (where ``O`` is False) replaced by ``value``.

    Parameters
    ----------
    Xb : array of shape (rows, D)
    O : bool array of shape (rows, D)
    value : scalar array or array broadcasting against (rows, D), in Xb's dtype
    """
    return ops.where(O, Xb, value)


def n_observed_rows(X) -> int:
    """Rows of an in-memory X (N, D) with at least one observed (non-NaN) value."""
    nan = nan_mask(X)
    if nan.ndim == 1:
        nan = nan[:, None]
    return int(nan.shape[0] - nan.all(axis=1).sum())


def nan_column_summary(X, w=None, block: int = 65536) -> dict:
    """Column summary over each column's observed (non-NaN) values.

    The frame of the Gaussian families is centred and scaled by the observed values.

    Parameters
    ----------
    X : ndarray or tensor of shape (N, D), NaN where missing
    w : ndarray of shape (N,) or None, host sample weights

    Returns
    -------
    dict with ``mean``, ``var``, ``min``, ``max`` (each (D,), float64), ``n`` (rows) and
    ``n_observed`` (D,): the weight of the observed values per column.
    """
    N, D = X.shape
    s0 = np.zeros(D)
    s1 = np.zeros(D)
    lo = np.full(D, np.inf)
    hi = np.full(D, -np.inf)
    blocks = []
    for a in range(0, N, block):
        Xb = _host(X[a : a + block])
        wb = np.ones(Xb.shape[0]) if w is None else np.asarray(w[a : a + block], dtype=np.float64)
        O = ~np.isnan(Xb)
        Z = np.where(O, Xb, 0.0)
        s0 += wb @ O
        s1 += wb @ Z
        with np.errstate(invalid="ignore"):
            lo = np.fmin(lo, np.nanmin(np.where(O, Xb, np.inf), axis=0))
            hi = np.fmax(hi, np.nanmax(np.where(O, Xb, -np.inf), axis=0))
        blocks.append(a)
    mean = s1 / np.where(s0 > 0, s0, 1.0)
    s2 = np.zeros(D)
    for a in blocks:
        Xb = _host(X[a : a + block])
        wb = np.ones(Xb.shape[0]) if w is None else np.asarray(w[a : a + block], dtype=np.float64)
        dz = np.where(np.isnan(Xb), 0.0, Xb - mean)
        s2 += wb @ (dz * dz)
    var = s2 / np.where(s0 > 0, s0, 1.0)
    return {"mean": mean, "var": var, "min": lo, "max": hi, "n": N, "n_observed": s0}


def _host(Xb) -> np.ndarray:
    if _is_torch(Xb):
        return Xb.detach().cpu().numpy().astype(np.float64)
    return np.asarray(Xb, dtype=np.float64)
