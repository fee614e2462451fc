"""Small built-in data sets and generators with known parameters.

- :func:`load_heights`: simulated heights of boys and girls, the teaching example for
  maximum likelihood with labels known and EM with labels hidden.
- :func:`load_two_coins`: head counts of sets of flips, each set from one of two coins
  of unknown bias (which one is hidden): EM for discrete data.
- :func:`load_casino`: rolls of a casino that secretly swaps a fair die for a loaded
  one (which die is hidden): the classic hidden Markov model.
- :func:`load_balls`: draws of black and white balls from an urn, the first example of
  maximum likelihood.
- :func:`load_regime_prices`: daily prices switching between a calm (1% daily
  volatility) and a volatile (3%) regime on known dates, for :mod:`emix.finance`.
- :func:`sample_gaussian_mixture`: points from any Gaussian mixture, with the component
  labels, for tests and examples.
"""

from emix.datasets.balls import load_balls
from emix.datasets.casino import CasinoData, CasinoTruth, load_casino
from emix.datasets.coins import CoinsData, CoinsTruth, load_two_coins
from emix.datasets.heights import HeightsData, HeightsTruth, load_heights
from emix.datasets.prices import RegimePrices, load_regime_prices
from emix.datasets.synthetic import sample_gaussian_mixture

__all__ = [
    "CasinoData",
    "CasinoTruth",
    "CoinsData",
    "CoinsTruth",
    "HeightsData",
    "HeightsTruth",
    "RegimePrices",
    "load_balls",
    "load_casino",
    "load_heights",
    "load_regime_prices",
    "load_two_coins",
    "sample_gaussian_mixture",
]
