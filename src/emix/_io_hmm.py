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

from ._io_mixture import (
    _decode_family_param,
    _Derived,
    _encode_family_param,
    decode_fitted_family,
    encode_fitted_family,
)
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
    e_init = model.emission_init
    if e_init is not None:
        e_init = {
            k: writer.array(f"state/emission_init/{j}", np.asarray(v, dtype=np.float64))
            for j, (k, v) in enumerate(dict(e_init).items())
        }
    return {
        **encode_fitted_family(model, writer, params),
        "emission": _encode_family_param(model.emission),
        "emission_init": e_init,
        "startprob": writer.array("state/startprob", startprob),
        "transmat": writer.array("state/transmat", transmat),
    }


def _decode(model, state, reader, attributes) -> None:
    invalid = reader.invalid
    dtype, fam, cols, summary, read_params, issues = decode_fitted_family(
        model, state, reader, attributes, _STATE_KEYS
    )
    model.emission = _decode_family_param(state["emission"], invalid)
    f8 = "<f8"
    startprob = reader.array(state["startprob"], "state.startprob", dtype=f8, ndim=1)
    K = startprob.shape[0]
    if K < 1 or not np.all(np.isfinite(startprob)) or np.any(startprob < 0) or abs(startprob.sum() - 1.0) > 1e-6:
        raise invalid("state.startprob must be non-negative and sum to 1")
    transmat = reader.array(state["transmat"], "state.transmat", dtype=f8, shape=(K, K))
    if (not np.all(np.isfinite(transmat)) or np.any(transmat < 0)
            or np.any(np.abs(transmat.sum(axis=1) - 1.0) > 1e-6)):
        raise invalid("state.transmat rows must be non-negative and sum to 1")
    params = read_params(K)
    e_init = state["emission_init"]
    if e_init is not None:
        if not isinstance(e_init, dict):
            raise invalid("state.emission_init must be null or an object")
        e_init = {k: reader.array(v, f"state.emission_init.{k}", dtype=f8) for k, v in e_init.items()}
    model.emission_init = e_init
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
