"""The data verbs of the ``emix`` command: fit, predict, score, sample, select.

Each function takes the parsed arguments, does its work through emix's public API
(estimators, :func:`emix.select`, :func:`emix.io.save`, :func:`emix.load`) and returns
the exit status. Problems raise :class:`~emix.cli._table.CliError` with a message that
names the file, column or option; ``emix.cli.main`` prints it as one line.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import sys
import warnings

import numpy as np

from ._progress import Progress
from ._table import CliError, Table, check_output, read_table, write_csv

__all__ = ["fit", "predict", "sample", "score", "select"]

MODEL_KINDS = ("mixture", "hmm")


# ------------------------------------------------------------------ shared helpers


def _columns_option(text: str | None) -> list | None:
    if text is None:
        return None
    names = [c.strip() for c in text.split(",")]
    if not all(names):
        raise CliError(f"--columns {text!r}: empty column name")
    if len(set(names)) != len(names):
        raise CliError(f"--columns {text!r} names a column twice")
    return names


_COLUMN = re.compile(r"\bcolumn (\d+)\b")


@contextlib.contextmanager
def _about(prefix: str, names: list | None = None):
    """Re-raise emix's errors (bad data, degenerate fits) as a CliError prefixed by
    the file they concern.

    The library's message names rows and columns by position in the array it was given;
    with ``names`` (that array's columns) a column is named as the file names it.
    """
    from ..exceptions import EmixError

    try:
        yield
    except EmixError as exc:
        message = str(exc)
        if names:
            def by_name(m):
                j = int(m.group(1))
                return f"column {names[j]!r}" if j < len(names) else m.group(0)

            message = _COLUMN.sub(by_name, message)
        # Errors from a file read in blocks already name it.
        if not message.startswith(f"{prefix}:"):
            message = f"{prefix}: {message}"
        raise CliError(message) from None


@contextlib.contextmanager
def _reported_warnings(verb: str):
    """Collect warnings and print each once, as one line, after the work.

    Python's default display spans two lines with a source path; a command's user wants
    the sentence only.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # The command matches columns by name itself; the models' check that a plain
        # array has no names would only repeat it.
        warnings.filterwarnings("ignore", message=".*feature names.*")
        try:
            yield
        finally:
            seen = set()
            for w in caught:
                text = " ".join(str(w.message).split())
                if text not in seen:
                    seen.add(text)
                    print(f"emix {verb}: warning: {text}", file=sys.stderr)


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        v = float(value)
        # JSON has no NaN or infinity; null says "no number" to every reader.
        return v if math.isfinite(v) else None
    return value


def _print_json(obj) -> None:
    print(json.dumps(_jsonable(obj), indent=2, allow_nan=False))


def _load_model(path: str):
    import emix
    from ..exceptions import EmixError

    if os.path.isdir(path):
        raise CliError(f"{path} is a directory, not a model file")
    if not os.path.exists(path):
        raise CliError(f"{path}: no such file")
    try:
        return emix.load(path)
    except EmixError as exc:
        message = str(exc)
        raise CliError(message if path in message else f"{path}: {message}") from None
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from None


def _save_model(model, path: str) -> None:
    from ..io import save

    try:
        save(model, path)
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or exc}") from None


def _model_names(model) -> list | None:
    """The column names a model reads, in order, or None when it has none."""
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        return None
    names = [str(n) for n in names]
    cols = getattr(model, "columns_", None)
    if cols is not None and len(cols) != len(names):
        names = [names[int(j)] for j in cols]
    return names


def _data_for_model(model, table: Table, columns: list | None,
                    missing: str = "error") -> tuple[np.ndarray, list]:
    """The columns of ``table`` the model reads: named by --columns, else by the names
    stored in the model, else all of them."""
    if columns is None:
        columns = getattr(model, "feature_names_in_", None)
        columns = None if columns is None else [str(n) for n in columns]
    X, names = table.numeric(columns, missing=missing)
    D = int(model.n_features_in_)
    if X.shape[1] != D:
        raise CliError(
            f"the model reads {D} column{'s' if D != 1 else ''}, but {table.path} has "
            f"{X.shape[1]} ({', '.join(names)}); choose them with --columns"
        )
    return X, names


def _is_hmm(model) -> bool:
    return type(model).__name__ == "HMM"


