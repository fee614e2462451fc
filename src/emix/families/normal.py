"""Gaussian components in the exponential-family form of the family contract.

This is the Gaussian as one family among others: a column block of a product of
families, and the base of the Student-t. A whole-data Gaussian mixture still runs on the
specialised, anchored kernels of :mod:`emix.families.gaussian` (``GaussianMixture``).

The frame
---------
At :meth:`Normal.bind` the family fixes the frame ``z = (x - c) / s`` of
:class:`emix.families.gaussian.Frame`: ``c`` is the data's mean and ``s`` a power of two
near the root mean column variance. Without centring, the expanded quadratic form
below cancels catastrophically for data far from 0 (heights in cm have ``E[x^2] ~ 600
Var[x]``); the power-of-two scale is exact in binary floating point (docs/design.md,
"The frame").

Exponential form
----------------
With ``mu`` and ``P = Sigma^-1`` taken in the frame (``mu = (m - c) / s``, ``P = s^2
Sigma^-1``)::

    log N(x | m, Sigma) = eta . T(z) - A

    T(z) = [vech(z z^T), z]     full, tied (vech: the upper triangle, row by row)
           [z * z, z]           diag
           [|z|^2, z]           spherical

    eta  = [-P_ii / 2 on the diagonal and -P_ij off it, P mu]
    A    = D/2 log(2 pi) + 1/2 log det Sigma + 1/2 mu^T P mu

A ``tied`` covariance is one matrix shared by every component: the features are those
of ``full`` (each component's ``S`` holds its own ``sum r vech(z z^T)``), and the M-step
pools them, ``Sigma = (sum_k S2_k - sum_k n_k mu_k mu_k^T) / W`` (scaled back, plus
``reg_covar``), the maximiser of the expected complete-data log-likelihood under one
covariance. Its parameter ``covariances`` has shape (D, D), as ``GaussianMixture``'s
``covariances_``: it has no component axis, so it is listed in ``shared_param_names``
and renumbering components leaves it alone.

``log det Sigma`` is taken in the data's units (it includes the frame's log-Jacobian
``2 D log s``), so log-densities are those of ``x``, not of ``z``.

Limits: for a component far from the frame's centre relative to its own spread the
terms of ``eta . T(z)`` are large and cancel (about ``eps * lambda_max(P) |mu|^2``
absolute error); ``GaussianMixture`` takes such components about their own means, this
form does not.
"""

from __future__ import annotations

import math
from dataclasses import replace as _replace

import numpy as np

from ..exceptions import DegenerateComponentError, InputError
from ._base import Family, MixtureStats, empty_components
from .gaussian import (
    Frame,
    _reg_gap,
    full_covariances,
    precisions_cholesky_from_covariances,
    screen_components,
    unpack_upper,
    upper_indices,
)

__all__ = ["Normal", "COVARIANCE_TYPES"]

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
_LOG_2PI = math.log(2.0 * math.pi)


