"""Importing emix stays cheap: optional libraries load only when a feature needs them."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "pandas", "sklearn", "matplotlib", "dask", "numba")


def test_import_emix_loads_no_optional_library():
    code = (
        "import sys, emix, emix.mle, emix.datasets, emix.models.forward_backward\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "", f"importing emix loaded {out}"


def test_numpy_fit_loads_no_optional_library():
    code = (
        "import sys, numpy as np, emix\n"
        "X = np.random.default_rng(0).normal(size=(200, 2))\n"
        "emix.GaussianMixture(2, random_state=0).fit(X).predict(X)\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "", f"a NumPy fit loaded {out}"
