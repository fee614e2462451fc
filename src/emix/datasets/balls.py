"""Balls drawn from an urn: the first example of maximum likelihood.

An urn holds black and white balls in an unknown proportion. We draw a ball, note its
colour, put it back, and repeat. Which proportion of black balls makes the draws we saw
most likely? The likelihood of ``b`` black balls in ``n`` draws is ``p**b (1-p)**(n-b)``,
largest at ``p = b / n``: the maximum-likelihood estimate is the share of black draws.

The sample is built to have exactly ``n_black`` black balls, so that the answer
(70 of 100 by default, ``p = 0.7``) is known in advance and a learner can check a
numerical maximisation against it.
"""

from __future__ import annotations

import numpy as np

from emix.datasets._checks import as_generator, check_count
from emix.exceptions import InputError

__all__ = ["load_balls"]


def load_balls(
    n_draws: int = 100,
    n_black: int = 70,
    random_state: int | np.random.Generator | None = 0,
) -> np.ndarray:
    """Colours of `n_draws` balls drawn with replacement, exactly `n_black` of them black.

    Parameters
    ----------
    n_draws : int, default=100
        Number of draws, at least 1.
    n_black : int, default=70
        Number of black balls among them, between 0 and `n_draws`.
    random_state : int, numpy.random.Generator or None, default=0
        Seed or Generator for the order of the draws (only the order is random).

    Returns
    -------
    draws : ndarray of shape (n_draws,), dtype int64
        1 for a black ball and 0 for a white one, in random order. Read-only.

    Raises
    ------
    InputError
        If a count is not an integer in range or `random_state` is not a seed or
        Generator.

    Examples
    --------
    >>> draws = load_balls(n_draws=10, n_black=7)
    >>> draws.shape, int(draws.sum()), float(draws.mean())
    ((10,), 7, 0.7)
    """
    n_draws = check_count(n_draws, "n_draws", minimum=1)
    n_black = check_count(n_black, "n_black")
    if n_black > n_draws:
        raise InputError(f"n_black={n_black} is more than n_draws={n_draws}")
    rng = as_generator(random_state)
    draws = np.zeros(n_draws, dtype=np.int64)
    draws[:n_black] = 1
    # Shuffled so that the order carries no information (all black first would suggest a
    # trend that the model of independent draws does not have).
    draws = rng.permutation(draws)
    draws.setflags(write=False)
    return draws
