"""numba kernel of :func:`emix.models.hmm.sample_paths` (imported on first use only):
backward sampling of state paths given the filtered probabilities.

Compiled once per machine and cached on disk, as :mod:`emix.models._fb_numba`.
"""

from __future__ import annotations

from numba import njit


@njit(cache=True, nogil=True)
def backward_sample(filtered, transmat, lengths, u, z):
    """Fill ``z`` (n_paths, T) with paths drawn backwards through every sequence.

    ``filtered`` (T, K) holds ``p(z_t | x_1..x_t)``, ``u`` (n_paths, T) uniform numbers:
    ``z[:, last]`` inverts the last filtered distribution and ``z[:, t]`` the
    distribution ``filtered[t, i] * transmat[i, z[:, t + 1]]`` (normalised), the
    posterior of ``z_t`` given the data up to t and the next state.
    """
    n_paths = z.shape[0]
    K = filtered.shape[1]
    stop = 0
    for s in range(lengths.shape[0]):
        start = stop
        stop = start + lengths[s]
        for p in range(n_paths):
            for t in range(stop - 1, start - 1, -1):
                total = 0.0
                for i in range(K):
                    w = filtered[t, i] if t == stop - 1 else filtered[t, i] * transmat[i, z[p, t + 1]]
                    total += w
                target = u[p, t] * total
                acc = 0.0
                pick = K - 1
                for i in range(K):
                    w = filtered[t, i] if t == stop - 1 else filtered[t, i] * transmat[i, z[p, t + 1]]
                    acc += w
                    if target < acc:
                        pick = i
                        break
                z[p, t] = pick
