"""How many components, which covariance type: one call fits and compares them all.

:func:`select` fits a Gaussian mixture for every pair (number of components, covariance
type), each from a deterministic Ward start plus random k-means restarts, screens every
fit for degenerate components (see :func:`emix.families.gaussian.screen_components`)
and returns the whole table with the best candidate by BIC, AIC or ICL. With
``families=[...]`` it compares mixtures of other families too (Poisson, Student-t,
products for mixed columns, ...), each fitted as :class:`emix.MixtureModel`, as long as
their likelihoods are of the same kind: probabilities of integer values (discrete
families) and densities per unit (continuous ones) are not comparable, and ``select``
refuses to mix them rather than return a number that depends on the data's units.

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
parameters (the family's, e.g. a Student-t's learned degrees of freedom count, fixed
ones do not, plus ``K - 1`` mixing weights) and ``n`` the number of rows (the sum of
the weights when ``sample_weight`` is given: weights are frequencies).
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy.special import logsumexp

from ._missing import check_missing, check_missing_mode
from ._validation import allow_nan, check_int, check_sample_weight
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
    "family",
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
        One row per candidate, in the order fitted (families in the order given, then
        covariance types in the order given, then increasing ``n_components``), with
        keys ``family`` (``'gaussian'`` unless ``families`` was given; otherwise a label
        such as ``'poisson'``, ``'student_t(df=3.0)'`` or ``'gaussian[0,1]+poisson[2]'``
        for a product), ``n_components``, ``covariance_type`` (None for a family
        without one), ``log_likelihood`` (total, weighted), ``n_parameters``, ``bic``,
        ``aic``, ``icl``, ``criterion`` (the value of the chosen criterion),
        ``converged``, ``degenerate``, ``n_iter`` and ``issues`` (why a candidate is
        degenerate or failed: a sentence naming the component; empty when sound). A
        candidate whose fit failed has ``inf`` criteria and ``degenerate=True``.
    best_index : int
        Row of ``table`` chosen.
    models : tuple of GaussianMixture, MixtureModel or None
        The fitted model of every row (None where the fit failed): a
        :class:`~emix.GaussianMixture` for Gaussian candidates given by name, a
        :class:`~emix.MixtureModel` for the other families.
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
    def best_model(self):
        """The chosen fitted model."""
        return self.models[self.best_index]

    @property
    def n_components(self) -> int:
        return int(self.best["n_components"])

    @property
    def covariance_type(self) -> str | None:
        """The chosen covariance type; None for a family that has none."""
        ct = self.best["covariance_type"]
        return None if ct is None else str(ct)

    @property
    def family(self) -> str:
        """The chosen family's label (``'gaussian'`` unless ``families`` was given)."""
        return str(self.best["family"])

    def to_frame(self):
        """The table as a pandas DataFrame (pandas is imported only here)."""
        import pandas as pd

        return pd.DataFrame(self.table, columns=list(COLUMNS))

    def __str__(self) -> str:
        # The family column appears only when there is more than the Gaussian to show,
        # so the table of a covariance-type grid reads as it always has.
        with_family = any(r["family"] != "gaussian" for r in self.table)
        head = ["K", "covariance", "log L", "params", self.criterion.upper(), "conv", "note"]
        if with_family:
            head.insert(0, "family")
        rows = []
        for i, r in enumerate(self.table):
            if r["degenerate"]:
                note = "degenerate" if math.isfinite(r["criterion"]) else "failed"
            else:
                note = ""
            if i == self.best_index:
                note = ("best; " + note) if note else "best"
            cells = [
                str(r["n_components"]), _text(r["covariance_type"]),
                f"{r['log_likelihood']:.6g}", str(r["n_parameters"]), f"{r['criterion']:.6g}",
                "yes" if r["converged"] else "no", note,
            ]
            if with_family:
                cells.insert(0, str(r["family"]))
            rows.append(cells)
        right = {0, 2, 3, 4}
        if with_family:
            right = {j + 1 for j in right}
        widths = [max(len(x[j]) for x in [head, *rows]) for j in range(len(head))]
        lines = ["  ".join(c.rjust(w) if j in right else c.ljust(w)
                           for j, (c, w) in enumerate(zip(x, widths))).rstrip()
                 for x in [head, *rows]]
        lines.insert(1, "-" * len(lines[0]))
        issues = [f"  {_candidate(r, with_family)}: {r['issues']}"
                  for r in self.table if r["issues"]]
        if issues:
            lines += ["", "Degenerate or failed candidates:", *issues]
        return "\n".join(lines)


