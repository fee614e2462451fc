"""emix.io: saving and loading fitted models (JSON plus .npy in a zip, never pickle)."""

from __future__ import annotations

import io
import json
import math
import os
import warnings
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import emix
import emix.io as eio
from emix.exceptions import InputError, ModelFileError, NotFittedError

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
HEADER = "emix-model.json"


# --------------------------------------------------------------------------- helpers
def _blobs(rng, n=240, D=2, dtype=np.float64):
    centers = np.array([[0.0] * D, [4.0] * D, [0.0] + [8.0] * (D - 1)])[:, :D]
    y = rng.integers(0, 3, n)
    X = centers[y] + rng.normal(scale=[1.0 + 0.3 * j for j in range(D)], size=(n, D))
    return X.astype(dtype)


def _fit(X, **kw):
    kw.setdefault("random_state", 0)
    return emix.GaussianMixture(kw.pop("n_components", 3), **kw).fit(X)


def _dataframe(X, columns):
    pd = pytest.importorskip("pandas")
    return pd.DataFrame(X, columns=columns)


def _saved(model, tmp_path):
    """Path of ``model`` saved in ``tmp_path``."""
    path = tmp_path / "model.emix"
    eio.save(model, path)
    return path


def _members(blob: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def _zip(members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _npy(arr) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(arr), allow_pickle=False)
    return buf.getvalue()


def _read_npy(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


def _edit(blob: bytes, header=None, arrays=None, reindex=True) -> bytes:
    """A copy of a saved file with its header and/or arrays edited.

    ``header(h)`` edits the parsed JSON in place; ``arrays`` maps member -> function of
    the array giving the new array (``None`` removes the member). With ``reindex`` the
    arrays index follows the new arrays' dtypes and shapes.
    """
    members = _members(blob)
    h = json.loads(members[HEADER])
    for member, fn in (arrays or {}).items():
        new = fn(_read_npy(members[member]))
        if new is None:
            del members[member]
            continue
        members[member] = _npy(new)
        if reindex:
            h["arrays"][member] = {"dtype": new.dtype.str, "shape": list(new.shape)}
    if header is not None:
        header(h)
    members[HEADER] = json.dumps(h).encode()
    return _zip(members)


def _load(blob: bytes):
    return eio.load(io.BytesIO(blob))


def _same(a, b) -> bool:
    """Equality of parameter or attribute values, arrays included (NaN equals NaN)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray)
            and isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and (np.array_equal(a, b, equal_nan=a.dtype.kind == "f"))
        )
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return type(a) is type(b) and a == b


def _assert_identical(m, m2, X):
    """The loaded model is indistinguishable from the original, bit for bit."""
    assert type(m2) is type(m)
    assert set(vars(m2)) == set(vars(m)), (
        "loaded model has other attributes than the original"
    )
    for name, value in vars(m).items():
        if name == "_params":
            for f in ("weights", "means", "covariances", "precisions_cholesky"):
                assert _same(getattr(value, f), getattr(m2._params, f)), f
            assert value.covariance_type == m2._params.covariance_type
        elif name == "_frame":
            assert value.same_as(m2._frame)
        elif name == "_dtype":
            assert m2._dtype == value
        else:
            assert _same(value, getattr(m2, name)), name
    p, p2 = m.get_params(), m2.get_params()
    assert p.keys() == p2.keys()
    for key in p:
        assert _same(p[key], p2[key]), key
    assert np.array_equal(m.predict_proba(X), m2.predict_proba(X))
    assert np.array_equal(m.score_samples(X), m2.score_samples(X))
    assert np.array_equal(m.predict(X), m2.predict(X))
    assert m.score(X) == m2.score(X)
    assert m.bic(X) == m2.bic(X) and m.aic(X) == m2.aic(X)
    if m.random_state is not None:
        (s, y), (s2, y2) = m.sample(50), m2.sample(50)
        assert s.dtype == s2.dtype and np.array_equal(s, s2) and np.array_equal(y, y2)


# --------------------------------------------------------------------------- round trip
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("layout", ["1d", "array", "frame"])
def test_round_trip_is_exact(rng, tmp_path, covariance_type, dtype, layout):
    X = _blobs(rng, D=1 if layout == "1d" else 3, dtype=dtype)
    if layout == "1d":
        X = X[:, 0]
    elif layout == "frame":
        X = _dataframe(X, ["height", "weight", "age"])
    m = _fit(X, covariance_type=covariance_type)
    path = tmp_path / "m.emix"
    eio.save(m, path)
    m2 = eio.load(path)
    _assert_identical(m, m2, X)
    assert m2.weights_.dtype == dtype and m2.means_.dtype == dtype
    if layout == "frame":
        assert list(m2.feature_names_in_) == ["height", "weight", "age"]
    else:
        assert not hasattr(m2, "feature_names_in_")
    # Deterministic bytes: the same model gives the same file.
    eio.save(m2, tmp_path / "again.emix")
    assert (tmp_path / "again.emix").read_bytes() == path.read_bytes()


def test_a_file_written_from_the_specification_loads(rng):
    """The module docstring is enough to write a file: zipfile, json and .npy only."""
    weights, means = np.array([0.3, 0.7]), np.array([[0.0, 1.0], [3.0, -1.0]])
    var = np.array([[1.0, 2.0], [0.5, 0.25]])
    arrays = {
        "state/w.npy": weights,
        "state/m.npy": means,
        "state/c.npy": var,
        # Fortran order is allowed too.
        "state/u.npy": np.asfortranarray(1.0 / np.sqrt(var)),
        "attributes/h.npy": np.array([-3.5, -3.25]),
    }
    header = {
        "format": "emix-model",
        "format_version": 1,
        "emix_version": "by hand",
        "model_class": "GaussianMixture",
        "params": {"n_components": 2, "covariance_type": "diag"},
        "attributes": {
            "n_features_in_": 2,
            "converged_": True,
            "n_iter_": 2,
            "lower_bound_": -3.25,
            "lower_bounds_": {"array": "attributes/h.npy"},
        },
        "state": {
            "dtype": "float64",
            "covariance_type": "diag",
            "weights": {"array": "state/w.npy"},
            "means": {"array": "state/m.npy"},
            "covariances": {"array": "state/c.npy"},
            "precisions_cholesky": {"array": "state/u.npy"},
            "frame": None,
            "issues": None,
        },
        "arrays": {k: {"dtype": "<f8", "shape": list(a.shape)} for k, a in arrays.items()},
    }
    members = {HEADER: json.dumps(header).encode()}
    members.update((k, _npy(a)) for k, a in arrays.items())
    m = _load(_zip(members, compression=zipfile.ZIP_STORED))
    X = rng.normal(size=(50, 2)) * 2
    log_joint = (
        np.log(weights)
        - 0.5 * np.sum(np.log(2 * np.pi * var), axis=1)
        - 0.5 * np.sum((X[:, None, :] - means) ** 2 / var, axis=2)
    )
    expected = np.exp(log_joint - np.logaddexp.reduce(log_joint, axis=1, keepdims=True))
    np.testing.assert_allclose(m.predict_proba(X), expected, rtol=1e-12, atol=1e-14)
    assert m.tol == 1e-3 and m.max_iter == 100  # omitted parameters take defaults


def test_warm_start_continues_identically(rng, tmp_path):
    X = _blobs(rng, D=2)
    X2 = _blobs(rng, D=2) + 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", emix.ConvergenceWarning)
        m = _fit(X, covariance_type="full", warm_start=True, max_iter=2)
        eio.save(m, tmp_path / "m.emix")
        m2 = eio.load(tmp_path / "m.emix")
        m.fit(X2)
        m2.fit(X2)
    assert m.n_iter_ > 0
    _assert_identical(m, m2, X2)


def test_parameters_round_trip(rng, tmp_path):
    X = _blobs(rng, D=2)
    m = emix.GaussianMixture(
        3,
        covariance_type="diag",
        weights_init=[0.25, 0.25, 0.5],
        means_init=np.array([[0.0, 0.0], [4.0, 4.0], [0.0, 8.0]]),
        precisions_init=np.ones((3, 2)),
        tol=1e-4,
        reg_covar=1e-7,
        max_iter=50,
        block_size=64,
        init_params="random_from_data",
        random_state=7,
    ).fit(X)
    m2 = eio.load(_saved(m, tmp_path))
    _assert_identical(m, m2, X)
    assert m2.weights_init == [0.25, 0.25, 0.5] and type(m2.weights_init) is list


def test_max_iter_zero_keeps_minus_infinity(rng, tmp_path):
    X = _blobs(rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", emix.ConvergenceWarning)
        m = _fit(X, max_iter=0)
    m2 = eio.load(_saved(m, tmp_path))
    assert m2.lower_bound_ == -math.inf and m2.lower_bounds_.shape == (0,)
    _assert_identical(m, m2, X)


def test_degenerate_fit_keeps_its_reports(rng, tmp_path):
    """A collapsed component's report survives: same flags, same state."""
    X = np.vstack([_blobs(rng, n=200, D=2), np.full((6, 2), 20.0)])
    with pytest.warns(emix.DegenerateComponentWarning, match="collapsed"):
        m = _fit(X, n_components=4, covariance_type="diag")
    assert m.degenerate_
    m2 = eio.load(_saved(m, tmp_path))
    _assert_identical(m, m2, X)
    assert m2._issues == m._issues and m2.degenerate_


def test_code_and_generators_are_not_stored(rng, tmp_path):
    """A callback and a Generator random_state load as None, noted in the header."""
    X = _blobs(rng)
    calls = []
    m = _fit(X, random_state=np.random.default_rng(3), callback=lambda *a: calls.append(a))
    path = _saved(m, tmp_path)
    params = eio.read_header(path)["params"]
    assert "not_stored" in params["callback"] and "not_stored" in params["random_state"]
    m2 = eio.load(path)
    assert m2.callback is None and m2.random_state is None
    assert np.array_equal(m.predict_proba(X), m2.predict_proba(X))
    # Reattached, they work as before.
    n = len(calls)
    m2.set_params(callback=lambda *a: calls.append(a), random_state=1, warm_start=True).fit(
        X
    )
    assert len(calls) > n


def test_unstorable_values_are_refused_at_save(rng, tmp_path):
    m = _fit(_blobs(rng))
    m.device = object()
    with pytest.raises(InputError, match="parameter device has type object"):
        eio.save(m, tmp_path / "m.emix")
    m.device = None
    m.extra_ = {"a": 1}
    with pytest.raises(InputError, match="fitted attribute extra_ has type dict"):
        eio.save(m, tmp_path / "m.emix")
    assert not (tmp_path / "m.emix").exists()


def test_extra_fitted_attributes_round_trip_generically(rng, tmp_path):
    m = _fit(_blobs(rng))
    m.flagged_ = np.array([False, True, False])
    m.label_ = "regime"
    m.count_ = np.int64(4)
    m.ratio_ = math.nan
    m.flags_ = (1, 2.5, "x", None, [True])
    m.names_ = np.array(["u", "v"])
    m2 = eio.load(_saved(m, tmp_path))
    for name in ("flagged_", "label_", "ratio_", "names_"):
        assert _same(getattr(m, name), getattr(m2, name)), name
    assert m2.count_ == 4 and type(m2.count_) is int
    assert m2.flags_ == (1, 2.5, "x", None, [True])


def test_edited_parameters_are_what_is_saved(rng, tmp_path):
    X = _blobs(rng)
    m = _fit(X, covariance_type="spherical")
    m.weights_ = np.array([0.2, 0.3, 0.5])
    m2 = eio.load(_saved(m, tmp_path))
    assert np.array_equal(m.predict_proba(X), m2.predict_proba(X))
    m.covariances_ = m.covariances_ * 4  # no longer matches precisions_cholesky_
    with pytest.raises(InputError, match="does not match its covariance"):
        eio.save(m, tmp_path / "bad.emix")


def test_unfitted_and_unknown_models_are_refused(tmp_path):
    with pytest.raises(NotFittedError):
        eio.save(emix.GaussianMixture(2), tmp_path / "m.emix")

    class Other(emix.GaussianMixture):
        pass

    with pytest.raises(InputError, match="no model file format is registered"):
        eio.save(Other(), tmp_path / "m.emix")
    assert not os.listdir(tmp_path)


def test_missing_file_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        eio.load(tmp_path / "absent.emix")


# --------------------------------------------------------------------------- atomic writes
def test_failed_save_leaves_existing_file_untouched(rng, tmp_path, monkeypatch):
    X = _blobs(rng)
    path = tmp_path / "m.emix"
    eio.save(_fit(X, n_components=2), path)
    before = path.read_bytes()
    real = zipfile.ZipFile.writestr
    calls = []

    def failing(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # two members are already in the temporary file
            raise OSError("disk full")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "writestr", failing)
    with pytest.raises(OSError, match="disk full"):
        eio.save(_fit(X, n_components=3), path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.emix"], "temporary file left behind"
    calls.clear()
    with pytest.raises(OSError, match="disk full"):
        eio.save(_fit(X, n_components=3), tmp_path / "new.emix")
    assert os.listdir(tmp_path) == ["m.emix"]
    monkeypatch.undo()
    assert _load(before).n_components == 2


# --------------------------------------------------------------------------- bad files
@pytest.fixture(scope="module")
def good(tmp_path_factory) -> bytes:
    """A saved full-covariance model (K=2, D=2) fitted on a DataFrame."""
    rng = np.random.default_rng(5)
    X = _dataframe(_blobs(rng, D=2), ["a", "b"])
    return _saved(_fit(X, n_components=2), tmp_path_factory.mktemp("good")).read_bytes()


def _set(path, value):
    """A header edit: set ``h[path[0]][path[1]]... = value``."""

    def edit(h):
        node = h
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return edit


def _delete(path):
    def edit(h):
        node = h
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return edit


def _at(index, value):
    def fn(a):
        a = a.copy()
        a[index] = value
        return a

    return fn


W, M, C, U = (
    f"state/{n}.npy" for n in ("weights", "means", "covariances", "precisions_cholesky")
)

BAD_HEADERS = {
    "wrong format": (_set(["format"], "other"), "format is 'other'"),
    "future version": (_set(["format_version"], 2), "newer emix"),
    "version zero": (_set(["format_version"], 0), "format_version 0 does not exist"),
    "version as text": (_set(["format_version"], "1"), "format_version must be an integer"),
    "version as bool": (
        _set(["format_version"], True),
        "format_version must be an integer",
    ),
    "no state": (_delete(["state"]), r"lacks key\(s\) \['state'\]"),
    "unknown top key": (_set(["comment"], "hi"), r"unknown key\(s\) \['comment'\]"),
    "params not object": (_set(["params"], []), "params must be a JSON object"),
    "unknown class": (_set(["model_class"], "HiddenMarkov"), "model_class 'HiddenMarkov'"),
    "unknown param": (_set(["params", "alpha"], 1), "params.alpha is not a parameter"),
    "bad param value": (_set(["params", "n_components"], "two"), "n_components"),
    "bad param object": (_set(["params", "tol"], {"x": 1}), "params.tol: object with key"),
    "bare list": (_set(["params", "weights_init"], [0.5, 0.5]), "bare JSON list"),
    "means_init shape": (
        _set(["params", "means_init"], {"list": [[1.0, 2.0, 3.0]]}),
        "means_init must have shape",
    ),
    "random_state text": (_set(["params", "random_state"], "seed"), "random_state"),
    "bad float tag": (
        _set(["attributes", "lower_bound_"], {"float": "big"}),
        "lower_bound_",
    ),
    "n_iter text": (_set(["attributes", "n_iter_"], "7"), "n_iter_ must be int"),
    "n_iter negative": (_set(["attributes", "n_iter_"], -1), "n_iter_ is negative"),
    "converged int": (_set(["attributes", "converged_"], 1), "converged_ must be bool"),
    "no n_features": (
        _delete(["attributes", "n_features_in_"]),
        "n_features_in_ is missing",
    ),
    "n_features mismatch": (
        _set(["attributes", "n_features_in_"], 5),
        "n_features_in_ is 5 but state.means has 2 columns",
    ),
    "private attribute": (
        _set(["attributes", "_params"], 1),
        "attributes._params is not a name",
    ),
    "method attribute": (
        _set(["attributes", "params_"], 1),
        "attributes.params_ is not a name",
    ),
    "derived attribute": (
        _set(["attributes", "weights_"], 1),
        "attributes.weights_ is not a name",
    ),
    "feature names length": (
        _set(
            ["attributes", "feature_names_in_"], {"strings": ["a"], "numpy_dtype": "object"}
        ),
        "feature_names_in_ must be 2 strings",
    ),
    "feature names type": (
        _set(
            ["attributes", "feature_names_in_"],
            {"strings": ["a", 3], "numpy_dtype": "object"},
        ),
        "strings must be a list of strings",
    ),
    "state dtype": (_set(["state", "dtype"], "float16"), "state.dtype must be"),
    "covariance type": (
        _set(["state", "covariance_type"], "banana"),
        "'banana' is not one of",
    ),
    "covariance type differs": (
        _set(["params", "covariance_type"], "diag"),
        "params.covariance_type 'diag' differs from state.covariance_type 'full'",
    ),
    "state key missing": (_delete(["state", "frame"]), r"missing \['frame'\]"),
    "state array not a reference": (
        _set(["state", "weights"], [0.5, 0.5]),
        "state.weights must be an array",
    ),
    "reference to unknown member": (
        _set(["state", "weights", "array"], "state/nope.npy"),
        "not in the arrays index",
    ),
    "member used twice": (_set(["state", "means"], {"array": W}), "another field uses"),
    "scale not power of two": (_set(["state", "frame", "scale"], 3.0), "power of two"),
    "scale out of proportion": (
        _set(["state", "frame", "scale"], 2.0**-60),
        "out of proportion",
    ),
    "index dtype disagrees": (_set(["arrays", W, "dtype"], "<f4"), "header says dtype <f8"),
    "index shape disagrees": (_set(["arrays", W, "shape"], [3]), "arrays index says"),
    "index shape text": (_set(["arrays", W, "shape"], "2"), "shape must be a list"),
    "index dtype object": (_set(["arrays", W, "dtype"], "|O"), "dtype '|O' is not allowed"),
    "index entry missing": (_delete(["arrays", W]), "not in the arrays index"),
    "issues not a list": (
        _set(["state", "issues"], "none"),
        "state.issues must be null or a list",
    ),
    "issue component": (
        _set(["state", "issues"], [{"component": 5, "kind": "empty"}]),
        r"state.issues\[0\].component must be an integer from -1 to 1",
    ),
    "issue unknown key": (
        _set(["state", "issues"], [{"component": 0, "kind": "empty", "blame": "me"}]),
        r"state.issues\[0\] must be an object with keys among",
    ),
    "issue column": (
        _set(["state", "issues"], [{"component": 0, "kind": "collapsed", "column": 2}]),
        "column must be null or an integer from 0 to 1",
    ),
    "flagged components": (
        _set(["attributes", "degenerate_"], "yes"),
        "degenerate_ must be bool",
    ),
}


@pytest.mark.parametrize("case", list(BAD_HEADERS))
def test_bad_header_is_refused_naming_the_problem(good, case):
    edit, message = BAD_HEADERS[case]
    with pytest.raises(ModelFileError, match=message):
        _load(_edit(good, header=edit))


def _asym(c):
    c = c.copy()
    c[0, 0, 1] += 0.5
    return c


def _not_pd(c):
    c = c.copy()
    c[1] = np.array([[1.0, 2.0], [2.0, 1.0]])
    return c


def _lower(u):
    u = u.copy()
    u[0, 1, 0] = 0.1
    return u


BAD_ARRAYS = {
    "weights sum": ({W: lambda w: w * 1.5}, "state.weights sum to"),
    "negative weight": (
        {W: lambda w: np.array([1.25, -0.25])},
        "component 1 has negative weight",
    ),
    "nan mean": ({M: _at((1, 0), np.nan)}, "state.means contains NaN or inf"),
    "inf covariance": (
        {C: _at((0, 1, 1), np.inf)},
        "state.covariances contains NaN or inf",
    ),
    "asymmetric": ({C: _asym}, "component 0 is not symmetric"),
    "not positive definite": ({C: _not_pd}, "component 1 is not positive definite"),
    "cholesky mismatch": (
        {U: lambda u: u * 1.1},
        "component 0 does not match its covariance",
    ),
    "cholesky lower": ({U: _lower}, "component 0 is not upper triangular"),
    "cholesky diagonal": ({U: lambda u: -u}, "component 0 has a non-positive diagonal"),
    "wrong dtype": (
        {W: lambda w: w.astype(np.float32)},
        r"state.weights \(.*\) has dtype <f4",
    ),
    "int dtype": ({M: lambda m: m.astype(np.int64)}, "has dtype <i8, expected <f8"),
    "means rows": ({M: lambda m: np.vstack([m, m[:1]])}, "state.means has 3 rows"),
    "covariance shape": (
        {C: lambda c: c[:, :1, :1]},
        r"state.covariances .* has shape \(2, 1, 1\)",
    ),
    "no components": (
        {W: lambda w: w[:0], M: lambda m: m[:0], C: lambda c: c[:0], U: lambda u: u[:0]},
        "state.weights is empty",
    ),
    "member missing": ({C: lambda c: None}, r"\['state/covariances.npy'\] .* missing"),
    "center shape": ({"state/frame_center.npy": lambda c: c[:1]}, "state.frame.center"),
    "center far": ({"state/frame_center.npy": lambda c: c + 1e20}, "state.frame.center is"),
    "history dtype": (
        {"attributes/lower_bounds_.npy": lambda h: h.astype(np.int64)},
        "lower_bounds_ must be a 1-D float array",
    ),
}


@pytest.mark.parametrize("case", list(BAD_ARRAYS))
def test_inconsistent_arrays_are_refused_naming_the_problem(good, case):
    arrays, message = BAD_ARRAYS[case]
    with pytest.raises(ModelFileError, match=message):
        _load(_edit(good, arrays=arrays))


def _replace(blob, changes):
    """A copy of a saved file with members replaced (bytes) or removed (None)."""
    members = _members(blob)
    for name, data in changes.items():
        if data is None:
            del members[name]
        else:
            members[name] = data
    return _zip(members)


def test_container_problems_are_refused(good):
    cases = [  # (file, what the message must say)
        (b"hello, not a zip", "not a zip archive"),
        (b"", "not a zip archive"),
        (good[: len(good) // 2], "not a zip archive"),
        (good[:-30], "not a zip archive"),
        (_replace(good, {HEADER: None}), "member emix-model.json is missing"),
        (_replace(good, {"notes.txt": b"hi"}), "not in the arrays index"),
        (_replace(good, {HEADER: b"{not json"}), "not valid JSON"),
        (_replace(good, {HEADER: b'{"format": "\xff"}'}), "not UTF-8"),
        (_replace(good, {HEADER: b"[1]"}), "must hold a JSON object, not a list"),
        (_replace(good, {W: _members(good)[W][:-8]}), "data bytes"),
        (_replace(good, {W: b"garbage"}), "not a valid .npy file"),
    ]
    for blob, message in cases:
        with pytest.raises(ModelFileError, match=message):
            _load(blob)


def test_strict_json(good):
    text = _members(good)[HEADER].decode()
    for bad, message in [
        (text.replace('"n_iter_":', '"n_iter_": 1, "n_iter_":', 1), "occurs twice"),
        (text.replace('"tol": 0.001', '"tol": NaN', 1), "NaN is not JSON"),
        (text.replace('"tol": 0.001', '"tol": 1e999', 1), "beyond float64"),
        (text.replace('"tol": 0.001', '"tol": ' + "9" * 5000, 1), "not valid JSON"),
        ("[" * 100_000 + "]" * 100_000, "ModelFileError|not valid JSON|must hold"),
    ]:
        assert bad != text
        members = _members(good)
        members[HEADER] = bad.encode()
        with pytest.raises(ModelFileError, match=message if "|" not in message else None):
            _load(_zip(members))


def test_size_limits_are_checked_before_reading(good):
    with pytest.raises(ModelFileError, match="more than max_bytes=100"):
        eio.load(io.BytesIO(good), max_bytes=100)
    # 17 MiB of spaces deflate to a few KiB: refused from the declared size alone.
    members = _members(good)
    members[HEADER] = members[HEADER] + b" " * (17 * 2**20)
    with pytest.raises(ModelFileError, match="declares .* more than"):
        _load(_zip(members))


class _Boom:
    """Unpickling this runs code: exactly what a model file must never be able to do."""

    def __reduce__(self):
        return (exec, ("import builtins; builtins._emix_io_pwned = True",))


def test_pickled_object_arrays_are_refused_without_unpickling(good):
    import builtins

    buf = io.BytesIO()
    np.save(buf, np.array([_Boom(), 1], dtype=object), allow_pickle=True)
    evil = buf.getvalue()
    # The crafted member really would run code if anything unpickled it.
    np.load(io.BytesIO(evil), allow_pickle=True)
    assert builtins.__dict__.pop("_emix_io_pwned") is True
    for dtype in ("|O", "<f8"):  # the index naming it object, or lying about it

        def edit(h, dtype=dtype):
            h["arrays"][W] = {"dtype": dtype, "shape": [2]}

        members = _members(_edit(good, header=edit))
        members[W] = evil
        with pytest.raises(ModelFileError, match="not allowed|pickle"):
            _load(_zip(members))
        assert not hasattr(builtins, "_emix_io_pwned")


# --------------------------------------------------------------------------- fuzzing
@pytest.fixture(scope="module")
def fuzz_bases(tmp_path_factory):
    """Saved files to mutate (float64 full with feature names; float32 diag), and X."""
    rng = np.random.default_rng(11)
    # Six repeated rows: one component collapses, so the files hold degeneracy reports.
    X = np.vstack([_blobs(rng, n=120, D=2), np.full((6, 2), 20.0)])
    out = []
    for ct, dtype, names in (("full", np.float64, True), ("diag", np.float32, False)):
        Xd = X.astype(dtype)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", emix.DegenerateComponentWarning)
            m = _fit(
                _dataframe(Xd, ["a", "b"]) if names else Xd,
                n_components=3,
                covariance_type=ct,
            )
        out.append((_saved(m, tmp_path_factory.mktemp("fuzz")).read_bytes(), Xd))
    return out


def _check_loads_validly_or_refuses(blob: bytes, X) -> None:
    """The property every fuzz test asserts."""
    try:
        m = _load(blob)
    except ModelFileError:
        return
    assert isinstance(m, emix.GaussianMixture)
    assert abs(float(np.sum(m.weights_, dtype=np.float64)) - 1.0) < 1e-5
    assert np.all(m.weights_ >= 0)
    m.set_params(device=None)  # a device names the machine, not the model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # feature-name mismatches after edits
        proba = m.predict_proba(X)
    assert proba.shape == (X.shape[0], m.weights_.shape[0])
    assert np.all(np.isfinite(proba))
    assert np.allclose(proba.sum(axis=1), 1.0, atol=1e-4)


_FUZZ = settings(
    max_examples=max(200, settings.default.max_examples),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _mutate_bytes(data, blob: bytes) -> bytes:
    b = bytearray(blob)
    for _ in range(data.draw(st.integers(1, 4), label="n_edits")):
        op = data.draw(
            st.sampled_from(["flip", "overwrite", "insert", "delete", "truncate"])
        )
        if not b:
            break
        i = data.draw(st.integers(0, len(b) - 1), label="position")
        if op == "flip":
            b[i] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "overwrite":
            chunk = data.draw(st.binary(min_size=1, max_size=8))
            b[i : i + len(chunk)] = chunk
        elif op == "insert":
            b[i:i] = data.draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del b[i : i + data.draw(st.integers(1, 16))]
        else:
            del b[i:]
    return bytes(b)


@given(data=st.data())
@_FUZZ
def test_fuzz_raw_bytes(fuzz_bases, data):
    blob, X = data.draw(st.sampled_from(fuzz_bases), label="base")
    stored = data.draw(st.booleans(), label="stored")
    if stored:  # uncompressed members, so byte edits land in the JSON and arrays themselves
        blob = _zip(_members(blob), compression=zipfile.ZIP_STORED)
    _check_loads_validly_or_refuses(_mutate_bytes(data, blob), X)


_json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.sampled_from(
        ["full", "diag", "float32", "nan", "-inf", "object", "<f8", "state/weights.npy"]
    ),
)
_json_values = st.recursive(
    _json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(["array", "float", "list", "strings", "x"]), inner, max_size=2
        ),
    ),
    max_leaves=6,
)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, prefix + (i,))


def _get(h, path):
    for key in path:
        h = h[key]
    return h


def _mutate_json(data, h):
    paths = [p for p in _paths(h) if p]
    if data.draw(st.integers(0, 3), label="leaf") > 0:
        # Mostly leaves (numbers, strings, member names), where the semantic checks are;
        # sometimes whole objects, to test the structural ones.
        paths = [p for p in paths if not isinstance(_get(h, p), (dict, list))]
    path = data.draw(st.sampled_from(paths), label="path")
    parent = h
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    value = parent[key]
    ops = ["replace", "delete"]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        ops += ["perturb", "perturb", "negate", "to_text"]
    if isinstance(parent, dict):
        ops.append("rename")
    op = data.draw(st.sampled_from(ops), label="op")
    if op == "replace":
        parent[key] = data.draw(_json_values, label="value")
    elif op == "delete":
        del parent[key]
    elif op == "perturb":
        delta = data.draw(st.sampled_from([1, -1, 1e-9, 0.5, 2.0, 1e6]))
        parent[key] = value + delta if isinstance(value, int) else value * (1 + delta)
        if isinstance(parent[key], float) and not math.isfinite(parent[key]):
            parent[key] = 0.0
    elif op == "negate":
        parent[key] = -value
    elif op == "to_text":
        parent[key] = str(value)
    else:
        parent[data.draw(st.sampled_from(["x", "n_iter_", "weights", "scale", "tol"]))] = (
            parent.pop(key)
        )


@given(data=st.data())
@_FUZZ
def test_fuzz_json_semantics(fuzz_bases, data):
    blob, X = data.draw(st.sampled_from(fuzz_bases), label="base")
    members = _members(blob)
    h = json.loads(members[HEADER])
    for _ in range(data.draw(st.integers(1, 3), label="n_mutations")):
        _mutate_json(data, h)
    members[HEADER] = json.dumps(h).encode()
    _check_loads_validly_or_refuses(_zip(members), X)


_special = st.sampled_from([0.0, -0.0, 1.0, -1.0, 1e-300, 1e300, np.nan, np.inf, -np.inf])


@given(data=st.data())
@_FUZZ
def test_fuzz_arrays(fuzz_bases, data):
    blob, X = data.draw(st.sampled_from(fuzz_bases), label="base")
    members = _members(blob)
    name = data.draw(
        st.sampled_from(sorted(n for n in members if n != HEADER)), label="member"
    )
    if data.draw(st.booleans(), label="values"):  # a well-formed array with other numbers
        arr = _read_npy(members[name]).copy()
        if arr.size:
            for _ in range(data.draw(st.integers(1, 3))):
                i = data.draw(st.integers(0, arr.size - 1))
                if arr.dtype.kind in "iu":
                    arr.flat[i] = data.draw(st.integers(-3, 5))
                    continue
                x = data.draw(st.one_of(_special, st.floats(width=64)))
                with np.errstate(all="ignore"):
                    arr.flat[i] = (
                        x if data.draw(st.booleans()) else arr.flat[i] * (1 + x * 1e-3)
                    )
        members[name] = _npy(arr)
    else:
        members[name] = _mutate_bytes(data, members[name])
    _check_loads_validly_or_refuses(_zip(members), X)
