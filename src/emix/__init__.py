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
    ModelFileError,
    NotFittedError,
)
from ._missing import MissingDataWarning
from . import data, datasets, finance, mle, plots
from .explain import explain
from .models.binomial import BinomialMixture
from .models.hmm import HMM
from .models.mixture import GaussianMixture
from .models.mixture_model import MixtureModel
from .selection import SelectionResult, select
from .uncertainty import BootstrapResult, bootstrap
from .io import load

__version__ = "0.1.0"

__all__ = [
    "GaussianMixture",
    "MixtureModel",
    "BinomialMixture",
    "HMM",
    "select",
    "SelectionResult",
    "load",
    "bootstrap",
    "BootstrapResult",
    "explain",
    "mle",
    "finance",
    "data",
    "datasets",
    "plots",
    "ConvergenceMonitor",
    "ConvergenceWarning",
    "DataScaleWarning",
    "DegenerateComponentError",
    "ModelFileError",
    "DegenerateComponentWarning",
    "EmixError",
    "InputError",
    "LikelihoodDecreaseWarning",
    "MissingDataWarning",
    "NotFittedError",
    "__version__",
]
