"""Starting points for EM: Ward's hierarchical clustering, k-means, k-means++ seeds,
random rows, random responsibilities.

All draws come from one ``numpy.random.Generator`` so that a seed fixes the whole fit.
Weighted draws use the inverse of the cumulative weight: a row of weight 3 owns the same
slice of [0, total) as three copies of it, so integer weights behave like repetition.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from ..exceptions import InputError

__all__ = ["as_generator", "kmeans_plusplus", "kmeans", "ward", "random_rows", "nearest"]

# Lloyd's iterations on more rows than this gain nothing for a starting point; beyond it
# k-means runs on a uniform random subset and every row is then assigned to the centres.
KMEANS_MAX_ROWS = 100_000

# Ward's linkage costs O(N^2) memory and time; above this many rows it runs on a
# systematic sample of them (every (N / WARD_MAX_ROWS)-th row).
WARD_MAX_ROWS = 4_000


def as_generator(random_state) -> np.random.Generator:
    """A NumPy Generator from None, an int, a Generator or a legacy RandomState."""
    if random_state is None or isinstance(random_state, (int, np.integer)):
        return np.random.default_rng(random_state)
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(0, 2**31 - 1))
    raise InputError(
        f"random_state must be None, an int, a numpy Generator or RandomState; got "
        f"{type(random_state).__name__}"
    )


def _weighted_draw(cum: np.ndarray, rng: np.random.Generator, size=None):
    """Indices drawn with probability proportional to weights, ``cum`` = cumsum(weights)."""
    u = rng.random(size) * cum[-1]
    idx = np.searchsorted(cum, u, side="right")
    return np.minimum(idx, len(cum) - 1)


def _sq_dist(X: np.ndarray, x_sq: np.ndarray, C: np.ndarray) -> np.ndarray:
    """Squared distances (N, K) between rows of X (N, D) and centres C (K, D)."""
    d = x_sq[:, None] - 2.0 * (X @ C.T) + np.einsum("kd,kd->k", C, C)[None, :]
    np.maximum(d, 0.0, out=d)
    return d


def nearest(X: np.ndarray, C: np.ndarray, block: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """Index of, and squared distance to, the nearest centre for every row.

    Parameters
    ----------
    X : ndarray of shape (N, D)
    C : ndarray of shape (K, D)

    Returns
    -------
    labels : ndarray of shape (N,), int
    d2 : ndarray of shape (N,)
    """
    N = X.shape[0]
    labels = np.empty(N, dtype=np.intp)
    d2 = np.empty(N, dtype=np.float64)
    for s in range(0, N, block):
        Xb = X[s : s + block]
        d = _sq_dist(Xb, np.einsum("nd,nd->n", Xb, Xb), C)
        labels[s : s + block] = np.argmin(d, axis=1)
        d2[s : s + block] = d[np.arange(len(Xb)), labels[s : s + block]]
    return labels, d2


def kmeans_plusplus(
    X: np.ndarray, w: np.ndarray, n_clusters: int, rng: np.random.Generator
) -> np.ndarray:
    """Greedy k-means++ seeding with sample weights.

    Each new centre is the best (lowest weighted potential) of ``2 + log K`` candidates
    drawn with probability proportional to ``w * D(x)^2``.

    Parameters
    ----------
    X : ndarray of shape (N, D), float64, centred
    w : ndarray of shape (N,)

    Returns
    -------
    ndarray of shape (K,), indices of the chosen rows
    """
    trials = 2 + int(np.log(n_clusters))
    x_sq = np.einsum("nd,nd->n", X, X)
    idx = [int(_weighted_draw(np.cumsum(w), rng))]
    closest = _sq_dist(X, x_sq, X[idx])[:, 0]
    for _ in range(1, n_clusters):
        pot = w * closest
        cum = np.cumsum(pot)
        if cum[-1] <= 0.0:
            # Every remaining row coincides with a chosen centre.
            cand = np.asarray(_weighted_draw(np.cumsum(w), rng, trials))
        else:
            cand = np.asarray(_weighted_draw(cum, rng, trials))
        d = _sq_dist(X, x_sq, X[cand])  # (N, trials)
        np.minimum(d, closest[:, None], out=d)
        best = int(np.argmin(w @ d))
        idx.append(int(cand[best]))
        closest = d[:, best]
    return np.asarray(idx)


def kmeans(
    X: np.ndarray,
    w: np.ndarray,
    n_clusters: int,
    rng: np.random.Generator,
    *,
    max_iter: int = 300,
    tol: float = 1e-4,
) -> np.ndarray:
    """Weighted Lloyd's k-means from k-means++ seeds; returns the centres (K, D).

    Parameters
    ----------
    X : ndarray of shape (N, D), float64, centred
    w : ndarray of shape (N,)
    tol : float
        Stop when the centres move less (in total squared distance) than ``tol`` times
        the mean column variance, the rule scikit-learn uses.
    """
    N, D = X.shape
    C = X[kmeans_plusplus(X, w, n_clusters, rng)].copy()
    wsum = w.sum()
    mean = (w @ X) / wsum
    var_scale = float(np.mean((w @ (X - mean) ** 2) / wsum))
    threshold = tol * var_scale
    labels = None
    for _ in range(max_iter):
        new_labels, d2 = nearest(X, C)
        counts = np.bincount(new_labels, weights=w, minlength=n_clusters)
        # One sparse (K x N) product sums each cluster's weighted rows in one pass.
        onehot = sparse.csr_matrix((w, (new_labels, np.arange(N))), shape=(n_clusters, N))
        sums = np.asarray(onehot @ X)
        C_new = C.copy()
        full = counts > 0
        C_new[full] = sums[full] / counts[full, None]
        # An empty cluster takes over the row farthest from its centre.
        for k in np.flatnonzero(~full):
            far = int(np.argmax(d2 * (w > 0)))
            C_new[k] = X[far]
            d2[far] = 0.0
        shift = float(np.sum((C_new - C) ** 2))
        C = C_new
        if labels is not None and np.array_equal(labels, new_labels):
            break
        labels = new_labels
        if shift <= threshold:
            break
    return C


def random_rows(w: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` distinct row indices drawn with probability proportional to ``w``."""
    w = w.astype(np.float64, copy=True)
    chosen = []
    for _ in range(n):
        cum = np.cumsum(w)
        if cum[-1] <= 0:
            raise InputError(
                f"cannot choose {n} distinct rows with positive sample_weight; only "
                f"{len(chosen)} exist"
            )
        i = int(_weighted_draw(cum, rng))
        chosen.append(i)
        w[i] = 0.0
    return np.asarray(chosen)


