"""Whole sequences out of a source's row blocks, for HMMs over files.

A sequence's forward-backward needs all its rows at once, but a source's blocks are cut
by row count, not at sequence boundaries. :func:`sequence_groups` carries the rows of a
sequence that a block cuts over to the next block, so that every group it yields holds
whole sequences; memory is bounded by a block plus the longest sequence.
"""

from __future__ import annotations

import numpy as np

from ..exceptions import InputError

__all__ = ["sequence_groups"]


def sequence_groups(blocks, lengths, label: str = "X"):
    """Groups of whole sequences from an iterator of row blocks.

    Parameters
    ----------
    blocks : iterable of ndarray of shape (rows_b, D)
        The data's row blocks in order (a source's ``blocks()``).
    lengths : array-like of int of shape (S,)
        The lengths of the sequences, summing to the number of rows.
    label : str
        Names the data in errors.

    Yields
    ------
    Xg : ndarray of shape (rows_g, D)
        The rows of the group's sequences (a view of a block when no sequence of the
        group was cut).
    lengths_g : ndarray of int64 of shape (S_g,)
        The lengths of the group's sequences.
    row0 : int
        The number of the group's first row in the whole data.
    seq0 : int
        The number of the group's first sequence in the whole data.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    ends = np.cumsum(lengths)
    total = int(ends[-1]) if len(ends) else 0
    pieces: list = []  # rows read but not yet yielded: the start of a cut sequence
    row0 = 0  # first row of pieces
    offset = 0  # rows read so far
    seq = 0  # first sequence not yet yielded
    for Xb in blocks:
        pieces.append(Xb)
        offset += Xb.shape[0]
        done = int(np.searchsorted(ends, offset, side="right"))
        if done == seq:
            continue
        buf = pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
        n = int(ends[done - 1]) - row0
        yield buf[:n], lengths[seq:done], row0, seq
        # Own the carried rows, so that the block they came from can be freed.
        pieces = [np.array(buf[n:])] if n < buf.shape[0] else []
        row0 += n
        seq = done
    if offset != total:
        raise InputError(
            f"{label} has {offset} rows but the lengths of its sequences sum to {total}"
        )
