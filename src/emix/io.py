"""Save and load fitted models as a zip of JSON and ``.npy`` arrays; never pickle.

``save(model, path)`` writes a fitted model; ``load(path)`` gives back a model whose
predictions, samples, scores and warm-started refits are bit-for-bit those of the
original. Loading a file never runs code from it: the file holds numbers, strings and
plain arrays only, every part is checked before use, and anything wrong with a file's
content raises :class:`emix.exceptions.ModelFileError` naming the part.

Format specification: ``emix-model``, version 1
================================================

This section is the specification; a reader or writer in another language needs
nothing else. MUST and MUST NOT are requirements on writers (and what this module's
reader checks).

Container
---------
A ZIP archive (PKWARE APPNOTE; no ZIP64 is needed below 4 GiB, none is forbidden).
Members are stored or deflated (methods 0 and 8), unencrypted, with unique names. It
holds exactly:

* ``emix-model.json``: the header, UTF-8 JSON (RFC 8259) of at most 16 MiB.
* one ``.npy`` member for every entry of the header's ``arrays`` index, and nothing
  else: a missing or an extra member makes the file invalid. Member names are
  ``/``-separated ASCII words of letters, digits, ``_``, ``.`` and ``-``, ending
  ``.npy``. This module writes them under ``state/``, ``params/`` and
  ``attributes/``.

Member timestamps are 1980-01-01 00:00:00, so that one model always gives the same bytes.
A reader may refuse archives whose members declare more uncompressed bytes than it is
prepared to read (this one: ``max_bytes``, 1 GiB by default) or more than 1024 members.

Arrays
------
Each array member is a NumPy ``.npy`` file, format version 1.0, 2.0 or 3.0 (the
header's dict literal holds ``descr``, ``fortran_order`` and ``shape``; see
numpy.lib.format). ``descr`` MUST be one of ``<f8 <f4 <i8 <i4 <i2 |i1 <u8 <u4 <u2 |u1
|b1`` (little-endian; no objects, no structured or string types), and booleans are
bytes 0 or 1. The data that follow the header are exactly ``prod(shape) * itemsize``
bytes. Writers write C order; readers accept ``fortran_order`` True as well.

Header
------
A JSON object with exactly these keys:

``format`` : string
    ``"emix-model"``.
``format_version`` : integer
    ``1`` for ``GaussianMixture``, ``2`` for ``MixtureModel`` (whose ``state`` layout
    is specified in :mod:`emix._io_mixture`): each class's files carry the version its
    layout appeared in. A reader refuses versions it does not know; a later version is
    written by a later emix.
``emix_version`` : string
    The emix that wrote the file (information only).
``model_class`` : string
    The estimator's class name, e.g. ``"GaussianMixture"``; it selects the ``state``
    layout below.
``params`` : object
    The estimator's constructor parameters (``get_params()``), name -> value (see
    *Values*). A parameter that the file omits takes its default; one the reader's
    class does not have makes the file invalid. A parameter that is not data (a
    callable such as ``callback``, a NumPy ``Generator``/``RandomState`` as
    ``random_state``) is written as ``{"not_stored": "<why>"}`` and loads as None.
``attributes`` : object
    Fitted attributes, name -> value: every public attribute whose name ends in ``_``
    (``n_features_in_``, ``converged_``, ``n_iter_``, ``lower_bound_``,
    ``lower_bounds_``, ``feature_names_in_``...), except those the class rebuilds from
    ``state`` (for GaussianMixture: ``weights_``, ``means_``, ``covariances_``,
    ``precisions_cholesky_``, ``precisions_``).
``state`` : object
    The model's parameters, in the class's own layout (below).
``arrays`` : object
    Index of array members: member name -> ``{"dtype": <descr>, "shape": [int, ...]}``,
    which MUST agree with the member's own ``.npy`` header. Every member is referred to
    exactly once from ``params``, ``attributes`` or ``state``.

JSON text MUST NOT contain ``NaN`` or ``Infinity`` literals, numbers beyond float64's
range, or an object with a repeated key.

Values
------
A value in ``params`` or ``attributes`` is one of:

* ``null``, ``true``, ``false``, a string: None, a bool, a str.
* a number: an integer when written without fraction or exponent (``7``), otherwise a
  float64 (``7.0``, ``1e-06``); writers write floats so that they read back exactly
  (shortest round-trip form).
* ``{"float": "nan" | "inf" | "-inf"}``: a non-finite float.
* ``{"array": "<member>"}``: a NumPy array stored in that member.
* ``{"strings": [str, ...], "numpy_dtype": "object" | "str"}``: a 1-D NumPy array of
  strings (``feature_names_in_``), of dtype object or unicode.
* ``{"list": [...]}`` or ``{"tuple": [...]}``: a Python list or tuple of JSON scalars
  (finite numbers, strings, booleans, null) and nested lists.
* ``{"not_stored": "<why>"}`` (``params`` only): a parameter that was not saved.

A bare JSON list, or an object of any other shape, is not a value.

``state`` of ``GaussianMixture``
--------------------------------
With K components, D features and ``covariance_type`` t, every array float64
(``<f8``):

``dtype`` : ``"float32"`` or ``"float64"``
    The dtype of the fitted attributes (the data the model was fitted on).
``covariance_type`` : ``"full"``, ``"tied"``, ``"diag"`` or ``"spherical"``
    Equal to ``params.covariance_type``.
``weights`` : array (K,)
    Non-negative, summing to 1 (within ``max(1e-6, 8 K eps(dtype))``).
``means`` : array (K, D)
``covariances`` : array (K, D, D) full, (D, D) tied, (K, D) diag, (K,) spherical
    Symmetric positive definite matrices, or positive variances.
``precisions_cholesky`` : array, same shape as ``covariances``
    Upper triangular ``U`` (full, tied) with ``U U^T = covariance^-1`` and a positive
    diagonal, or ``1 / sqrt(variance)`` (diag, spherical).
``frame`` : ``null`` or ``{"center": <array (D,)>, "scale": <float>}``
    The fit's working coordinates ``z = (x - center) / scale``, ``scale`` a positive
    power of two. Prediction takes the E-step in them, so storing them keeps predictions
    bit-for-bit equal. With sigma the square root of the largest covariance eigenvalue
    (or variance) of any component, ``2^-40 <= scale / sigma <= 2^40``, and every
    ``|means[k, j] - center[j]| <= 2^40 scale``.
``issues`` : ``null`` or list of objects
    The fit's degeneracy reports (``emix.families.gaussian.ComponentIssue``), one
    object per report with keys among ``component`` (integer, -1 for the shared
    covariance of ``tied``, else 0..K-1), ``kind`` (string: ``"empty"``,
    ``"collapsed"``, ``"too_few_points"``), ``column`` (null or 0..D-1), ``value``,
    ``limit``, ``variance``, ``reg_covar`` (floats, as *Values*). They make the
    warnings and ``degenerate_`` of the loaded model those of the original.

Every ``state`` array holds finite numbers only, and ``params`` pass the checks that
``GaussianMixture.fit`` makes of its parameters (``random_state`` null or a
non-negative integer, ``device`` null or a string). ``attributes.n_features_in_`` is
an integer equal to D; ``converged_`` (bool), ``n_iter_`` (int >= 0),
``lower_bound_`` (float) and ``lower_bounds_`` (1-D float array) are required;
``feature_names_in_``, when present, holds D strings; ``degenerate_`` (bool) and
``degenerate_components_`` (1-D integer array of values -1..K-1) are checked when
present.

Design notes
------------
* Parameters that are not data are stored as ``{"not_stored": ...}`` and load as None,
  rather than refused, because they are run-time plumbing, not part of the fitted model:
  a callback is code, which a model file must never carry, and a random generator's
  stream cannot be replayed by anyone but its owner. Neither changes ``predict``,
  ``score`` or ``bic``; set them again with ``set_params`` before refitting. Model
  formats such as XGBoost's JSON and Keras's ``.keras`` likewise keep the model but not
  the callbacks given to training. A parameter of any other type that emix cannot
  store is refused at save time, since it may change what the model does.
* If the public parameter attributes (``weights_``...) were edited after fitting, the
  file stores the edited values, which are what prediction uses.
* ``save`` checks what it is about to write with the same code that ``load`` runs, so a
  file that ``save`` writes always loads.
* Model classes add their ``state`` layouts with :func:`register`.
"""

