"""Multivariate Student-t components, fitted by EM over latent scales.

A Student-t with location ``m``, scatter ``Sigma`` and ``nu`` degrees of freedom is a
normal scale mixture: ``x | tau ~ N(m, Sigma / tau)`` with ``tau ~ Gamma(nu/2, rate
nu/2)``. It is not an exponential family, but given ``tau`` it is a weighted Gaussian,
so it reuses the :class:`~emix.families.normal.Normal` features (same frame) and
statistics, with every row's responsibility multiplied by its expected scale.

The pass (``transform``)
------------------------
``natural`` gives the Gaussian ``eta`` of the scatter, so the product ``eta @ T(z)`` is
``-delta/2 + mu^T P mu / 2`` with ``delta = (z - mu)^T P (z - mu)`` the squared
Mahalanobis distance. ``transform`` recovers ``delta = mu^T P mu - 2 eta . T(z)`` and
writes ``-(nu + D)/2 log(1 + delta/nu)`` in place; the model then adds ``log w - A``
with ``A = -[log Gamma((nu+D)/2) - log Gamma(nu/2) - D/2 log(nu pi) - 1/2 log det
Sigma]``, which completes the log-density::

    log t(x) = log Gamma((nu+D)/2) - log Gamma(nu/2) - D/2 log(nu pi)
               - 1/2 log det Sigma - (nu+D)/2 log(1 + delta/nu)

E-step: ``u = E[tau | x, k] = (nu + D) / (nu + delta)`` multiplies the statistics, so
``S = sum w r u T(z)``, and two extra per-component sums are taken:
``sum_u = sum w r u`` and ``sum_log_u_minus_u = sum w r (log u - u)``.

M-step (McLachlan & Peel 2000, section 7.5; Liu & Rubin 1995)
-------------------------------------------------------------
* ``m = sum w r u x / sum w r u``;
* ``Sigma = sum w r u (x - m)(x - m)^T / sum w r``: divided by ``n_k = sum w r``, the
  exact maximiser of the expected complete-data log-likelihood (plain EM). The
  "parameter-expanded" variant that divides by ``sum w r u`` converges faster but is a
  different iteration; emix uses the standard one. ``reg_covar`` is added after, as
  for the Gaussian.
* ``nu`` solves, per component,
  ``log(nu/2) - psi(nu/2) + 1 + sum_log_u_minus_u / n_k + psi((nu0+D)/2)
  - log((nu0+D)/2) = 0``, with ``nu0`` the degrees of freedom of the E-step (so
  ``E[log tau] = log u + psi((nu0+D)/2) - log((nu0+D)/2)``). The left side decreases
  in ``nu``; its root is found by ``scipy.optimize.brentq`` in
  [:data:`DF_MIN`, :data:`DF_MAX`], clamped to the bounds when it lies outside
  (the expected log-likelihood is concave in ``nu``, so the clamp is the constrained
  maximiser).

The expected complete-data log-likelihood separates into a (location, scatter) part and
a ``nu`` part, both maximised exactly from the same E-step, so every iteration is an EM
step and the log-likelihood never decreases (up to the ``reg_covar`` gap, as for the
Gaussian). Initial statistics from given responsibilities use ``u = 1`` (a Gaussian
fit); degrees of freedom then start at :data:`DF_START` (or the fixed value).
"""

from __future__ import annotations

import math

import numpy as np

from ..exceptions import InputError
from ._base import MixtureStats
from .normal import Normal

__all__ = ["StudentT", "DF_MIN", "DF_MAX", "DF_START"]

# The search range of learned degrees of freedom. Beyond DF_MAX a t component differs
# from a normal one by less than sampling error on any realistic data set; below DF_MIN
# a mixture component is almost always a spike on a few points.
DF_MIN, DF_MAX = 0.5, 1000.0
DF_START = 10.0


