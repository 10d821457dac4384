"""fastbp: exact loss gradients of fully-connected networks by backpropagation, fast, on the CPU.

Public names: :class:`MLP`, :data:`ACTIVATIONS`, :func:`finite_difference_grad`,
:func:`check_grad`, the losses :data:`LOSSES`, the compiled drivers in
:mod:`fastbp.kernels`; training with :meth:`MLP.fit`, the optimisers :class:`SGD` and
:class:`Adam`, the full-batch solvers :class:`LBFGS`, :class:`LevenbergMarquardt` and
:class:`BayesianRegularization`, and :class:`EarlyStopping`; :func:`save` and :func:`load`;
built-in data sets in :mod:`fastbp.datasets`.
"""

from . import datasets, kernels
from .activations import ACTIVATIONS
from .early_stopping import EarlyStopping
from .gradcheck import GradCheck, check_grad, finite_difference_grad
from .io import ModelFileError, load, save
from .losses import LOSSES
from .network import MLP
from .optim import SGD, Adam, Optimizer
from .solvers import LBFGS, BayesianRegularization, LevenbergMarquardt
from .train import History, TrainingDiverged

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "LBFGS",
    "LOSSES",
    "MLP",
    "SGD",
    "Adam",
    "BayesianRegularization",
    "EarlyStopping",
    "GradCheck",
    "History",
    "LevenbergMarquardt",
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