class Normal(Family):
    """Multivariate normal components with full, tied, diagonal or spherical covariances.

    Parameters
    ----------
    covariance_type : {'full', 'tied', 'diag', 'spherical'}
        ``tied``: one full covariance shared by every component.
    reg_covar : float, default 1e-6
        Added to every variance (the diagonal of every covariance) in the M-step, in
        the data's units.

    Notes
    -----
    Parameters (fitted attributes ``means_``, ``covariances_``): ``means`` of shape
    (K, D) and ``covariances`` of shape (K, D, D) full, (D, D) tied (no component axis:
    ``shared_param_names`` is ``('covariances',)``), (K, D) diag, (K,) spherical.
    """

    name = "gaussian"
    param_names = ("means", "covariances")
    _cov_key = "covariances"

    def __init__(self, covariance_type: str = "full", reg_covar: float = 1e-6):
        super().__init__()
        if covariance_type not in COVARIANCE_TYPES:
            raise InputError(
                f"covariance_type must be one of {COVARIANCE_TYPES}; got {covariance_type!r}"
            )
        reg = float(reg_covar)
        if not (math.isfinite(reg) and reg >= 0.0):
            raise InputError(f"reg_covar must be a finite number >= 0; got {reg_covar!r}")
        self.covariance_type = covariance_type
        self.reg_covar = reg
        self.shared_param_names = (self._cov_key,) if covariance_type == "tied" else ()
        self.frame: Frame | None = None
        self.data_var: np.ndarray | None = None

    def get_config(self) -> dict:
        return {"covariance_type": self.covariance_type, "reg_covar": self.reg_covar}

    def bind(self, summary: dict, n_features: int) -> "Normal":
        """A copy fixed to a data set: the frame and the data's column variances.

        Parameters
        ----------
        summary : dict or None
            ``mean`` and ``var``, each (D,) (None: the identity frame, unit variances).
        n_features : int
        """
        new = super().bind(summary, n_features)
        D = new.n_features
        if summary is None:
            new.frame = Frame.identity(D)
            new.data_var = np.ones(D)
        else:
            # The centre is rounded to float32 so that it is the same number in the
            # data's dtype (float32 or float64) as in the host's float64 parameters:
            # otherwise float32 features and float64 natural parameters would disagree
            # by the centre's rounding (1e-4 relative at 1e4 from 0). Any centre near
            # the mean serves.
            center = np.asarray(summary["mean"], dtype=np.float64)
            with np.errstate(over="ignore"):
                c32 = center.astype(np.float32).astype(np.float64)
            center = np.where(np.isfinite(c32), c32, center)
            new.frame = Frame.from_data(center, np.asarray(summary["var"], dtype=np.float64))
            new.data_var = np.asarray(summary["var"], dtype=np.float64)
        return new

    def _need_bound(self):
        if self.frame is None:
            raise InputError(f"the {self.name} family must be bound to data (bind) first")

    # -------------------------------------------------------------- exponential form
    def _n_quad(self) -> int:
        D = self.n_features
        return {"full": D * (D + 1) // 2, "tied": D * (D + 1) // 2, "diag": D,
                "spherical": 1}[self.covariance_type]

    def feature_width(self) -> int:
        return self._n_quad() + self.n_features

    def features(self, ops, Xb):
        """``T(z)`` of a block, shape (M, rows), in the data's dtype.

        Parameters
        ----------
        Xb : array of shape (rows, D)
        """
        self._need_bound()
        center = ops.asarray(self.frame.center)
        # The scale is a power of two, so multiplying by its inverse is exact.
        Z = ((Xb - center) * (1.0 / self.frame.scale)).T  # (D, rows)
        ct = self.covariance_type
        if ct in ("full", "tied"):
            D = self.n_features
            # Row i of the upper triangle: z_i * z_j for j >= i.
            quad = [Z[i : i + 1] * Z[i:] for i in range(D)]
            return ops.concat(quad + [Z], axis=0)
        if ct == "diag":
            return ops.concat([Z * Z, Z], axis=0)
        return ops.concat([ops.sum(Z * Z, axis=0)[None, :], Z], axis=0)

    def _frame_parts(self, means: np.ndarray, covs: np.ndarray):
        """The quadratic form of each component in the frame.

        Parameters
        ----------
        means : ndarray of shape (K, D), data units
        covs : ndarray, covariances (or scatters) in data units, shape by covariance type
            ((D, D) for tied: every component gets the same quadratic part)

        Returns
        -------
        eta : ndarray of shape (K, M)
            ``eta . T(z) = -z^T P z / 2 + mu^T P z``.
        mPm : ndarray of shape (K,)
            ``mu^T P mu`` (so the Mahalanobis distance is ``mPm - 2 eta . T(z)``).
        logdet : ndarray of shape (K,)
            ``log det Sigma`` in the data's units.
        """
        self._need_bound()
        ct = self.covariance_type
        D = self.n_features
        s = self.frame.scale
        mu = (np.asarray(means, dtype=np.float64) - self.frame.center) / s
        covf = np.asarray(covs, dtype=np.float64) / (s * s)
        pc = precisions_cholesky_from_covariances(covf, ct)
        if ct == "tied":
            # One factorisation, then the full form with the factor repeated.
            pc = np.broadcast_to(pc, (mu.shape[0], D, D))
        if ct in ("full", "tied"):
            P = np.einsum("kij,klj->kil", pc, pc)
            iu, ju = upper_indices(D)
            # The feature z_i z_j (i < j) stands for both z_i z_j and z_j z_i.
            quad = -0.5 * P[:, iu, ju] * np.where(iu == ju, 1.0, 2.0)
            lin = np.einsum("kij,kj->ki", P, mu)
            logdet_f = -2.0 * np.sum(np.log(np.diagonal(pc, axis1=1, axis2=2)), axis=1)
        elif ct == "diag":
            p = pc * pc
            quad = -0.5 * p
            lin = p * mu
            logdet_f = np.sum(np.log(covf), axis=1)
        else:
            p = pc * pc
            quad = -0.5 * p[:, None]
            lin = p[:, None] * mu
            logdet_f = D * np.log(covf)
        mPm = np.sum(lin * mu, axis=1)
        logdet = logdet_f + 2.0 * D * math.log(s)
        return np.concatenate([quad, lin], axis=1), mPm, logdet

    def natural(self, params):
        eta, mPm, logdet = self._frame_parts(params["means"], params[self._cov_key])
        A = 0.5 * self.n_features * _LOG_2PI + 0.5 * logdet + 0.5 * mPm
        return eta, A

    # -------------------------------------------------------------- missing values
    # Rows with NaN: the exact E-step of emix.families.gaussian_missing (marginal of the
    # observed cells, expected full moments given them), per block: the block's rows
    # are grouped by missingness pattern on the host, each pattern's log-densities are
    # one product with its marginal natural parameters, and its observed statistics are
    # mapped to expected ones on the host in float64.
    def _missing_layout(self) -> str:
        return "full" if self.covariance_type in ("full", "tied") else self.covariance_type

    def missing_state(self, ops, params):
        """Host constants (frame means, precisions, log-determinants) and device ones."""
        self._need_bound()
        ct = self.covariance_type
        D = self.n_features
        s = self.frame.scale
        mu = (np.asarray(params["means"], dtype=np.float64) - self.frame.center) / s
        covf = np.asarray(params[self._cov_key], dtype=np.float64) / (s * s)
        K = mu.shape[0]
        if ct == "full":
            prec = np.linalg.inv(covf)
            logdet_f = np.linalg.slogdet(covf)[1]
        elif ct == "tied":
            prec = np.broadcast_to(np.linalg.inv(covf), (K, D, D))
            logdet_f = np.full(K, np.linalg.slogdet(covf)[1])
        elif ct == "diag":
            prec = 1.0 / covf
            logdet_f = np.sum(np.log(covf), axis=1)
        else:
            prec = 1.0 / covf
            logdet_f = D * np.log(covf)
        st = {
            "mu": mu, "prec": prec, "logdet": logdet_f + 2.0 * D * math.log(s),
            "log_scale": math.log(s), "layout": self._missing_layout(),
            "center": ops.asarray(self.frame.center), "zero": ops.zeros(()),
            "inv_scale": 1.0 / s, "params": params,
        }
        if ct in ("diag", "spherical"):
            # Independent columns: no grouping by pattern. A missing cell's z is 0, so
            # its features vanish; what the complete log-density then lacks from the
            # observed cells' marginal is, per missing cell, V[k, d] (see
            # gaussian_missing's diag/spherical pass).
            pd = prec if ct == "diag" else np.repeat(prec[:, None], D, axis=1)
            eta, A = self.natural(params)
            V = 0.5 * _LOG_2PI - 0.5 * (np.log(pd) - 2.0 * math.log(s)) + 0.5 * pd * mu**2
            st.update({
                "eta_dev": ops.asarray(eta), "A_dev": ops.asarray(A[:, None]),
                "V_dev": ops.asarray(V),
                "mu_dev": ops.asarray(mu, dtype=ops.f64),
                "var_dev": ops.asarray(1.0 / pd, dtype=ops.f64),
            })
        return st

    def _missing_block(self, ops, mstate, Xb, O):
        """Group a block's rows by pattern; features of the sorted rows and the
        patterns' marginals. Returns ``(ctx, segs, eta_dev, const (P, K), marg)``."""
        from . import gaussian_missing as GM

        D = self.n_features
        miss = ~np.asarray(ops.to_host(O), dtype=bool)
        groups = GM.group_patterns(miss)
        idx = ops.asarray(groups.order, dtype=np.int64)
        Xs = ops.take(Xb, idx, axis=0)
        layout = mstate["layout"]
        Q = GM.quad_width(layout, D)
        rows = Xb.shape[0]
        FT = ops.empty((Q + D, rows))
        GM.masked_features(ops, FT, Xs, mstate["center"], mstate["inv_scale"], layout, D,
                           mstate["zero"])
        marg = GM.marginal_params(layout, mstate["mu"], mstate["prec"], groups.observed)
        segs = groups.segments(0, rows)
        inv = np.empty_like(groups.order)
        inv[groups.order] = np.arange(rows)
        ctx = {"groups": groups, "marg": marg, "FT": FT, "idx": idx, "segs": segs,
               "inv": ops.asarray(inv, dtype=np.int64)}
        return ctx

    def _missing_linear(self, ops, ctx):
        """``eta_p . T(z)`` (K, rows), in the sorted order."""
        FT, marg = ctx["FT"], ctx["marg"]
        K = marg.eta.shape[1]
        eta = ops.asarray(marg.eta)
        LT = ops.empty((K, FT.shape[1]))
        for p, a, b in ctx["segs"]:
            LT[:, a:b] = ops.matmul(eta[p], FT[:, a:b])
        return LT

    def missing_log_joint(self, ops, mstate, Xb, O):
        """``log N(x_obs | k)`` (K, rows) of a block with NaN, and the context.

        See :meth:`emix.families._base.Family.missing_log_joint`.
        """
        if "V_dev" in mstate:
            return self._independent_log_joint(ops, mstate, Xb, O)
        if type(self).missing_log_joint is Normal.missing_log_joint:
            return self._lowrank_log_joint(ops, mstate, Xb, O)
        ctx = self._missing_block(ops, mstate, Xb, O)
        marg = ctx["marg"]
        LT = self._missing_linear(ops, ctx)
        D = self.n_features
        const = (-0.5 * D * _LOG_2PI - 0.5 * mstate["logdet"])[None, :] \
            + marg.log_const(mstate["log_scale"]) - 0.5 * marg.mlm  # (P, K)
        cdev = ops.asarray(const)
        for p, a, b in ctx["segs"]:
            LT[:, a:b] += cdev[p][:, None]
        return ops.take(LT, ctx["inv"], axis=1), ctx

    def _pattern_stats(self, ops, ctx, Rs):
        """Observed statistics per pattern, (P, K, Q + D + 1) on the host."""
        FT = ctx["FT"]
        parts = []
        for p, a, b in ctx["segs"]:
            r = Rs[:, a:b]
            parts.append(ops.concat([ops.cast(ops.weighted_stats(r, FT[:, a:b]), ops.f64),
                                     ops.sum64(r, axis=1)[:, None]], axis=1))
        return ops.to_host(ops.stack(parts, axis=0))

    def missing_stats(self, ops, mstate, ctx, R):
        """``sum_n R_kn E[T(z_n) | z_obs, k]`` (K, M) float64 on the device."""
        from . import gaussian_missing as GM

        if "independent" in ctx:
            return self._independent_stats(ops, mstate, ctx, R), {}
        if "lowrank" in ctx:
            return self._lowrank_stats(ops, mstate, ctx, R), {}
        Rs = ops.take(R, ctx["idx"], axis=1)
        G = self._pattern_stats(ops, ctx, Rs)
        out = GM.expected_moments(ctx["marg"], mstate["mu"], mstate["prec"], G)
        return ops.asarray(np.ascontiguousarray(out[:, :-1]), dtype=ops.f64), {}

    def missing_context(self, ops, mstate, Xb, O):
        """:meth:`missing_log_joint`'s context; for full and tied covariances without the
        log-densities (the fills need only the rank-m part of them)."""
        if "V_dev" in mstate or type(self).missing_log_joint is not Normal.missing_log_joint:
            return self.missing_log_joint(ops, mstate, Xb, O)[1]
        return self._lowrank_log_joint(ops, mstate, Xb, O, log=False)[1]

    def _lowrank_log_joint(self, ops, mstate, Xb, O, log=True):
        """Full and tied: the block's rows grouped by pattern and run through the
        low-rank form of :mod:`emix.families.gaussian_missing` (one product for the
        quadratic part of every row, a small one per pattern). ``log=False``: the
        context only (L is None), used at once by :meth:`missing_stats`."""
        from . import gaussian_missing as GM

        D = self.n_features
        miss = ~np.asarray(ops.to_host(O), dtype=bool)
        groups = GM.group_patterns(miss)
        rows = Xb.shape[0]
        idx = ops.asarray(groups.order, dtype=np.int64)
        Xs = ops.take(Xb, idx, axis=0)
        groups = _replace(groups, order=np.arange(rows))
        mu, prec = mstate["mu"], np.asarray(mstate["prec"])
        const = -0.5 * D * _LOG_2PI - 0.5 * mstate["logdet"]
        np_dtype = mstate.get("np_dtype")
        if np_dtype is None:
            # The data's dtype as NumPy names it (ops.dtype is torch's on torch).
            np_dtype = mstate["np_dtype"] = np.asarray(ops.to_host(ops.zeros(1))).dtype
        kernel = GM.lowrank_kernel(mu, prec, const, mstate["log_scale"], groups, self.frame,
                                   np_dtype, np.zeros(0, dtype=np.intp))
        st = kernel.setup(ops)
        FT, LT, (big, fills), small = kernel._log_joint(ops, st, Xs, 0, rows, log=log)
        if not log:
            return None, {"lowrank": (kernel, st, FT, big, fills, small), "idx": idx}
        inv = np.empty(rows, dtype=np.int64)
        inv[np.asarray(ops.to_host(idx))] = np.arange(rows)
        L = ops.take(LT, ops.asarray(inv, dtype=np.int64), axis=1)
        # FT and LT are scratch buffers of ops, reused by the next block: a model may
        # ask for several blocks' log-densities before their statistics (an HMM), so
        # the context keeps its own copy of the features.
        ctx = {"lowrank": (kernel, st, FT + 0.0, big, fills, small), "idx": idx}
        return L, ctx

    def _lowrank_stats(self, ops, mstate, ctx, R):
        from . import gaussian_missing as GM

        kernel, st, FT, big, fills, small = ctx["lowrank"]
        Rs = ops.take(R, ctx["idx"], axis=1)
        acc = {name: ops.zeros(shape, dtype=ops.f64)
               for name, shape in kernel.acc_shapes.items() if name != "loglik"}
        kernel.accumulate(ops, st, FT, Rs, big, fills, small, acc)
        host = {name: np.asarray(ops.to_host(a)) for name, a in acc.items()}
        out = GM.lowrank_moments(kernel.lr, host, kernel.K, kernel.D)
        return ops.asarray(np.ascontiguousarray(out[:, :-1]), dtype=ops.f64)

    def _independent_log_joint(self, ops, mstate, Xb, O):
        """Diag/spherical: the complete product plus a (K x D) one with the missing-cell
        indicator."""
        from . import gaussian_missing as GM

        D = self.n_features
        layout = mstate["layout"]
        Q = GM.quad_width(layout, D)
        F = ops.empty((Q + D, Xb.shape[0]))
        GM.masked_features(ops, F, Xb, mstate["center"], mstate["inv_scale"], layout, D,
                           mstate["zero"])
        miss = 1.0 - ops.cast(O)  # (rows, D)
        L = ops.matmul(mstate["eta_dev"], F) - mstate["A_dev"]
        L += ops.matmul(mstate["V_dev"], miss.T)
        return L, {"independent": True, "F": F, "miss": miss}

    def _independent_stats(self, ops, mstate, ctx, R):
        """Observed sums plus each missing cell's expected features (mu, mu^2 + var)."""
        F, miss = ctx["F"], ctx["miss"]
        D = self.n_features
        S = ops.cast(ops.weighted_stats(R, F), ops.f64)
        mass = ops.cast(ops.matmul(R, miss), ops.f64)  # (K, D)
        mu, var = mstate["mu_dev"], mstate["var_dev"]
        sq = mass * (mu * mu + var)
        if mstate["layout"] == "diag":
            quad = S[:, :D] + sq
        else:
            quad = S[:, :1] + ops.sum(sq, axis=1)[:, None]
        Q = quad.shape[1]
        return ops.concat([quad, S[:, Q:] + mass * mu], axis=1)

    def missing_features(self, ops, Xb, O):
        """``T(z)`` with missing cells' z set to 0, and 1/0 for observed features."""
        from . import gaussian_missing as GM

        self._need_bound()
        D = self.n_features
        layout = self._missing_layout()
        Q = GM.quad_width(layout, D)
        rows = Xb.shape[0]
        F = ops.empty((Q + D, rows))
        GM.masked_features(ops, F, Xb, ops.asarray(self.frame.center), 1.0 / self.frame.scale,
                           layout, D, ops.zeros(()))
        Oc = ops.cast(O).T  # (D, rows)
        if layout == "full":
            quad = [Oc[i : i + 1] * Oc[i:] for i in range(D)]
            Fobs = ops.concat(quad + [Oc], axis=0)
        elif layout == "diag":
            Fobs = ops.concat([Oc, Oc], axis=0)
        else:
            allobs = ops.cast(ops.equal(ops.sum(Oc, axis=0), float(D)))
            Fobs = ops.concat([allobs[None, :], Oc], axis=0)
        return F, Fobs

    def _full_covs(self, params) -> np.ndarray:
        return full_covariances(params[self._cov_key], self.covariance_type,
                                np.asarray(params["means"]).shape[0], self.n_features)

    def conditional_means(self, params, X, O):
        """(K, N, D): missing cells replaced by ``E[x_M | x_O, k]`` (regression on the
        observed cells)."""
        from . import gaussian_missing as GM

        return GM.conditional_means(params["means"], self._full_covs(params), X, O)

    def conditional_draw(self, params, X, O, z, rng):
        """(N, D): missing cells drawn from ``N(E[x_M | x_O, z], Cov[x_M | x_O, z])``."""
        from . import gaussian_missing as GM

        return GM.conditional_draw(params["means"], self._full_covs(params), X, O, z, rng)

    # -------------------------------------------------------------- M-step
    def _moments(self, stats: MixtureStats, su: np.ndarray, previous):
        """Location and (scaled) scatter from the statistics.

        ``S`` holds ``sum w r u T(z)``; ``su`` is ``sum w r u`` and ``nk`` ``sum w r``.
        The location is ``S_z / su`` and the scatter ``sum w r u (z - mu)(z - mu)^T /
        nk`` (for the Gaussian ``u = 1``: the covariance).

        Returns
        -------
        means : (K, D), cov : regularised, raw : unregularised (data units), empty : (E,)
        """
        empty_components(stats.nk, stats.weight_sum, at_start=previous is None)
        d, raw, S2, safe_n, live, empty = self._raw(stats, su)
        ct = self.covariance_type
        D = self.n_features
        s = self.frame.scale
        if ct in ("full", "tied"):
            cov = raw + self.reg_covar * np.eye(D)
        else:
            cov = raw + self.reg_covar
        if self.reg_covar == 0.0:
            self._refuse_roundoff_variance(raw, S2, safe_n, live, stats.weight_sum)
        means = d * s + self.frame.center
        if empty.size:
            means[empty] = previous["means"][empty]
            if ct != "tied":  # an empty component adds nothing to the pooled covariance
                cov[empty] = previous[self._cov_key][empty]
        # Refuse a covariance that is not positive definite here, naming the component,
        # rather than in the next E-step.
        precisions_cholesky_from_covariances(cov / (s * s), ct)
        return means, cov, raw, empty

    def _raw(self, stats: MixtureStats, su: np.ndarray):
        """Location (frame) and unregularised scatter (data units) of every component.

        Returns
        -------
        d : (K, D), raw : by covariance type ((D, D) tied, pooled over components),
        S2 : (K, q), safe_n : (K,), live : (K,) bool, empty : (E,) int
        """
        self._need_bound()
        ct = self.covariance_type
        D = self.n_features
        s = self.frame.scale
        nk = np.asarray(stats.nk, dtype=np.float64)
        K = nk.shape[0]
        empty = empty_components(nk, stats.weight_sum)
        live = np.ones(K, dtype=bool)
        live[empty] = False
        safe_n = np.where(live, nk, 1.0)
        safe_u = np.where(live & (su > 0), su, 1.0)
        q = self._n_quad()
        S2, S1 = stats.S[:, :q], stats.S[:, q:]
        d = S1 / safe_u[:, None]  # (K, D), frame
        ratio = su / safe_n
        if ct == "full":
            second = unpack_upper(S2, D) / safe_n[:, None, None]
            raw = (second - ratio[:, None, None] * d[:, :, None] * d[:, None, :]) * (s * s)
            raw = 0.5 * (raw + np.transpose(raw, (0, 2, 1)))
        elif ct == "tied":
            # sum_k sum_n w r u (z - mu_k)(z - mu_k)^T = sum_k (S2_k - su_k mu_k mu_k^T),
            # over the total weight W: the within-component scatter, pooled. An empty
            # component has S2_k = su_k = 0 and adds nothing.
            between = np.einsum("k,ki,kj->ij", np.where(live, su, 0.0), d, d)
            W = max(float(stats.weight_sum), np.finfo(np.float64).tiny)
            raw = (unpack_upper(S2.sum(axis=0)[None], D)[0] - between) / W * (s * s)
            raw = 0.5 * (raw + raw.T)
        elif ct == "diag":
            raw = (S2 / safe_n[:, None] - ratio[:, None] * d * d) * (s * s)
        else:
            raw = (S2[:, 0] / safe_n - ratio * np.sum(d * d, axis=1)) / D * (s * s)
        return d, raw, S2, safe_n, live, empty

    def _scale_sums(self, stats: MixtureStats) -> np.ndarray:
        """``sum w r u`` per component (``u = 1`` for the Gaussian)."""
        return stats.nk

    def reg_gap(self, stats: MixtureStats) -> float:
        """How far ``reg_covar`` may lower the mean log-likelihood in the M-step.

        The M-step adds ``reg_covar`` to the maximiser of the expected complete-data
        log-likelihood, so EM is monotone only up to ``sum_k n_k/2 sum_i [log(1 +
        r/l_ik) - r/(l_ik + r)] / W`` over the eigenvalues ``l_ik`` of each
        unregularised covariance (or scatter): the same bound as
        ``MStepReport.reg_gap`` of ``GaussianMixture``, for a model's monitor.

        Parameters
        ----------
        stats : MixtureStats
            The statistics the M-step reads.

        Returns
        -------
        float, per unit weight (0 when ``reg_covar`` is 0)
        """
        if self.reg_covar <= 0.0:
            return 0.0
        _, raw, _, _, live, _ = self._raw(stats, self._scale_sums(stats))
        if self.covariance_type == "tied":
            # One covariance, weighted by every row (as GaussianMixture's).
            gap = _reg_gap(np.linalg.eigvalsh(raw)[None], np.array([stats.weight_sum]),
                           self.reg_covar)
            return gap / max(stats.weight_sum, np.finfo(np.float64).tiny)
        if self.covariance_type == "full":
            eig = np.linalg.eigvalsh(raw)
        elif self.covariance_type == "diag":
            eig = raw
        else:
            eig = raw[:, None]
        gap = _reg_gap(eig[live], np.asarray(stats.nk)[live], self.reg_covar)
        return gap / max(stats.weight_sum, np.finfo(np.float64).tiny)

    def _refuse_roundoff_variance(self, raw, S2, safe_n, live, weight_sum=None):
        """With ``reg_covar=0`` a variance at round-off level has no finite precision.

        The raw variance is a difference of second moments, indistinguishable from 0
        below about ``1e3 eps`` times them; its density would be unbounded, so this
        raises naming the component (as ``GaussianMixture`` does) instead of fitting a
        spike.
        """
        ct = self.covariance_type
        D = self.n_features
        s2 = self.frame.scale ** 2
        if ct == "full":
            var = np.diagonal(raw, axis1=1, axis2=2)
            m2 = np.diagonal(unpack_upper(S2, D), axis1=1, axis2=2) / safe_n[:, None]
        elif ct == "tied":
            # The pooled covariance, judged once against the pooled second moments.
            W = max(float(weight_sum), np.finfo(np.float64).tiny)
            var = np.diagonal(raw)[None]
            m2 = np.diagonal(unpack_upper(S2.sum(axis=0)[None], D)[0])[None] / W
            live = np.ones(1, dtype=bool)
        elif ct == "diag":
            var, m2 = raw, S2 / safe_n[:, None]
        else:
            var, m2 = raw[:, None], S2 / D / safe_n[:, None]
        floor = 1e3 * np.finfo(np.float64).eps * np.abs(m2) * s2
        bad = (var <= floor) & live[:, None]
        if bad.any():
            k, col = (int(i) for i in np.argwhere(bad)[0])
            where = f" in column {col}" if ct != "spherical" else ""
            who = "the tied covariance" if ct == "tied" else f"component {k}"
            raise DegenerateComponentError(
                f"{who} collapsed onto (nearly) repeated values: its variance"
                f"{where} is {var[k, col]:.3g} and reg_covar=0, so its likelihood is "
                "unbounded. Set reg_covar > 0 or use fewer components."
            )

    def _issues(self, raw, nk, empty) -> list:
        issues = [
            f"component {int(k)} is empty: no row has any responsibility for it, so it "
            "keeps weight 0; use fewer components"
            for k in empty
        ]
        found = screen_components(
            raw, nk, self.data_var, self.covariance_type, self.reg_covar, skip=empty
        )
        return issues + [i.describe() for i in found]

    def m_step(self, stats: MixtureStats, previous):
        """Means and covariances from ``sum w r T(z)`` and ``nk``.

        ``covariance = E[z z^T] - mu mu^T`` in the frame, scaled back, plus
        ``reg_covar`` on the diagonal; an empty component keeps its previous values.

        Raises
        ------
        DegenerateComponentError
            For an empty component at initialisation, or a covariance that is not
            positive definite (``reg_covar=0``), naming the component.
        """
        means, cov, raw, empty = self._moments(stats, self._scale_sums(stats), previous)
        return {"means": means, "covariances": cov}, self._issues(raw, stats.nk, empty)

    # -------------------------------------------------------------- the rest
    def _cov_parameters(self) -> int:
        """Covariance parameters a component owns (0 for tied: they are shared)."""
        D = self.n_features
        return {"full": D * (D + 1) // 2, "tied": 0, "diag": D, "spherical": 1}[
            self.covariance_type
        ]

    def n_parameters(self, n_components):
        D = self.n_features
        shared = D * (D + 1) // 2 if self.covariance_type == "tied" else 0
        return n_components * (D + self._cov_parameters()) + shared

    def _standard_draws(self, params, k, n, rng) -> np.ndarray:
        """``n`` draws of ``N(0, Sigma_k)``, shape (n, D)."""
        D = self.n_features
        cov = np.asarray(params[self._cov_key], dtype=np.float64)
        if self.covariance_type != "tied":
            cov = cov[k]
        z = rng.standard_normal((n, D))
        if self.covariance_type in ("full", "tied"):
            return z @ np.linalg.cholesky(cov).T
        return z * np.sqrt(cov)

    def sample(self, params, k, n, rng):
        return params["means"][k] + self._standard_draws(params, k, n, rng)

    def component_means(self, params):
        return params["means"]

    def validate_params(self, params, n_components):
        out = super().validate_params(params, n_components)
        m = out["means"]
        D = self.n_features
        if D is None:
            D = m.shape[1] if m.ndim == 2 else None
        if m.ndim != 2 or m.shape[1] != D:
            raise InputError(f"means must have shape ({n_components}, {D}); got {m.shape}")
        key = self._cov_key
        c = out[key]
        want = {"full": (n_components, D, D), "tied": (D, D), "diag": (n_components, D),
                "spherical": (n_components,)}[self.covariance_type]
        if c.shape != want:
            raise InputError(
                f"{key} of covariance_type={self.covariance_type!r} must have shape {want}; "
                f"got {c.shape}"
            )
        if self.covariance_type == "full":
            asym = np.abs(c - np.transpose(c, (0, 2, 1))).max(axis=(1, 2))
            bad = np.flatnonzero(asym > 1e-10 * np.abs(c).max(axis=(1, 2)))
            if bad.size:
                raise InputError(f"{key} of component {int(bad[0])} is not symmetric")
        elif self.covariance_type == "tied":
            if np.abs(c - c.T).max() > 1e-10 * np.abs(c).max():
                raise InputError(f"the tied {key} is not symmetric")
        try:
            precisions_cholesky_from_covariances(c, self.covariance_type)
        except DegenerateComponentError as err:
            # Its message names the component; the advice about collapse is for fits.
            raise InputError(f"{key}: {str(err).split(':')[0]}") from None
        return out