def _text(value) -> str:
    return "-" if value is None else str(value)


def _candidate(row, with_family=True) -> str:
    """'K=3 full' or 'poisson K=3': a candidate in a sentence."""
    ct = "" if row["covariance_type"] is None else f" {row['covariance_type']}"
    fam = f"{row['family']} " if with_family else ""
    return f"{fam}K={row['n_components']}{ct}"


def select(
    X,
    n_components: Iterable[int] = range(1, 10),
    covariance_types: Iterable[str] | None = None,
    *,
    families=None,
    criterion: str = "bic",
    sample_weight=None,
    n_init: int = 3,
    keep_degenerate: bool = False,
    label_order: str | None = "mean",
    n_jobs: int | None = None,
    random_state=None,
    **kwargs,
) -> SelectionResult:
    """Fit a mixture for every candidate and choose by an information criterion.

    Without ``families`` the candidates are Gaussian mixtures over numbers of
    components and covariance types. With ``families`` they are every (family, number
    of components[, covariance type for a family that has one]).

    Parameters
    ----------
    X : array-like of shape (N, D) or (N,)
        1-D input is one feature.
    n_components : iterable of int, default=range(1, 10)
    covariance_types : iterable of {'full', 'tied', 'diag', 'spherical'}, optional
        Default all four. With ``families``, they apply to the families given by a name
        that has a covariance type (``'gaussian'``: all four; ``'student_t'``: those
        of ``'full'``, ``'diag'``, ``'spherical'`` that are listed); a family object
        keeps its own.
    families : list, optional
        Families to compare, each a name (``'gaussian'``, ``'poisson'``,
        ``'student_t'``, ... see :data:`emix.families.FAMILY_NAMES`), a family object
        (e.g. ``StudentT(df=3)``), or a product spec as :class:`~emix.MixtureModel`
        takes it (``{"gaussian": [0, 1], "poisson": [2]}``). ``'gaussian'`` by name is
        fitted as :class:`~emix.GaussianMixture` (Ward start plus k-means restarts, as
        without ``families``); the others as :class:`~emix.MixtureModel` with
        ``init_params='kmeans'`` and ``n_init`` restarts. Every candidate must model the
        same columns with the same kind of likelihood, see Raises.
    criterion : {'bic', 'aic', 'icl'}, default='bic'
    sample_weight : array-like of shape (N,), optional
        Frequency weights.
    n_init : int, default=3
        Starts per candidate: for Gaussian mixtures the first is Ward's hierarchical
        clustering (no randomness, so small data do not depend on luck), the others
        k-means from random seeds. The best non-degenerate run of each candidate is
        kept.
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
        ``max_iter``, ``block_size``, ``device``...). With ``families``, ``tol``,
        ``max_iter``, ``block_size``, ``device`` and ``verbose`` apply to every
        candidate, ``reg_covar`` to the Gaussian and Student-t families given by name,
        and starting values (``weights_init``, ``means_init``, ...) are refused.

    Returns
    -------
    SelectionResult

    Raises
    ------
    InputError
        Bad arguments or data (checked before anything is fitted). With ``families``:
        also when the candidates' likelihoods are not comparable, because they are
        densities with respect to different measures (a discrete family, such as
        Poisson, gives probabilities of integer values; a continuous one, such as the
        Gaussian, densities per unit of the data: the two differ by the data's units,
        so a criterion would compare numbers of different kinds), or because they model
        different columns (a binomial of ``(heads, trials)`` models the heads given the
        trials, not the trials).
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
    >>> counts = np.concatenate([rng.poisson(2, 300), rng.poisson(15, 300)])
    >>> res = emix.select(counts, n_components=range(1, 4), families=["poisson"],
    ...                   random_state=0)
    >>> res.family, res.n_components
    ('poisson', 2)
    """
    ks = _check_components(n_components)
    if covariance_types is None:
        covariance_types = COVARIANCE_TYPES
    cts = _check_covariance_types(covariance_types)
    if criterion not in CRITERIA:
        raise InputError(f"criterion must be one of {CRITERIA}; got {criterion!r}")
    check_int(n_init, "n_init", low=1)
    for bad in ("n_components", "covariance_type", "n_init", "init_params", "random_state",
                "warm_start", "callback"):
        if bad in kwargs:
            raise InputError(f"select() chooses {bad} itself; do not pass it")
    if families is None:
        unknown = set(kwargs) - set(GaussianMixture().get_params())
        if unknown:
            raise InputError(f"unknown GaussianMixture parameter(s): {sorted(unknown)}")
    else:
        _check_family_kwargs(kwargs)
    # Validate data and weights once, here, so that a bad input fails before any fit
    # (and before any worker process starts) with the usual message.
    backend = resolve_backend(X, kwargs.get("device"))
    # NaN is a missing value (missing='em', every estimator's default): the candidates
    # fit it by EM, and their BIC counts the rows with an observed value.
    missing = check_missing_mode(kwargs.get("missing", "em"))
    with allow_nan(missing == "em"):
        Xv, names = backend.validate(X, name="X")
    info = check_missing(Xv, missing, name="X", column_names=names, fitting=False)
    N = Xv.shape[0]
    w = check_sample_weight(
        None if sample_weight is None else backend.to_numpy(sample_weight), N
    )
    usable = ~info.all_missing if w is None else (w > 0) & ~info.all_missing
    if ks[0] > int(np.count_nonzero(usable)):
        raise InputError(
            f"X has {int(np.count_nonzero(usable))} usable rows but the smallest candidate "
            f"has n_components={ks[0]}"
        )
    if families is None:
        specs = [_Spec("gaussian", "gaussian", ct, None) for ct in cts]
    else:
        specs = _family_specs(families, cts, names, int(Xv.shape[1]), kwargs.get("reg_covar"))
    seeds = np.random.SeedSequence(_entropy(random_state)).spawn(len(ks) * len(specs))
    jobs = []
    for spec in specs:
        for k in ks:
            rs = np.random.default_rng(seeds[len(jobs)])
            if spec.kind == "gaussian":
                gm_kw = {a: v for a, v in kwargs.items() if a in _GM_PARAMS}
                params = dict(gm_kw, n_components=k, covariance_type=spec.covariance_type,
                              n_init=n_init, init_params="ward", label_order=label_order,
                              random_state=rs)
            else:
                params = dict(
                    {a: v for a, v in kwargs.items() if a in _COMMON_PARAMS},
                    family=spec.family, n_components=k, n_init=n_init,
                    init_params="kmeans", label_order=label_order, random_state=rs,
                )
                if spec.covariance_type is not None and isinstance(spec.family, str):
                    params["covariance_type"] = spec.covariance_type
                if spec.options:
                    params["family_options"] = dict(spec.options)
            jobs.append((criterion, spec.kind, spec.label, spec.covariance_type, params))
    outcomes = _run(jobs, X, sample_weight, n_jobs)
    table = [row for row, _ in outcomes]
    models = tuple(model for _, model in outcomes)
    eligible = [i for i, r in enumerate(table)
                if math.isfinite(r["criterion"]) and (keep_degenerate or not r["degenerate"])]
    if not eligible:
        first = table[0]
        raise EmixError(
            f"every candidate is degenerate or failed, so none can be chosen (the first, "
            f"{_candidate(first, families is not None)}: {first['issues']}). "
            "Pass keep_degenerate=True to choose among them anyway, or check reg_covar "
            "against the data's scale."
        )
    best = min(eligible, key=lambda i: table[i]["criterion"])
    return SelectionResult(criterion, table, best, models, bool(keep_degenerate))


