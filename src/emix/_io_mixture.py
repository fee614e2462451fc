"""The ``emix-model`` layout of :class:`emix.MixtureModel` (format version 2).

``state`` of ``MixtureModel``
-----------------------------
With K components and D used columns (every array float64 ``<f8`` unless said):

``dtype`` : ``"float32"`` or ``"float64"``
    The dtype of the fitted attributes.
``family`` : object
    The constructor parameter ``family``: ``{"name": str}``, ``{"object": spec}``,
    ``{"mapping": [[part, columns], ...]}`` or ``{"pairs": [[part, columns], ...]}``,
    where a part is a family name or a spec and ``columns`` a list of names or
    integers.
``family_options`` : null or object (plain JSON)
``params_init`` : null or object: name -> array reference (for a product: part label
    -> {name -> array reference})
``bound_family`` : spec
    The fitted family: ``{"family": name, "config": {...}}`` with the family's
    ``get_config()``; a product is ``{"family": "product", "config": {"parts": [{"family",
    "config", "columns"}, ...]}}`` with columns as positions among the used columns.
``summary`` : ``{"mean", "var", "min", "max": array (D,), "n": int}``
    The data summary the family was bound with (it fixes a Gaussian part's frame).
``columns`` : array (D,) of ``<i8``
    Positions of the used columns in X.
``weights`` : array (K,), non-negative, summing to 1.
``params`` : list of ``[name, array]`` pairs: the family's parameters in ``param_names``
    order (a product's names are ``"<part>:<name>"``).
``issues`` : list of str
    The fit's degeneracy reports.

A ``MixtureModel(family="gaussian")`` fit is held by a GaussianMixture; save that
(``model.gaussian_mixture_``).
"""

from __future__ import annotations

import math

import numpy as np

from .exceptions import EmixError, InputError

__all__ = ["mixture_model_codec"]

_STATE_KEYS = frozenset(
    ["dtype", "family", "family_options", "params_init", "bound_family", "summary",
     "columns", "weights", "params", "issues"]
)
_OWN_PARAMS = frozenset(["family", "family_options", "params_init"])


class _Derived:
    """Fitted attributes the codec rebuilds: weights, params_, family_ and one
    ``<param>_`` per parameter name of any registered family."""

    _fixed = frozenset(["weights_", "params_", "family_"])
    _names: frozenset | None = None

    def __contains__(self, name) -> bool:
        if name in self._fixed:
            return True
        if _Derived._names is None:
            from .families import FAMILY_NAMES, family_class

            names = set()
            for fam in FAMILY_NAMES:
                try:
                    names.update(f"{p}_" for p in family_class(fam).param_names)
                except (ImportError, AttributeError):  # pragma: no cover - unwritten family
                    pass
            _Derived._names = frozenset(names)
        return name in _Derived._names


