"""Layer sizes -> offsets into the one flat parameter vector theta, and W/b views of it.

Layout (a contract): for ``l = 1..L``, ``W^l`` row-major with shape ``(M^l, M^(l-1))``, then
``b^l`` with shape ``(M^l,)``. ``n_params = sum_l M^l (M^(l-1) + 1)``.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

__all__ = ["LayerSlice", "check_sizes", "layer_slices", "locate", "n_params", "views"]


class LayerSlice(NamedTuple):
    """Where layer ``l`` (1-based) lives in theta: ``W = theta[w_start:b_start]``, ``b`` after."""

    layer: int
    w_start: int
    b_start: int
    stop: int
    shape: tuple[int, int]


def check_sizes(sizes: Sequence[int]) -> tuple[int, ...]:
    """Validate layer widths ``[M^0, ..., M^L]`` and return them as a tuple of int.

    Raises
    ------
    TypeError
        When ``sizes`` is not a sequence of integers.
    ValueError
        When it has fewer than 2 entries or an entry below 1.
    """
    if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__"):
        raise TypeError(
            f"sizes: expected a sequence of at least 2 positive ints, got {type(sizes).__name__}"
        )
    items = list(np.asarray(sizes).ravel()) if isinstance(sizes, np.ndarray) else list(sizes)
    if len(items) < 2:
        raise ValueError(
            f"sizes: expected at least 2 layer widths [n_inputs, ..., n_outputs], got {len(items)}"
        )
    out = []
    for k, m in enumerate(items):
        if isinstance(m, (bool, np.bool_)) or not isinstance(m, numbers.Integral):
            raise TypeError(f"sizes[{k}]: expected a positive int, got {m!r}")
        if m < 1:
            raise ValueError(f"sizes[{k}]: expected a positive int, got {int(m)}")
        out.append(int(m))
    return tuple(out)


def layer_slices(sizes: Sequence[int]) -> tuple[LayerSlice, ...]:
    """Offsets of every layer's weights and biases in theta."""
    slices = []
    start = 0
    for layer, (m_in, m_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        b_start = start + m_out * m_in
        stop = b_start + m_out
        slices.append(LayerSlice(layer, start, b_start, stop, (m_out, m_in)))
        start = stop
    return tuple(slices)


def n_params(sizes: Sequence[int]) -> int:
    """Number of parameters of a network with layer widths ``sizes``."""
    return sum(m_out * (m_in + 1) for m_in, m_out in zip(sizes[:-1], sizes[1:]))


def views(theta: np.ndarray, sizes: Sequence[int]) -> tuple[tuple, tuple]:
    """``(weights, biases)``: tuples of views ``W^l`` (M^l, M^(l-1)) and ``b^l`` into theta."""
    weights = []
    biases = []
    for s in layer_slices(sizes):
        weights.append(theta[s.w_start : s.b_start].reshape(s.shape))
        biases.append(theta[s.b_start : s.stop])
    return tuple(weights), tuple(biases)


def locate(sizes: Sequence[int], index: int) -> str:
    """Human-readable name of flat parameter ``index``, e.g. ``"W2[3, 0]"`` or ``"b1[4]"``."""
    for s in layer_slices(sizes):
        if s.w_start <= index < s.b_start:
            i, j = divmod(index - s.w_start, s.shape[1])
            return f"W{s.layer}[{i}, {j}]"
        if s.b_start <= index < s.stop:
            return f"b{s.layer}[{index - s.b_start}]"
    raise IndexError(f"index: {index} is outside theta of length {n_params(sizes)}")