# ----------------------------------------------------------------------------- families

# Parameters every candidate takes, Gaussian or not.
_COMMON_PARAMS = frozenset({"tol", "max_iter", "block_size", "device", "verbose", "missing"})
# Starting values describe one K; across a grid of K they cannot be right.
_STARTS = frozenset({"weights_init", "means_init", "precisions_init", "params_init"})
_GM_PARAMS = frozenset(GaussianMixture().get_params()) - _STARTS


class _Spec(NamedTuple):
    """One family of the grid, with its covariance type when it has one."""

    kind: str  # 'gaussian' (fitted as GaussianMixture) or 'mixture' (MixtureModel)
    label: str
    covariance_type: str | None
    family: object  # name, Family object or product spec (for MixtureModel)
    options: dict | None = None  # family_options for a named family


def _check_family_kwargs(kwargs) -> None:
    starts = sorted(set(kwargs) & _STARTS)
    if starts:
        raise InputError(
            f"select() with families fits many numbers of components, so starting values "
            f"cannot be given: drop {starts}"
        )
    for own in ("family", "family_options", "columns"):
        if own in kwargs:
            raise InputError(
                f"select() with families takes no {own}: list family objects (or product "
                "specs) in families, and pass X with only the columns to model"
            )
    unknown = set(kwargs) - _GM_PARAMS - _COMMON_PARAMS
    if unknown:
        raise InputError(f"unknown GaussianMixture parameter(s): {sorted(unknown)}")


