"""fastbp: exact loss gradients of fully-connected networks by backpropagation, fast, on the CPU.

Public names: :class:`MLP`, :data:`ACTIVATIONS`, :func:`finite_difference_grad`,
:func:`check_grad`, the compiled drivers in :mod:`fastbp.kernels`; training with
:meth:`MLP.fit` and the optimisers :class:`SGD` and :class:`Adam`; :func:`save` and :func:`load`;
built-in data sets in :mod:`fastbp.datasets`.
"""

from . import datasets, kernels
from .activations import ACTIVATIONS
from .gradcheck import GradCheck, check_grad, finite_difference_grad
from .io import ModelFileError, load, save
from .network import MLP
from .optim import SGD, Adam, Optimizer
from .train import History, TrainingDiverged

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "MLP",
    "SGD",
    "Adam",
    "GradCheck",
    "History",
    "ModelFileError",
    "Optimizer",
    "TrainingDiverged",
    "__version__",
    "check_grad",
    "datasets",
    "finite_difference_grad",
    "kernels",
    "load",
    "save",
]