def ward(X: np.ndarray, w: np.ndarray, n_clusters: int) -> np.ndarray:
    """Centres (K, D) of Ward's agglomerative clustering: a start that involves no luck.

    Ward merges, at every step, the two clusters whose union least increases the
    within-cluster sum of squares, so the result depends on the data alone. That is the
    start model-based clustering relies on for small data, where a random start can land
    in a poor local maximum that no number of iterations leaves. Rows of zero weight are
    left out; the linkage itself is unweighted (Ward's criterion has no standard weighted
    form), the centres are weighted means.

    Parameters
    ----------
    X : ndarray of shape (N, D), float64, centred
    w : ndarray of shape (N,)
    n_clusters : int

    Returns
    -------
    ndarray of shape (K, D)
    """
    from scipy.cluster.hierarchy import fcluster, linkage

    rows = np.flatnonzero(w > 0)
    if len(rows) > WARD_MAX_ROWS:
        # A systematic sample (not a random one) keeps the start free of luck.
        rows = rows[np.linspace(0, len(rows) - 1, WARD_MAX_ROWS).round().astype(np.intp)]
    Xs = X[rows]
    if len(rows) < 2:
        labels = np.zeros(len(rows), dtype=np.intp)
    else:
        labels = fcluster(linkage(Xs, method="ward"), t=n_clusters, criterion="maxclust") - 1
    ws = w[rows]
    counts = np.bincount(labels, weights=ws, minlength=n_clusters)
    sums = np.zeros((n_clusters, X.shape[1]))
    np.add.at(sums, labels, ws[:, None] * Xs)
    C = np.empty_like(sums)
    full = counts > 0
    C[full] = sums[full] / counts[full, None]
    # Ties can leave fewer than K clusters; the missing ones start at the rows farthest
    # from every centre so far, as k-means does with an emptied cluster.
    for k in np.flatnonzero(~full):
        _, d2 = nearest(Xs, C[full])
        C[k] = Xs[int(np.argmax(d2))]
        full[k] = True
    return C