class StudentT(Normal):
    """Multivariate Student-t components (location, scatter, degrees of freedom).

    Parameters
    ----------
    covariance_type : {'full', 'tied', 'diag', 'spherical'}
        The form of the scatter matrices (``tied``: one scatter shared by every
        component, ``sum_k sum_n w r u (x - m_k)(x - m_k)^T / sum w``; the degrees of
        freedom stay per component).
    df : float or None, default None
        None: degrees of freedom learned per component; a number > 0: fixed for every
        component.
    reg_covar : float, default 1e-6
        Added to the diagonal of every scatter matrix in the M-step (data units).

    Notes
    -----
    Parameters (fitted attributes ``means_``, ``scales_``, ``df_``): ``means`` (K, D),
    the locations (the means where ``df > 1``); ``scales`` the scatter matrices, shaped
    like Gaussian covariances, (K, D, D) full, (D, D) tied, (K, D) diag, (K,) spherical (the
    covariance is ``df / (df - 2)`` times the scatter where ``df > 2``); ``df`` (K,).
    """

    name = "student_t"
    param_names = ("means", "scales", "df")
    _cov_key = "scales"
    extra_stats = ("sum_u", "sum_log_u_minus_u")

    def __init__(self, covariance_type: str = "full", df: float | None = None,
                 reg_covar: float = 1e-6):
        super().__init__(covariance_type, reg_covar)
        if df is not None:
            try:
                df = float(df)
            except (TypeError, ValueError):
                raise InputError(f"df must be None (learned) or a number > 0; got {df!r}") from None
            if not (math.isfinite(df) and df > 0.0):
                raise InputError(f"df must be None (learned) or a finite number > 0; got {df!r}")
        self.df = df

    def get_config(self) -> dict:
        return {"covariance_type": self.covariance_type, "df": self.df,
                "reg_covar": self.reg_covar}

    # -------------------------------------------------------------- log-density
    def _log_norm(self, df: np.ndarray, logdet: np.ndarray) -> np.ndarray:
        """``log Gamma((nu+D)/2) - log Gamma(nu/2) - D/2 log(nu pi) - 1/2 log det Sigma``."""
        from scipy.special import gammaln

        D = self.n_features
        return (gammaln(0.5 * (df + D)) - gammaln(0.5 * df)
                - 0.5 * D * np.log(df * math.pi) - 0.5 * logdet)

    def natural(self, params):
        eta, _, logdet = self._frame_parts(params["means"], params["scales"])
        return eta, -self._log_norm(np.asarray(params["df"], dtype=np.float64), logdet)

    def transform_state(self, ops, params):
        _, mPm, _ = self._frame_parts(params["means"], params["scales"])
        df = np.asarray(params["df"], dtype=np.float64)
        D = self.n_features
        col = lambda a: ops.asarray(np.asarray(a, dtype=np.float64)[:, None])  # noqa: E731
        return {
            "mPm": col(mPm),
            "df": col(df),
            "inv_df": col(1.0 / df),
            "df_plus_d": col(df + D),
            "half_df_plus_d": col(0.5 * (df + D)),
        }

    def transform(self, ops, state, LT, Xb):
        """Student-t log-densities (without the per-component constant) and scales.

        Parameters
        ----------
        state : dict from :meth:`transform_state`
        LT : array of shape (K, rows)
            ``eta @ T(z)``, overwritten with ``-(nu+D)/2 log(1 + delta/nu)``.
        Xb : array of shape (rows, D) (unused)

        Returns
        -------
        U : array of shape (K, rows)
            ``u = (nu + D) / (nu + delta)``, the expected latent scales.
        extra : dict of name -> callable ``R -> (K,)``
        """
        delta = state["mPm"] - 2.0 * LT
        # Round-off can make a distance of 0 slightly negative.
        delta = ops.where(delta > 0.0, delta, 0.0 * delta)
        U = state["df_plus_d"] / (state["df"] + delta)
        G = ops.log(U) - U
        LT[...] = -state["half_df_plus_d"] * ops.log1p(delta * state["inv_df"])
        extra = {
            "sum_u": lambda R: ops.sum64(ops.multiply(R, U), axis=1),
            "sum_log_u_minus_u": lambda R: ops.sum64(ops.multiply(R, G), axis=1),
        }
        return U, extra

    def initial_extra(self, ops, R):
        """Extra sums for statistics from given responsibilities: ``u = 1``."""
        return {
            "sum_u": lambda R: ops.sum64(R, axis=1),
            "sum_log_u_minus_u": lambda R: -ops.sum64(R, axis=1),
        }

    # -------------------------------------------------------------- missing values
    # Given its latent scale tau a row is Gaussian, N(m, Sigma / tau), so the observed
    # cells are a t with |O| degrees of freedom added: the E-step uses the observed part's
    # Mahalanobis distance delta_O and |O| in place of D, u = E[tau | x_O] = (nu + |O|) /
    # (nu + delta_O), and E[log tau | x_O] = log u + psi((nu+|O|)/2) - log((nu+|O|)/2).
    # The missing cells' conditional mean given tau is the Gaussian regression (free of
    # tau) and their conditional covariance C / tau, so E[tau z z^T] = u fill fill^T + C:
    # the observed statistics are weighted by r u, the conditional covariance by r.
    def missing_state(self, ops, params):
        st = super().missing_state(ops, params)
        st["df"] = np.asarray(params["df"], dtype=np.float64)
        return st

    def missing_log_joint(self, ops, mstate, Xb, O):
        """Student-t log-densities of each row's observed cells (K, rows), and context
        holding the latent scales."""
        from scipy.special import digamma, gammaln

        ctx = self._missing_block(ops, mstate, Xb, O)
        marg = ctx["marg"]
        LT = self._missing_linear(ops, ctx)  # -delta/2 + mlm/2 per pattern
        D = self.n_features
        df = mstate["df"]  # (K,)
        n_obs = (D - marg.n_missing)[:, None].astype(np.float64)  # (P, 1)
        dfo = df[None, :] + n_obs  # (P, K)
        # log det Sigma_OO (data units) = log det Sigma + log det P_MM(frame) - 2 m log s
        m = marg.n_missing[:, None].astype(np.float64)
        logdet_oo = mstate["logdet"][None, :] + marg.logdet_mm - 2.0 * m * mstate["log_scale"]
        norm = (gammaln(0.5 * dfo) - gammaln(0.5 * df)[None, :]
                - 0.5 * n_obs * np.log(df[None, :] * math.pi) - 0.5 * logdet_oo)  # (P, K)
        # E[log tau] - log u differs from the complete-data value by this per pattern;
        # added to sum_log_u_minus_u so that the degrees-of-freedom step (written with
        # D) gets the exact expectation.
        shift = (digamma(0.5 * dfo) - np.log(0.5 * dfo)) \
            - (digamma(0.5 * (df + D)) - np.log(0.5 * (df + D)))[None, :]
        dev = {k: ops.asarray(v) for k, v in
               (("mlm", marg.mlm), ("norm", norm), ("dfo", dfo), ("shift", shift))}
        U = ops.empty(LT.shape)
        Gl = ops.empty(LT.shape)
        df_dev = ops.asarray(df)
        for p, a, b in ctx["segs"]:
            delta = dev["mlm"][p][:, None] - 2.0 * LT[:, a:b]
            delta = ops.where(delta > 0.0, delta, 0.0 * delta)
            u = dev["dfo"][p][:, None] / (df_dev[:, None] + delta)
            U[:, a:b] = u
            Gl[:, a:b] = ops.log(u) - u + dev["shift"][p][:, None]
            LT[:, a:b] = dev["norm"][p][:, None] \
                - 0.5 * dev["dfo"][p][:, None] * ops.log1p(delta / df_dev[:, None])
        ctx["U"], ctx["G"] = U, Gl
        return ops.take(LT, ctx["inv"], axis=1), ctx

    def missing_stats(self, ops, mstate, ctx, R):
        from . import gaussian_missing as GM

        Rs = ops.take(R, ctx["idx"], axis=1)
        RU = Rs * ctx["U"]
        G = self._pattern_stats(ops, ctx, RU)
        n_cov = np.stack([np.asarray(ops.to_host(ops.sum64(Rs[:, a:b], axis=1)))
                          for _, a, b in ctx["segs"]])
        out = GM.expected_moments(ctx["marg"], mstate["mu"], mstate["prec"], G, n_cov=n_cov)
        extra = {
            "sum_u": ops.sum64(RU, axis=1),
            "sum_log_u_minus_u": ops.sum64(Rs * ctx["G"], axis=1),
        }
        return ops.asarray(np.ascontiguousarray(out[:, :-1]), dtype=ops.f64), extra

    def conditional_draw(self, params, X, O, z, rng):
        """(N, D): the row's latent scale drawn given its observed cells, then the
        missing cells from the Gaussian conditional with covariance divided by it."""
        from . import gaussian_missing as GM

        X = np.asarray(X, dtype=np.float64)
        z = np.asarray(z)
        covs = self._full_covs(params)
        means = np.asarray(params["means"], dtype=np.float64)
        df = np.asarray(params["df"], dtype=np.float64)
        N, D = X.shape
        tau = np.ones(N)
        O = np.asarray(O, dtype=bool)
        rows = np.flatnonzero(~O.all(axis=1) & O.any(axis=1))
        zi = z.astype(np.int64)
        if rows.size:
            delta = np.empty(rows.size)
            GM._numba_kernels().observed_mahalanobis(
                X, O, zi, means, np.ascontiguousarray(covs, dtype=np.float64), rows, delta)
            nu, p = df[zi[rows]], O[rows].sum(axis=1)
            tau[rows] = rng.gamma(0.5 * (nu + p), 2.0 / (nu + delta))
        empty = np.flatnonzero(~O.any(axis=1))
        if empty.size:
            nu = df[zi[empty]]
            tau[empty] = rng.gamma(0.5 * nu, 2.0 / nu)
        return GM.conditional_draw(means, covs, X, O, z, rng, scale_draws=tau)

    # -------------------------------------------------------------- M-step
    def _scale_sums(self, stats: MixtureStats) -> np.ndarray:
        return np.asarray(stats.extra["sum_u"], dtype=np.float64)

    def m_step(self, stats: MixtureStats, previous):
        """Locations, scatters and degrees of freedom (see the module docstring).

        Parameters
        ----------
        stats : MixtureStats
            ``S = sum w r u T(z)`` (K, M), ``nk = sum w r`` (K,), and ``extra`` with
            ``sum_u`` and ``sum_log_u_minus_u`` (K,).
        previous : dict or None
            The parameters of the E-step that made ``stats`` (their ``df`` enters the
            degrees-of-freedom equation); None at initialisation.

        Returns
        -------
        params : dict with ``means`` (K, D), ``scales``, ``df`` (K,)
        issues : list of str
        """
        means, scales, raw, empty = self._moments(stats, self._scale_sums(stats), previous)
        K = means.shape[0]
        if self.df is not None:
            df = np.full(K, self.df)
        elif previous is None:
            df = np.full(K, DF_START)
        else:
            old = np.asarray(previous["df"], dtype=np.float64)
            df = old.copy()
            e = np.asarray(stats.extra["sum_log_u_minus_u"], dtype=np.float64)
            for k in range(K):
                if k in empty:
                    continue
                df[k] = solve_df(e[k] / stats.nk[k], old[k], self.n_features)
        return {"means": means, "scales": scales, "df": df}, self._issues(raw, stats.nk, empty)

    # -------------------------------------------------------------- the rest
    def n_parameters(self, n_components):
        learned = n_components if self.df is None else 0
        return super().n_parameters(n_components) + learned

    def sample(self, params, k, n, rng):
        df = float(params["df"][k])
        g = rng.chisquare(df, size=n) / df
        return params["means"][k] + self._standard_draws(params, k, n, rng) / np.sqrt(g)[:, None]

    def validate_params(self, params, n_components):
        params = dict(params)
        if self.df is not None and "df" not in params:
            params["df"] = np.full(n_components, self.df)
        out = super().validate_params(params, n_components)
        df = out["df"]
        if df.shape != (n_components,):
            raise InputError(f"df must have shape ({n_components},); got {df.shape}")
        if np.any(df <= 0):
            k = int(np.flatnonzero(df <= 0)[0])
            raise InputError(f"df must be > 0; component {k} has {df[k]}")
        if self.df is not None and np.any(df != self.df):
            k = int(np.flatnonzero(df != self.df)[0])
            raise InputError(
                f"df is fixed at {self.df}, but component {k} is given df={df[k]}"
            )
        return out


def solve_df(mean_log_u_minus_u: float, df_old: float, n_features: int) -> float:
    """The degrees of freedom of one component's M-step.

    Solves ``log(nu/2) - psi(nu/2) + c = 0`` with
    ``c = 1 + mean_log_u_minus_u + psi((df_old + D)/2) - log((df_old + D)/2)``.

    Parameters
    ----------
    mean_log_u_minus_u : float
        ``sum w r (log u - u) / sum w r`` of the component.
    df_old : float
        The degrees of freedom of the E-step.
    n_features : int

    Returns
    -------
    float in [DF_MIN, DF_MAX]
    """
    from scipy.optimize import brentq
    from scipy.special import digamma

    a = 0.5 * (df_old + n_features)
    c = 1.0 + mean_log_u_minus_u + digamma(a) - math.log(a)

    def h(nu):
        # log(x) - psi(x) decreases from +inf to 0.
        return math.log(0.5 * nu) - digamma(0.5 * nu) + c

    if h(DF_MAX) >= 0.0:
        return DF_MAX
    if h(DF_MIN) <= 0.0:
        return DF_MIN
    return float(brentq(h, DF_MIN, DF_MAX, xtol=1e-12, rtol=1e-14, maxiter=200))
