"""fastbp: exact loss gradients of fully-connected networks by backpropagation, fast, on the CPU.

Public names: :class:`MLP`, :data:`ACTIVATIONS`, :func:`finite_difference_grad`,
:func:`check_grad`, the losses :data:`LOSSES`, the compiled drivers in
:mod:`fastbp.kernels`; training with :meth:`MLP.fit`, the optimisers :class:`SGD` and
:class:`Adam`, the full-batch solvers :class:`LBFGS`, :class:`LevenbergMarquardt` and
:class:`BayesianRegularization`, and :class:`EarlyStopping`; :func:`save` and :func:`load`;
built-in data sets in :mod:`fastbp.datasets`. The submodules with an optional extra,
:mod:`fastbp.optimize`, :mod:`fastbp.dask`, :mod:`fastbp.sklearn` and :mod:`fastbp.onnx`, are
imported on first access (``fastbp.sklearn.MLPRegressor`` works after ``import fastbp``), not by
``import fastbp``.
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


def __getattr__(name: str):
    """Import an optional submodule (``fastbp.optimize``, ``.dask``, ``.sklearn``, ``.onnx``) on
    first access (PEP 562); a missing extra raises ``ImportError`` naming its pip command."""
    from ._extras import EXTRAS

    if name in EXTRAS:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    from ._extras import EXTRAS

    return sorted({*globals(), *EXTRAS})
