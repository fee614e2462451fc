"""The family contract: what a distribution family supplies to every model and backend.

An exponential family writes a component's log-density as::

    log p(x | theta_k) = eta_k . T(x) - A(eta_k) + log h(x)

so the log-emissions of every row under every component are one matrix product, ``eta
@ T(X)^T``, and the statistics the M-step needs are another, ``R^T T(X)`` with ``R`` the
(weighted) responsibilities. A family therefore supplies:

* ``features(ops, Xb)``: ``T(x)`` of a block, **transposed** to shape (M, rows), written
  once against the backend's array namespace ``ops`` (NumPy or torch; see
  :class:`emix.backends.numpy_backend.NumpyOps`), in the data's dtype;
* ``log_base(ops, Xb)``: ``log h(x)`` per row, shape (rows,), or None when it is 0;
* ``natural(params)``: ``eta`` (K, M) and ``A`` (K,) in float64 on the host;
* ``m_step(stats, previous)``: new parameters from :class:`MixtureStats` alone;
* ``n_parameters(K)``, ``sample``, ``check_support``, ``canonical_keys`` and the
  parameter names (which become the fitted attributes, ``rates_``, ``probabilities_``).

Parameters are a plain ``dict`` of float64 arrays whose first axis is the component
(``{"rates": (K, D)}``), so renumbering, saving and aligning components is the same for
every family. A family is *bound* to a data set before fitting (``bind(summary)``): that
fixes the number of columns and, for location-scale families, a numerical frame.

A family that is not exponential (Student-t) or needs more than one product per block
overrides ``transform``: it turns the linear part ``eta @ T`` into log-emissions and
per-row statistic weights (the Student-t's latent scales), plus extra per-component sums
for its M-step. Backends never see any of this; models build the pass kernel.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..exceptions import DegenerateComponentError, InputError

__all__ = ["Family", "MixtureStats", "LOG_ZERO", "empty_components", "empty_issues"]

# log(0) as a finite number: exp(LOG_ZERO) is 0 in float64 and float32, and LOG_ZERO * 0
# is 0 (where -inf * 0 would be NaN in the product eta @ T(x)). A parameter on the edge
# of its space (a Bernoulli probability of exactly 0 or 1, a maximum-likelihood answer
# when a component sees only zeros) keeps its exact value; only its natural parameter
# is clamped.
LOG_ZERO = -1.0e4


def safe_log(a: np.ndarray) -> np.ndarray:
    """``log a`` with ``log 0 = LOG_ZERO`` (float64)."""
    a = np.asarray(a, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.maximum(np.log(a), LOG_ZERO)


@dataclass(frozen=True, eq=False)
class MixtureStats:
    """Additive statistics of a mixture pass (float64, on the host).

    ``a + b`` is the statistics of the union of the rows of ``a`` and ``b``.

    Attributes
    ----------
    S : ndarray of shape (K, M)
        ``sum_n w_n r_nk u_nk T(x_n)``: weighted feature sums (``u`` is 1 except for
        families with latent scales).
    nk : ndarray of shape (K,)
        ``sum_n w_n r_nk``: effective counts.
    extra : dict of name -> ndarray
        Further per-component sums a family's ``transform`` asked for.
    loglik : float
        ``sum_n w_n log p(x_n)`` under the parameters of the pass (0 for an
        initialisation pass from given responsibilities).
    weight_sum : float
        ``sum_n w_n``.
    n_rows : int
    """

    S: np.ndarray
    nk: np.ndarray
    loglik: float
    weight_sum: float
    n_rows: int
    extra: dict = field(default_factory=dict)

    def __add__(self, other):
        if not isinstance(other, MixtureStats):
            return NotImplemented
        if other.S.shape != self.S.shape or set(other.extra) != set(self.extra):
            raise InputError(
                f"cannot add mixture statistics of shapes {self.S.shape} and {other.S.shape}"
            )
        return MixtureStats(
            self.S + other.S,
            self.nk + other.nk,
            self.loglik + other.loglik,
            self.weight_sum + other.weight_sum,
            self.n_rows + other.n_rows,
            {k: self.extra[k] + other.extra[k] for k in self.extra},
        )

    def __radd__(self, other):
        if isinstance(other, int) and other == 0:  # sum() starts from 0
            return self
        return NotImplemented


class Family:
    """Base class of a distribution family usable as a mixture component or emission.

    Subclasses set ``name`` and ``param_names`` and implement the abstract methods.
    ``n_features`` is None until :meth:`bind` fixes it.

    Attributes
    ----------
    name : str
    param_names : tuple of str
        Keys of the parameter dict, in the order they are shown and saved; each
        becomes a fitted attribute ``<name>_`` of the estimator.
    n_features : int or None
        Data columns the family reads (set by ``bind``).
    """

    name = "family"
    param_names: tuple = ()
    # Parameters shared by every component, with no component axis (a tied covariance,
    # (D, D)): renumbering components leaves them alone and ``validate_params`` does not
    # ask them for one entry per component. A family sets it per instance where it
    # depends on its options.
    shared_param_names: tuple = ()
    # Families whose support is the integers (counts, codes) have integer-valued data.
    discrete = False

    def __init__(self):
        self.n_features = None

    # -------------------------------------------------------------- configuration
    def get_config(self) -> dict:
        """Constructor arguments (JSON-able), for saving and ``repr``."""
        return {}

    def __repr__(self) -> str:
        cfg = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({cfg})"

    def bind(self, summary: dict, n_features: int) -> "Family":
        """A copy of this family fixed to a data set.

        Parameters
        ----------
        summary : dict
            The data's column summary (``mean``, ``var``, ``min``, ``max``: each (D,)).
        n_features : int

        Returns
        -------
        Family
        """
        import copy

        new = copy.copy(self)
        new.n_features = int(n_features)
        mean = None if summary is None else summary.get("mean")
        # Where a start puts missing cells (see start_features): the column's mean
        # over its observed values.
        new.start_fill = (np.zeros(new.n_features) if mean is None
                          else np.asarray(mean, dtype=np.float64).reshape(-1))
        return new

    # -------------------------------------------------------------- data
    def check_support(self, X: np.ndarray, names=None) -> None:
        """Raise :class:`emix.InputError` naming row and column of a value outside the
        support.

        Parameters
        ----------
        X : ndarray of shape (N, D), float64 on the host (finite: NaN and inf are
            rejected before this is called)
        names : ndarray of str of shape (D,), optional
            Column names, for the message.
        """

    # -------------------------------------------------------------- exponential form
    def feature_width(self) -> int:
        """M: the number of rows of ``features``."""
        raise NotImplementedError

    def features(self, ops, Xb):
        """``T(x)`` of a block, shape (M, rows), in the data's dtype (see module doc)."""
        raise NotImplementedError

    def log_base(self, ops, Xb):
        """``log h(x)`` of a block, shape (rows,), or None when it is 0."""
        return None

    def natural(self, params: dict) -> tuple[np.ndarray, np.ndarray]:
        """Natural parameters ``eta`` (K, M) and log-normalisers ``A`` (K,), float64."""
        raise NotImplementedError

    # Non-exponential families (Student-t) override these two.
    extra_stats: tuple = ()

    def transform(self, ops, state, LT, Xb):
        """Turn the linear part ``eta @ T`` (K, rows), in place, into the log-emissions.

        Returns
        -------
        U : array of shape (K, rows) or None
            Multipliers of the responsibilities in the statistics (None: 1).
        extra : dict of name -> callable ``R -> (K,)`` array
            Extra per-component sums, evaluated with the (weighted) responsibilities.
        """
        return None, {}

    def transform_state(self, ops, params: dict):
        """Device constants ``transform`` needs for the current parameters (or None)."""
        return None

    # -------------------------------------------------------------- missing values
    # NaN in X means "missing". The E-step treats missing cells as more hidden
    # variables (exact EM for incomplete data): a row's log-likelihood is the marginal of
    # its observed cells, and its statistics are the EXPECTED complete-data features
    # E[T(x) | x_obs, z = k], so the M-step is unchanged. The kernels call these
    # methods on blocks with any NaN only; complete blocks take the path above.
    #
    # The defaults serve families whose columns are independent given the component
    # and whose every feature row reads one column (Bernoulli, categorical, Poisson,
    # exponential, binomial): a missing cell drops out of the row's likelihood (its
    # features are zeroed, its share of A and of log h removed) and contributes its
    # component's expected features E_k[T] to the statistics. Such a family supplies the
    # small hooks ``missing_columns``, ``column_log_partition``, ``expected_features``
    # and, when log h is not 0, ``log_base_cells``. A family with dependent columns (a
    # full-covariance Normal) overrides ``missing_state``, ``missing_log_joint``,
    # ``missing_stats`` and ``missing_features`` instead. Starts, which have no
    # parameters yet, use ``start_features`` (missing cells at their column's mean);
    # imputation uses ``conditional_means`` and ``conditional_draw``.

    def missing_columns(self) -> np.ndarray:
        """The data column each feature row of ``features`` reads, shape (M,), int.

        Raises :class:`emix.InputError` for a family without missing-value support.
        """
        raise self._no_missing_support()

    def _no_missing_support(self) -> InputError:
        return InputError(
            f"the {self.name} family does not handle missing values (NaN) yet; remove or "
            "impute them, or use missing='error' to have them reported"
        )

    def column_log_partition(self, params: dict) -> np.ndarray:
        """Each column's share of the log-normaliser ``A``, shape (K, D), float64
        (summing over columns gives ``natural(params)[1]``)."""
        return np.zeros((self._n_components(params), self.n_features))

    def expected_features(self, params: dict) -> np.ndarray:
        """``E_k[T(x)]``: every feature row's expectation under every component, shape
        (K, M), float64 (used for the cells that are missing)."""
        raise self._no_missing_support()

    def log_base_cells(self, ops, Xb):
        """``log h`` split by column, shape (rows, D), or None when it is 0."""
        return None

    def missing_observed(self, ops, O):
        """Which cells count as observed, (rows, D) bool, from the NaN mask ``O``.

        The default is ``O`` itself; a family whose likelihood needs several columns
        together (binomial ``(heads, trials)`` rows) widens a missing cell to them.
        """
        return O

    def _n_components(self, params: dict) -> int:
        for key in self.param_names:
            if key not in self.shared_param_names:
                return int(np.asarray(params[key]).shape[0])
        raise NotImplementedError  # pragma: no cover - every family has one

    def missing_features(self, ops, Xb, O):
        """The features of a block with missing cells, and which of them are observed
        (the observed part of ``T(x)``; a view for checks and for families that build
        their statistics from it).

        Parameters
        ----------
        Xb : array of shape (rows, D), NaN where missing
        O : bool array of shape (rows, D), True where observed

        Returns
        -------
        F : array of shape (M, rows)
            ``T(x)`` with every feature that touches a missing cell set to 0.
        Fobs : array of shape (M, rows), the data's dtype
            1 where the feature is observed, 0 where it touches a missing cell.
        """
        F, Fobs, _, _ = self._masked_block(ops, Xb, O)
        return F, Fobs

    def start_features(self, ops, Xb, O):
        """The features a start uses for a block with missing cells, shape (M, rows).

        A start has responsibilities but no parameters to take expectations under, so
        each missing cell is set to its column's mean over the observed values
        (``start_fill``, fixed at :meth:`bind`) and the row's features are those of the
        completed row. Unlike averaging each feature over the rows that observe it,
        this keeps a Gaussian's first covariances positive semi-definite (they are the
        scatter of actual vectors); a categorical column's filled code, a fraction, has
        no one-hot feature, so the first probabilities are the observed shares.

        Parameters
        ----------
        Xb : array of shape (rows, D), NaN where missing
        O : bool array of shape (rows, D), True where observed
        """
        Oe = self.missing_observed(ops, O)
        fill = getattr(self, "start_fill", None)
        fill = np.zeros(Xb.shape[1]) if fill is None else fill
        return self.features(ops, ops.where(Oe, Xb, ops.asarray(fill[None, :])))

    def _masked_block(self, ops, Xb, O):
        """``(F, Fobs, Oc, Xf)``: :meth:`missing_features`, the observed cells ``Oc``
        (rows, D) as 0/1 in the data's dtype, and X with missing cells set to 0."""
        cols = self._missing_cols_index(ops)
        Oe = self.missing_observed(ops, O)
        # Missing cells are set to 0 (inside every built-in family's support) so that
        # the feature map stays finite; their features are then zeroed.
        Xf = ops.where(Oe, Xb, 0.0)
        Oc = ops.cast(Oe)
        # Gathered as booleans, then cast: a third of the memory traffic.
        Fobs = ops.cast(ops.take(Oe.T, cols, axis=0))
        F = self.features(ops, Xf) * Fobs
        return F, Fobs, Oc, Xf

    def _missing_cols_index(self, ops):
        return ops.asarray(np.asarray(self.missing_columns(), dtype=np.int64), dtype=np.int64)

    def missing_state(self, ops, params: dict):
        """Device constants the missing-value E-step needs for ``params`` (or None)."""
        cols = self._missing_cols_index(ops)  # first: refuses a family without support
        eta, _ = self.natural(params)
        A_cols = np.asarray(self.column_log_partition(params), dtype=np.float64)
        return {
            "eta": ops.asarray(np.asarray(eta, dtype=np.float64)),
            # None when A is 0 (Bernoulli, categorical, binomial): no product to take.
            "A_cols": ops.asarray(A_cols) if np.any(A_cols) else None,
            "ET": ops.asarray(np.asarray(self.expected_features(params), dtype=np.float64), dtype=ops.f64),
            "cols": cols,
        }

    def missing_log_joint(self, ops, mstate, Xb, O):
        """``log p(x_obs | k)`` of every row of a block with missing cells.

        Parameters
        ----------
        mstate : the value of :meth:`missing_state`
        Xb : array of shape (rows, D), NaN where missing
        O : bool array of shape (rows, D), True where observed

        Returns
        -------
        L : array of shape (K, rows)
            The log-density of each row's observed cells under each component,
            including their ``log h`` (a row with no observed cell has 0).
        ctx : whatever :meth:`missing_stats` needs
        """
        F, _, Oc, Xf = self._masked_block(ops, Xb, O)
        L = ops.matmul(mstate["eta"], F)
        if mstate["A_cols"] is not None:
            L -= ops.matmul(mstate["A_cols"], Oc.T)
        h = self.log_base_cells(ops, Xf)
        if h is not None:
            L += ops.sum(h * Oc, axis=1)[None, :]
        return L, (F, Oc)

    def missing_context(self, ops, mstate, Xb, O):
        """What :meth:`missing_stats` needs for a block with missing cells, when its
        log-densities are not wanted (an HMM's statistics pass, whose posteriors come
        from the forward-backward recursions). By default the context of
        :meth:`missing_log_joint`; a family whose log-density costs extra work may
        skip it."""
        return self.missing_log_joint(ops, mstate, Xb, O)[1]

    def missing_stats(self, ops, mstate, ctx, R):
        """Expected statistics of a block with missing cells.

        Parameters
        ----------
        ctx : from :meth:`missing_log_joint`
        R : array of shape (K, rows)
            Responsibilities, already multiplied by the sample weights.

        Returns
        -------
        S : array of shape (K, M), float64 on the device
            ``sum_n R_kn E[T(x_n) | x_n,obs, z = k]``.
        extra : dict of name -> (K,) float64 array
            The family's ``extra_stats`` (empty for exponential families).
        """
        F, Oc = ctx
        S = ops.cast(ops.weighted_stats(R, F), ops.f64)
        # Responsibility mass of the rows missing each column, (K, D): a missing cell
        # adds its component's expected features.
        mass = ops.cast(ops.matmul(R, 1.0 - Oc), ops.f64)
        S = S + mstate["ET"] * ops.take(mass, mstate["cols"], axis=1)
        return S, {}

    # Imputation (host, float64) -------------------------------------------
    def conditional_means(self, params: dict, X: np.ndarray, O: np.ndarray) -> np.ndarray:
        """X with each row's missing cells replaced by ``E[x_miss | x_obs, k]``.

        Parameters
        ----------
        X : ndarray of shape (N, D), float64 (NaN where missing)
        O : ndarray of bool of shape (N, D), True where observed

        Returns
        -------
        ndarray of shape (K, N, D): observed cells unchanged in every component
        """
        means = np.asarray(self.component_means(params), dtype=np.float64)  # (K, D)
        # Independent columns: a missing cell's conditional mean is its marginal one.
        return np.where(O[None, :, :], X[None, :, :], means[:, None, :])

    def conditional_draw(self, params: dict, X: np.ndarray, O: np.ndarray, z: np.ndarray,
                         rng: np.random.Generator) -> np.ndarray:
        """X with each row's missing cells drawn from ``p(x_miss | x_obs, z_n)``.

        Parameters
        ----------
        X : ndarray of shape (N, D), float64 (NaN where missing)
        O : ndarray of bool of shape (N, D)
        z : ndarray of int of shape (N,), each row's component
        rng : numpy Generator

        Returns
        -------
        ndarray of shape (N, D): observed cells unchanged
        """
        out = np.array(X, dtype=np.float64, copy=True)
        for k in np.unique(z):
            rows = np.flatnonzero((z == k) & ~O.all(axis=1))
            if not rows.size:
                continue
            # Independent columns: draw whole rows, keep only their missing cells.
            draw = np.asarray(self.sample(params, int(k), rows.size, rng), dtype=np.float64)
            block = out[rows]
            miss = ~O[rows]
            block[miss] = draw.reshape(rows.size, -1)[miss]
            out[rows] = block
        return out

    # -------------------------------------------------------------- M-step
    def m_step(self, stats: MixtureStats, previous: dict | None) -> tuple[dict, list]:
        """Maximum-likelihood component parameters from statistics alone.

        Parameters
        ----------
        stats : MixtureStats
        previous : dict or None
            The parameters before this step: an empty component (``nk`` = 0) keeps its
            previous values (and None at initialisation, where empty raises).

        Returns
        -------
        params : dict of name -> ndarray (component axis first)
        issues : list of str
            Why a component is degenerate, each naming the component; empty when sound.
        """
        raise NotImplementedError

    def n_parameters(self, n_components: int) -> int:
        """Free parameters of ``n_components`` components (mixing weights excluded)."""
        raise NotImplementedError

    def sample(self, params: dict, k: int, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` draws from component ``k``, shape (n, D)."""
        raise NotImplementedError

    def canonical_keys(self, params: dict) -> list[np.ndarray]:
        """Sort keys for ``label_order='mean'``, most significant first: each (K,)."""
        m = self.component_means(params)
        return [m[:, d] for d in range(m.shape[1])]

    def component_means(self, params: dict) -> np.ndarray:
        """The mean of each component, shape (K, D) (for k-means style starts, plots)."""
        raise NotImplementedError

    def validate_params(self, params: dict, n_components: int) -> dict:
        """Check user-given (or loaded) parameters; return them as float64 arrays.

        Raises :class:`emix.InputError` naming the parameter and the problem.
        """
        out = {}
        for key in self.param_names:
            if key not in params:
                raise InputError(f"{self.name} parameters need {key!r}")
            a = np.asarray(params[key], dtype=np.float64)
            if key not in self.shared_param_names and (a.ndim == 0 or a.shape[0] != n_components):
                raise InputError(
                    f"{key} must have one entry per component ({n_components}); got shape "
                    f"{a.shape}"
                )
            if not np.all(np.isfinite(a)):
                raise InputError(f"{key} contains NaN or inf")
            out[key] = a
        return out


def permute_params(params: dict, perm: np.ndarray, shared=()) -> dict:
    """Components renumbered: new ``j`` is old ``perm[j]``.

    ``shared`` names parameters without a component axis (the family's
    ``shared_param_names``), which are kept as they are.
    """
    return {k: (np.asarray(v) if k in shared else np.asarray(v)[perm]) for k, v in params.items()}


def refuse_outside_support(bad: np.ndarray, X: np.ndarray, names, rule: str) -> None:
    """Raise :class:`InputError` naming the first value outside a family's support.

    Parameters
    ----------
    bad : ndarray of bool, shape (N, D): the values that break ``rule``
    X : ndarray of shape (N, D)
    names : column names (D,) or None
    rule : str, e.g. "Poisson data must be non-negative integer counts"
    """
    if not bad.any():
        return
    i, j = np.argwhere(bad)[0]
    col = f"column {names[j]!r}" if names is not None else f"column {j}"
    n = int(bad.sum())
    more = f" ({n - 1} more value(s) like it)" if n > 1 else ""
    raise InputError(f"{rule}; row {int(i)}, {col} is {float(X[i, j]):g}{more}")


def empty_components(nk: np.ndarray, weight_sum: float, *, at_start: bool = False) -> np.ndarray:
    """Components whose responsibility total is round-off relative to the data.

    An empty component keeps its previous parameters with weight 0 (rather than 0/0);
    at the start (``at_start``: the first M-step, with no previous parameters) there is
    nothing to keep, which is an error.

    Parameters
    ----------
    nk : ndarray of shape (K,)
    weight_sum : float
    at_start : bool
        Raise :class:`DegenerateComponentError` naming the first empty component.

    Returns
    -------
    ndarray of int: the empty components
    """
    tiny = 10.0 * np.finfo(np.float64).eps * max(float(weight_sum), 1.0)
    empty = np.flatnonzero(np.asarray(nk, dtype=np.float64) <= tiny)
    if empty.size and at_start:
        raise DegenerateComponentError(
            f"component {int(empty[0])} received no data at initialisation; use fewer "
            "components or another init_params"
        )
    return empty


def empty_issues(empty) -> list:
    """The degeneracy message of each empty component."""
    return [
        f"component {int(k)} is empty: no row has any responsibility for it, so it keeps "
        "weight 0; use fewer components"
        for k in empty
    ]
