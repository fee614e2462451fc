"""The PyTorch backend, for CPU and CUDA tensors: the same passes as NumPy's.

The interface mirrors :class:`emix.backends.numpy_backend.NumpyBackend` method for
method, and :class:`TorchOps` mirrors ``NumpyOps``, so a kernel (written once, in a
family or a model) runs unchanged on both. What changes is where the work happens and
when the host waits for it:

* Everything of size N stays on the tensor's device. A pass's float64 accumulators
  (statistics, log-likelihood, weight total) live *on the device* and come back to the
  host in one transfer at the end of the pass, so the block loop never synchronises
  (no ``.item()``, no ``.cpu()``, no boolean-mask indexing inside it).
* Kernels reuse block temporaries (``TorchOps.scratch``) and write with ``out=`` or in
  place.
* On CUDA blocks are sized from the device's free memory (:func:`block_rows`): a pass
  over a million rows of 32 columns is one block on a large card, so an iteration is a
  few dozen kernel launches whatever N is; on CPU it is NumPy's cache-sized default.
  The Gaussian feature map is then built in 1 + log2(D) broadcast products rather than
  one per triangle row (see :mod:`emix.families.gaussian_kernel`).
* Data that do not fit on the GPU stay on the host, pinned, and stream to it block by
  block, the copy of the next block overlapping the work on this one
  (:mod:`emix.backends._torch_stream`); data that fit are moved once.
* Responsibilities below eps^3 of a row's largest are exactly 0 (see ``_exp_floor``):
  it keeps CPU kernels off x86's subnormal slow path and changes no statistic.

Precision
---------
Products run in the data's dtype; block results are added into float64 accumulators, as
in the NumPy backend. Float32 products are forced to IEEE single precision for the
duration of a kernel: with TF32 enabled (``torch.backends.cuda.matmul.fp32_precision =
'tf32'`` or ``torch.set_float32_matmul_precision('high')``, the default of some
containers and training scripts) cuBLAS rounds the inputs of ``F @ eta`` to a 10-bit
mantissa. The log-joint is a sum of large terms of opposite sign (``-0.5 z^T P z`` and
the constant), so that rounding costs about three decimal digits and makes the float32
log-likelihood disagree with NumPy's far beyond float32 round-off, and can make it fall
between EM iterations (which the convergence monitor reports as a bug). The same applies
to oneDNN's reduced precisions (``'bf16'``/``'tf32'``) on CPU. The user's settings are
restored when the kernel returns.

Sample weights
--------------
:meth:`TorchBackend.asarray_like` keeps sample weights in float64 on the device (weights
are few, N values, and float64 keeps the weighted log-likelihood and weight total
exact); each pass casts them once to the data's dtype for the responsibility product,
exactly as the NumPy backend does.

torch is imported only when this module is, which happens only when a fit asks for it.
"""

from __future__ import annotations

import contextlib
import warnings

import numpy as np

from .._validation import as_2d, check_array, check_shape, raise_nan_inf
from ..exceptions import InputError, NonNumericError
from .numpy_backend import default_block_size

try:  # pragma: no cover - exercised through a subprocess test without torch
    import torch
except ImportError:  # pragma: no cover
    torch = None

__all__ = ["TorchBackend", "block_rows", "device_free_bytes"]

# Block temporaries on a GPU take at most this share of the free device memory, and at
# most _BLOCK_CAP_BYTES: beyond a few hundred thousand rows a block's kernels are long
# enough that launches cost nothing, and the rest of the memory is headroom for the
# caller (and for other processes on a shared card).
_BLOCK_SHARE = 0.5
_BLOCK_CAP_BYTES = 8 << 30
# Data are moved to the device when they take at most this share of its free memory;
# larger data stay on the host and stream (the rest is for the block temporaries).
_DATA_SHARE = 0.6
# The fewest rows a memory-sized block gets (tiny budgets still make progress).
_MIN_BLOCK_ROWS = 1024
# Kernels without a ``row_bytes`` estimate: their widest temporary about this size.
_LEGACY_BLOCK_BYTES = 256 << 20


