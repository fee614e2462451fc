"""load_regime_prices: the regime schedule, the volatilities, the dates, the errors."""

from __future__ import annotations

import numpy as np
import pytest

from emix.datasets import load_regime_prices
from emix.datasets.prices import VOLATILE_SPELLS
from emix.exceptions import InputError


def test_known_switch_dates_and_volatilities():
    data = load_regime_prices(3000, random_state=3)
    assert data.prices.shape == (3001,) and data.returns.shape == (3000,)
    np.testing.assert_allclose(np.log(data.prices[1:] / data.prices[:-1]), data.returns, rtol=1e-10, atol=1e-13)
    # The schedule is fixed: the volatile spells are the given fractions of the sample.
    expected = np.zeros(3000, dtype=int)
    for a, b in VOLATILE_SPELLS:
        expected[round(a * 3000):round(b * 3000)] = 1
    np.testing.assert_array_equal(data.regimes, expected)
    np.testing.assert_array_equal(data.switch_days, [600, 900, 1500, 1680, 2250, 2700])
    # Sample volatilities within ~4 standard errors of 1% and 3%.
    calm, vol = data.returns[data.regimes == 0], data.returns[data.regimes == 1]
    assert abs(calm.std() / 0.01 - 1) < 4 / np.sqrt(2 * calm.size)
    assert abs(vol.std() / 0.03 - 1) < 4 / np.sqrt(2 * vol.size)


def test_business_dates_and_determinism():
    a = load_regime_prices(100, random_state=5)
    b = load_regime_prices(100, random_state=5)
    np.testing.assert_array_equal(a.prices, b.prices)
    assert a.dates.dtype == np.dtype("datetime64[D]")
    assert np.all(np.is_busday(a.dates)) and np.all(np.diff(a.dates) > np.timedelta64(0, "D"))
    assert a.switch_dates[0] == a.dates[1:][a.switch_days[0]]
    assert not a.prices.flags.writeable
    s = a.to_series()
    assert s.index[0] == np.datetime64("2015-01-02") and s.iloc[-1] == a.prices[-1]


@pytest.mark.parametrize("kw", [{"n_days": 5}, {"n_days": 2.5}, {"calm_vol": 0.0}, {"volatile_vol": -1},
                                {"start_price": float("nan")}])
def test_bad_arguments(kw):
    with pytest.raises(InputError):
        load_regime_prices(**{"n_days": 100, **kw})
