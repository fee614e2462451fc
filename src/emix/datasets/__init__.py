"""Small built-in data sets and generators with known parameters.

- :func:`load_heights`: simulated heights of boys and girls, the teaching example for
  maximum likelihood with labels known and EM with labels hidden.
- :func:`sample_gaussian_mixture`: points from any Gaussian mixture, with the component
  labels, for tests and examples.
"""

from emix.datasets.heights import HeightsData, HeightsTruth, load_heights
from emix.datasets.synthetic import sample_gaussian_mixture

__all__ = ["HeightsData", "HeightsTruth", "load_heights", "sample_gaussian_mixture"]
