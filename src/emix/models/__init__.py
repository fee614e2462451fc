"""Estimators."""

from .binomial import BinomialMixture
from .mixture import GaussianMixture

__all__ = ["BinomialMixture", "GaussianMixture"]
