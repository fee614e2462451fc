"""Array backends. The only place in emix that names NumPy's or PyTorch's array types.

``resolve_backend(X, device)`` picks the backend for a fit: torch when ``device`` names
one (``"cuda"``, ``"cuda:1"``, ``"cpu"`` with torch, ``"torch"``) or when ``X`` is a torch
tensor; NumPy otherwise. torch is imported only on that path.
"""

from __future__ import annotations

import sys

from .numpy_backend import NumpyBackend, default_block_size

__all__ = ["NumpyBackend", "resolve_backend", "is_torch_tensor", "default_block_size"]

_NUMPY = NumpyBackend()


def is_torch_tensor(X) -> bool:
    """True for a torch tensor, without importing torch when it is not loaded."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(X, torch.Tensor)


def resolve_backend(X=None, device=None):
    """The backend that should run a fit or prediction.

    Parameters
    ----------
    X : array-like or torch.Tensor, optional
    device : str or None
        None or ``"numpy"``: NumPy unless ``X`` is a tensor (then the tensor's device).
        Anything else is handed to torch (``"cpu"``, ``"cuda"``, ``"cuda:0"``, ``"mps"``).
    """
    if device in (None, "numpy"):
        if X is not None and is_torch_tensor(X):
            from .torch_backend import TorchBackend

            return TorchBackend(X.device)
        return _NUMPY
    from .torch_backend import TorchBackend

    return TorchBackend("cpu" if device == "torch" else device)