def _n_components(model) -> int:
    for attr in ("n_components", "n_states"):
        if hasattr(model, attr):
            return int(getattr(model, attr))
    raise CliError(f"a {type(model).__name__} has no components")  # pragma: no cover


def _describe(model) -> str:
    kind = type(model).__name__
    K = _n_components(model)
    if kind == "GaussianMixture":
        return f"Gaussian mixture, {K} components, {model.covariance_type} covariance"
    if kind == "HMM":
        return f"hidden Markov model, {K} states, {_family_label(model.emission)} emissions"
    if kind == "MixtureModel":
        return f"{_family_label(model.family)} mixture, {K} components"
    return f"{kind}, {K} components"


def _family_label(spec) -> str:
    if isinstance(spec, str):
        return spec
    if isinstance(spec, (list, tuple)):
        return " x ".join(_family_label(part[0]) for part in spec)
    if isinstance(spec, dict):
        return " x ".join(str(k) for k in spec)
    return type(spec).__name__


# ------------------------------------------------------------------ fit


def _parse_families(values: list | None) -> tuple[object, list | None]:
    """``--family`` values to a family spec and the columns they name.

    ``gaussian`` alone is a family name; ``gaussian=a,b`` (repeatable) makes an
    independent product over column groups.
    """
    if not values:
        return "gaussian", None
    plain = [v for v in values if "=" not in v]
    if plain and len(values) > 1:
        raise CliError(
            "--family: give one family, or several as NAME=COLUMNS (e.g. --family "
            "gaussian=height,weight --family poisson=visits)"
        )
    if plain:
        return plain[0].strip(), None
    parts, columns = [], []
    for v in values:
        name, _, cols = v.partition("=")
        names = _columns_option(cols) if cols.strip() else None
        if not name.strip() or names is None:
            raise CliError(f"--family {v!r}: expected NAME=COLUMN[,COLUMN...]")
        for c in names:
            if c in columns:
                raise CliError(f"--family: column {c!r} belongs to two families")
        parts.append((name.strip(), names))
        columns += names
    return parts, columns


def _option_value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


def _family_options(values: list | None) -> dict:
    out = {}
    for v in values or ():
        key, sep, raw = v.partition("=")
        if not sep or not key.strip():
            raise CliError(f"--option {v!r}: expected KEY=VALUE (e.g. --option df=5)")
        out[key.strip()] = _option_value(raw.strip())
    return out


def _check_family_names(spec) -> None:
    from ..families import FAMILY_NAMES

    names = [spec] if isinstance(spec, str) else [p[0] for p in spec]
    for name in names:
        if name not in FAMILY_NAMES:
            raise CliError(
                f"--family {name!r}: unknown family; choose one of {', '.join(FAMILY_NAMES)}"
            )


def _make_estimator(args, family, names: list, progress: Progress):
    from .. import HMM, GaussianMixture, MixtureModel

    options = _family_options(args.option)
    if args.reg_covar is not None:
        options["reg_covar"] = args.reg_covar
    common = dict(
        tol=args.tol, max_iter=args.max_iter, n_init=args.n_init, random_state=args.seed,
        callback=progress,
    )
    if isinstance(family, list):
        # Product parts name columns; the model sees a plain array, so positions.
        spec = [(fam, [names.index(c) for c in cols]) for fam, cols in family]
        per_family = {}
        for fam, _ in family:
            per_family.setdefault(fam, {}).update(options)
        options = per_family if options else {}
    else:
        spec = family
    if args.model == "hmm":
        return HMM(args.k, spec, covariance_type=args.covariance, label_order="mean",
                   family_options=options or None, **common)
    if spec == "gaussian":
        extra = {} if args.reg_covar is None else {"reg_covar": args.reg_covar}
        if set(options) - {"reg_covar"}:
            raise CliError(f"--option {sorted(set(options) - {'reg_covar'})[0]}: the Gaussian "
                           "mixture takes no such option")
        return GaussianMixture(args.k, covariance_type=args.covariance, label_order="mean",
                               **extra, **common)
    label_order = "mean" if not isinstance(spec, list) else None
    return MixtureModel(spec, args.k, covariance_type=args.covariance,
                        label_order=label_order, family_options=options or None, **common)


