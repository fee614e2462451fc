"""Row blocks of host data delivered to the device, the copy of the next block overlapping
the work on this one (double buffering).

Used by :class:`emix.backends.torch_backend.TorchBackend` when ``X`` is held on the host
because it does not fit on the GPU (100 million rows of 32 float32 columns are 12.8 GB).
Two device buffers take turns: while the kernel works on block ``i`` in one, a side
stream copies block ``i + 1`` from pinned host memory into the other. Events order the
two streams, and the host never waits for the device:

* the compute stream waits (on the device) for block ``i``'s copy to have landed;
* the copy into a buffer waits (on the device) for the compute that last read it.

On a CPU device the same bookkeeping runs with plain copies into the two buffers, so the
block order, the short last block and the weights are tested without a GPU.

torch is imported by the caller (this module is imported only from the torch backend).
"""

from __future__ import annotations

import torch

__all__ = ["host_blocks", "pin"]


def pin(X):
    """``X`` (a CPU tensor) in page-locked memory, or ``X`` itself where that fails.

    Copies from pinned memory run asynchronously at the link's full speed; from pageable
    memory the driver stages them and the host waits. Pinning costs one host copy of
    ``X`` (once per fit) and can fail on a machine short of lockable memory, in which
    case the pageable tensor still gives correct (slower) passes.
    """
    if not torch.cuda.is_available() or X.is_pinned():
        return X
    try:
        return X.pin_memory()
    except RuntimeError:  # pragma: no cover - depends on the machine's limits
        return X


def host_blocks(X, w, rows: int, device, dtype=None):
    """Yield ``(start, stop, Xb, wb)`` over host-held ``X`` with the blocks on ``device``.

    Parameters
    ----------
    X : torch.Tensor of shape (N, D), on the CPU (pinned for asynchronous copies)
    w : torch.Tensor of shape (N,) or None
        Sample weights, on the CPU or already on ``device``.
    rows : int
        Rows per block (the last block may be shorter).
    device : torch.device
    dtype : torch.dtype, optional
        The weights' dtype on the device (default: theirs).

    Yields
    ------
    start, stop : int
    Xb : torch.Tensor of shape (stop - start, D) on ``device``
        A view of a reused buffer: valid until the consumer asks for the next block.
    wb : torch.Tensor of shape (stop - start,) on ``device``, or None
    """
    N, D = X.shape
    if N == 0:
        return
    rows = max(1, min(int(rows), N))
    wdt = None if w is None else (dtype or w.dtype)
    w_on_device = w is not None and w.device == torch.device(device)
    n_buf = 2 if N > rows else 1
    xbuf = [torch.empty((rows, D), dtype=X.dtype, device=device) for _ in range(n_buf)]
    wbuf = None
    if w is not None and not w_on_device:
        wbuf = [torch.empty((rows,), dtype=w.dtype, device=device) for _ in range(n_buf)]
    cuda = torch.device(device).type == "cuda"
    if cuda:
        compute = torch.cuda.current_stream(device)
        side = torch.cuda.Stream(device)
        for buf in xbuf + (wbuf or []):
            # Written on the side stream: freeing them (also when the consumer stops
            # early) must wait for those copies.
            buf.record_stream(side)
        copied = [torch.cuda.Event() for _ in range(n_buf)]
        freed = [None] * n_buf
    starts = list(range(0, N, rows))

    def issue(i):
        """Start copying block ``i`` into buffer ``i % n_buf``."""
        b = i % n_buf
        a, z = starts[i], min(starts[i] + rows, N)
        if not cuda:
            xbuf[b][: z - a].copy_(X[a:z])
            if wbuf is not None:
                wbuf[b][: z - a].copy_(w[a:z])
            return
        with torch.cuda.stream(side):
            if freed[b] is not None:
                side.wait_event(freed[b])  # the compute that read this buffer is done
            xbuf[b][: z - a].copy_(X[a:z], non_blocking=True)
            if wbuf is not None:
                wbuf[b][: z - a].copy_(w[a:z], non_blocking=True)
            copied[b].record(side)

    issue(0)
    for i, a in enumerate(starts):
        z = min(a + rows, N)
        b = i % n_buf
        if i + 1 < len(starts):
            issue(i + 1)  # overlaps with block i's compute on the other buffer
        if cuda:
            compute.wait_event(copied[b])
        Xb = xbuf[b][: z - a]
        if w is None:
            wb = None
        elif w_on_device:
            wb = w[a:z]
        else:
            wb = wbuf[b][: z - a]
        if wb is not None and wdt is not None and wb.dtype != wdt:
            wb = wb.to(wdt)
        yield a, z, Xb, wb
        if cuda:
            # Recorded after the consumer queued its work on block i: the next copy into
            # this buffer (block i + 2) waits for it.
            ev = torch.cuda.Event()
            ev.record(compute)
            freed[b] = ev
