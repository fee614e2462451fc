"""Shared fixtures. The session's random seed is printed in the report header so that any
failure can be replayed with ``EMIX_TEST_SEED=<seed> make test``."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

SEED = int(os.environ.get("EMIX_TEST_SEED", "20261123"))

# Property tests run a fixed number of examples so that CI time is predictable; the
# "ci" profile is the default and derandomised, so that CI never fails on an example no
# one has seen before; "thorough" draws fresh examples for local bug hunts.
settings.register_profile(
    "ci",
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("thorough", max_examples=500, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_report_header(config):
    return f"emix test seed: {SEED} (set EMIX_TEST_SEED to replay)"


@pytest.fixture
def rng(request) -> np.random.Generator:
    """A generator seeded from the session seed and the test's name (stable per test)."""
    name = request.node.nodeid.encode()
    return np.random.default_rng([SEED, int.from_bytes(name[-8:].ljust(8, b"\0"), "little")])


def make_blobs(rng, n, means, sds, weights=None, dtype=np.float64):
    """Rows drawn from isotropic Gaussian blobs; returns X (n, D) and labels (n,)."""
    means = np.asarray(means, dtype=float)
    K, D = means.shape
    weights = np.full(K, 1.0 / K) if weights is None else np.asarray(weights, float)
    counts = rng.multinomial(n, weights)
    X = np.vstack([rng.normal(means[k], sds[k], size=(c, D)) for k, c in enumerate(counts)])
    y = np.repeat(np.arange(K), counts)
    perm = rng.permutation(n)
    return X[perm].astype(dtype), y[perm]
