"""emix: latent-variable models fitted by the EM algorithm.

Importing emix loads NumPy and SciPy only; torch, dask, pandas and matplotlib are
imported when a feature that needs them is used.
"""

from .em.monitor import ConvergenceMonitor
from .exceptions import (
    ConvergenceWarning,
    DataScaleWarning,
    DegenerateComponentError,
    DegenerateComponentWarning,
    EmixError,
    InputError,
    LikelihoodDecreaseWarning,
    NotFittedError,
)
from .models.mixture import GaussianMixture

__version__ = "0.1.0"

__all__ = [
    "GaussianMixture",
    "ConvergenceMonitor",
    "ConvergenceWarning",
    "DataScaleWarning",
    "DegenerateComponentError",
    "DegenerateComponentWarning",
    "EmixError",
    "InputError",
    "LikelihoodDecreaseWarning",
    "NotFittedError",
    "__version__",
]
