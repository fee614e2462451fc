"""Distribution families: the components of mixtures and the emissions of HMMs.

``get_family("poisson")`` or ``get_family(Poisson())`` gives a family object; the contract
every family keeps is in :mod:`emix.families._base`. Modules are imported on first use.
"""

from __future__ import annotations

import importlib

from ..exceptions import InputError

__all__ = ["FAMILY_NAMES", "get_family", "family_class"]

# name -> (module, class). "gaussian" here is the exponential-family form used inside
# products and by the Student-t; a whole-data Gaussian mixture runs on the specialised
# kernels of families/gaussian.py (GaussianMixture).
_REGISTRY = {
    "gaussian": ("normal", "Normal"),
    "bernoulli": ("bernoulli", "Bernoulli"),
    "categorical": ("categorical", "Categorical"),
    "poisson": ("poisson", "Poisson"),
    "exponential": ("exponential", "Exponential"),
    "binomial": ("binomial", "Binomial"),
    "student_t": ("student_t", "StudentT"),
}
FAMILY_NAMES = tuple(_REGISTRY)


def family_class(name: str):
    """The class registered under ``name``."""
    if name not in _REGISTRY:
        raise InputError(f"unknown family {name!r}; choose one of {FAMILY_NAMES} or pass a family object")
    module, cls = _REGISTRY[name]
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def get_family(spec, **kwargs):
    """A family object from a name (with constructor keywords) or a family object."""
    from ._base import Family

    if isinstance(spec, Family):
        if kwargs:
            raise InputError("family options go to the family object's constructor, not here")
        return spec
    if not isinstance(spec, str):
        raise InputError(f"family must be a name or a Family object; got {type(spec).__name__}")
    return family_class(spec)(**kwargs)