from __future__ import annotations

import dataclasses
import io as _io
import json
import math
import os
import re
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._atomic import write_atomic
from .exceptions import EmixError, InputError, ModelFileError

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "ModelCodec",
    "load",
    "read_header",
    "register",
    "save",
]

FORMAT_NAME = "emix-model"
# Version 1: GaussianMixture. Version 2 adds MixtureModel (any family, products of
# families); a class's files carry the version its layout appeared in, so version-1
# files load unchanged and GaussianMixture files are still written as version 1.
FORMAT_VERSION = 2
HEADER_MEMBER = "emix-model.json"

#: Largest header accepted; a million feature names still fit.
MAX_HEADER_BYTES = 16 * 2**20
#: Default bound on the total uncompressed size of a file's members (see ``load``).
DEFAULT_MAX_BYTES = 2**30
MAX_MEMBERS = 1024
_MAX_NDIM = 32

_ALLOWED_DTYPES = frozenset(
    ["<f8", "<f4", "<i8", "<i4", "<i2", "|i1", "<u8", "<u4", "<u2", "|u1", "|b1"]
)
_MEMBER_NAME = re.compile(r"[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*\.npy")
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_TOP_KEYS = (
    "format",
    "format_version",
    "emix_version",
    "model_class",
    "params",
    "attributes",
    "state",
    "arrays",
)


class _Invalid(Exception):
    """A problem with a file's content; ``load`` reports it as ModelFileError."""


# =========================================================================== registry
@dataclass(frozen=True)
class ModelCodec:
    """How one model class writes and reads the ``state`` part of a model file.

    Constructor parameters and simple fitted attributes are handled generically; a
    codec handles what they cannot: private state and the parameters that must be
    checked for consistency.

    Parameters
    ----------
    cls : type
        The estimator class; the file records ``cls.__name__``.
    encode : callable ``(model, writer) -> dict``
        The ``state`` object. ``writer.array(name, array)`` stores an array and returns
        the JSON value that refers to it.
    decode : callable ``(model, state, reader, attributes) -> None``
        Check ``state`` (and the decoded ``attributes``, a dict) and set the model's
        private state and derived attributes on ``model``, a fresh instance whose
        parameters are already set. ``reader.array(value, where, ...)`` resolves an
        array reference. Raise ``reader.invalid(message)`` for any problem.
    derived : frozenset of str
        Public fitted attributes that ``decode`` rebuilds, so not stored generically.
    """

    cls: type
    encode: Callable[[Any, _Writer], dict]
    decode: Callable[[Any, dict, _Reader, dict], None]
    derived: frozenset = frozenset()
    #: The format version whose ``state`` layout this codec reads and writes.
    format_version: int = 1
    #: Constructor parameters the codec stores in ``state`` itself (values the generic
    #: *Values* cannot hold, such as family objects and dicts of arrays).
    own_params: frozenset = frozenset()


_CODECS: dict[str, ModelCodec] = {}


def register(codec: ModelCodec) -> None:
    """Make ``codec.cls`` savable; a later registration for the same class name wins."""
    _CODECS[codec.cls.__name__] = codec


# =========================================================================== public API
def save(model, path) -> None:
    """Write a fitted model to ``path`` (format ``emix-model`` version 1; see module doc).

    The file is written to a temporary file in the same directory and renamed into
    place, so ``path`` holds either its old content or the complete new file, never a
    part of one.

    Parameters
    ----------
    model : estimator
        A fitted model of a registered class (``GaussianMixture``).
    path : str or os.PathLike

    Raises
    ------
    NotFittedError
        ``model`` has not been fitted.
    InputError
        ``model``'s class has no file format, a parameter or fitted attribute holds a
        value the format cannot store, or its parameters are inconsistent (edited after
        fitting into something no file may hold).
    OSError
        The file cannot be written.
    """
    members = _encode(model)
    try:
        # The reader's checks, on exactly the bytes about to be written: a file that
        # save writes always loads.
        _decode(members)
    except _Invalid as exc:
        raise InputError(f"cannot save this {type(model).__name__}: {exc}") from exc
    _write_zip(os.fspath(path), members)


