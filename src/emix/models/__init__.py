"""Estimators."""

from .. import io as _io
from .._io_hmm import hmm_codec
from .._io_mixture import mixture_model_codec
from .binomial import BinomialMixture
from .hmm import HMM
from .mixture import GaussianMixture
from .mixture_model import MixtureModel

__all__ = ["BinomialMixture", "GaussianMixture", "HMM", "MixtureModel"]

# Registered here rather than by emix.io, so that io never imports the models (they
# import io to save themselves, and importing each other would be a cycle).
_io.register(_io.gaussian_mixture_codec(GaussianMixture))
_io.register(mixture_model_codec(MixtureModel))
_io.register(hmm_codec(HMM))
