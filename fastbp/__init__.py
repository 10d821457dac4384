"""fastbp: exact loss gradients of fully-connected networks by backpropagation, fast, on the CPU.

Public names: :class:`MLP`, :data:`ACTIVATIONS`, :func:`finite_difference_grad`,
:func:`check_grad`, and the compiled drivers in :mod:`fastbp.kernels`.
"""

from . import kernels
from .activations import ACTIVATIONS
from .gradcheck import GradCheck, check_grad, finite_difference_grad
from .network import MLP

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "MLP",
    "GradCheck",
    "__version__",
    "check_grad",
    "finite_difference_grad",
    "kernels",
]
