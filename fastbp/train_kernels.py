"""The compiled steps of :meth:`MLP.fit`, by their former name.

They live in :mod:`fastbp._kernels.train_steps` (the compiled layer is one subpackage,
:mod:`fastbp._kernels`); this module re-exports its public names so that
``fastbp.train_kernels.train_steps`` and the other names below keep working.
"""

from __future__ import annotations

from ._kernels.train_steps import (
    DEFER_DEPTH,
    LOSS_NOT_FINITE,
    OK,
    PARAMS_NOT_FINITE,
    defer_depth,
    one_sample_step,
    sgd_sample_steps,
    train_steps,
)

__all__ = [
    "DEFER_DEPTH",
    "LOSS_NOT_FINITE",
    "OK",
    "PARAMS_NOT_FINITE",
    "defer_depth",
    "one_sample_step",
    "sgd_sample_steps",
    "train_steps",
]
