"""Two coins of unknown bias: the textbook first example of EM for discrete data.

Someone holds two coins, A and B, each with its own unknown probability of heads. For
every *set* they pick one of the coins at random (A with probability ``weights[0]``),
flip it ``n_flips`` times and write down the number of heads, but not which coin it was.
From the head counts alone, EM estimates both biases and how often each coin was used;
the hidden coin of each set is kept so that a learner can check the answer.

With the coin of every set known, each bias would simply be that coin's share of heads
(maximum likelihood); with it hidden, the head counts follow a two-component binomial
mixture, which :class:`emix.models.binomial.BinomialMixture` fits.

The classic classroom version has five sets of ten flips (:data:`TEXTBOOK_HEADS`, from
Do and Batzoglou, "What is the expectation maximization algorithm?", Nature
Biotechnology 26, 2008). Five random sets are often uninformative (all five can land
on 7 or 8 heads), so the generator defaults to 20 sets of ten flips with coins of bias
0.8 and 0.45: small enough to follow by hand, large enough for EM to separate the coins.
Ask for a few hundred sets (``n_sets=500``) to see EM recover the biases closely.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from emix.datasets._checks import as_generator, check_count
from emix.exceptions import InputError

__all__ = ["TEXTBOOK_HEADS", "CoinsData", "CoinsTruth", "load_two_coins"]

#: Names of the two coins, in the order of ``biases`` and ``weights``.
COIN_NAMES = ("A", "B")

#: Heads in the five sets of ten flips of the published worked example (Do and
#: Batzoglou 2008, coins B, A, A, B, A). Starting from biases 0.6 and 0.5, its first EM
#: iteration gives 0.71 and 0.58.
TEXTBOOK_HEADS = (5, 9, 8, 4, 7)


@dataclass(frozen=True)
class CoinsTruth:
    """The values that generated a :class:`CoinsData` sample.

    Attributes
    ----------
    biases : tuple of float, length 2
        Probability of heads of coin A and of coin B.
    weights : tuple of float, length 2
        Probability that a set was flipped with coin A, and with coin B; they sum to 1.
        Each set's coin is drawn at random with these probabilities, so the share of
        sets actually flipped with A (``CoinsData.coin == 0``) varies around
        ``weights[0]``.
    """

    biases: tuple[float, float]
    weights: tuple[float, float]


# eq=False: a generated __eq__ would compare arrays with ``==`` and fail on truthiness.
@dataclass(frozen=True, eq=False)
class CoinsData:
    """Head counts of several sets of coin flips, with the hidden coin of each set.

    Attributes
    ----------
    heads : ndarray of shape (n_sets,), dtype int64
        Number of heads in each set. Read-only.
    n_flips : int
        Flips per set (the same for every set).
    coin : ndarray of shape (n_sets,), dtype int64
        Which coin each set was flipped with: 0 for A, 1 for B. This is what EM does
        not see. Read-only.
    truth : CoinsTruth
        The biases and weights the sample was drawn from.
    """

    heads: np.ndarray
    n_flips: int
    coin: np.ndarray
    truth: CoinsTruth

    @property
    def n_sets(self) -> int:
        """Number of sets of flips."""
        return int(self.heads.shape[0])

    @property
    def tails(self) -> np.ndarray:
        """Number of tails in each set, shape (n_sets,)."""
        return self.n_flips - self.heads


def load_two_coins(
    n_sets: int = 20,
    n_flips: int = 10,
    biases: Sequence[float] = (0.8, 0.45),
    weights: Sequence[float] = (0.5, 0.5),
    random_state: int | np.random.Generator | None = 0,
) -> CoinsData:
    """Simulate `n_sets` sets of `n_flips` flips, each set with one of two coins.

    Parameters
    ----------
    n_sets : int, default=20
        Number of sets, at least 1. Twenty can be followed by hand; a few hundred let
        EM recover the biases to within a few hundredths.
    n_flips : int, default=10
        Flips per set, at least 1.
    biases : pair of float, default=(0.8, 0.45)
        Probability of heads of coin A and of coin B, each in [0, 1].
    weights : pair of float, default=(0.5, 0.5)
        Probability of picking coin A and coin B for a set; non-negative, summing to 1.
    random_state : int, numpy.random.Generator or None, default=0
        Seed or Generator; the same integer gives the same data on every run, a
        Generator is advanced, ``None`` gives fresh data on every call.

    Returns
    -------
    CoinsData
        ``heads`` of shape (n_sets,), ``coin`` of shape (n_sets,), ``n_flips`` and the
        ``truth``.

    Raises
    ------
    InputError
        If a count is not a positive integer, a bias lies outside [0, 1], the weights
        are negative or do not sum to 1, or `random_state` is not a seed or Generator.

    Examples
    --------
    >>> data = load_two_coins(n_sets=4, random_state=1)
    >>> data.heads.shape, data.n_flips, data.truth.biases
    ((4,), 10, (0.8, 0.45))
    """
    n_sets = check_count(n_sets, "n_sets", minimum=1)
    n_flips = check_count(n_flips, "n_flips", minimum=1)
    p = _pair(biases, "biases")
    for name, value in zip(COIN_NAMES, p):
        if not 0.0 <= value <= 1.0:
            raise InputError(f"biases must lie in [0, 1]; coin {name}'s is {value!r}")
    w = _pair(weights, "weights")
    if min(w) < 0:
        raise InputError(f"weights must be non-negative, got {w!r}")
    if not math.isclose(sum(w), 1.0, abs_tol=1e-9):
        raise InputError(f"weights must sum to 1, got {w!r} (sum {sum(w)!r})")
    rng = as_generator(random_state)

    coin = (rng.random(n_sets) >= w[0]).astype(np.int64)
    heads = rng.binomial(n_flips, np.asarray(p)[coin]).astype(np.int64)
    # Locked like the heights sample: the data must not drift from the truth beside it.
    heads.setflags(write=False)
    coin.setflags(write=False)
    return CoinsData(heads=heads, n_flips=n_flips, coin=coin, truth=CoinsTruth(p, w))


def _pair(value: object, name: str) -> tuple[float, float]:
    """`value` as a pair of finite floats, or an InputError naming `name`."""
    try:
        items = tuple(value)  # type: ignore[arg-type]
    except TypeError:
        raise InputError(f"{name} must be a pair of numbers, got {value!r}") from None
    if len(items) != 2:
        raise InputError(f"{name} must hold exactly 2 numbers (coins A and B), got {len(items)}")
    out = []
    for v in items:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
            raise InputError(f"{name} must be a pair of numbers, got {value!r}")
        f = float(v)
        if not math.isfinite(f):
            raise InputError(f"{name} must be finite, got {value!r}")
        out.append(f)
    return (out[0], out[1])
