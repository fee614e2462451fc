"""log_returns, rolling_volatility: values, dates kept, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from emix.exceptions import InputError
from emix.finance import log_returns, rolling_volatility

pd = pytest.importorskip("pandas")


def test_arrays():
    p = np.array([100.0, 110.0, 99.0, 99.0])
    np.testing.assert_allclose(log_returns(p), np.log([1.1, 0.9, 1.0]))
    P = np.column_stack([p, 2 * p])
    r = log_returns(P)
    assert r.shape == (3, 2)
    np.testing.assert_allclose(r[:, 0], r[:, 1])
    assert isinstance(log_returns([1.0, 2.0]), np.ndarray)


def test_series_and_frame_keep_dates():
    idx = pd.date_range("2020-01-01", periods=5, freq="B", name="date")
    s = pd.Series([10.0, 11.0, 12.0, 11.0, 13.0], index=idx, name="SPX")
    r = log_returns(s)
    assert isinstance(r, pd.Series) and r.name == "SPX"
    assert r.index.equals(idx[1:])
    np.testing.assert_allclose(r.to_numpy(), np.diff(np.log(s.to_numpy())))
    df = pd.DataFrame({"a": s, "b": s * 3})
    rd = log_returns(df)
    assert isinstance(rd, pd.DataFrame) and list(rd.columns) == ["a", "b"] and rd.index.equals(idx[1:])


def test_rolling_volatility_matches_pandas():
    rng = np.random.default_rng(0)
    idx = pd.date_range("2021-01-01", periods=60, freq="D")
    r = pd.Series(rng.normal(0, 0.01, 60), index=idx)
    got = rolling_volatility(r, 10)
    want = r.rolling(10).std().dropna()
    assert got.index.equals(want.index)
    np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=1e-12)
    # Causal: the value at a date ignores later returns.
    r2 = r.copy()
    r2.iloc[30:] *= 5
    np.testing.assert_array_equal(rolling_volatility(r2, 10).iloc[:21].to_numpy(), got.iloc[:21].to_numpy())
    np.testing.assert_allclose(rolling_volatility(r.to_numpy(), 10), want.to_numpy(), rtol=1e-12)


def test_volatility_feature_table():
    idx = pd.date_range("2021-01-01", periods=30, freq="D")
    p = pd.Series(np.exp(np.cumsum(np.random.default_rng(1).normal(0, 0.01, 30))) * 50, index=idx, name="x")
    f = log_returns(p, volatility_window=5)
    assert list(f.columns) == ["x", "x_vol5"] and f.index.equals(idx[5:])
    r = log_returns(p)
    np.testing.assert_allclose(f["x_vol5"].to_numpy(), r.rolling(5).std().dropna().to_numpy(), rtol=1e-12)
    assert log_returns(p.to_numpy(), volatility_window=5).shape == (25, 2)


def test_errors_name_the_date_and_column():
    idx = pd.date_range("2020-03-02", periods=4, freq="B")
    with pytest.raises(InputError, match=r"2020-03-04.*row 2.*-1"):
        log_returns(pd.Series([1.0, 2.0, -1.0, 3.0], index=idx))
    with pytest.raises(InputError, match=r"NaN at 2020-03-03.*row 1.*'b'"):
        log_returns(pd.DataFrame({"a": [1.0, 2, 3, 4], "b": [1.0, np.nan, 3, 4]}, index=idx))
    with pytest.raises(InputError, match="positive.*row 0 is 0"):
        log_returns(np.array([0.0, 1.0]))
    with pytest.raises(InputError, match="infinite at row 1"):
        log_returns(np.array([1.0, np.inf]))
    with pytest.raises(InputError, match="at least 2"):
        log_returns([1.0])
    with pytest.raises(InputError, match="numbers"):
        log_returns(["a", "b"])
    with pytest.raises(InputError, match="window"):
        rolling_volatility(np.ones(10), 1)
