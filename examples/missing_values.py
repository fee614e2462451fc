"""EM with missing values: fit on data with holes, instead of dropping or filling them.

Two correlated clusters in three dimensions lose a quarter of their cells completely at
random. Three ways to fit a two-component Gaussian mixture are compared with the truth:

* complete-case analysis: drop every row with a hole (here about 58% of the rows);
* mean imputation: fill each hole with its column's mean, then fit;
* emix: NaN is a missing value, a hidden variable like the component label, and EM
  fits the observed cells' likelihood exactly (the default, ``missing="em"``).

Then the fitted model fills the holes (``impute``: conditional means; ``n_draws``:
multiple imputations whose spread is the uncertainty of each filled cell), and a hidden
Markov model filters a series through a gap where nothing was recorded.

Run: ``python examples/missing_values.py`` (about two seconds).
"""

from __future__ import annotations

import warnings

import numpy as np

import emix


def simulate(rng, n=2000):
    """Rows of two correlated clusters; returns X (n, 3), the true means and covariances."""
    A = np.array([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.5, 0.3, 0.8]])
    cov = A @ A.T
    means = np.array([[0.0, 0.0, 0.0], [4.0, 3.0, 5.0]])
    z = rng.random(n) < 0.4
    X = means[z.astype(int)] + rng.normal(size=(n, 3)) @ A.T
    return X, means, np.array([cov, cov])


def errors(model, means, covs):
    """Largest error of the fitted means and covariances, components matched by mean."""
    order = np.argsort(model.means_[:, 2])
    return (float(np.abs(model.means_[order] - means).max()),
            float(np.abs(model.covariances_[order] - covs).max()))


def main():
    rng = np.random.default_rng(0)
    X, means, covs = simulate(rng)
    holes = rng.random(X.shape) < 0.25
    holes[holes.all(axis=1), 0] = False  # keep at least one value in each row
    Xh = X.copy()
    Xh[holes] = np.nan
    complete_rows = ~np.isnan(Xh).any(axis=1)
    print(f"{holes.mean():.0%} of cells missing; {complete_rows.mean():.0%} of rows complete")

    kw = dict(n_components=2, random_state=0, n_init=3)
    fits = {
        "complete cases": emix.GaussianMixture(**kw).fit(Xh[complete_rows]),
        "mean imputation": emix.GaussianMixture(**kw).fit(
            np.where(np.isnan(Xh), np.nanmean(Xh, axis=0), Xh)),
        "EM with missing values": emix.GaussianMixture(**kw).fit(Xh),
    }
    print(f"\n{'':24s}{'max |mean error|':>18s}{'max |cov error|':>18s}")
    for name, model in fits.items():
        m_err, c_err = errors(model, means, covs)
        print(f"{name:24s}{m_err:18.3f}{c_err:18.3f}")
    gm = fits["EM with missing values"]

    # Filling the holes: conditional means given each row's observed cells.
    filled = gm.impute(Xh)
    col_means = np.where(np.isnan(Xh), np.nanmean(Xh, axis=0), Xh)
    rmse = np.sqrt(np.mean((filled[holes] - X[holes]) ** 2))
    rmse_mean = np.sqrt(np.mean((col_means[holes] - X[holes]) ** 2))
    print(f"\nimputation RMSE: conditional means {rmse:.3f}, column means {rmse_mean:.3f}")

    # Multiple imputations: their spread is each filled cell's uncertainty.
    draws = gm.impute(Xh, n_draws=20, random_state=1)  # (20, n, 3)
    row = int(np.flatnonzero(np.isnan(Xh).sum(axis=1) == 2)[0])
    print(f"row {row}: observed {Xh[row].round(2)}, 20 draws per hole: "
          f"mean {draws[:, row].mean(axis=0).round(2)}, sd {draws[:, row].std(axis=0).round(2)}")

    # A hidden Markov model through a gap: nothing recorded for 30 steps.
    T = 400
    states = np.repeat(rng.integers(0, 2, T // 40), 40)
    y = np.where(states[:, None] == 1, 3.0, 0.0) + rng.normal(size=(T, 1))
    y_gap = y.copy()
    y_gap[200:230] = np.nan
    hmm = emix.HMM(2, random_state=0).fit(y_gap)
    p = hmm.predict_proba(y_gap)[:, np.argmax(hmm.means_[:, 0])]
    print(f"\nHMM through a 30-step gap: P(high state) at steps 199, 215, 230 = "
          f"{p[199]:.2f}, {p[215]:.2f}, {p[230]:.2f} (true states {states[199]}, "
          f"{states[215]}, {states[230]})")


if __name__ == "__main__":
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", emix.ConvergenceWarning)
        main()
