"""Estimators."""

from .mixture import GaussianMixture

__all__ = ["GaussianMixture"]