def _fit_summary(model, X, names: list, data_path: str, out: str, n_rows=None) -> dict:
    # X may be a source read in blocks: one pass for the likelihood, the criteria from it.
    N = X.shape[0] if n_rows is None else int(n_rows)
    mean_ll = float(model.score(X))
    summary = {
        "data": data_path,
        "model_file": out,
        "model": type(model).__name__,
        "description": _describe(model),
        "n_rows": N,
        "columns": names,
        "n_components": _n_components(model),
        "converged": bool(getattr(model, "converged_", True)),
        "n_iter": int(getattr(model, "n_iter_", 0)),
        "algorithm": "minibatch" if hasattr(model, "n_batches_seen_") else "em",
        "mean_log_likelihood": mean_ll,
        "log_likelihood": mean_ll * N,
    }
    if n_rows is None:
        summary["bic"], summary["aic"] = float(model.bic(X)), float(model.aic(X))
        if getattr(model, "missing", "error") == "em" and isinstance(X, np.ndarray):
            n_obs = int(N - np.isnan(X).reshape(N, -1).all(axis=1).sum())
            if n_obs != N:
                summary["n_observed_rows"] = n_obs
    else:
        # A row with every value missing scores 0 and is no observation: BIC's log n
        # counts the rows with an observed value (one more pass, only with missing='em').
        n_obs = N
        if getattr(model, "missing", "error") == "em":
            from ..data._stream import n_observed_rows_of

            n_obs = int(n_observed_rows_of(X, model))
        p = model._n_parameters()
        summary["bic"] = -2.0 * mean_ll * N + p * math.log(n_obs)
        summary["aic"] = -2.0 * mean_ll * N + 2.0 * p
        if n_obs != N:
            summary["n_observed_rows"] = n_obs
    if hasattr(model, "weights_"):
        summary["weights"] = np.asarray(model.weights_, dtype=np.float64)
    if hasattr(model, "transmat_"):
        summary["startprob"] = np.asarray(model.startprob_, dtype=np.float64)
        summary["transmat"] = np.asarray(model.transmat_, dtype=np.float64)
    if hasattr(model, "means_"):
        summary["means"] = np.asarray(model.means_, dtype=np.float64)
    return summary


def _print_fit_summary(s: dict) -> None:
    seen = s.get("n_observed_rows")
    rows = f"{s['n_rows']} rows" + (f" ({seen} with an observed value)" if seen is not None else "")
    print(f"{s['description']}, fitted to {rows} of {s['data']} "
          f"(columns {', '.join(s['columns'])})")
    if s.get("algorithm") == "minibatch":
        conv = f"mini-batch EM: {s['n_iter']} batches"
    else:
        conv = ("converged" if s["converged"] else "did not converge") + \
            f" after {s['n_iter']} iterations"
    print(f"  {conv}; log-likelihood {s['log_likelihood']:.6g} "
          f"({s['mean_log_likelihood']:.6g} per row); BIC {s['bic']:.6g}; AIC {s['aic']:.6g}")
    if "weights" in s:
        print("  weights: " + "  ".join(f"{w:.4g}" for w in s["weights"]))
    if "means" in s and np.ndim(s["means"]) == 2 and np.shape(s["means"])[1] <= 6:
        for k, row in enumerate(s["means"]):
            print(f"  component {k} mean: " + "  ".join(f"{v:.6g}" for v in row))
    print(f"Model written to {s['model_file']}")


def fit(args) -> int:
    family, family_columns = _parse_families(args.family)
    _check_family_names(family)
    if family_columns is not None and args.columns is not None:
        raise CliError("--columns and --family NAME=COLUMNS both choose columns; use one")
    check_output(args.output, "-o")
    columns = family_columns if family_columns is not None else _columns_option(args.columns)
    streaming = args.block_rows is not None or args.minibatch
    if streaming:
        if args.model == "hmm":
            raise CliError("--block-rows and --minibatch stream mixtures only; an HMM reads "
                           "the whole file")
        X, names, N = _stream_source(args.data, columns, args.block_rows, args.missing)
    else:
        table = read_table(args.data, args.missing)
        X, names = table.numeric(columns, missing=args.missing)
        N = X.shape[0]
    if args.k > N:
        raise CliError(f"-k {args.k} is more than the {N} rows of {args.data}")
    progress = Progress("emix fit", args.max_iter, args.n_init, quiet=args.quiet)
    with _reported_warnings("fit"):
        model = _make_estimator(args, family, names, progress)
        try:
            with _about(args.data, names):
                if args.minibatch:
                    model.fit(X, algorithm="minibatch", n_epochs=args.epochs)
                else:
                    model.fit(X)
        finally:
            progress.close()
        model.set_params(callback=None)
        # Stored in the model file, so that predict finds its columns by name.
        model.feature_names_in_ = np.asarray(names, dtype=object)
        with _about(args.data, names):
            summary = _fit_summary(model, X, names, args.data, args.output,
                                   n_rows=N if streaming else None)
        _save_model(model, args.output)
    if args.json:
        _print_json(summary)
    elif not args.quiet:
        _print_fit_summary(summary)
    return 0