def _family_specs(families, cts, names, D, reg_covar=None) -> list[_Spec]:
    """The (family, covariance type) pairs of the grid, checked for comparability."""
    from .families import FAMILY_NAMES, family_class
    from .families._base import Family

    if isinstance(families, (str, Family, Mapping)):
        families = [families]
    try:
        families = list(families)
    except TypeError:
        raise InputError(
            f"families must be a list of family names, family objects or product specs; "
            f"got {families!r}"
        ) from None
    if not families:
        raise InputError("families is empty: give at least one family")
    specs, measures = [], []
    for spec in families:
        if isinstance(spec, str):
            if spec not in FAMILY_NAMES:
                raise InputError(f"unknown family {spec!r}; choose one of {FAMILY_NAMES}")
            if spec == "gaussian":
                new = [_Spec("gaussian", "gaussian", ct, None) for ct in cts]
                fam = family_class("gaussian")()
            else:
                cls = family_class(spec)
                params = inspect.signature(cls.__init__).parameters
                if "covariance_type" in params:
                    allowed = _allowed_covariance_types(cls)
                    own = [ct for ct in cts if ct in allowed]
                    if not own:
                        raise InputError(
                            f"family {spec!r} takes covariance types {allowed}; none of "
                            f"{cts} is one of them"
                        )
                    options = None
                    if "reg_covar" in params and reg_covar is not None:
                        options = {"reg_covar": reg_covar}
                    new = [_Spec("mixture", spec, ct, spec, options) for ct in own]
                else:
                    new = [_Spec("mixture", spec, None, spec)]
                fam = cls()
            measure = _measure_of(fam, None, names, D)
        elif isinstance(spec, Family):
            fam = spec
            ct = getattr(spec, "covariance_type", None)
            new = [_Spec("mixture", _object_label(spec), ct, spec)]
            measure = _measure_of(fam, None, names, D)
        else:
            from .models.mixture_model import MixtureModel

            product = MixtureModel(family=spec)._make_family()
            resolved = product.resolve(names, D)
            label = "+".join(
                f"{_object_label(part, True)}"
                f"[{','.join(str(names[c]) if names is not None else str(c) for c in cols)}]"
                for part, cols in resolved.parts
            )
            new = [_Spec("mixture", label, None, spec)]
            measure = _measure_of(resolved, resolved, names, D)
        for s in new:
            specs.append(s)
            measures.append((s.label, measure))
    _check_comparable(measures, names)
    return specs


