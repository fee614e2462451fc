"""Exceptions and warnings raised by emix.

Every error subclasses :class:`ValueError` (or :class:`TypeError` where Python's own
conventions ask for it) so that code written against scikit-learn keeps catching them.
"""

from __future__ import annotations

__all__ = [
    "EmixError",
    "InputError",
    "NonNumericError",
    "NotFittedError",
    "DegenerateComponentError",
    "ModelFileError",
    "ConvergenceWarning",
    "DegenerateComponentWarning",
    "LikelihoodDecreaseWarning",
    "DataScaleWarning",
]


class EmixError(ValueError):
    """Base class of emix's errors."""


class InputError(EmixError):
    """The data or an argument cannot be used; the message says which part and why."""


class NonNumericError(TypeError, InputError):
    """A column holds values that are not numbers.

    Subclasses TypeError as well because that is what NumPy raises for the same problem.
    """


class NotFittedError(EmixError, AttributeError):
    """A method that needs a fitted model was called before ``fit``."""


class DegenerateComponentError(EmixError):
    """A component's covariance is not positive definite; the message names the component."""


class ModelFileError(EmixError):
    """A saved model file cannot be loaded: corrupt, truncated, of an unknown format
    version, or internally inconsistent. The message says which part is wrong."""


class ConvergenceWarning(UserWarning):
    """EM stopped at ``max_iter`` before the likelihood settled."""


class DegenerateComponentWarning(UserWarning):
    """A component collapsed (variance at regularisation level) or emptied."""


class LikelihoodDecreaseWarning(RuntimeWarning):
    """The log-likelihood fell by more than round-off: a bug or a numerical breakdown."""


class DataScaleWarning(UserWarning):
    """The data's scale makes a setting such as ``reg_covar`` dominate the fit."""


_BRIDGED: dict = {}


def sklearn_compatible(cls: type, sklearn_name: str) -> type:
    """``cls``, or a subclass of it and scikit-learn's class of that name.

    Code that catches scikit-learn's ``NotFittedError`` or filters its
    ``ConvergenceWarning`` should see emix's too. emix does not import scikit-learn, so
    the bridge is made only when scikit-learn is already loaded (if it is not, nobody can
    be catching its classes).
    """
    import sys

    mod = sys.modules.get("sklearn.exceptions")
    if mod is None:
        return cls
    other = getattr(mod, sklearn_name, None)
    if other is None:
        return cls
    key = (cls, other)
    if key not in _BRIDGED:
        _BRIDGED[key] = type(cls.__name__, (cls, other), {"__module__": cls.__module__})
    return _BRIDGED[key]
