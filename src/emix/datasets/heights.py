"""Heights of boys and girls: the classic first example of a two-component mixture.

With each person's sex known, the two groups' means and standard deviations are plain
maximum-likelihood estimates (:func:`emix.mle.fit_normal`). With the labels hidden, the
pooled heights follow a two-component normal mixture, and EM has to recover the groups.
Because the data are simulated, the parameters that generated them are known exactly, so
a student can see how close each method gets.

The generating values are round, plausible numbers for young adults (about 18 years old)
in several Western European countries; they are illustrative, not taken from a survey:

========  ===========  =========
group     mean (cm)    sd (cm)
========  ===========  =========
boys      176.0        7.0
girls     163.0        6.5
========  ===========  =========

The 13 cm gap is less than twice either standard deviation, so the pooled histogram has a
single hump rather than two: the mixture is there, but it is not visible by eye, which is
what makes the example instructive.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emix.datasets._checks import as_generator, check_count
from emix.exceptions import InputError

__all__ = [
    "BOYS_MEAN",
    "BOYS_SD",
    "GIRLS_MEAN",
    "GIRLS_SD",
    "HeightsTruth",
    "HeightsData",
    "load_heights",
]

#: Mean height of the boys, in cm.
BOYS_MEAN = 176.0
#: Standard deviation of the boys' heights, in cm.
BOYS_SD = 7.0
#: Mean height of the girls, in cm.
GIRLS_MEAN = 163.0
#: Standard deviation of the girls' heights, in cm.
GIRLS_SD = 6.5


@dataclass(frozen=True)
class HeightsTruth:
    """The parameters that generated a :class:`HeightsData` sample.

    Attributes
    ----------
    boys_mean, boys_sd : float
        Mean and standard deviation of the boys' heights, in cm.
    girls_mean, girls_sd : float
        Mean and standard deviation of the girls' heights, in cm.
    boys_weight, girls_weight : float
        Share of boys and of girls in the sample, ``n_boys / n`` and ``n_girls / n``;
        they sum to 1. These are the mixing weights a mixture model should recover.
    """

    boys_mean: float
    boys_sd: float
    girls_mean: float
    girls_sd: float
    boys_weight: float
    girls_weight: float


# eq=False: a generated __eq__ would compare arrays with ``==`` and raise "truth value of
# an array is ambiguous".
@dataclass(frozen=True, eq=False)
class HeightsData:
    """A simulated sample of heights with its labels and generating parameters.

    Attributes
    ----------
    heights : ndarray of shape (n,), dtype float64
        Heights in cm, boys and girls shuffled together so that the order of the rows
        says nothing about the group. Read-only.
    is_boy : ndarray of shape (n,), dtype bool
        ``True`` where the matching height is a boy's. Read-only.
    truth : HeightsTruth
        The means, standard deviations and weights the sample was drawn from.
    """

    heights: np.ndarray
    is_boy: np.ndarray
    truth: HeightsTruth

    @property
    def n(self) -> int:
        """Number of people in the sample."""
        return int(self.heights.shape[0])


def load_heights(
    n_boys: int = 100,
    n_girls: int = 100,
    random_state: int | np.random.Generator | None = 0,
) -> HeightsData:
    """Simulate heights of `n_boys` boys and `n_girls` girls.

    Boys' heights are drawn from N(176.0, 7.0**2) and girls' from N(163.0, 6.5**2), in
    cm (see the module docstring for where these values come from). The group sizes are
    fixed, not random, so the true mixing weights are exactly ``n_boys / n`` and
    ``n_girls / n``.

    Parameters
    ----------
    n_boys : int, default=100
        Number of boys, at least 0.
    n_girls : int, default=100
        Number of girls, at least 0. ``n_boys + n_girls`` must be at least 1.
    random_state : int, numpy.random.Generator or None, default=0
        Seed (a non-negative integer) or Generator for the draws. The same integer gives
        the same data on every run; a Generator is advanced; ``None`` draws fresh
        entropy, so the data differ on every call.

    Returns
    -------
    HeightsData
        ``heights`` of shape (n,), ``is_boy`` of shape (n,) and the ``truth``, with
        ``n = n_boys + n_girls``.

    Raises
    ------
    InputError
        If a count is not a non-negative integer, both counts are zero, or
        `random_state` is not a seed or Generator. ``InputError`` subclasses
        ``ValueError``.

    Examples
    --------
    >>> data = load_heights(n_boys=3, n_girls=2, random_state=1)
    >>> data.heights.shape, int(data.is_boy.sum()), data.truth.boys_weight
    ((5,), 3, 0.6)
    """
    n_boys = check_count(n_boys, "n_boys")
    n_girls = check_count(n_girls, "n_girls")
    n = n_boys + n_girls
    if n == 0:
        raise InputError("n_boys and n_girls are both 0: the sample would be empty")
    rng = as_generator(random_state)

    boys = rng.normal(BOYS_MEAN, BOYS_SD, size=n_boys)
    girls = rng.normal(GIRLS_MEAN, GIRLS_SD, size=n_girls)
    heights = np.concatenate([boys, girls])
    is_boy = np.concatenate([np.ones(n_boys, dtype=bool), np.zeros(n_girls, dtype=bool)])
    # Shuffle: with boys first, an EM fit or a student could "recover" the groups from the
    # row order alone, which would defeat the point of hiding the labels.
    order = rng.permutation(n)
    heights = heights[order]
    is_boy = is_boy[order]
    # The result is frozen; lock the arrays too, so an in-place edit cannot make the data
    # disagree with the truth recorded beside it.
    heights.setflags(write=False)
    is_boy.setflags(write=False)

    truth = HeightsTruth(
        boys_mean=BOYS_MEAN,
        boys_sd=BOYS_SD,
        girls_mean=GIRLS_MEAN,
        girls_sd=GIRLS_SD,
        boys_weight=n_boys / n,
        girls_weight=n_girls / n,
    )
    return HeightsData(heights=heights, is_boy=is_boy, truth=truth)
