"""Run a block of code with single-threaded OpenBLAS, when that can be arranged.

Why: on a small machine a mixture pass spends a third of its time in NumPy's
single-threaded elementwise work (feature build, soft-max) and the rest in skinny matrix
products that two BLAS threads barely speed up, while idle BLAS threads spin and steal
the other core. Running two Python threads over alternate halves of the rows, each with
single-threaded BLAS, is 1.3-1.4x faster (see benchmarks/). NumPy offers no runtime
control of BLAS threads and emix depends on NumPy and SciPy only, so this module finds
the OpenBLAS libraries already loaded into the process and calls their own
``set_num_threads``. Anywhere that is not possible (another BLAS, another OS), it reports
``available() == False`` and emix runs its passes serially, with the same results.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading

__all__ = ["available", "single_threaded", "cpu_count"]

# Symbol names OpenBLAS builds use (NumPy's and SciPy's wheels prefix and suffix them).
_SETTERS = (
    "scipy_openblas_set_num_threads64_",
    "scipy_openblas_set_num_threads",
    "openblas_set_num_threads64_",
    "openblas_set_num_threads",
)
_GETTERS = (
    "scipy_openblas_get_num_threads64_",
    "scipy_openblas_get_num_threads",
    "openblas_get_num_threads64_",
    "openblas_get_num_threads",
)

_lock = threading.RLock()
_libs: list | None = None
_depth = 0
_saved: list[int] = []


def _find() -> list:
    """(setter, getter) pairs of every loaded OpenBLAS, found once per process."""
    global _libs
    if _libs is not None:
        return _libs
    found = []
    paths = []
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.rsplit(None, 1)[-1]
                if "openblas" in path.lower() and path.startswith("/") and path not in paths:
                    paths.append(path)
    except OSError:
        paths = []
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        setter = next((getattr(lib, s) for s in _SETTERS if hasattr(lib, s)), None)
        getter = next((getattr(lib, g) for g in _GETTERS if hasattr(lib, g)), None)
        if setter is None or getter is None:
            continue
        setter.argtypes, setter.restype = [ctypes.c_int], None
        getter.argtypes, getter.restype = [], ctypes.c_int
        found.append((setter, getter))
    _libs = found
    return found


def available() -> bool:
    """True when the BLAS that NumPy uses can be switched to one thread at run time."""
    import numpy  # noqa: F401  (its BLAS must be loaded before we look for it)

    return bool(_find())


def cpu_count() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@contextlib.contextmanager
def single_threaded():
    """Within the block, every loaded OpenBLAS uses one thread; restored afterwards.

    Re-entrant and thread-safe: nested uses share one setting. The setting is global to
    the process, so other threads' BLAS calls made meanwhile run single-threaded too.
    """
    global _depth, _saved
    libs = _find()
    with _lock:
        if _depth == 0:
            _saved = [getter() for _, getter in libs]
            for setter, _ in libs:
                setter(1)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                for (setter, _), n in zip(libs, _saved):
                    setter(n)