def _stream_source(path: str, columns: list | None, block_rows: int | None,
                   missing: str = "error"):
    """``(source, column names, rows)`` of a CSV or Parquet file read in blocks.

    The file is checked once here (every value finite and numeric, or with ``missing=
    'em'`` finite or missing, a header naming the columns), so that errors arrive
    before any fitting, as a one-line CliError.
    """
    from ..data import source
    from ..exceptions import EmixError

    if os.path.isdir(path):
        raise CliError(f"{path} is a directory, not a data file")
    if not os.path.exists(path):
        raise CliError(f"{path}: no such file")
    try:
        src = source(path, columns=columns, block_rows=block_rows)
        if missing == "em" and src.n_rows is None:  # empty cells read as missing
            n = sum(b.shape[0] for b in src.blocks(allow_nan=True))
        else:
            n = src.count_rows()
    except EmixError as exc:
        # The library's hint names its keyword; the command's user has an option.
        message = str(exc).replace(
            ". Choose numeric columns with columns=[...]", "; choose the numeric columns with --columns"
        )
        raise CliError(message if path in message else f"{path}: {message}") from None
    if n == 0:
        raise CliError(f"{path} has a header but no rows of data")
    names = src.column_names
    names = [str(c) for c in names] if names is not None else [str(j) for j in range(src.n_features)]
    return src, names, n


# ------------------------------------------------------------------ predict, score, sample


def _model_data(model, args):
    """The data ``predict``/``score`` read: a table in memory, or with ``--block-rows`` a
    source of the model's columns read in blocks (mixtures)."""
    columns = _columns_option(args.columns)
    missing = getattr(args, "missing", "error")
    if missing == "em" and "missing" in model.get_params():
        model.set_params(missing="em")  # NaN as missing values, also in a model saved strict
    if getattr(args, "block_rows", None) is None:
        return _data_for_model(model, read_table(args.data, missing), columns, missing)
    if _is_hmm(model):
        raise CliError("--block-rows streams mixtures only; an HMM reads the whole file")
    if columns is None:
        fitted = getattr(model, "feature_names_in_", None)
        columns = None if fitted is None else [str(n) for n in fitted]
    src, names, _ = _stream_source(args.data, columns, args.block_rows, missing)
    D = int(model.n_features_in_)
    if len(names) != D:
        raise CliError(
            f"the model reads {D} column{'s' if D != 1 else ''}, but {args.data} has "
            f"{len(names)} ({', '.join(names)}); choose them with --columns"
        )
    return src, names


def predict(args) -> int:
    check_output(args.output, "-o")
    model = _load_model(args.model)
    X, names = _model_data(model, args)
    with _reported_warnings("predict"), _about(args.data, names):
        labels = np.asarray(model.predict(X))
        proba = np.asarray(model.predict_proba(X)) if args.proba else None
    header = ["state" if _is_hmm(model) else "component"]
    cols = [labels]
    if proba is not None:
        header += [f"p{k}" for k in range(proba.shape[1])]
        cols += [proba[:, k] for k in range(proba.shape[1])]
    write_csv(args.output, header, cols)
    K = _n_components(model)
    counts = np.bincount(labels, minlength=K)
    if args.json:
        _print_json({"data": args.data, "output": args.output, "n_rows": len(labels),
                     "counts": counts})
    elif not args.quiet:
        print(f"{len(labels)} labels written to {args.output} "
              f"(rows per {header[0]}: {', '.join(f'{k}: {c}' for k, c in enumerate(counts))})")
    return 0


