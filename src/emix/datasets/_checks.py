"""Argument checks shared by the dataset generators.

Kept apart from the estimators' validation because the generators take counts and seeds,
not data arrays, and must stay importable without the rest of emix.
"""

from __future__ import annotations

import numbers

import numpy as np

from emix.exceptions import InputError


def check_count(value: object, name: str, *, minimum: int = 0) -> int:
    """Return `value` as an int, or raise naming `name` if it is not an integer >= minimum."""
    # bool is an int subclass; load_heights(True) is a slip, not a request for one boy.
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise InputError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise InputError(f"{name} must be at least {minimum}, got {value}")
    return int(value)


def as_generator(random_state: object) -> np.random.Generator:
    """Turn ``None``, a non-negative int or a Generator into a NumPy Generator.

    A Generator is used as is (and advanced), so that a caller drawing several data sets
    from one stream gets different data each time, as NumPy's own functions do.
    """
    if isinstance(random_state, np.random.Generator):
        return random_state
    if random_state is None:
        return np.random.default_rng()
    if isinstance(random_state, (bool, np.bool_)) or not isinstance(
        random_state, numbers.Integral
    ):
        raise InputError(
            "random_state must be None, a non-negative integer or a numpy.random.Generator, "
            f"got {random_state!r} ({type(random_state).__name__})"
        )
    if random_state < 0:
        raise InputError(f"random_state must be non-negative, got {random_state}")
    return np.random.default_rng(int(random_state))
