"""Counting the device operations of a fit with ``torch.profiler``: a launch-count proxy.

On a GPU, the host's share of an EM iteration is mostly the cost of launching kernels:
each ATen operation that touches data is one or a few kernel launches of a few
microseconds each, whatever the block size. Counting ATen operations on torch's CPU
build, with the blocks a GPU would get, therefore measures that overhead without a GPU;
on CUDA the profiler's kernel events are counted as well.

Used by ``benchmarks/bench_gmm.py`` and by the tests (counts are deterministic, unlike
timings). Imported only there: this module imports torch.
"""

from __future__ import annotations

import warnings

import torch

__all__ = ["count_ops", "ops_per_iteration"]

# ATen operations that only make views or read metadata: no kernel on any device.
_NO_KERNEL = frozenset(
    """
    aten::view aten::_unsafe_view aten::reshape aten::_reshape_alias aten::as_strided
    aten::slice aten::select aten::t aten::transpose aten::permute aten::expand
    aten::unsqueeze aten::squeeze aten::alias aten::detach aten::detach_ aten::empty
    aten::empty_strided aten::empty_like aten::resize_ aten::lift_fresh aten::result_type
    aten::numpy_T aten::swapaxes aten::matrix_H aten::contiguous aten::to aten::_to_copy
    aten::is_nonzero aten::split aten::narrow aten::unbind aten::chunk aten::flatten
    aten::is_same_size aten::set_ aten::_has_compatible_shallow_copy_type
    aten::pin_memory aten::is_pinned aten::_pin_memory aten::record_stream
    aten::resolve_conj aten::resolve_neg aten::_local_scalar_dense aten::item
    """.split()
)


def _runs(e) -> bool:
    return e.name.startswith("aten::") and e.name not in _NO_KERNEL


def _outermost_ops(events) -> list[str]:
    """Names of the outermost ATen operations that run a kernel or a copy.

    An operation inside another one that runs is part of it (``aten::matmul -> aten::mm``
    counts once, as does ``aten::amax`` with its initialising fill), while one inside a
    view or conversion counts (``aten::to -> aten::_to_copy -> aten::copy_`` counts at
    ``copy_``). Composite operations that launch several kernels on a GPU (e.g.
    ``isfinite``) count once: on CUDA, :func:`count_ops` also counts the kernels.
    """
    names = []
    for e in events:
        if not _runs(e):
            continue
        p = e.cpu_parent
        while p is not None and not _runs(p):
            p = p.cpu_parent
        if p is None:
            names.append(e.name)
    return names


def count_ops(fn) -> dict:
    """Run ``fn()`` under the profiler and count what it ran.

    Returns
    -------
    dict with ``ops`` (outermost ATen operations that run a kernel or a copy), ``by_name``
    (their counts per name) and, when CUDA is available, ``cuda_kernels`` (kernel
    events on the GPU), ``cuda_syncs`` (stream/device synchronisations) and
    ``cuda_busy_ms`` (summed durations of the GPU's kernels and copies).
    """
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    cuda = torch.cuda.is_available()
    if cuda:
        activities.append(ProfilerActivity.CUDA)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with profile(activities=activities) as prof:
            fn()
        events = prof.events()
    names = _outermost_ops(events)
    by_name: dict = {}
    for n in names:
        by_name[n] = by_name.get(n, 0) + 1
    out = {"ops": len(names), "by_name": dict(sorted(by_name.items(), key=lambda kv: -kv[1]))}
    if cuda:
        kernels = syncs = 0
        kernel_us = 0.0
        for e in events:
            dev = getattr(e, "device_type", None)
            if dev is not None and "CUDA" in str(dev):
                if not e.name.startswith(("Memcpy", "Memset")):
                    kernels += 1
                kernel_us += e.time_range.elapsed_us()
            if e.name in ("cudaStreamSynchronize", "cudaDeviceSynchronize",
                          "cudaEventSynchronize"):
                syncs += 1
        out["cuda_kernels"] = kernels
        out["cuda_syncs"] = syncs
        out["cuda_busy_ms"] = kernel_us / 1e3  # kernels and copies on the GPU's clock
    return out


def ops_per_iteration(fit, n_iter: int = 3) -> dict:
    """Operations of one EM iteration: ``(count(fit(1 + n)) - count(fit(1))) / n``.

    Parameters
    ----------
    fit : callable ``max_iter -> None``
        Runs one fit with ``max_iter`` iterations and a fixed start (``tol=0``), so that
        the difference of two fits is exactly ``n_iter`` iterations.
    n_iter : int

    Returns
    -------
    dict with the per-iteration ``ops`` (and ``cuda_kernels``, ``cuda_syncs``,
    ``cuda_busy_ms`` on CUDA) as floats, and ``by_name`` per iteration.
    """
    fit(1)  # warm-up: lazy initialisation is not an iteration's cost
    one = count_ops(lambda: fit(1))
    more = count_ops(lambda: fit(1 + n_iter))
    out = {}
    for key in ("ops", "cuda_kernels", "cuda_syncs", "cuda_busy_ms"):
        if key in one:
            out[key] = (more[key] - one[key]) / n_iter
    names = set(one["by_name"]) | set(more["by_name"])
    per = {n: (more["by_name"].get(n, 0) - one["by_name"].get(n, 0)) / n_iter for n in names}
    out["by_name"] = dict(sorted(((n, v) for n, v in per.items() if v), key=lambda kv: -kv[1]))
    return out