def load(source, *, max_bytes: int = DEFAULT_MAX_BYTES):
    """Read a model written by :func:`save`.

    Parameters
    ----------
    source : str, os.PathLike or binary file object
        A seekable file object (``io.BytesIO``...) is read from its current content.
    max_bytes : int, default 2**30
        Refuse files whose members declare more than this many uncompressed bytes in
        all, before reading any of them (a guard against zip bombs).

    Returns
    -------
    model
        A fitted estimator of the class named in the file.

    Raises
    ------
    ModelFileError
        The content is not a valid model file: not a zip archive, corrupt or
        truncated, another format, an unknown ``format_version``, members missing or
        extra, wrong JSON types, or parameters that are inconsistent (shapes that
        disagree, weights that do not sum to 1, a covariance that is not symmetric
        positive definite, NaN or inf...). The message names the member, field or
        component; any lower-level error is chained as ``__cause__``.
    OSError
        ``source`` cannot be opened (missing, permissions).
    """
    return _with_file(source, lambda fh: _decode(_read_zip(fh, max_bytes)))


def read_header(source, *, max_bytes: int = DEFAULT_MAX_BYTES) -> dict:
    """The JSON header of a model file, checked for format and version only.

    Useful to see what a file holds (class, parameters, notes on parameters that were
    not stored) without building the model.

    Returns
    -------
    dict
        The parsed ``emix-model.json``.

    Raises
    ------
    ModelFileError, OSError
        As :func:`load`.
    """

    return _with_file(
        source, lambda fh: _parse_header(_read_zip(fh, max_bytes, header_only=True))
    )


def _with_file(source, read):
    if hasattr(source, "read"):
        fh, name, close = source, getattr(source, "name", "<file object>"), False
    else:
        name = os.fspath(source)
        fh, close = open(name, "rb"), True  # noqa: SIM115 - closed below
    try:
        try:
            return read(fh)
        except _Invalid as exc:
            raise ModelFileError(f"{name!s} is not a valid emix model file: {exc}") from (
                exc.__cause__ or exc
            )
        except Exception as exc:
            # Whatever zipfile, zlib, json or numpy raise on content that got past the
            # explicit checks: still a bad file, never a crash of the caller's program.
            raise ModelFileError(
                f"{name!s} is not a valid emix model file: {type(exc).__name__}: {exc}"
            ) from exc
    finally:
        if close:
            fh.close()


# =========================================================================== writing
class _Writer:
    """Collects array members while a model is encoded."""

    def __init__(self):
        self.arrays: dict[str, np.ndarray] = {}

    def array(self, name: str, value) -> dict:
        """Store ``value`` as member ``<name>.npy``; return the JSON reference to it."""
        arr = np.asarray(value)
        descr = _storable_dtype(arr.dtype)
        if descr is None:
            raise InputError(f"{name}: arrays of dtype {arr.dtype} cannot be stored")
        member = f"{name}.npy"
        if not _MEMBER_NAME.fullmatch(member) or member in self.arrays:
            raise InputError(f"{name}: not a usable array name")
        self.arrays[member] = np.ascontiguousarray(arr.astype(np.dtype(descr), copy=False))
        return {"array": member}


def _storable_dtype(dtype: np.dtype) -> str | None:
    if dtype.kind not in "biuf" or dtype.fields is not None or dtype.subdtype is not None:
        return None
    descr = dtype.newbyteorder("<").str if dtype.itemsize > 1 else dtype.str
    return descr if descr in _ALLOWED_DTYPES else None