def device_free_bytes(device) -> int | None:
    """Bytes a pass may use on ``device``: free memory plus what torch's caching
    allocator holds unused; None on a CPU (no budget: NumPy's block sizes apply).

    Tests replace this function to run the GPU sizing and streaming logic on a CPU.
    """
    device = torch.device(device)
    if device.type != "cuda":
        return None
    free, _ = torch.cuda.mem_get_info(device)
    cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return int(free + max(cached, 0))


def block_rows(n_rows: int, row_bytes: int, free_bytes: int) -> int:
    """Rows per block when a block's temporaries take ``row_bytes`` per row and the
    device has ``free_bytes`` to spare.

    The budget is ``min(0.5 * free_bytes, 8 GiB)``; blocks are then evened out, so that
    N rows make ``ceil(N / max_rows)`` blocks of nearly equal size (no short last block
    wasting a launch sequence, and one scratch size for all).

    Parameters
    ----------
    n_rows : int
    row_bytes : int
        Bytes of block temporaries per row (the kernel's estimate).
    free_bytes : int

    Returns
    -------
    int, between 1 and ``max(n_rows, 1)``
    """
    if n_rows <= 0:
        return 1
    budget = min(int(_BLOCK_SHARE * free_bytes), _BLOCK_CAP_BYTES)
    most = max(_MIN_BLOCK_ROWS, budget // max(int(row_bytes), 1))
    if most >= n_rows:
        return int(n_rows)
    n_blocks = -(-n_rows // most)
    return int(-(-n_rows // n_blocks))


# --------------------------------------------------------------------------- precision
def _legacy_matmul_precision():
    try:
        return torch.get_float32_matmul_precision()
    except RuntimeError:
        # torch raises when the legacy and the new (fp32_precision) settings disagree.
        return None


@contextlib.contextmanager
def _ieee_fp32():
    """Run float32 matrix products in IEEE single precision (no TF32 or bf16).

    Uses torch's ``fp32_precision`` settings (cuBLAS and oneDNN) and keeps the legacy
    ``float32_matmul_precision`` consistent with them, because torch refuses to run a
    cuBLAS product when the two disagree. Restores both on exit. Does nothing (and costs
    nothing) in the default configuration, where both already say IEEE.
    """
    subs = []
    for owner in ("cuda", "mkldnn"):
        mod = getattr(torch.backends, owner, None)
        mm = getattr(mod, "matmul", None)
        prec = getattr(mm, "fp32_precision", None)
        if prec is not None and prec not in ("ieee", "none"):
            subs.append((mm, prec))
    legacy = _legacy_matmul_precision()
    fix_legacy = legacy not in (None, "highest")
    if not subs and not fix_legacy:
        yield
        return
    if fix_legacy:
        torch.set_float32_matmul_precision("highest")
    for mm, _ in subs:
        mm.fp32_precision = "ieee"
    try:
        yield
    finally:
        if fix_legacy:
            torch.set_float32_matmul_precision(legacy)
        # set_float32_matmul_precision also rewrites the per-backend settings; put back
        # exactly what the user had.
        for mm, prec in subs:
            mm.fp32_precision = prec


def _from_numpy(a: np.ndarray):
    """A CPU tensor sharing ``a``'s memory (emix never writes into it)."""
    if any(s < 0 for s in a.strides):
        a = np.ascontiguousarray(a)
    with warnings.catch_warnings():
        # Read-only arrays (pandas copy-on-write, memory maps) are fine: we only read.
        warnings.filterwarnings("ignore", message=".*not writable.*", category=UserWarning)
        return torch.from_numpy(a)


# Responsibilities below eps^3 of the row's largest are set to exactly 0 (``exp`` of the
# log-joint minus the row maximum below 3 log(eps): -47.8 in float32, -108.1 in float64).
# Summed over even 1/eps^2 rows they stay under one ulp of a responsibility of 1, so no
# statistic moves, and an empty component's total is still far under the M-step's
# "empty" threshold. Why bother: left alone, those values are tiny or subnormal, and
# torch's CPU exp and MKL's GEMM (multiplying them by the features) take x86's
# subnormal slow path; measured 3-30x slower per kernel on well-separated clusters,
# the common case. GPUs have no such penalty and get the identical arithmetic.
def _exp_floor(dtype) -> float:
    return 3.0 * float(np.log(torch.finfo(dtype).eps))


def _softmax_cols_(LT, floor: float, gpu_form: bool = False):
    """Turn a log-joint block (K, rows) into responsibilities in place.

    Returns log p(x) of every row, shape (rows,). No host synchronisation (no boolean
    indexing). ``gpu_form``: entries below the floor become ``-inf`` before ``exp``
    (one kernel fewer); on a CPU, whose ``exp(-inf)`` is 2.5x slower than that of a
    normal number, they are clamped to the floor and zeroed after.
    """
    big = torch.finfo(LT.dtype).max
    # A row with zero density under every component has m = -inf; clamped to the most
    # negative finite number it keeps the subtraction defined (-inf - m stays -inf), and
    # the row's log-likelihood is still -inf (log 0 + m).
    m = LT.amax(dim=0, keepdim=True).clamp_(min=-big, max=big)
    LT.sub_(m)
    # exp never sees the underflow range; what it would have underflowed is exactly 0.
    far = LT < floor
    if gpu_form:
        LT.masked_fill_(far, float("-inf"))
        LT.exp_()
    else:
        LT.clamp_(min=floor)
        LT.exp_()
        LT.masked_fill_(far, 0.0)
    s = LT.sum(dim=0, keepdim=True)
    LT.div_(s)
    return s.log_().add_(m)[0]


class TorchBackend:
    """Runs mixture passes on torch tensors, on the CPU or a GPU.

    Parameters
    ----------
    device : str or torch.device
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``.
    memory : int, optional
        Bytes of device memory the backend may plan with. By default it asks the device
        (:func:`device_free_bytes`; a CPU has no budget and keeps NumPy's block sizes).
        Given, blocks are sized from it, data larger than ``0.6 * memory`` stay on the
        host and stream, and the Gaussian kernels take their GPU form: this runs the
        GPU's logic on a CPU (tests, launch counts).

    Raises
    ------
    InputError
        When torch is not installed, or the device does not exist on this machine.
    """

    name = "torch"

    def __init__(self, device="cpu", *, memory: int | None = None):
        if torch is None:
            raise InputError(f"device={str(device)!r} needs PyTorch: pip install 'emix[torch]'")
        try:
            dev = torch.device(device)
        except (RuntimeError, TypeError, ValueError) as exc:
            raise InputError(
                f"device={device!r} is not a device torch knows ({exc}); use None (NumPy), "
                "'cpu' or 'cuda'"
            ) from None
        if dev.type == "cuda":
            available = torch.cuda.is_available()
            if not available:
                raise InputError(
                    f"device={str(device)!r} needs a CUDA GPU, but torch.cuda.is_available() "
                    f"is False (torch {torch.__version__}, CUDA build "
                    f"{torch.version.cuda or 'none'}); use device='cpu' or None"
                )
            count = torch.cuda.device_count()
            if dev.index is not None and dev.index >= count:
                raise InputError(
                    f"device={str(device)!r} does not exist: torch.cuda.is_available() is "
                    f"True but only {count} CUDA device(s) are visible "
                    f"(cuda:0..cuda:{count - 1})"
                )
        elif dev.type != "cpu":
            # MPS (Apple) has no float64, in which every statistic is accumulated; other
            # device types are untested.
            raise InputError(
                f"device={str(device)!r} is not supported: emix's torch backend runs on "
                "'cpu' and 'cuda' devices (statistics are accumulated in float64, which "
                f"{dev.type!r} may not provide); use device='cpu' or None"
            )
        self.device = dev
        self.memory = None if memory is None else int(memory)

    def __repr__(self) -> str:
        return f"TorchBackend(device={str(self.device)!r})"

    # ------------------------------------------------------------------ placement
    def free_bytes(self) -> int | None:
        """Device memory to plan with: ``memory`` if given, else the device's figure,
        asked once per backend (a fit): every pass then sizes its blocks alike, and
        no pass pays for the query."""
        if self.memory is not None:
            return self.memory
        if not hasattr(self, "_free"):
            self._free = device_free_bytes(self.device)
        return self._free

    def is_host_held(self, X) -> bool:
        """Whether ``X`` stays on the host and streams to the device block by block."""
        if X.device != self.device:
            return X.device.type == "cpu"
        return getattr(X, "_emix_streamed", False)

    def _place(self, X):
        """``X`` (a tensor anywhere) on the device, or held on the host when it does not
        fit there (pinned on a CUDA machine; see :mod:`emix.backends._torch_stream`)."""
        free = self.free_bytes()
        nbytes = X.element_size() * X.numel()
        if free is None or nbytes <= _DATA_SHARE * free or X.device.type != "cpu":
            X = X.to(self.device)
            self.__dict__.pop("_free", None)  # the data took some: ask again
            return X
        from . import _torch_stream

        X = _torch_stream.pin(X) if self.device.type == "cuda" else X.view(X.shape)
        if self.device.type == "cpu":
            # A CPU "device" with a budget (tests): mark the tensor so that passes take
            # the streaming path all the same.
            X._emix_streamed = True
        return X

    # ------------------------------------------------------------------ arrays
    def validate(
        self,
        X,
        *,
        name: str = "X",
        min_rows: int = 1,
        allow_1d: bool = True,
        n_features: int | None = None,
        estimator_name: str = "the model",
    ):
        """Checked float32/float64 tensor (N, D) on this backend's device, and names.

        Tensors (any device) are checked where they are and moved to ``self.device``;
        anything else goes through :func:`emix._validation.check_array` first. The
        messages are those of ``check_array``.

        Returns
        -------
        X : torch.Tensor of shape (N, D), float32 or float64, on ``self.device``
        names : ndarray of str or None
            Column names of a DataFrame (tensors have none).
        """
        if isinstance(X, torch.Tensor):
            X = self._validate_tensor(X, name, min_rows, allow_1d, n_features, estimator_name)
            return X, None
        arr, names = check_array(
            X,
            name=name,
            min_rows=min_rows,
            allow_1d=allow_1d,
            n_features=n_features,
            estimator_name=estimator_name,
        )
        return self._place(_from_numpy(arr)), names

    def _validate_tensor(self, X, name, min_rows, allow_1d, n_features, estimator_name):
        X = X.detach()
        dt = X.dtype
        if dt.is_complex:
            raise InputError(f"Complex data not supported: {name} has complex dtype {dt}")
        if dt in (torch.float32, torch.float64):
            target = dt
        elif dt.is_floating_point:
            # float16, bfloat16 and 8-bit floats compute in float32; wider ones in float64.
            target = torch.float32 if dt.itemsize < 4 else torch.float64
        elif dt == torch.bool or _is_integer(dt):
            target = torch.float64
        else:
            raise NonNumericError(f"{name} has dtype {dt}, which is not numeric")
        one_d = X.ndim == 1
        X = as_2d(X, name, allow_1d)
        check_shape(
            X.shape, name=name, min_rows=min_rows, n_features=n_features,
            estimator_name=estimator_name, one_d=one_d,
        )
        X = X.to(dtype=target)
        _check_finite_tensor(X, name)
        return self._place(X)

    def to_numpy(self, X) -> np.ndarray:
        """A host NumPy array of ``X`` (tensors from any device; others via asarray)."""
        if isinstance(X, torch.Tensor):
            X = X.detach()
            if X.dtype == torch.bfloat16 or (X.dtype.is_floating_point and X.dtype.itemsize == 1):
                X = X.float()  # types NumPy does not have
            return X.cpu().numpy()
        return np.asarray(X)

    def asarray_like(self, a, X):
        """``a`` as a tensor on ``X``'s device.

        Floating arrays keep their precision (sample weights stay float64, see the module
        notes); others become float64.
        """
        if isinstance(a, torch.Tensor):
            t = a.detach()
        else:
            t = _from_numpy(np.asarray(a))
        if not t.dtype.is_floating_point:
            t = t.to(torch.float64)
        # Next to X: on the host when X is host-held (the weights stream with it, from
        # pinned memory like the rows).
        t = t.to(X.device)
        if X.device.type == "cpu" and self.device.type == "cuda":
            from ._torch_stream import pin

            t = pin(t)
        return t

    def numpy_dtype(self, X) -> np.dtype:
        return np.dtype(np.float32) if X.dtype == torch.float32 else np.dtype(np.float64)

    def take_rows(self, X, idx) -> np.ndarray:
        """Rows ``idx`` of X as a float64 host array (k, D)."""
        idx_t = torch.as_tensor(np.asarray(idx, dtype=np.int64), device=X.device)
        return X.index_select(0, idx_t).to(torch.float64).cpu().numpy()

    def column_summary(self, X, w, block: int | None = None) -> dict:
        """Weighted column means, variances, minima and maxima in one blocked pass.

        Computed on the device (host-held data stream through it), returned in one
        transfer.

        Returns
        -------
        dict with ``mean``, ``var``, ``min``, ``max`` (each (D,), float64 ndarrays) and ``n``.
        """
        N, D = X.shape
        dev = self.device if self.is_host_held(X) else X.device
        if w is not None and not isinstance(w, torch.Tensor):
            w = self.asarray_like(w, X)
        f64 = torch.float64
        if block is None:
            free = self.free_bytes()
            if free is None:
                block = 65536
            else:
                # float64 copy, its square and the streamed block.
                block = block_rows(N, D * (3 * 8 + 2 * X.element_size()) + 16, free)
        with torch.no_grad():
            # A first block's mean as shift keeps the one-pass variance from cancelling.
            shift = X[: min(N, 1024)].to(device=dev).mean(dim=0, dtype=f64)
            s1 = torch.zeros(D, dtype=f64, device=dev)
            s2 = torch.zeros(D, dtype=f64, device=dev)
            lo = torch.full((D,), float("inf"), dtype=f64, device=dev)
            hi = torch.full((D,), float("-inf"), dtype=f64, device=dev)
            for _, _, Xb, wb in self._blocks(X, w, block, f64):
                Z = Xb.to(f64) - shift
                if wb is None:
                    s1 += Z.sum(dim=0)
                    s2 += (Z * Z).sum(dim=0)
                else:
                    s1 += wb @ Z
                    s2 += wb @ (Z * Z)
                torch.minimum(lo, Xb.amin(dim=0).to(f64), out=lo)
                torch.maximum(hi, Xb.amax(dim=0).to(f64), out=hi)
            if w is None:
                W = torch.full((1,), float(N), dtype=f64, device=dev)
            else:
                W = w.to(f64).sum().reshape(1).to(dev)
            host = torch.cat([s1, s2, lo, hi, shift, W]).cpu().numpy()  # one transfer
        s1, s2, lo, hi, shift = (host[i * D : (i + 1) * D].copy() for i in range(5))
        Wf = float(host[5 * D])
        m = s1 / Wf
        var = np.maximum(s2 / Wf - m * m, 0.0)
        return {"mean": m + shift, "var": var, "min": lo, "max": hi, "n": N}

    # ------------------------------------------------------------------ helpers
    def _rows(self, block_size, X, kernel, width, streamed: bool, k: int = 1) -> int:
        """Rows per block: the caller's, NumPy's default on a CPU, or from the device's
        free memory and the kernel's bytes per row."""
        N, D = X.shape
        if block_size is not None:
            return max(1, min(int(block_size), max(N, 1)))
        free = self.free_bytes()
        itemsize = X.element_size()
        if free is None:
            return max(1, min(default_block_size(N, k, width, itemsize), max(N, 1)))
        row_bytes = getattr(kernel, "row_bytes", None)
        if callable(row_bytes):
            per_row = row_bytes(itemsize, True)
            cap = N
        else:
            # A kernel that does not say what it allocates keeps the earlier rule: its
            # widest temporary (``width`` columns) about 256 MiB.
            per_row = 4 * width * itemsize
            cap = max(_MIN_BLOCK_ROWS, _LEGACY_BLOCK_BYTES // max(width * itemsize, 1))
        if streamed:
            per_row += 2 * (D * itemsize + 8)  # the two streaming buffers (rows and weights)
        return min(block_rows(N, per_row, free), max(cap, 1))

    def _blocks(self, X, w, rows, wdtype=None):
        """``(start, stop, Xb, wb)`` on the device: slices of a device-resident ``X``, or
        host-held blocks streamed (double-buffered) to the device."""
        N = X.shape[0]
        if self.is_host_held(X):
            from ._torch_stream import host_blocks

            yield from host_blocks(X, w, rows, self.device, wdtype)
            return
        if w is not None:
            # once per pass, not per block
            w = w.to(device=X.device, dtype=w.dtype if wdtype is None else wdtype)
        for start in range(0, N, rows):
            stop = min(start + rows, N)
            yield start, stop, X[start:stop], None if w is None else w[start:stop]

    def _as_device_tensor(self, X):
        if isinstance(X, torch.Tensor):
            if X.device == self.device or self.is_host_held(X):
                return X
            return X.to(self.device)
        return self._place(_from_numpy(np.asarray(X)))

    # ------------------------------------------------------------------ passes
    def ops(self, dtype) -> "TorchOps":
        """The array namespace kernels compute with, for data of ``dtype``."""
        return TorchOps(dtype, self.device, gpu_form=self.free_bytes() is not None)

    def stats_pass(self, X, sample_weight, kernel, *, block_size=None, width=None):
        """One pass of ``kernel`` over ``X`` on the device; accumulators come back in one
        transfer. See :mod:`emix.backends._generic` and ``NumpyBackend.stats_pass``.

        ``X`` on the device is sliced; host-held ``X`` streams to the device block by
        block. Block sizes come from ``block_size``, or the device's free memory and the
        kernel's ``row_bytes(itemsize, gpu_form)`` when it has one.

        Returns
        -------
        dict of name -> float64 ndarray
        """
        X = self._as_device_tensor(X)
        streamed = self.is_host_held(X)
        bs = self._rows(block_size, X, kernel, width or X.shape[1], streamed)
        with torch.no_grad(), _ieee_fp32():
            ops = self.ops(X.dtype)
            w = None
            if sample_weight is not None:
                w = self.asarray_like(sample_weight, X)
            acc = {k: torch.zeros(shape, dtype=torch.float64, device=self.device)
                   for k, shape in kernel.acc_shapes.items()}
            state = kernel.setup(ops)
            for start, stop, Xb, wb in self._blocks(X, w, bs, X.dtype):
                kernel.block(ops, state, Xb, wb, acc, start, stop)
            names = list(acc)
            host = torch.cat([acc[k].reshape(-1) for k in names]).cpu().numpy()  # one transfer
        out, pos = {}, 0
        for k in names:
            shape = kernel.acc_shapes[k]
            size = int(np.prod(shape)) if len(shape) else 1
            out[k] = host[pos : pos + size].reshape(shape).copy()
            pos += size
        return out

    def map_rows(self, X, kernel, *, block_size=None, width=None, out_dtype=None,
                 on_device=False):
        """``kernel.rows`` over every block, gathered on the device, one transfer.

        ``on_device=True`` skips the transfer and returns the tensor on the device (for
        a caller whose next step runs there too). For host-held ``X`` the rows are
        gathered on the host instead (unless ``on_device``).

        Returns
        -------
        ndarray of shape (N, kernel.n_out), or tensor on the device
        """
        X = self._as_device_tensor(X)
        N = X.shape[0]
        streamed = self.is_host_held(X)
        bs = self._rows(block_size, X, kernel, width or X.shape[1], streamed, kernel.n_out)
        with torch.no_grad(), _ieee_fp32():
            ops = self.ops(X.dtype)
            dt = X.dtype if out_dtype is None else _torch_dtype(out_dtype)
            to_host = streamed and not on_device and self.device.type == "cuda"
            out = torch.empty((N, kernel.n_out), dtype=dt,
                              device="cpu" if to_host else self.device,
                              pin_memory=to_host)
            state = kernel.setup(ops)
            for start, stop, Xb, _ in self._blocks(X, None, bs):
                # Stream-ordered before the next block overwrites the kernel's scratch.
                out[start:stop].copy_(kernel.rows(ops, state, Xb), non_blocking=to_host)
            if to_host:
                torch.cuda.current_stream(self.device).synchronize()
                return out.numpy()
            return out if on_device else out.cpu().numpy()


# --------------------------------------------------------------------------- checks
def _is_integer(dt) -> bool:
    try:
        torch.iinfo(dt)
    except TypeError:
        return False
    return True


def _check_finite_tensor(X, name: str) -> None:
    """``check_array``'s NaN/inf error, computed on X's device (one sync if all finite)."""
    if bool(torch.isfinite(X).all()):
        return
    found = []
    for mask, what in ((torch.isnan(X), "NaN"), (torch.isinf(X), "inf")):
        count = int(mask.sum())
        if count:
            rows = torch.nonzero(mask.any(dim=1)).flatten().cpu().numpy()
            cols = torch.nonzero(mask.any(dim=0)).flatten().cpu().numpy()
            found.append((what, count, rows, cols))
    raise_nan_inf(name, found)


# --------------------------------------------------------------------------- generic
def _torch_dtype(dtype):
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    dt = np.dtype(dtype)
    return {
        "f": torch.float32, "d": torch.float64, "l": torch.int64, "q": torch.int64,
        "i": torch.int32, "?": torch.bool,
    }[dt.char]


class TorchOps:
    """The array namespace a kernel computes with on the torch backend.

    The same methods, with the same meaning, as
    :class:`emix.backends.numpy_backend.NumpyOps`; arrays are tensors on ``device`` and
    ``dtype`` is the data's. Nothing here synchronises with the host except
    :meth:`to_host`.
    """

    name = "torch"
    f64 = torch.float64 if torch is not None else None

    def __init__(self, dtype, device, gpu_form: bool | None = None):
        self.dtype = _torch_dtype(dtype)
        self.device = device
        self.floor = _exp_floor(self.dtype)
        self.on_gpu = torch.device(device).type == "cuda"
        # Kernels that have a form for large blocks on a GPU (few, large kernels) take it
        # when this is True: on CUDA, or on a CPU backend given a device-memory figure.
        self.gpu_form = self.on_gpu if gpu_form is None else bool(gpu_form)
        self._scratch: dict = {}
        self.xp = torch

    def _dt(self, dtype):
        return self.dtype if dtype is None else _torch_dtype(dtype)

    def asarray(self, a, dtype=None):
        # non_blocking: an upload from pageable memory returns once the driver has staged
        # it (the source may then be freed), without a stream synchronisation.
        if isinstance(a, torch.Tensor):
            return a.to(device=self.device, dtype=self._dt(dtype), non_blocking=self.on_gpu)
        a = np.asarray(a)
        return _from_numpy(np.ascontiguousarray(a)).to(
            device=self.device, dtype=self._dt(dtype), non_blocking=self.on_gpu
        )

    def cast(self, a, dtype=None):
        return a.to(self._dt(dtype))

    def to_host(self, a) -> np.ndarray:
        return a.detach().cpu().numpy()

    def zeros(self, shape, dtype=None):
        return torch.zeros(shape, dtype=self._dt(dtype), device=self.device)

    def empty(self, shape, dtype=None):
        return torch.empty(shape, dtype=self._dt(dtype), device=self.device)

    def scratch(self, key, shape, dtype=None):
        """A reused contiguous buffer of ``shape`` per ``key``.

        One flat allocation per key, grown when a larger shape is asked for; a smaller
        block (the last one) gets a view of its front, so blocks of different sizes do
        not each hold a buffer.
        """
        dt = self._dt(dtype)
        n = 1
        for d in shape:
            n *= int(d)
        buf = self._scratch.get(key)
        if buf is None or buf.numel() < n or buf.dtype != dt:
            buf = torch.empty(n, dtype=dt, device=self.device)
            self._scratch[key] = buf
        return buf[:n].view(tuple(shape))

    def arange(self, n, dtype=None):
        return torch.arange(n, dtype=self._dt(dtype), device=self.device)

    def concat(self, arrays, axis=0):
        return torch.cat(list(arrays), dim=axis)

    def stack(self, arrays, axis=0):
        return torch.stack(list(arrays), dim=axis)

    def matmul(self, a, b, out=None):
        if out is not None and a.ndim == 2 and b.ndim == 2:
            return torch.mm(a, b, out=out)
        r = torch.matmul(a, b)
        if out is not None:
            out.copy_(r)
            return out
        return r

    def multiply(self, a, b, out=None):
        return torch.mul(a, b, out=out) if out is not None else torch.mul(a, b)

    def subtract(self, a, b, out=None):
        return torch.sub(a, b, out=out) if out is not None else torch.sub(a, b)

    def sumsq(self, a, axis=0, out=None):
        if out is not None:
            return torch.sum(a * a, dim=axis, out=out)
        return torch.sum(a * a, dim=axis)

    def argmin(self, a, axis):
        return torch.argmin(a, dim=axis)

    def one_hot_cols_(self, LT, labels):
        LT.zero_()
        LT.scatter_(0, labels[None, :], 1.0)
        return LT

    def weighted_stats(self, R, F):
        # (K x rows) @ (rows x M): measured 1.7x faster in MKL than F @ R^T.
        return R @ F.T

    def sum(self, a, axis=None, dtype=None):
        dt = _torch_dtype(dtype)
        if axis is None:
            return a.sum(dtype=dt)
        return a.sum(dim=axis, dtype=dt)

    def sum64(self, a, axis=None):
        return self.sum(a, axis, torch.float64)

    def dot64(self, w, v):
        return torch.dot(w.to(torch.float64), v.to(torch.float64))

    def exp(self, a):
        return torch.exp(a)

    def log(self, a):
        return torch.log(a)

    def log1p(self, a):
        return torch.log1p(a)

    def sqrt(self, a):
        return torch.sqrt(a)

    def lgamma(self, a):
        return torch.lgamma(a)

    def digamma(self, a):
        return torch.digamma(a)

    def where(self, cond, a, b):
        return torch.where(cond, a, b)

    def isfinite(self, a):
        return torch.isfinite(a)

    def equal(self, a, b):
        return torch.eq(a, b)

    def take(self, a, idx, axis=0):
        return torch.index_select(a, axis, idx)

    def add_at(self, target, idx, values):
        """``target[idx] += values`` with repeated indices summed; target (n,) float64,
        idx and values flat of one length. On a GPU the additions into one cell are
        atomic and their order is not fixed: sums may differ between runs in the last
        bits (float64), as with the HMM's ``index_add_`` reductions."""
        target.index_add_(0, idx, values.to(target.dtype))

    def softmax_cols_(self, LT, dead=None):
        # Dead components have a -inf log-joint, which the floor turns into exactly 0.
        return _softmax_cols_(LT, self.floor, self.gpu_form)
