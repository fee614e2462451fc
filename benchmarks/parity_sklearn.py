"""How closely emix follows scikit-learn from the same start: prints, per data shape and
covariance type, the largest relative difference over the whole log-likelihood history
(``lower_bounds_``), the final means, and the iteration counts.

    python benchmarks/parity_sklearn.py
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.mixture import GaussianMixture as Sk

import emix

SHAPES = [(500, 1, 2), (2000, 5, 3), (3000, 12, 6)]  # (N, D, K)


def start(rng, X, K, ct):
    D = X.shape[1]
    S = np.atleast_2d(np.cov(X.T))
    P = np.linalg.inv(S)
    prec = {"full": np.stack([P * (1 + 0.2 * k) for k in range(K)]), "tied": P,
            "diag": np.tile(1 / np.diag(S), (K, 1)), "spherical": np.full(K, D / np.trace(S))}[ct]
    return np.full(K, 1 / K), X[rng.choice(len(X), K, replace=False)], prec


def main():
    rng = np.random.default_rng(0)
    print("N     D  K  cov        max rel diff ll history  max rel diff means  n_iter")
    worst = 0.0
    for N, D, K in SHAPES:
        means = rng.normal(scale=4.0, size=(K, D))
        X = means[rng.integers(0, K, N)] + rng.normal(size=(N, D))
        for ct in ("full", "tied", "diag", "spherical"):
            w, m, p = start(rng, X, K, ct)
            kw = dict(covariance_type=ct, weights_init=w, means_init=m, precisions_init=p,
                      tol=0.0, max_iter=25)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                e = emix.GaussianMixture(K, **kw).fit(X)
                s = Sk(K, **kw).fit(X)
            dl = np.max(np.abs(e.lower_bounds_ - s.lower_bounds_) / np.abs(s.lower_bounds_))
            dm = np.max(np.abs(e.means_ - s.means_)) / np.max(np.abs(s.means_))
            worst = max(worst, dl)
            print(f"{N:<5d} {D:<2d} {K:<2d} {ct:<10s} {dl:24.1e}  {dm:18.1e}  "
                  f"{e.n_iter_}/{s.n_iter_}")
    print(f"largest relative difference in any history: {worst:.1e} (acceptance: 1e-8)")
    return 0 if worst <= 1e-8 else 1


if __name__ == "__main__":
    raise SystemExit(main())