def score(args) -> int:
    model = _load_model(args.model)
    X, names = _model_data(model, args)
    with _reported_warnings("score"), _about(args.data, names):
        mean_ll = float(model.score(X))
        N = X.count_rows() if hasattr(X, "count_rows") else X.shape[0]
        result = {
            "data": args.data, "model": args.model, "n_rows": N, "columns": names,
            "mean_log_likelihood": mean_ll, "log_likelihood": mean_ll * N,
        }
        if hasattr(X, "count_rows"):  # a source: the criteria from the one pass
            p = model._n_parameters()
            result["bic"] = -2.0 * mean_ll * N + p * math.log(N)
            result["aic"] = -2.0 * mean_ll * N + 2.0 * p
        else:
            result["bic"], result["aic"] = float(model.bic(X)), float(model.aic(X))
    if args.json:
        _print_json(result)
    else:
        print(f"{args.data}: {result['n_rows']} rows")
        print(f"  log-likelihood      {result['log_likelihood']:.10g}")
        print(f"  per row             {result['mean_log_likelihood']:.10g}")
        print(f"  BIC                 {result['bic']:.10g}")
        print(f"  AIC                 {result['aic']:.10g}")
    return 0


def sample(args) -> int:
    check_output(args.output, "-o")
    model = _load_model(args.model)
    with _reported_warnings("sample"), _about(args.model):
        if _is_hmm(model):
            X, z = model.sample(args.n, random_state=args.seed)
        else:
            if args.seed is not None:
                model.set_params(random_state=args.seed)
            X, z = model.sample(args.n)
    X = np.asarray(X)
    names = _model_names(model)
    if names is None or len(names) != X.shape[1]:
        names = [f"x{j}" for j in range(X.shape[1])]
    label = "state" if _is_hmm(model) else "component"
    if label in names:
        label = "_" + label
    write_csv(args.output, [*names, label], [*(X[:, j] for j in range(X.shape[1])), z])
    if args.json:
        _print_json({"model": args.model, "output": args.output, "n_rows": X.shape[0],
                     "columns": names})
    elif not args.quiet:
        print(f"{X.shape[0]} rows drawn from {args.model} written to {args.output}")
    return 0


# ------------------------------------------------------------------ select

_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+))?\s*$")


def parse_k(text: str) -> list:
    """``"1-9"``, ``"2,4,8"`` or ``"1-3,6"`` to a sorted list of distinct ints >= 1."""
    ks = set()
    for part in text.split(","):
        m = _RANGE.match(part)
        if not m:
            raise CliError(f"--k {text!r}: expected numbers and ranges such as 1-9 or 2,4,8")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) else lo
        if lo < 1 or hi < lo:
            raise CliError(f"--k {text!r}: ranges run upwards from 1, e.g. 1-9")
        ks.update(range(lo, hi + 1))
    return sorted(ks)


def select(args) -> int:
    import emix

    ks = parse_k(args.k)
    families = None
    if args.families is not None:
        families = [f.strip() for f in args.families.split(",") if f.strip()]
        for f in families:
            _check_family_names(f)
    cts = None
    if args.covariance is not None:
        cts = [c.strip() for c in args.covariance.split(",") if c.strip()]
    if args.output is not None:
        check_output(args.output, "-o")
    table = read_table(args.data)
    X, names = table.numeric(_columns_option(args.columns))
    if ks[-1] > X.shape[0]:
        raise CliError(f"--k {args.k}: {ks[-1]} components is more than the {X.shape[0]} "
                       f"rows of {args.data}")
    with _reported_warnings("select"), _about(args.data, names):
        res = emix.select(X, n_components=ks, covariance_types=cts, families=families,
                          criterion=args.criterion, n_init=args.n_init,
                          random_state=args.seed)
    best = res.best_model
    if args.output is not None and best is not None:
        best.feature_names_in_ = np.asarray(names, dtype=object)
        _save_model(best, args.output)
    if args.json:
        _print_json({"data": args.data, "columns": names, "criterion": res.criterion,
                     "best_index": res.best_index, "best": res.best, "table": res.table,
                     "model_file": args.output})
    else:
        print(f"{args.data}: {X.shape[0]} rows, columns {', '.join(names)}")
        print(res)
        b = res.best
        ct = "" if b["covariance_type"] is None else f", {b['covariance_type']} covariance"
        print(f"\nBest by {res.criterion.upper()}: {b['family']}, "
              f"{b['n_components']} components{ct}")
        if args.output is not None:
            print(f"Model written to {args.output}")
    return 0
