"""Write a file so that it appears whole or not at all."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import BinaryIO

__all__ = ["write_atomic"]

# Random temporary names collide only by extraordinary chance; a few retries make the
# chance irrelevant without looping forever on a directory that refuses every name.
_NAME_ATTEMPTS = 16


def write_atomic(path, write: Callable[[BinaryIO], object]) -> None:
    """Write ``path`` through ``write(fh)`` so that readers see the old file or the new.

    ``write`` fills a temporary file in the same directory as ``path`` (the final rename
    must stay on one file system, where :func:`os.replace` is atomic); the data are
    flushed to disk and the temporary file is renamed over ``path``. When anything fails,
    the temporary file is removed and ``path`` is left as it was.

    The temporary file is created with mode ``0o666`` and the process's umask applied by
    the operating system, so the result has the permissions a plain ``open(path, "wb")``
    would give it. The umask is never read or changed (changing it, even briefly, would
    race with other threads creating files).

    Parameters
    ----------
    path : str or path-like
    write : callable ``(fh) -> object``
        Writes the whole content to ``fh``, a binary file object open for writing; its
        return value is ignored. It must not close ``fh``.

    Raises
    ------
    OSError
        When the temporary file cannot be created, written or renamed, or whatever
        ``write`` raises.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for attempt in range(_NAME_ATTEMPTS):
        tmp = os.path.join(directory, f".{base}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)
            break
        except FileExistsError:
            if attempt == _NAME_ATTEMPTS - 1:
                raise
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
