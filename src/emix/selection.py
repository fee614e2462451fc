"""How many components, which covariance type: one call fits and compares them all.

:func:`select` fits a Gaussian mixture for every pair (number of components, covariance
type), each from a deterministic Ward start plus random k-means restarts, screens every
fit for degenerate components (see :func:`emix.families.gaussian.screen_components`)
and returns the whole table with the best candidate by BIC, AIC or ICL.

Degenerate fits are the reason this is more than a loop over ``GaussianMixture.bic``: on
data with a rounded or integer-valued feature EM readily parks a component on one
repeated value. Its variance there is zero up to round-off, its density is as high as
``reg_covar`` allows, and so it "wins" any likelihood-based criterion while describing
nothing. emix flags such fits and, by default, never chooses them.

All criteria are "lower is better" (scikit-learn's convention; R's mclust reports the
negatives):

- ``bic = -2 log L + p log n``
- ``aic = -2 log L + 2 p``
- ``icl = bic + 2 * sum_i w_i * H(r_i)``, where ``H(r_i) = -sum_k r_ik log r_ik`` is the
  entropy of row ``i``'s responsibilities: BIC penalised further for overlapping
  components, which favours well-separated clusters (Biernacki, Celeux & Govaert, 2000).

``log L`` is the log-likelihood of the final parameters, ``p`` the number of free
parameters and ``n`` the number of rows (the sum of the weights when ``sample_weight``
is given: weights are frequencies).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

from ._validation import check_int, check_sample_weight
from .backends import resolve_backend
from .exceptions import (
    ConvergenceWarning,
    DegenerateComponentWarning,
    EmixError,
    InputError,
)
from .families.gaussian import COVARIANCE_TYPES
from .models.mixture import GaussianMixture

__all__ = ["select", "SelectionResult", "CRITERIA"]

CRITERIA = ("bic", "aic", "icl")

# The columns of SelectionResult.table, in order.
COLUMNS = (
    "n_components",
    "covariance_type",
    "log_likelihood",
    "n_parameters",
    "bic",
    "aic",
    "icl",
    "criterion",
    "converged",
    "degenerate",
    "n_iter",
    "issues",
)


@dataclass(frozen=True, eq=False)
class SelectionResult:
    """Every candidate of :func:`select` and the chosen one.

    Attributes
    ----------
    criterion : {'bic', 'aic', 'icl'}
        The criterion that chose; lower is better.
    table : list of dict
        One row per candidate, in the order fitted (covariance types in the order given,
        then increasing ``n_components``), with keys ``n_components``,
        ``covariance_type``, ``log_likelihood`` (total, weighted), ``n_parameters``,
        ``bic``, ``aic``, ``icl``, ``criterion`` (the value of the chosen criterion),
        ``converged``, ``degenerate``, ``n_iter`` and ``issues`` (why a candidate is
        degenerate or failed: a sentence naming the component; empty when sound). A
        candidate whose fit failed has ``inf`` criteria and ``degenerate=True``.
    best_index : int
        Row of ``table`` chosen.
    models : tuple of GaussianMixture or None
        The fitted model of every row (None where the fit failed).
    keep_degenerate : bool
        Whether degenerate candidates could be chosen.
    """

    criterion: str
    table: list
    best_index: int
    models: tuple
    keep_degenerate: bool = False

    @property
    def best(self) -> dict:
        """The chosen row of ``table``."""
        return self.table[self.best_index]

    @property
    def best_model(self) -> GaussianMixture:
        """The chosen fitted model."""
        return self.models[self.best_index]

    @property
    def n_components(self) -> int:
        return int(self.best["n_components"])

    @property
    def covariance_type(self) -> str:
        return str(self.best["covariance_type"])

    def to_frame(self):
        """The table as a pandas DataFrame (pandas is imported only here)."""
        import pandas as pd

        return pd.DataFrame(self.table, columns=list(COLUMNS))

    def __str__(self) -> str:
        head = ["K", "covariance", "log L", "params", self.criterion.upper(), "conv", "note"]
        rows = []
        for i, r in enumerate(self.table):
            if r["degenerate"]:
                note = "degenerate" if math.isfinite(r["criterion"]) else "failed"
            else:
                note = ""
            if i == self.best_index:
                note = ("best; " + note) if note else "best"
            rows.append([
                str(r["n_components"]), r["covariance_type"], f"{r['log_likelihood']:.6g}",
                str(r["n_parameters"]), f"{r['criterion']:.6g}",
                "yes" if r["converged"] else "no", note,
            ])
        widths = [max(len(x[j]) for x in [head, *rows]) for j in range(len(head))]
        lines = ["  ".join(c.rjust(w) if j in (0, 2, 3, 4) else c.ljust(w)
                           for j, (c, w) in enumerate(zip(x, widths))).rstrip()
                 for x in [head, *rows]]
        lines.insert(1, "-" * len(lines[0]))
        issues = [f"  K={r['n_components']} {r['covariance_type']}: {r['issues']}"
                  for r in self.table if r["issues"]]
        if issues:
            lines += ["", "Degenerate or failed candidates:", *issues]
        return "\n".join(lines)


def select(
    X,
    n_components: Iterable[int] = range(1, 10),
    covariance_types: Iterable[str] = COVARIANCE_TYPES,
    *,
    criterion: str = "bic",
    sample_weight=None,
    n_init: int = 3,
    keep_degenerate: bool = False,
    label_order: str | None = "mean",
    n_jobs: int | None = None,
    random_state=None,
    **kwargs,
) -> SelectionResult:
    """Fit a Gaussian mixture for every candidate and choose by an information criterion.

    Parameters
    ----------
    X : array-like of shape (N, D) or (N,)
        1-D input is one feature.
    n_components : iterable of int, default=range(1, 10)
    covariance_types : iterable of {'full', 'tied', 'diag', 'spherical'}, default all four
    criterion : {'bic', 'aic', 'icl'}, default='bic'
    sample_weight : array-like of shape (N,), optional
        Frequency weights.
    n_init : int, default=3
        Starts per candidate: the first is Ward's hierarchical clustering (no
        randomness, so small data do not depend on luck), the others k-means from random
        seeds. The best non-degenerate run of each candidate is kept.
    keep_degenerate : bool, default=False
        Let degenerate candidates (a collapsed, empty or under-populated component) be
        chosen. By default they are listed but never chosen.
    label_order : {'mean', 'weight', None}, default='mean'
        Passed to every model, so that the chosen model's labels are canonical.
    n_jobs : int, optional
        Fit candidates in this many processes (-1: one per CPU). None or 1 fits them in
        this process. Results do not depend on it.
    random_state : int, numpy Generator or None
        Seeds every candidate's restarts (each candidate gets its own stream, so the
        result is the same for any ``n_jobs``).
    **kwargs
        Other :class:`GaussianMixture` parameters (``tol``, ``reg_covar``,
        ``max_iter``, ``block_size``, ``device``...).

    Returns
    -------
    SelectionResult

    Raises
    ------
    InputError
        Bad arguments or data (checked before anything is fitted).
    EmixError
        Every candidate is degenerate or failed, and ``keep_degenerate`` is False.

    Examples
    --------
    >>> import numpy as np, emix
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(0, 1, 300), rng.normal(6, 1, 300)])
    >>> res = emix.select(X, n_components=range(1, 4), covariance_types=["full"],
    ...                   random_state=0)
    >>> res.n_components
    2
    """
    ks = _check_components(n_components)
    cts = _check_covariance_types(covariance_types)
    if criterion not in CRITERIA:
        raise InputError(f"criterion must be one of {CRITERIA}; got {criterion!r}")
    check_int(n_init, "n_init", low=1)
    for bad in ("n_components", "covariance_type", "n_init", "init_params", "random_state",
                "warm_start", "callback"):
        if bad in kwargs:
            raise InputError(f"select() chooses {bad} itself; do not pass it")
    unknown = set(kwargs) - set(GaussianMixture().get_params())
    if unknown:
        raise InputError(f"unknown GaussianMixture parameter(s): {sorted(unknown)}")
    # Validate data and weights once, here, so that a bad input fails before any fit
    # (and before any worker process starts) with the usual message.
    backend = resolve_backend(X, kwargs.get("device"))
    Xv, _ = backend.validate(X, name="X")
    N = Xv.shape[0]
    w = check_sample_weight(
        None if sample_weight is None else backend.to_numpy(sample_weight), N
    )
    if ks[0] > (N if w is None else int(np.count_nonzero(w))):
        raise InputError(
            f"X has {N} rows but the smallest candidate has n_components={ks[0]}"
        )
    seeds = np.random.SeedSequence(_entropy(random_state)).spawn(len(ks) * len(cts))
    jobs = []
    for ct in cts:
        for k in ks:
            params = dict(kwargs, n_components=k, covariance_type=ct, n_init=n_init,
                          init_params="ward", label_order=label_order,
                          random_state=np.random.default_rng(seeds[len(jobs)]))
            jobs.append((criterion, params))
    outcomes = _run(jobs, X, sample_weight, n_jobs)
    table = [row for row, _ in outcomes]
    models = tuple(model for _, model in outcomes)
    eligible = [i for i, r in enumerate(table)
                if math.isfinite(r["criterion"]) and (keep_degenerate or not r["degenerate"])]
    if not eligible:
        first = table[0]
        raise EmixError(
            f"every candidate is degenerate or failed, so none can be chosen (the first, "
            f"K={first['n_components']} {first['covariance_type']}: {first['issues']}). "
            "Pass keep_degenerate=True to choose among them anyway, or check reg_covar "
            "against the data's scale."
        )
    best = min(eligible, key=lambda i: table[i]["criterion"])
    return SelectionResult(criterion, table, best, models, bool(keep_degenerate))


def _check_components(n_components) -> list[int]:
    if isinstance(n_components, (int, np.integer)):
        n_components = [n_components]
    try:
        ks = list(n_components)
    except TypeError:
        raise InputError(
            f"n_components must be an int or an iterable of ints; got {n_components!r}"
        ) from None
    if not ks:
        raise InputError("n_components is empty: give at least one number of components")
    for k in ks:
        check_int(k, "each n_components", low=1)
    return sorted({int(k) for k in ks})


def _check_covariance_types(covariance_types) -> list[str]:
    if isinstance(covariance_types, str):
        covariance_types = [covariance_types]
    cts = list(dict.fromkeys(covariance_types))
    if not cts:
        raise InputError("covariance_types is empty")
    for ct in cts:
        if ct not in COVARIANCE_TYPES:
            raise InputError(f"covariance type {ct!r} is not one of {COVARIANCE_TYPES}")
    return cts


def _entropy(random_state):
    """Seed material for SeedSequence from anything ``random_state`` may be."""
    if random_state is None or isinstance(random_state, (int, np.integer)):
        return None if random_state is None else int(random_state)
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(0, 2**63))
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(0, 2**31 - 1))
    raise InputError(
        f"random_state must be None, an int or a numpy Generator; got "
        f"{type(random_state).__name__}"
    )


def _run(jobs, X, sample_weight, n_jobs):
    if n_jobs is not None:
        check_int(n_jobs, "n_jobs", low=-1)
        if n_jobs == 0:
            raise InputError("n_jobs must be -1, None or a positive integer; got 0")
    workers = 1 if n_jobs in (None, 1) else (_cpu_count() if n_jobs == -1 else n_jobs)
    workers = min(workers, len(jobs))
    if workers <= 1:
        return [_fit_candidate(job, X, sample_weight) for job in jobs]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn, not fork: a forked child would inherit the parent's BLAS and pass-pool
    # threads in whatever state they were, which is how fork-based pools deadlock.
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(X, sample_weight)) as pool:
        return list(pool.map(_fit_in_worker, jobs))


def _cpu_count() -> int:
    from .backends._blas import cpu_count

    return max(1, cpu_count())


_WORKER_DATA: tuple = ()


def _init_worker(X, sample_weight):
    # The data travel once per worker, not once per candidate.
    global _WORKER_DATA
    _WORKER_DATA = (X, sample_weight)


def _fit_in_worker(job):
    return _fit_candidate(job, *_WORKER_DATA)


def _fit_candidate(job, X, sample_weight):
    """Fit one candidate; return its table row and the model (None if it failed)."""
    criterion, params = job
    model = GaussianMixture(**params)
    row = dict.fromkeys(COLUMNS)
    row.update(n_components=params["n_components"], covariance_type=params["covariance_type"])
    try:
        with warnings.catch_warnings():
            # The table reports convergence and degeneracy; one warning per candidate
            # would bury the answer.
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", DegenerateComponentWarning)
            model.fit(X, sample_weight=sample_weight)
    except EmixError as exc:
        row.update(log_likelihood=-math.inf, n_parameters=0, bic=math.inf, aic=math.inf,
                   icl=math.inf, criterion=math.inf, converged=False, degenerate=True,
                   n_iter=0, issues=f"fit failed: {exc}")
        return row, None
    row.update(_criteria(model, X, sample_weight))
    row["criterion"] = row[criterion]
    row.update(
        converged=bool(model.converged_),
        degenerate=bool(model.degenerate_),
        n_iter=int(model.n_iter_),
        issues=_join(model._issue_messages()),
    )
    return row, model


def _join(messages, most=3) -> str:
    """At most ``most`` sentences, then a count: a table cell, not a log."""
    out = "; ".join(messages[:most])
    if len(messages) > most:
        out += f"; and {len(messages) - most} more"
    return out


def _criteria(model: GaussianMixture, X, sample_weight) -> dict:
    """Log-likelihood of the final parameters, p, BIC, AIC and ICL for one fitted model."""
    backend = resolve_backend(X, model.device)
    # One pass gives both the densities and the responsibilities.
    L = np.asarray(model._log_joint(X, "select"), dtype=np.float64)
    log_dens = logsumexp(L, axis=1)
    resp = np.exp(L - log_dens[:, None])
    if sample_weight is None:
        w = np.ones(log_dens.shape[0])
    else:
        w = np.asarray(backend.to_numpy(sample_weight), dtype=np.float64)
    n = float(w.sum())
    loglik = float(w @ log_dens)
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.where(resp > 0, resp * np.log(resp), 0.0).sum(axis=1)
    p = model._n_parameters()
    bic = -2.0 * loglik + p * math.log(n)
    aic = -2.0 * loglik + 2.0 * p
    icl = bic + 2.0 * float(w @ ent)
    return dict(log_likelihood=loglik, n_parameters=int(p), bic=bic, aic=aic, icl=icl)
