"""Estimators."""

from .binomial import BinomialMixture
from .mixture import GaussianMixture
from .mixture_model import MixtureModel

__all__ = ["BinomialMixture", "GaussianMixture", "MixtureModel"]
