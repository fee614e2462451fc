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

import math
import numbers
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
    *,
    boys_mean: float = BOYS_MEAN,
    boys_sd: float = BOYS_SD,
    girls_mean: float = GIRLS_MEAN,
    girls_sd: float = GIRLS_SD,
) -> HeightsData:
    """Simulate heights of `n_boys` boys and `n_girls` girls.

    By default boys' heights are drawn from N(176.0, 7.0**2) and girls' from
    N(163.0, 6.5**2), in cm (see the module docstring for where these values come from).
    The group sizes are fixed, not random, so the true mixing weights are exactly
    ``n_boys / n`` and ``n_girls / n``.

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
    boys_mean, girls_mean : float, default=176.0 and 163.0
        Mean height of each group, in cm; any finite number. Moving them apart makes
        the two groups easier for EM to separate, moving them together harder.
    boys_sd, girls_sd : float, default=7.0 and 6.5
        Standard deviation of each group's heights, in cm; finite and positive.
        The same seed with other means or standard deviations gives the same
        standardised draws, shifted and scaled, so the effect of a parameter can be
        seen on otherwise identical data.

    Returns
    -------
    HeightsData
        ``heights`` of shape (n,), ``is_boy`` of shape (n,) and the ``truth``, with
        ``n = n_boys + n_girls``.

    Raises
    ------
    InputError
        If a count is not a non-negative integer, both counts are zero, a mean is not
        finite, a standard deviation is not finite and positive, or `random_state` is
        not a seed or Generator. ``InputError`` subclasses
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
    boys_mean = _check_real(boys_mean, "boys_mean")
    girls_mean = _check_real(girls_mean, "girls_mean")
    boys_sd = _check_real(boys_sd, "boys_sd", positive=True)
    girls_sd = _check_real(girls_sd, "girls_sd", positive=True)
    rng = as_generator(random_state)

    boys = rng.normal(boys_mean, boys_sd, size=n_boys)
    girls = rng.normal(girls_mean, girls_sd, size=n_girls)
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
        boys_mean=boys_mean,
        boys_sd=boys_sd,
        girls_mean=girls_mean,
        girls_sd=girls_sd,
        boys_weight=n_boys / n,
        girls_weight=n_girls / n,
    )
    return HeightsData(heights=heights, is_boy=is_boy, truth=truth)


def _check_real(value: object, name: str, *, positive: bool = False) -> float:
    """`value` as a float, or an InputError naming `name`."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise InputError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    out = float(value)
    if not math.isfinite(out):
        raise InputError(f"{name} must be finite, got {out!r}")
    if positive and out <= 0:
        raise InputError(f"{name} must be positive, got {out!r}")
    return out