def _allowed_covariance_types(cls) -> tuple:
    """The covariance types a family class takes: its module's (or, for a subclass such
    as the Student-t, its base's) ``COVARIANCE_TYPES``."""
    import sys

    for klass in cls.__mro__:
        types = getattr(sys.modules.get(klass.__module__), "COVARIANCE_TYPES", None)
        if types is not None:
            return tuple(types)
    return COVARIANCE_TYPES


def _object_label(fam, with_covariance=False) -> str:
    """``student_t(df=3.0)``: the name and the options that differ from the family's
    defaults (the covariance type has its own column unless ``with_covariance``)."""
    try:
        defaults = type(fam)().get_config()
    except (TypeError, InputError):
        defaults = {}
    cfg = {
        k: v for k, v in fam.get_config().items()
        if (with_covariance or k != "covariance_type") and (k not in defaults or defaults[k] != v)
    }
    inner = ", ".join(f"{k}={v!r}" for k, v in cfg.items())
    return f"{fam.name}({inner})" if inner else fam.name


def _measure_of(fam, product, names, D) -> tuple:
    """What the family's likelihood is a density of, per column of X: ``'counting'``
    (a probability of integer values), ``'Lebesgue'`` (a density per unit),
    ``'given'`` (conditioned on, not modelled) or None (not read)."""
    out = [None] * D
    parts = product.parts if product is not None else [(fam, list(range(D)))]
    for part, cols in parts:
        for c, kind in zip(cols, _part_measure(part, len(cols))):
            out[int(c)] = kind
    return tuple(out)


def _part_measure(fam, n) -> list:
    from .families.binomial import Binomial

    kind = "counting" if getattr(fam, "discrete", False) else "Lebesgue"
    if isinstance(fam, Binomial) and fam.n_trials is None:
        # (heads, trials) rows: the likelihood is that of the heads given the trials.
        return [kind, "given"]
    return [kind] * n


_MEASURE_WORDS = {
    "counting": "a probability of the integer values",
    "Lebesgue": "a density per unit",
    "given": "conditioned on (not modelled)",
    None: "not read",
}


def _check_comparable(measures, names) -> None:
    """Refuse a grid whose likelihoods are densities with respect to different measures."""
    groups: dict = {}
    for label, measure in measures:
        groups.setdefault(measure, []).append(label)
    if len(groups) <= 1:
        return

    def col(c):
        return repr(str(names[c])) if names is not None else str(c)

    def describe(measure):
        by_kind: dict = {}
        for c, kind in enumerate(measure):
            by_kind.setdefault(kind, []).append(col(c))
        return "; ".join(
            f"{_MEASURE_WORDS[kind]} of column(s) {', '.join(cols)}"
            for kind, cols in by_kind.items()
        )

    lines = "; versus ".join(
        f"{sorted(set(labels))}: {describe(measure)}" for measure, labels in groups.items()
    )
    raise InputError(
        "these families cannot be compared by likelihood, because their likelihoods are "
        f"not of the same kind ({lines}). A probability of integer values and a density "
        "per unit differ by the data's units (rescale the data and the density changes, "
        "the probability does not), so BIC/AIC/ICL between them compare numbers of "
        "different kinds; and a model of other columns explains other data. Select "
        "among discrete families and among continuous ones separately."
    )


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
    criterion, kind, label, covariance_type, params = job
    if kind == "gaussian":
        model = GaussianMixture(**params)
    else:
        from .models.mixture_model import MixtureModel

        model = MixtureModel(**params)
    row = dict.fromkeys(COLUMNS)
    row.update(family=label, n_components=params["n_components"],
               covariance_type=covariance_type)
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
        issues=_join(_issue_messages(model)),
    )
    return row, model


def _issue_messages(model) -> list:
    if hasattr(model, "_issue_messages"):
        return list(model._issue_messages())
    return [str(m) for m in getattr(model, "_issues", ())]


def _join(messages, most=3) -> str:
    """At most ``most`` sentences, then a count: a table cell, not a log."""
    out = "; ".join(messages[:most])
    if len(messages) > most:
        out += f"; and {len(messages) - most} more"
    return out


def _criteria(model, X, sample_weight) -> dict:
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
