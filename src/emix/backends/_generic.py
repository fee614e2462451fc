"""Family-free pass primitives shared by the backends.

A *kernel* is what a model hands a backend for one pass over the data. It knows the
family and the model (how log-emissions become weights); the backend knows only arrays:
it cuts the rows into blocks, gives the kernel an :class:`Ops` namespace to compute with
(NumPy or torch, on the data's device and in its dtype), keeps float64 accumulators and
brings them to the host once per pass. A kernel supplies:

``acc_shapes``
    ``{name: shape}`` of the float64 accumulators it adds into (e.g. the weighted
    statistics ``S`` of shape (K, M) and the log-likelihood of shape ()).
``setup(ops) -> state``
    constants moved to the device and cast to the data's dtype, once per pass (and per
    thread);
``block(ops, state, Xb, wb, acc, start, stop)``
    add the contribution of rows ``start:stop`` (``Xb``, shape (rows, D); ``wb`` their
    sample weights in the data's dtype, or None) into ``acc``.

A kernel for :meth:`map_rows` supplies ``n_out`` and ``rows(ops, state, Xb) -> (rows,
n_out)`` instead. Nothing here, and nothing in the backends, imports a family.
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["PassKernel", "RowKernel"]


class PassKernel(Protocol):
    acc_shapes: dict

    def setup(self, ops) -> Any: ...

    def block(self, ops, state, Xb, wb, acc: dict, start: int, stop: int) -> None: ...


class RowKernel(Protocol):
    n_out: int

    def setup(self, ops) -> Any: ...

    def rows(self, ops, state, Xb): ...