def _plain(value) -> bool:
    """Whether ``value`` is a JSON scalar or a (nested) list/tuple of them."""
    if value is None or isinstance(value, (bool, int, str)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    return False


def _json_plain(value):
    if isinstance(value, (list, tuple)):
        return [_json_plain(v) for v in value]
    if isinstance(value, float):
        return float(value)
    return value


def _encode_value(value, where: str, member: str, writer: _Writer, param: bool):
    """JSON for one parameter or attribute value (see *Values* in the module doc)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        if math.isfinite(f):
            return f
        return {"float": "nan" if math.isnan(f) else ("inf" if f > 0 else "-inf")}
    if isinstance(value, np.ndarray):
        if (
            value.dtype.kind in "OU"
            and value.ndim == 1
            and all(isinstance(v, str) for v in value.tolist())
        ):
            return {
                "strings": [str(v) for v in value.tolist()],
                "numpy_dtype": "object" if value.dtype.kind == "O" else "str",
            }
        if _storable_dtype(value.dtype) is None:
            raise InputError(
                f"{where} is an array of dtype {value.dtype}, which a model file cannot "
                "hold (numbers, booleans and 1-D arrays of strings only)"
            )
        return writer.array(member, value)
    if isinstance(value, (list, tuple)) and _plain(value):
        return {"list" if isinstance(value, list) else "tuple": _json_plain(value)}
    if param and (
        callable(value)
        or isinstance(
            value, (np.random.Generator, np.random.RandomState, np.random.BitGenerator)
        )
    ):
        kind = "a callable is code" if callable(value) else "a random generator's state"
        return {
            "not_stored": f"{type(value).__name__}: {kind}, which a model file does not "
            "hold; loads as None"
        }
    raise InputError(
        f"{where} has type {type(value).__name__}, which a model file cannot hold (numbers, "
        "strings, None, lists of those, and numeric arrays only)"
    )


def _encode(model) -> dict[str, bytes]:
    """Every member of the file for ``model``, name -> bytes."""
    cls = type(model)
    codec = _CODECS.get(cls.__name__)
    if codec is None or codec.cls is not cls:
        raise InputError(
            f"emix cannot save a {cls.__name__}: no model file format is registered for "
            f"it (savable: {', '.join(sorted(_CODECS)) or 'none'})"
        )
    model._check_is_fitted("save")
    from . import __version__

    writer = _Writer()
    params = {
        name: _encode_value(value, f"parameter {name}", f"params/{name}", writer, True)
        for name, value in model.get_params(deep=False).items()
        if name not in codec.own_params
    }
    attributes = {}
    for name, value in vars(model).items():
        if name.startswith("_") or not name.endswith("_") or name in codec.derived:
            continue
        attributes[name] = _encode_value(
            value, f"fitted attribute {name}", f"attributes/{name}", writer, False
        )
    state = codec.encode(model, writer)
    header = {
        "format": FORMAT_NAME,
        "format_version": codec.format_version,
        "emix_version": str(__version__),
        "model_class": cls.__name__,
        "params": params,
        "attributes": attributes,
        "state": state,
        "arrays": {
            member: {"dtype": arr.dtype.str, "shape": list(arr.shape)}
            for member, arr in writer.arrays.items()
        },
    }
    text = json.dumps(header, indent=1, allow_nan=False, ensure_ascii=True)
    members = {HEADER_MEMBER: text.encode("utf-8")}
    for member, arr in writer.arrays.items():
        buf = _io.BytesIO()
        np.lib.format.write_array(buf, arr, version=(1, 0), allow_pickle=False)
        members[member] = buf.getvalue()
    return members


def _write_zip(path: str, members: Mapping[str, bytes]) -> None:
    def write(fh):
        with zipfile.ZipFile(fh, "w") as zf:
            for name, data in members.items():
                info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, data)

    write_atomic(path, write)


# =========================================================================== reading
def _read_zip(fh, max_bytes: int, header_only: bool = False) -> dict[str, bytes]:
    """The archive's members, name -> bytes, after checking declared sizes."""
    try:
        zf = zipfile.ZipFile(fh)
    except zipfile.BadZipFile as exc:
        raise _Invalid(f"not a zip archive ({exc})") from exc
    except Exception as exc:  # e.g. NotImplementedError for a damaged version field
        raise _Invalid(f"not a readable zip archive ({type(exc).__name__}: {exc})") from exc
    try:
        return _read_members(zf, max_bytes, header_only)
    except _Invalid:
        raise
    except Exception as exc:
        # zipfile and zlib report damage in many ways (BadZipFile, zlib.error, EOFError,
        # ValueError from a bad offset...): all of them mean the same to the caller.
        raise _Invalid(f"corrupt zip archive ({type(exc).__name__}: {exc})") from exc
    finally:
        zf.close()


def _read_members(
    zf: zipfile.ZipFile, max_bytes: int, header_only: bool
) -> dict[str, bytes]:
    """Members of an open archive, name -> bytes, after checking declared sizes."""
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise _Invalid(f"{len(infos)} members, more than the {MAX_MEMBERS} allowed")
    names = [i.filename for i in infos]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise _Invalid(f"member name(s) {dup} occur more than once")
    if HEADER_MEMBER not in names:
        raise _Invalid(f"member {HEADER_MEMBER} is missing (not an emix model file?)")
    total = 0
    for info in infos:
        if info.flag_bits & 0x1:
            raise _Invalid(f"member {info.filename} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _Invalid(
                f"member {info.filename} uses compression method {info.compress_type}; "
                "only stored (0) and deflated (8) are allowed"
            )
        total += info.file_size
    header_info = zf.getinfo(HEADER_MEMBER)
    if header_info.file_size > MAX_HEADER_BYTES:
        raise _Invalid(
            f"member {HEADER_MEMBER} declares {header_info.file_size} bytes, more than "
            f"the {MAX_HEADER_BYTES} allowed"
        )
    if total > max_bytes:
        raise _Invalid(
            f"members declare {total} uncompressed bytes in all, more than "
            f"max_bytes={max_bytes}"
        )
    out = {}
    for info in [header_info] if header_only else infos:
        with zf.open(info) as member:
            # Read one byte past the declared size: a member that inflates to more
            # than it declares is refused without inflating the rest of it.
            data = member.read(info.file_size + 1)
        if len(data) != info.file_size:
            raise _Invalid(
                f"member {info.filename} holds {len(data)} bytes, not the "
                f"{info.file_size} its zip entry declares"
            )
        out[info.filename] = data
    return out


def _no_duplicate_keys(pairs):
    out = {}
    for key, value in pairs:
        if key in out:
            raise _Invalid(f"{HEADER_MEMBER}: key {key!r} occurs twice in one object")
        out[key] = value
    return out


def _reject_constant(name):
    raise _Invalid(f"{HEADER_MEMBER}: {name} is not JSON")


def _finite_float(text):
    value = float(text)
    if not math.isfinite(value):
        raise _Invalid(f"{HEADER_MEMBER}: number {text[:40]} is beyond float64's range")
    return value


def _parse_header(members: Mapping[str, bytes]) -> dict:
    """Parse the JSON header and check its format, version and top-level types."""
    raw = members[HEADER_MEMBER]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Invalid(f"{HEADER_MEMBER} is not UTF-8 text") from exc
    try:
        header = json.loads(
            text,
            object_pairs_hook=_no_duplicate_keys,
            parse_constant=_reject_constant,
            parse_float=_finite_float,
        )
    except (RecursionError, ValueError) as exc:
        # JSONDecodeError is a ValueError, as is int()'s refusal of a 5000-digit number.
        raise _Invalid(f"{HEADER_MEMBER} is not valid JSON ({exc})") from exc
    if not isinstance(header, dict):
        raise _Invalid(f"{HEADER_MEMBER} must hold a JSON object, not {_json_type(header)}")
    fmt = header.get("format")
    if fmt != FORMAT_NAME:
        raise _Invalid(f"format is {fmt!r}, not {FORMAT_NAME!r}")
    version = header.get("format_version")
    if not _is_int(version):
        raise _Invalid(f"format_version must be an integer, not {_json_type(version)}")
    if version > FORMAT_VERSION:
        raise _Invalid(
            f"format_version {version} was written by a newer emix; this emix reads "
            f"version {FORMAT_VERSION} only: upgrade emix to load it"
        )
    if version < 1:
        raise _Invalid(
            f"format_version {version} does not exist (this emix reads 1 to {FORMAT_VERSION})"
        )
    keys = set(header)
    missing = [k for k in _TOP_KEYS if k not in keys]
    if missing:
        raise _Invalid(f"{HEADER_MEMBER} lacks key(s) {missing}")
    extra = sorted(keys - set(_TOP_KEYS))
    if extra:
        raise _Invalid(f"{HEADER_MEMBER} has unknown key(s) {extra}")
    for key in ("emix_version", "model_class"):
        if not isinstance(header[key], str):
            raise _Invalid(f"{key} must be a string, not {_json_type(header[key])}")
    for key in ("params", "attributes", "state", "arrays"):
        if not isinstance(header[key], dict):
            raise _Invalid(f"{key} must be a JSON object, not {_json_type(header[key])}")
    return header


def _json_type(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_npy(data: bytes, member: str, descr: str, shape: tuple) -> np.ndarray:
    """An array from ``.npy`` bytes, checked against the index before any data is read."""
    fp = _io.BytesIO(data)
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fp)
        if version == (1, 0):
            h_shape, fortran, dtype = fmt.read_array_header_1_0(fp)
        elif version in ((2, 0), (3, 0)):
            # Version 3.0 differs from 2.0 only in allowing UTF-8 in the header, which
            # the dtype check below refuses anyway.
            h_shape, fortran, dtype = fmt.read_array_header_2_0(fp)
        else:
            raise _Invalid(f"member {member}: .npy version {version} is not 1.0-3.0")
    except _Invalid:
        raise
    except Exception as exc:
        raise _Invalid(
            f"member {member}: not a valid .npy file ({type(exc).__name__}: {exc})"
        ) from exc
    # Object arrays are pickles: refuse them here, before a single data byte is looked at.
    if dtype.str not in _ALLOWED_DTYPES or dtype.fields is not None:
        raise _Invalid(
            f"member {member}: dtype {dtype} is not allowed (numbers and booleans only; "
            "object arrays would need pickle, which emix never loads)"
        )
    if dtype.str != descr or tuple(h_shape) != shape:
        raise _Invalid(
            f"member {member}: its .npy header says dtype {dtype.str} shape "
            f"{tuple(h_shape)}, the arrays index says dtype {descr} shape {shape}"
        )
    count = math.prod(shape)
    offset = fp.tell()
    if len(data) - offset != count * dtype.itemsize:
        raise _Invalid(
            f"member {member}: {len(data) - offset} data bytes, not the "
            f"{count * dtype.itemsize} that shape {shape} of {descr} needs"
        )
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
    if dtype.kind == "b" and np.any(arr.view(np.uint8) > 1):
        raise _Invalid(f"member {member}: booleans must be bytes 0 or 1")
    arr = arr.reshape(shape, order="F" if fortran else "C")
    # A writable, native-order copy that owns its memory (frombuffer's view is read-only).
    return np.array(arr, dtype=dtype.newbyteorder("="), order="C", copy=True)


class _Reader:
    """Resolves array references while a header is decoded; all arrays are pre-checked."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        self.arrays = arrays
        self.used: set[str] = set()

    @staticmethod
    def invalid(message: str) -> _Invalid:
        return _Invalid(message)

    def array(self, value, where: str, *, dtype=None, ndim=None, shape=None) -> np.ndarray:
        """The array that ``value`` ({"array": member}) refers to, checked.

        Parameters
        ----------
        value : JSON value
        where : str
            The field's name, for messages.
        dtype : str, optional
            Required ``.npy`` descr, e.g. ``"<f8"``.
        ndim : int, optional
        shape : tuple, optional
            Required shape.
        """
        if not (isinstance(value, dict) and set(value) == {"array"}):
            raise _Invalid(
                f'{where} must be an array reference {{"array": ...}}, not {_json_type(value)}'
            )
        member = value["array"]
        if not isinstance(member, str) or member not in self.arrays:
            raise _Invalid(
                f"{where} refers to {member!r}, which is not in the arrays index"
            )
        if member in self.used:
            raise _Invalid(f"{where} refers to member {member}, which another field uses")
        self.used.add(member)
        arr = self.arrays[member]
        if dtype is not None and arr.dtype.newbyteorder("<").str != np.dtype(dtype).str:
            raise _Invalid(
                f"{where} ({member}) has dtype {arr.dtype.str}, expected {dtype}"
            )
        if ndim is not None and arr.ndim != ndim:
            raise _Invalid(
                f"{where} ({member}) has {arr.ndim} dimension(s), expected {ndim}"
            )
        if shape is not None and arr.shape != tuple(shape):
            raise _Invalid(
                f"{where} ({member}) has shape {arr.shape}, expected {tuple(shape)}"
            )
        return arr


def _check_plain(value, where: str):
    if isinstance(value, list):
        return [_check_plain(v, where) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise _Invalid(
        f"{where}: a list may hold numbers, strings, booleans, null and lists only"
    )


def _decode_value(raw, where: str, reader: _Reader, param: bool):
    """The Python value of one parameter or attribute (see *Values*)."""
    if raw is None or isinstance(raw, (bool, int, float, str)):
        return raw
    if isinstance(raw, list):
        raise _Invalid(f'{where} is a bare JSON list; lists are written {{"list": [...]}}')
    keys = set(raw)
    if keys == {"float"}:
        table = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
        if not isinstance(raw["float"], str) or raw["float"] not in table:
            raise _Invalid(f'{where}: {{"float": ...}} must be "nan", "inf" or "-inf"')
        return table[raw["float"]]
    if keys == {"array"}:
        return reader.array(raw, where)
    if keys == {"strings", "numpy_dtype"}:
        strings = raw["strings"]
        if not isinstance(strings, list) or not all(isinstance(s, str) for s in strings):
            raise _Invalid(f"{where}: strings must be a list of strings")
        kind = raw["numpy_dtype"]
        if kind == "object":
            out = np.empty(len(strings), dtype=object)
            out[:] = strings
            return out
        if kind == "str":
            return np.array(strings, dtype=str)
        raise _Invalid(f'{where}: numpy_dtype must be "object" or "str", not {kind!r}')
    if keys in ({"list"}, {"tuple"}):
        (kind,) = keys
        items = raw[kind]
        if not isinstance(items, list):
            raise _Invalid(f"{where}: {kind} must hold a JSON list")
        items = _check_plain(items, where)
        return items if kind == "list" else tuple(items)
    if param and keys == {"not_stored"}:
        if not isinstance(raw["not_stored"], str):
            raise _Invalid(f"{where}: not_stored must give its reason as a string")
        return None
    raise _Invalid(f"{where}: object with key(s) {sorted(keys)} is not a known value")


def _decode(members: Mapping[str, bytes]):
    """Build the model from a file's members, checking everything first."""
    header = _parse_header(members)
    name = header["model_class"]
    codec = _CODECS.get(name)
    if codec is None:
        raise _Invalid(
            f"model_class {name!r} is not one this emix can load "
            f"({', '.join(sorted(_CODECS))})"
        )
    arrays = _check_arrays(header["arrays"], members)
    reader = _Reader(arrays)

    model = codec.cls()
    known = set(model.get_params(deep=False))
    params = {}
    for key, raw in header["params"].items():
        if key not in known or key in codec.own_params:
            raise _Invalid(
                f"params.{key} is not a parameter of {name} (written by another emix "
                "version?)"
            )
        params[key] = _decode_value(raw, f"params.{key}", reader, True)
    model.set_params(**params)

    attributes = {}
    for key, raw in header["attributes"].items():
        if (
            not key.isidentifier()
            or key.startswith("_")
            or not key.endswith("_")
            or key in codec.derived
            or hasattr(codec.cls, key)
            or key in known
        ):
            raise _Invalid(f"attributes.{key} is not a name a fitted attribute can have")
        attributes[key] = _decode_value(raw, f"attributes.{key}", reader, False)

    if header["format_version"] != codec.format_version:
        newer = header["format_version"] > codec.format_version
        raise _Invalid(
            f"format_version {header['format_version']} "
            + (
                f"was written by a newer emix; this emix reads {name} files of version "
                f"{codec.format_version}: upgrade emix to load it"
                if newer
                else f"has no {name} (it appeared in version {codec.format_version})"
            )
        )
    codec.decode(model, header["state"], reader, attributes)
    for key, value in attributes.items():
        setattr(model, key, value)
    unused = sorted(set(arrays) - reader.used)
    if unused:
        raise _Invalid(f"array member(s) {unused} are not referred to by any field")
    return model


def _check_arrays(index: dict, members: Mapping[str, bytes]) -> dict[str, np.ndarray]:
    """Parse every array member listed in ``index``; refuse missing or extra members."""
    present = set(members) - {HEADER_MEMBER}
    missing = sorted(set(index) - present)
    if missing:
        raise _Invalid(f"array member(s) {missing} listed in the arrays index are missing")
    extra = sorted(present - set(index))
    if extra:
        raise _Invalid(f"member(s) {extra} are not in the arrays index")
    out = {}
    for member, entry in index.items():
        where = f"arrays[{member!r}]"
        if not _MEMBER_NAME.fullmatch(member):
            raise _Invalid(f"{where}: not a valid array member name")
        if not (isinstance(entry, dict) and set(entry) == {"dtype", "shape"}):
            raise _Invalid(f"{where} must be an object with keys dtype and shape")
        descr, shape = entry["dtype"], entry["shape"]
        if not isinstance(descr, str) or descr not in _ALLOWED_DTYPES:
            raise _Invalid(f"{where}: dtype {descr!r} is not allowed")
        if (
            not isinstance(shape, list)
            or len(shape) > _MAX_NDIM
            or not all(_is_int(n) and n >= 0 for n in shape)
        ):
            raise _Invalid(f"{where}: shape must be a list of non-negative integers")
        out[member] = _parse_npy(members[member], member, descr, tuple(shape))
    return out


# =========================================================================== GaussianMixture
def _gm_encode(model, writer: _Writer) -> dict:
    from .families import gaussian as G

    params = model._params
    dtype = np.dtype(model._dtype)
    fields = ("weights", "means", "covariances", "precisions_cholesky")
    public = [getattr(model, f"{f}_") for f in fields]
    edited = not all(
        isinstance(p, np.ndarray)
        and p.dtype == dtype
        and np.array_equal(p, getattr(params, f).astype(dtype))
        for p, f in zip(public, fields)
    )
    if edited:
        # Prediction reads the public attributes, so the file must hold them.
        params = G.GaussianMixtureParams(
            *(np.asarray(p, dtype=np.float64) for p in public), params.covariance_type
        )
    frame = getattr(model, "_frame", None)
    issues = getattr(model, "_issues", None)
    return {
        "dtype": dtype.name,
        "covariance_type": params.covariance_type,
        **{f: writer.array(f"state/{f}", getattr(params, f)) for f in fields},
        "frame": None
        if frame is None
        else {
            "center": writer.array("state/frame_center", frame.center),
            "scale": float(frame.scale),
        },
        "issues": None if issues is None else [_encode_issue(i) for i in issues],
    }


def _encode_issue(issue) -> dict:
    """One ``ComponentIssue`` (a frozen dataclass of scalars) as a JSON object."""
    out = {}
    for f in dataclasses.fields(issue):
        value = getattr(issue, f.name)
        if not (value is None or isinstance(value, (bool, int, float, str, np.number))):
            raise InputError(
                f"degeneracy report field {f.name} is a {type(value).__name__}"
            )
        out[f.name] = _encode_value(value, f"issue.{f.name}", "", None, False)
    return out


def _decode_issues(raw, K: int, D: int) -> tuple | None:
    from .families import gaussian as G

    if raw is None:
        return None
    if not isinstance(raw, list):
        raise _Invalid("state.issues must be null or a list")
    cls = getattr(G, "ComponentIssue", None)
    if cls is None:  # pragma: no cover - only if emix drops degeneracy reports
        raise _Invalid("state.issues: this emix has no degeneracy reports to load")
    names = {f.name for f in dataclasses.fields(cls)}
    out = []
    for n, item in enumerate(raw):
        where = f"state.issues[{n}]"
        if not isinstance(item, dict) or not set(item) <= names:
            raise _Invalid(f"{where} must be an object with keys among {sorted(names)}")
        fields = {}
        for key, value in item.items():
            if isinstance(value, dict):
                value = _decode_value(value, f"{where}.{key}", _Reader({}), False)
            if not (value is None or isinstance(value, (bool, int, float, str))):
                raise _Invalid(f"{where}.{key} must be a number, string or null")
            fields[key] = value
        component, kind, column = (
            item.get("component"),
            item.get("kind"),
            item.get("column"),
        )
        if not (_is_int(component) and -1 <= component < K):
            raise _Invalid(f"{where}.component must be an integer from -1 to {K - 1}")
        if not isinstance(kind, str):
            raise _Invalid(f"{where}.kind must be a string")
        if not (column is None or (_is_int(column) and 0 <= column < D)):
            raise _Invalid(f"{where}.column must be null or an integer from 0 to {D - 1}")
        try:
            out.append(cls(**fields))
        except TypeError as exc:  # a required field missing
            raise _Invalid(f"{where}: {exc}") from exc
    return tuple(out)


def _expect(attributes: dict, key: str, kind: str, required: bool = True):
    if key not in attributes:
        if required:
            raise _Invalid(f"attributes.{key} is missing")
        return None
    value = attributes[key]
    ok = {
        "int": _is_int(value),
        "bool": isinstance(value, bool),
        "float": isinstance(value, float),
    }[kind]
    if not ok:
        raise _Invalid(f"attributes.{key} must be {kind}, not {type(value).__name__}")
    return value


def _gm_decode(model, state: dict, reader: _Reader, attributes: dict) -> None:
    from .families import gaussian as G

    keys = {
        "dtype",
        "covariance_type",
        "weights",
        "means",
        "covariances",
        "precisions_cholesky",
        "frame",
        "issues",
    }
    if set(state) != keys:
        raise _Invalid(
            f"state must have exactly the keys {sorted(keys)}; missing "
            f"{sorted(keys - set(state))}, unknown {sorted(set(state) - keys)}"
        )
    if state["dtype"] not in ("float32", "float64"):
        raise _Invalid(
            f'state.dtype must be "float32" or "float64", not {state["dtype"]!r}'
        )
    dtype = np.dtype(state["dtype"])
    ct = state["covariance_type"]
    if ct not in G.COVARIANCE_TYPES:
        raise _Invalid(f"state.covariance_type {ct!r} is not one of {G.COVARIANCE_TYPES}")
    if model.covariance_type != ct:
        raise _Invalid(
            f"params.covariance_type {model.covariance_type!r} differs from "
            f"state.covariance_type {ct!r}"
        )
    f8 = "<f8"
    weights = reader.array(state["weights"], "state.weights", dtype=f8, ndim=1)
    K = weights.shape[0]
    if K < 1:
        raise _Invalid("state.weights is empty: a mixture needs at least one component")
    means = reader.array(state["means"], "state.means", dtype=f8, ndim=2)
    if means.shape[0] != K:
        raise _Invalid(
            f"state.means has {means.shape[0]} rows but state.weights has {K} components"
        )
    D = means.shape[1]
    if D < 1:
        raise _Invalid("state.means has no columns: a mixture needs at least one feature")
    n_features = _expect(attributes, "n_features_in_", "int")
    if n_features != D:
        raise _Invalid(
            f"attributes.n_features_in_ is {n_features} but state.means has {D} columns"
        )
    shape = G.covariance_shape(ct, K, D)
    cov = reader.array(state["covariances"], "state.covariances", dtype=f8, shape=shape)
    pc = reader.array(
        state["precisions_cholesky"], "state.precisions_cholesky", dtype=f8, shape=shape
    )
    for where, arr in (
        ("weights", weights),
        ("means", means),
        ("covariances", cov),
        ("precisions_cholesky", pc),
    ):
        if not np.all(np.isfinite(arr)):
            raise _Invalid(f"state.{where} contains NaN or inf")

    eps = float(np.finfo(dtype).eps)
    bad = np.flatnonzero(weights < 0)
    if bad.size:
        raise _Invalid(
            f"state.weights: component {bad[0]} has negative weight {weights[bad[0]]:g}"
        )
    total = float(np.sum(weights))
    if abs(total - 1.0) > max(1e-6, 8 * K * eps):
        raise _Invalid(f"state.weights sum to {total!r}, not 1")

    largest_variance = _check_covariances(cov, pc, ct, eps)

    frame = state["frame"]
    if frame is not None:
        if not (isinstance(frame, dict) and set(frame) == {"center", "scale"}):
            raise _Invalid(
                "state.frame must be null or an object with keys center and scale"
            )
        center = reader.array(frame["center"], "state.frame.center", dtype=f8, shape=(D,))
        scale = frame["scale"]
        if not np.all(np.isfinite(center)):
            raise _Invalid("state.frame.center contains NaN or inf")
        if not (isinstance(scale, float) and scale > 0 and math.frexp(scale)[0] == 0.5):
            raise _Invalid(
                f"state.frame.scale must be a positive power of two, not {scale!r}"
            )
        # The frame is the training data's centre and spread. Prediction divides by the
        # scale, so a frame wildly out of proportion with the components (the fit never
        # gives one) would overflow; these bounds are far beyond any fitted model.
        sd = math.sqrt(largest_variance)
        if not 2.0**-_FRAME_RANGE <= scale / sd <= 2.0**_FRAME_RANGE:
            raise _Invalid(
                f"state.frame.scale {scale!r} is out of proportion with the components' "
                f"largest standard deviation {sd:.3g}"
            )
        far = np.max(np.abs(means - center), axis=1)
        if np.any(far > 2.0**_FRAME_RANGE * scale):
            k = int(np.argmax(far))
            raise _Invalid(
                f"state.frame.center is {far[k]:.3g} from the mean of component {k}, out of "
                f"proportion with state.frame.scale {scale!r}"
            )
        frame = G.Frame(center, scale)

    _expect(attributes, "converged_", "bool")
    n_iter = _expect(attributes, "n_iter_", "int")
    if n_iter < 0:
        raise _Invalid(f"attributes.n_iter_ is negative ({n_iter})")
    _expect(attributes, "lower_bound_", "float")
    history = attributes.get("lower_bounds_")
    if not (
        isinstance(history, np.ndarray) and history.ndim == 1 and history.dtype.kind == "f"
    ):
        raise _Invalid("attributes.lower_bounds_ must be a 1-D float array")
    best = _expect(attributes, "best_init_", "int", required=False)
    if best is not None and best < 0:
        raise _Invalid(f"attributes.best_init_ is negative ({best})")
    names = attributes.get("feature_names_in_")
    if names is not None and not (
        isinstance(names, np.ndarray) and names.dtype == object and names.shape == (D,)
    ):
        raise _Invalid(f"attributes.feature_names_in_ must be {D} strings (dtype object)")

    rs = model.random_state
    if not (rs is None or (_is_int(rs) and rs >= 0)):
        raise _Invalid(
            f"params.random_state must be null or a non-negative integer, not {rs!r}"
        )
    if model.device is not None and not isinstance(model.device, str):
        raise _Invalid("params.device must be null or a string")
    # The estimator's own checks of its parameters and initial values, so that a
    # loaded model refits exactly when the original would.
    try:
        model._check_parameters()
        model._check_initial(D)
    except Exception as exc:
        # Their messages name the parameter; NumPy's conversion errors may not.
        raise _Invalid(
            f"params: {exc}"
            if isinstance(exc, EmixError)
            else f"params: {type(exc).__name__}: {exc}"
        ) from exc

    issues = _decode_issues(state["issues"], K, D)
    if "degenerate_" in attributes:
        _expect(attributes, "degenerate_", "bool")
    flagged = attributes.get("degenerate_components_")
    if flagged is not None and not (
        isinstance(flagged, np.ndarray)
        and flagged.ndim == 1
        and flagged.dtype.kind in "iu"
        and np.all((flagged >= -1) & (flagged < K))
    ):
        raise _Invalid(
            f"attributes.degenerate_components_ must be component indices below {K}"
        )

    model._store(G.GaussianMixtureParams(weights, means, cov, pc, ct), dtype)
    if frame is not None:
        model._frame = frame
    if issues is not None:
        model._issues = issues


_FRAME_RANGE = 40


def _check_covariances(cov: np.ndarray, pc: np.ndarray, ct: str, eps: float) -> float:
    """Positive definite covariances with matching precision Cholesky factors.

    Returns
    -------
    float
        The largest variance in any direction of any component (the largest eigenvalue),
        which the frame check needs: returned so that no eigenvalue is computed twice.
    """
    if ct in ("diag", "spherical"):
        bad = np.argwhere(~(cov > 0))
        if bad.size:
            raise _Invalid(
                f"state.covariances: component {bad[0][0]} has a non-positive variance"
            )
        bad = np.argwhere(~(pc > 0))
        if bad.size:
            raise _Invalid(
                f"state.precisions_cholesky: component {bad[0][0]} is not positive"
            )
        # pc = 1 / sqrt(cov), so pc^2 cov = 1 to a few rounding errors (of the model's
        # dtype, should its public attributes have been edited in float32).
        err = np.abs(pc * pc * cov - 1.0)
        if np.any(err > 1e-6 + 16 * eps):
            k = np.unravel_index(np.argmax(err), err.shape)[0]
            raise _Invalid(
                f"state.precisions_cholesky: component {k} does not match its "
                "covariance (1 / sqrt(variance))"
            )
        return float(np.max(cov))
    covs, pcs = (cov, pc) if ct == "full" else (cov[None], pc[None])
    D = covs.shape[-1]
    largest = -math.inf
    for k in range(covs.shape[0]):
        who = f"component {k}" if ct == "full" else "the tied covariance"
        c, u = covs[k], pcs[k]
        scale = np.sqrt(np.abs(np.outer(np.diag(c), np.diag(c))))
        if np.any(np.abs(c - c.T) > 1e-6 * scale):
            raise _Invalid(f"state.covariances: {who} is not symmetric")
        ev = np.linalg.eigvalsh(c)
        if not ev[0] > 0:
            raise _Invalid(f"state.covariances: {who} is not positive definite")
        largest = max(largest, float(ev[-1]))
        if np.any(np.tril(u, -1) != 0):
            raise _Invalid(f"state.precisions_cholesky: {who} is not upper triangular")
        if not np.all(np.diag(u) > 0):
            raise _Invalid(f"state.precisions_cholesky: {who} has a non-positive diagonal")
        # U U^T = C^-1 means U^T C U = I; rounding error grows with C's condition number.
        cond = ev[-1] / ev[0]
        err = np.max(np.abs(u.T @ c @ u - np.eye(D)))
        if not err <= 1e-6 + 32 * D * eps * cond:
            raise _Invalid(
                f"state.precisions_cholesky: {who} does not match its covariance "
                f"(U^T C U differs from I by {err:.3g})"
            )
    return largest


def gaussian_mixture_codec(cls: type) -> ModelCodec:
    """The codec of :class:`emix.GaussianMixture` (format version 1), for ``cls``.

    ``emix.models`` registers it (``register(gaussian_mixture_codec(GaussianMixture))``):
    the models import this module to save themselves, so this module must not import
    them.

    Parameters
    ----------
    cls : type
        ``GaussianMixture``.

    Returns
    -------
    ModelCodec
    """
    return ModelCodec(
        cls,
        _gm_encode,
        _gm_decode,
        derived=frozenset(
            ["weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_"]
        ),
    )

