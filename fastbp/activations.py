"""Activation names and the integer codes the kernels branch on.

The compiled scalar functions ``h(code, a)`` and ``h'(code, a)`` live in :mod:`fastbp.kernels`,
beside the kernels that call them: Numba's on-disk cache is invalidated only when the file that
defines a kernel changes, so a kernel and its callees share one module. Kernels select an
activation by integer code, branched on once per element in a tight switch, never by passing a
compiled function as an argument (a kernel that receives a function never loads from the disk
cache).

=============  ===========================  =====================================
name           h(a)                         h'(a)
=============  ===========================  =====================================
sigmoid        1 / (1 + e^-a)               h(a) (1 - h(a)), from e^-|a|
tanh           tanh(a)                      1 - tanh(a)^2, from e^-2|a|
relu           max(a, 0)                    1 if a > 0 else 0
leaky_relu     a if a > 0 else 0.01 a       1 if a > 0 else 0.01
softplus       log(1 + e^a)                 sigmoid(a)
identity       a                            1
=============  ===========================  =====================================

Sigmoid, tanh and softplus are evaluated in forms that never overflow (``exp`` of a
non-positive number only), so they are finite and accurate for any finite ``a``, including
``|a| = 1000``. The derivative of ``relu`` at 0 is taken as 0 and that of ``leaky_relu`` as
0.01, as PyTorch does.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["ACTIVATIONS", "LEAKY_SLOPE", "codes_for", "resolve"]

#: Valid activation names, in code order.
ACTIVATIONS: tuple[str, ...] = ("sigmoid", "tanh", "relu", "leaky_relu", "softplus", "identity")

#: Slope of ``leaky_relu`` for negative inputs.
LEAKY_SLOPE = 0.01

_CODE = {name: code for code, name in enumerate(ACTIVATIONS)}


def resolve(activations: str | Sequence[str], n_layers: int) -> tuple[str, ...]:
    """Expand ``activations`` to one validated name per layer.

    Parameters
    ----------
    activations : str or sequence of str
        One name used for every layer, or exactly ``n_layers`` names.
    n_layers : int
        Number of layers ``L``.

    Returns
    -------
    tuple of str
        ``L`` names.

    Raises
    ------
    ValueError
        For an unknown name (the message lists the valid ones) or the wrong count.
    TypeError
        When ``activations`` is neither a string nor a sequence of strings.
    """
    if isinstance(activations, str):
        names = (activations,) * n_layers
    else:
        try:
            names = tuple(activations)
        except TypeError:
            raise TypeError(
                "activations: expected a name or a sequence of names, got "
                f"{type(activations).__name__}"
            ) from None
        if len(names) != n_layers:
            raise ValueError(
                f"activations: expected 1 name or exactly {n_layers} names (one per layer), "
                f"got {len(names)}"
            )
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"activations: expected names (str), got {type(name).__name__}")
        if name not in _CODE:
            raise ValueError(
                f"activations: unknown activation {name!r}; valid names are "
                + ", ".join(ACTIVATIONS)
            )
    return names


def codes_for(names: Sequence[str]) -> np.ndarray:
    """Integer codes (int64 array) of validated activation ``names``, as the kernels use them."""
    return np.array([_CODE[name] for name in names], dtype=np.int64)
