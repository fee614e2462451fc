"""A 2-process Dask LocalCluster for the test modules that fit on one."""

from __future__ import annotations

import warnings

import pytest


@pytest.fixture(scope="module")
def client(request):
    distributed = pytest.importorskip("distributed")
    import cloudpickle

    # The test module's generators of blocks travel by value: workers cannot import
    # tests.
    module = request.module
    cloudpickle.register_pickle_by_value(module)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = distributed.LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
        )
        c = distributed.Client(cluster)
    try:
        yield c
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            c.close()
            cluster.close()
        cloudpickle.unregister_pickle_by_value(module)