def _json(value, where: str):
    """``value`` if it is plain JSON (finite numbers, str, bool, None, lists, str-keyed
    objects); else raise InputError naming ``where``."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(float(value)):
            raise InputError(f"{where}: {value!r} cannot be stored (not finite)")
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_json(v, where) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _json(v, f"{where}.{k}") for k, v in value.items()}
    raise InputError(f"{where} has type {type(value).__name__}, which a model file cannot hold")


def _spec(fam) -> dict:
    return {"family": fam.name, "config": _json(fam.get_config(), f"family {fam.name} config")}


def _build(spec, where: str, invalid):
    """A family object from a spec (unbound)."""
    from .families import family_class
    from .families.product import Product

    if not (isinstance(spec, dict) and set(spec) == {"family", "config"}):
        raise invalid(f"{where} must be an object with keys family and config")
    name, config = spec["family"], spec["config"]
    if not isinstance(config, dict):
        raise invalid(f"{where}.config must be an object")
    try:
        if name == "product":
            parts = config.get("parts")
            if set(config) != {"parts"} or not isinstance(parts, list):
                raise invalid(f"{where}.config must be {{'parts': [...]}}")
            built = []
            for i, p in enumerate(parts):
                if not (isinstance(p, dict) and set(p) == {"family", "config", "columns"}):
                    raise invalid(f"{where}.config.parts[{i}] needs family, config, columns")
                fam = _build({"family": p["family"], "config": p["config"]}, f"{where}.parts[{i}]", invalid)
                built.append((fam, p["columns"]))
            return Product(built)
        if not isinstance(name, str):
            raise invalid(f"{where}.family must be a string")
        return family_class(name)(**config)
    except (EmixError, TypeError, ValueError) as exc:
        # (The reader's own errors are none of these, so they pass through.)
        raise invalid(f"{where}: {exc}") from exc


def _encode_family_param(value):
    from .families._base import Family

    def part(p):
        return p if isinstance(p, str) else _spec(p)

    if isinstance(value, str):
        return {"name": value}
    if isinstance(value, Family):
        return {"object": _spec(value)}
    if isinstance(value, dict):
        return {"mapping": [[part(f), _json(list(np.atleast_1d(c).tolist()) if not isinstance(c, (list, tuple)) else list(c), "family columns")] for f, c in value.items()]}
    if isinstance(value, (list, tuple)):
        return {"pairs": [[part(f), _json(list(c) if isinstance(c, (list, tuple)) else [c], "family columns")] for f, c in value]}
    raise InputError(f"parameter family has type {type(value).__name__}, which a model file cannot hold")


def _decode_family_param(raw, invalid):
    if not (isinstance(raw, dict) and len(raw) == 1):
        raise invalid("state.family must be an object with one key")
    (kind, value), = raw.items()
    if kind == "name":
        if not isinstance(value, str):
            raise invalid("state.family.name must be a string")
        return value
    if kind == "object":
        return _build(value, "state.family.object", invalid)
    if kind in ("mapping", "pairs"):
        if not isinstance(value, list):
            raise invalid(f"state.family.{kind} must be a list")
        out = []
        for i, item in enumerate(value):
            if not (isinstance(item, list) and len(item) == 2 and isinstance(item[1], list)):
                raise invalid(f"state.family.{kind}[{i}] must be [part, columns]")
            f, cols = item
            f = f if isinstance(f, str) else _build(f, f"state.family.{kind}[{i}]", invalid)
            out.append((f, cols))
        if kind == "mapping":
            if not all(isinstance(f, str) for f, _ in out):
                raise invalid("state.family.mapping keys must be family names")
            return dict(out)
        return out
    raise invalid(f"state.family: unknown kind {kind!r}")


def _encode(model, writer) -> dict:
    from .families.product import Product

    if model.family_ is None:
        raise InputError(
            "a MixtureModel with family='gaussian' is held by a GaussianMixture; save "
            "model.gaussian_mixture_ instead"
        )
    weights, params = model._current_params()
    fam = model.family_
    p_init = model.params_init
    if p_init is not None:
        if isinstance(fam, Product):
            p_init = {
                label: {k: writer.array(f"state/params_init/{i}_{j}", np.asarray(v, dtype=np.float64))
                        for j, (k, v) in enumerate(dict(part).items())}
                for i, (label, part) in enumerate(dict(p_init).items())
            }
        else:
            p_init = {k: writer.array(f"state/params_init/{j}", np.asarray(v, dtype=np.float64))
                      for j, (k, v) in enumerate(dict(p_init).items())}
    return {
        **encode_fitted_family(model, writer, params),
        "family": _encode_family_param(model.family),
        "params_init": p_init,
        "weights": writer.array("state/weights", weights),
    }


def _decode(model, state, reader, attributes) -> None:
    from .families.product import Product

    invalid = reader.invalid
    dtype, fam, cols, summary, read_params, issues = decode_fitted_family(
        model, state, reader, attributes, _STATE_KEYS
    )
    model.family = _decode_family_param(state["family"], invalid)
    f8 = "<f8"
    weights = reader.array(state["weights"], "state.weights", dtype=f8, ndim=1)
    K = weights.shape[0]
    if K < 1 or not np.all(np.isfinite(weights)) or np.any(weights < 0) or abs(weights.sum() - 1.0) > 1e-6:
        raise invalid("state.weights must be non-negative and sum to 1")
    params = read_params(K)
    p_init = state["params_init"]
    if p_init is not None:
        if not isinstance(p_init, dict):
            raise invalid("state.params_init must be null or an object")
        if isinstance(fam, Product):
            p_init = {label: {k: reader.array(v, f"state.params_init.{label}.{k}", dtype=f8) for k, v in part.items()}
                      for label, part in p_init.items() if isinstance(part, dict)}
        else:
            p_init = {k: reader.array(v, f"state.params_init.{k}", dtype=f8) for k, v in p_init.items()}
    model.params_init = p_init
    try:
        model._check_parameters()
    except EmixError as exc:
        raise invalid(f"params: {exc}") from exc
    model.family_ = fam
    model._columns_used = np.asarray(cols, dtype=np.intp)
    model._summary = summary
    model._dtype = dtype
    model._store(weights, params)
    model._issues = tuple(issues)


def encode_fitted_family(model, writer, params: dict) -> dict:
    """The state keys every family-based model writes: dtype, the bound family and the
    data summary it was bound with, the columns it reads, its parameters and issues.

    Parameters
    ----------
    model : a fitted MixtureModel or HMM
    params : dict of name -> ndarray, the family's fitted parameters (float64)
    """
    fam = model.family_
    s = model._summary
    return {
        "dtype": np.dtype(model._dtype).name,
        "family_options": None if model.family_options is None else _json(dict(model.family_options), "family_options"),
        "bound_family": _spec(fam),
        "summary": {
            **{k: writer.array(f"state/summary_{k}", s[k]) for k in ("mean", "var", "min", "max")},
            "n": int(s["n"]),
        },
        "columns": writer.array("state/columns", np.asarray(model._columns_used, dtype=np.int64)),
        "params": [[k, writer.array(f"state/params/{j}", params[k])] for j, k in enumerate(fam.param_names)],
        "issues": [str(m) for m in getattr(model, "_issues", ())],
    }


def decode_fitted_family(model, state, reader, attributes, state_keys):
    """Read back what :func:`encode_fitted_family` wrote (checking every field).

    Returns
    -------
    dtype : numpy dtype
    fam : the family, bound to the stored summary
    cols : ndarray of shape (D,), int
    summary : dict
    params_reader : callable ``K -> dict``, the parameters checked for K components
    issues : list of str
    """
    invalid = reader.invalid
    if not isinstance(state, dict) or set(state) != state_keys:
        raise invalid(f"state must have exactly the keys {sorted(state_keys)}")
    if state["dtype"] not in ("float32", "float64"):
        raise invalid(f'state.dtype must be "float32" or "float64", not {state["dtype"]!r}')
    dtype = np.dtype(state["dtype"])
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

    def read_params(K: int) -> dict:
        raw = state["params"]
        if not (isinstance(raw, list) and all(isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) for p in raw)):
            raise invalid("state.params must be a list of [name, array] pairs")
        names = [p[0] for p in raw]
        if names != list(fam.param_names):
            raise invalid(f"state.params names {names} are not the family's {list(fam.param_names)}")
        params = {k: reader.array(v, f"state.params.{k}", dtype=f8) for k, v in raw}
        try:
            return fam.validate_params(params, K)
        except (EmixError, TypeError, ValueError) as exc:
            raise invalid(f"state.params: {exc}") from exc

    issues = state["issues"]
    if not (isinstance(issues, list) and all(isinstance(m, str) for m in issues)):
        raise invalid("state.issues must be a list of strings")
    return dtype, fam, cols, summary, read_params, list(issues)


def mixture_model_codec(cls: type):
    """The codec of :class:`emix.MixtureModel` (format version 2), for ``cls``.

    ``emix.models`` registers it, as it does GaussianMixture's, so that the io modules
    never import the models.
    """
    from .io import ModelCodec

    return ModelCodec(
        cls, _encode, _decode, derived=_Derived(), format_version=2, own_params=_OWN_PARAMS
    )
