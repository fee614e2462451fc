"""The ``emix-model`` layout of :class:`emix.HMM` (format version 2, as MixtureModel).

``state`` of ``HMM``
--------------------
With K states and D used columns (every array float64 ``<f8`` unless said):

``dtype`` : ``"float32"`` or ``"float64"``
    The dtype of the fitted emission attributes.
``emission`` : object
    The constructor parameter ``emission``, encoded as MixtureModel's ``family``.
``family_options`` : null or object (plain JSON)
``emission_init`` : null or object: name -> array reference
``bound_family`` : spec
    The fitted emission family (``{"family": name, "config": {...}}``, a product as
    for MixtureModel).
``summary`` : ``{"mean", "var", "min", "max": array (D,), "n": int}``
    The data summary the family was bound with.
``columns`` : array (D,) of ``<i8``
``startprob`` : array (K,), non-negative, summing to 1.
``transmat`` : array (K, K), rows non-negative, summing to 1.
``params`` : list of ``[name, array]`` pairs: the emission parameters in
    ``param_names`` order.
``issues`` : list of str
"""

from __future__ import annotations

import numpy as np

from ._io_mixture import _Derived, _build, _decode_family_param, _encode_family_param, _json, _spec
from .exceptions import EmixError

__all__ = ["hmm_codec"]

_STATE_KEYS = frozenset(
    ["dtype", "emission", "family_options", "emission_init", "bound_family", "summary",
     "columns", "startprob", "transmat", "params", "issues"]
)
_OWN_PARAMS = frozenset(["emission", "family_options", "emission_init"])


class _HMMDerived(_Derived):
    """Fitted attributes the codec rebuilds: the chain, params_, family_ and one
    ``<param>_`` per parameter name of any registered family."""

    _fixed = frozenset(["startprob_", "transmat_", "params_", "family_"])


def _encode(model, writer) -> dict:
    startprob, transmat, params = model._current_params()
    fam = model.family_
    e_init = model.emission_init
    if e_init is not None:
        e_init = {
            k: writer.array(f"state/emission_init/{j}", np.asarray(v, dtype=np.float64))
            for j, (k, v) in enumerate(dict(e_init).items())
        }
    s = model._summary
    return {
        "dtype": np.dtype(model._dtype).name,
        "emission": _encode_family_param(model.emission),
        "family_options": None if model.family_options is None else _json(dict(model.family_options), "family_options"),
        "emission_init": e_init,
        "bound_family": _spec(fam),
        "summary": {
            **{k: writer.array(f"state/summary_{k}", s[k]) for k in ("mean", "var", "min", "max")},
            "n": int(s["n"]),
        },
        "columns": writer.array("state/columns", np.asarray(model._columns_used, dtype=np.int64)),
        "startprob": writer.array("state/startprob", startprob),
        "transmat": writer.array("state/transmat", transmat),
        "params": [[k, writer.array(f"state/params/{j}", params[k])] for j, k in enumerate(fam.param_names)],
        "issues": [str(m) for m in getattr(model, "_issues", ())],
    }


def _decode(model, state, reader, attributes) -> None:
    invalid = reader.invalid
    if not isinstance(state, dict) or set(state) != _STATE_KEYS:
        raise invalid(f"state must have exactly the keys {sorted(_STATE_KEYS)}")
    if state["dtype"] not in ("float32", "float64"):
        raise invalid(f'state.dtype must be "float32" or "float64", not {state["dtype"]!r}')
    dtype = np.dtype(state["dtype"])
    model.emission = _decode_family_param(state["emission"], invalid)
    fo = state["family_options"]
    if fo is not None and not isinstance(fo, dict):
        raise invalid("state.family_options must be null or an object")
    model.family_options = fo
    f8 = "<f8"
    cols = reader.array(state["columns"], "state.columns", dtype="<i8", ndim=1)
    D = cols.shape[0]
    n_in = attributes.get("n_features_in_")
    if not (isinstance(n_in, int) and not isinstance(n_in, bool) and D >= 1 and np.all((cols >= 0) & (cols < n_in))):
        raise invalid("state.columns must be positions below attributes.n_features_in_")
    summ = state["summary"]
    if not (isinstance(summ, dict) and set(summ) == {"mean", "var", "min", "max", "n"}):
        raise invalid("state.summary must have keys mean, var, min, max and n")
    summary = {k: reader.array(summ[k], f"state.summary.{k}", dtype=f8, shape=(D,)) for k in ("mean", "var", "min", "max")}
    if not all(np.all(np.isfinite(v)) for v in summary.values()) or np.any(summary["var"] < 0):
        raise invalid("state.summary holds NaN, inf or a negative variance")
    summary["n"] = summ["n"]
    fam = _build(state["bound_family"], "state.bound_family", invalid)
    try:
        fam = fam.bind(summary, D)
    except (EmixError, TypeError, ValueError) as exc:
        raise invalid(f"state.bound_family does not fit the data summary: {exc}") from exc
    startprob = reader.array(state["startprob"], "state.startprob", dtype=f8, ndim=1)
    K = startprob.shape[0]
    if K < 1 or not np.all(np.isfinite(startprob)) or np.any(startprob < 0) or abs(startprob.sum() - 1.0) > 1e-6:
        raise invalid("state.startprob must be non-negative and sum to 1")
    transmat = reader.array(state["transmat"], "state.transmat", dtype=f8, shape=(K, K))
    if (not np.all(np.isfinite(transmat)) or np.any(transmat < 0)
            or np.any(np.abs(transmat.sum(axis=1) - 1.0) > 1e-6)):
        raise invalid("state.transmat rows must be non-negative and sum to 1")
    raw = state["params"]
    if not (isinstance(raw, list) and all(isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) for p in raw)):
        raise invalid("state.params must be a list of [name, array] pairs")
    names = [p[0] for p in raw]
    if names != list(fam.param_names):
        raise invalid(f"state.params names {names} are not the family's {list(fam.param_names)}")
    params = {k: reader.array(v, f"state.params.{k}", dtype=f8) for k, v in raw}
    try:
        params = fam.validate_params(params, K)
    except (EmixError, TypeError, ValueError) as exc:
        raise invalid(f"state.params: {exc}") from exc
    e_init = state["emission_init"]
    if e_init is not None:
        if not isinstance(e_init, dict):
            raise invalid("state.emission_init must be null or an object")
        e_init = {k: reader.array(v, f"state.emission_init.{k}", dtype=f8) for k, v in e_init.items()}
    model.emission_init = e_init
    issues = state["issues"]
    if not (isinstance(issues, list) and all(isinstance(m, str) for m in issues)):
        raise invalid("state.issues must be a list of strings")
    try:
        model._check_parameters()
    except EmixError as exc:
        raise invalid(f"params: {exc}") from exc
    if model.n_states != K:
        raise invalid(f"params.n_states is {model.n_states} but state.startprob has {K} states")
    model.family_ = fam
    model._columns_used = np.asarray(cols, dtype=np.intp)
    model._summary = summary
    model._dtype = dtype
    model._store(startprob, transmat, params)
    model._issues = tuple(issues)


def hmm_codec(cls: type):
    """The codec of :class:`emix.HMM`, for ``cls`` (registered by ``emix.models``)."""
    from .io import ModelCodec

    return ModelCodec(
        cls, _encode, _decode, derived=_HMMDerived(), format_version=2, own_params=_OWN_PARAMS
    )
