"""The dishonest casino: the classic teaching example of a hidden Markov model.

A casino rolls a die and, now and then, secretly swaps its fair die for a loaded one
that shows a six half of the time, and later swaps back. A gambler sees every roll but
never which die was used. The die in use is a hidden state that persists from one roll
to the next (the casino switches rarely), so the rolls are a hidden Markov model: the
hidden die follows a two-state Markov chain, and each roll is drawn from the current
die's six probabilities. From the rolls alone, Baum-Welch (EM for hidden Markov models)
estimates how often the casino switches and how the loaded die is weighted; the
forward-backward recursion gives, for every roll, the probability that the loaded die
was in play.

The generating values are those of the textbook example (Durbin, Eddy, Krogh and
Mitchison, *Biological Sequence Analysis*, 1998, section 3.2): the loaded die shows a
six with probability 1/2 and each other face with 1/10; the casino switches from the
fair to the loaded die with probability 0.05 after a roll, and back with probability
0.1. The hidden dice of the sample are returned too, so that a learner can check what
EM and the posteriors found.

Rolls are the faces 1..6 (``rolls``); ``codes`` gives them as 0..5, the category codes
that :class:`emix.HMM` with ``emission="categorical"`` reads.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from emix.datasets._checks import as_generator, check_count
from emix.exceptions import InputError

__all__ = [
    "DIE_NAMES",
    "FAIR_PROBS",
    "LOADED_PROBS",
    "START_PROBS",
    "SWITCH_TO_FAIR",
    "SWITCH_TO_LOADED",
    "CasinoData",
    "CasinoTruth",
    "load_casino",
]

#: Names of the two hidden states, in the order of every array here (0 fair, 1 loaded).
DIE_NAMES = ("fair", "loaded")

#: Probabilities of the faces 1..6 of the fair die.
FAIR_PROBS = (1 / 6, 1 / 6, 1 / 6, 1 / 6, 1 / 6, 1 / 6)

#: Probabilities of the faces 1..6 of the loaded die: a six half of the time.
LOADED_PROBS = (0.1, 0.1, 0.1, 0.1, 0.1, 0.5)

#: Probability that the casino swaps the fair die for the loaded one after a roll.
SWITCH_TO_LOADED = 0.05

#: Probability that it swaps the loaded die back for the fair one after a roll.
SWITCH_TO_FAIR = 0.1

#: Probabilities of the die used for the first roll (fair, loaded).
START_PROBS = (0.5, 0.5)


@dataclass(frozen=True, eq=False)
class CasinoTruth:
    """The values that generated a :class:`CasinoData` sample.

    Attributes
    ----------
    startprob : ndarray of shape (2,)
        Probability that the first roll is made with the fair and with the loaded die.
    transmat : ndarray of shape (2, 2)
        ``transmat[i, j]``: probability that the die after a roll is ``j`` when it was
        ``i`` (rows fair, loaded; each row sums to 1).
    emissionprob : ndarray of shape (2, 6)
        ``emissionprob[k, v]``: probability that die ``k`` shows face ``v + 1``.
    """

    startprob: np.ndarray
    transmat: np.ndarray
    emissionprob: np.ndarray


@dataclass(frozen=True, eq=False)
class CasinoData:
    """A sequence of die rolls with the hidden die of each roll.

    Attributes
    ----------
    rolls : ndarray of shape (n_rolls,), dtype int64
        The faces shown, 1..6. Read-only.
    dice : ndarray of shape (n_rolls,), dtype int64
        The die used for each roll: 0 fair, 1 loaded. What EM does not see. Read-only.
    truth : CasinoTruth
        The start, switch and face probabilities the sample was drawn from.
    """

    rolls: np.ndarray
    dice: np.ndarray
    truth: CasinoTruth

    @property
    def n_rolls(self) -> int:
        """Number of rolls."""
        return int(self.rolls.shape[0])

    @property
    def codes(self) -> np.ndarray:
        """The rolls as category codes 0..5, shape (n_rolls,) (for a categorical HMM)."""
        return self.rolls - 1


def load_casino(
    n_rolls: int = 300,
    random_state: int | np.random.Generator | None = 0,
    *,
    fair_probs: Sequence[float] = FAIR_PROBS,
    loaded_probs: Sequence[float] = LOADED_PROBS,
    switch_to_loaded: float = SWITCH_TO_LOADED,
    switch_to_fair: float = SWITCH_TO_FAIR,
    start_probs: Sequence[float] = START_PROBS,
) -> CasinoData:
    """Simulate ``n_rolls`` rolls of the dishonest casino.

    Parameters
    ----------
    n_rolls : int, default=300
        Number of rolls, at least 1. A few hundred show the loaded stretches by eye; a
        few thousand let Baum-Welch recover the loaded die's six to within a few
        hundredths.
    random_state : int, numpy.random.Generator or None, default=0
        Seed or Generator; the same integer gives the same rolls on every run, a
        Generator is advanced, ``None`` gives fresh rolls on every call.
    fair_probs, loaded_probs : sequence of 6 floats
        Probabilities of the faces 1..6 of each die; non-negative, summing to 1.
    switch_to_loaded, switch_to_fair : float in [0, 1]
        Probability of a swap after a roll, from the fair die to the loaded one and
        back.
    start_probs : pair of float, default=(0.5, 0.5)
        Probabilities of the die of the first roll (fair, loaded).

    Returns
    -------
    CasinoData
        ``rolls`` (n_rolls,) in 1..6, ``dice`` (n_rolls,) in {0, 1}, and the ``truth``.

    Raises
    ------
    InputError
        If ``n_rolls`` is not a positive integer, a probability vector is not one, a
        switch probability lies outside [0, 1], or ``random_state`` is not a seed or
        Generator.

    Examples
    --------
    >>> data = load_casino(10, random_state=1)
    >>> data.rolls.shape, int(data.rolls.min()) >= 1, float(data.truth.emissionprob[1, 5])
    ((10,), True, 0.5)
    """
    n_rolls = check_count(n_rolls, "n_rolls", minimum=1)
    fair = _probabilities(fair_probs, "fair_probs", 6)
    loaded = _probabilities(loaded_probs, "loaded_probs", 6)
    start = _probabilities(start_probs, "start_probs", 2)
    to_loaded = _probability(switch_to_loaded, "switch_to_loaded")
    to_fair = _probability(switch_to_fair, "switch_to_fair")
    transmat = np.array([[1.0 - to_loaded, to_loaded], [to_fair, 1.0 - to_fair]])
    emission = np.vstack([fair, loaded])
    rng = as_generator(random_state)

    # The chain first, then one roll per die in play: two vectorised draws per step
    # would not be clearer, and n_rolls is small.
    u = rng.random(n_rolls)
    dice = np.empty(n_rolls, dtype=np.int64)
    dice[0] = int(u[0] >= start[0])
    for t in range(1, n_rolls):
        dice[t] = int(u[t] >= transmat[dice[t - 1], 0])
    cdf = np.cumsum(emission, axis=1)
    cdf[:, -1] = 1.0  # round-off must not leave a draw above the last face
    v = rng.random(n_rolls)
    rolls = 1 + np.sum(v[:, None] >= cdf[dice], axis=1).astype(np.int64)
    for a in (rolls, dice, start, transmat, emission):
        a.setflags(write=False)
    return CasinoData(rolls=rolls, dice=dice, truth=CasinoTruth(start, transmat, emission))


def _probability(value: object, name: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise InputError(f"{name} must be a number in [0, 1], got {value!r}")
    f = float(value)
    if not (0.0 <= f <= 1.0):
        raise InputError(f"{name} must lie in [0, 1], got {value!r}")
    return f


def _probabilities(value: object, name: str, size: int) -> np.ndarray:
    """``value`` as a probability vector of ``size`` entries, or an InputError."""
    try:
        items = tuple(value)  # type: ignore[arg-type]
    except TypeError:
        raise InputError(f"{name} must be a sequence of {size} probabilities, got {value!r}") from None
    if len(items) != size:
        raise InputError(f"{name} must hold {size} probabilities, got {len(items)}")
    out = np.array([_probability(v, name) for v in items], dtype=np.float64)
    if not math.isclose(float(out.sum()), 1.0, abs_tol=1e-9):
        raise InputError(f"{name} must sum to 1, got sum {float(out.sum())!r}")
    return out
