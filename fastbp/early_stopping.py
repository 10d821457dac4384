"""Early stopping for :meth:`fastbp.MLP.fit`: watch the validation loss, stop, restore the best."""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["EarlyStopping"]


class EarlyStopping:
    """Stop :meth:`fastbp.MLP.fit` when the validation loss stops improving.

    After each epoch the validation loss is compared with the best so far: an epoch improves
    when its loss is below ``best - min_delta``. After ``patience`` epochs in a row without an
    improvement, training stops (``History.status == "early_stopped"``). With ``restore_best``
    the parameters of the best epoch are put back at the end of the fit, bit for bit (also
    when the fit ran all its epochs); the optimiser's state is left as it is.
    ``History.best_epoch`` and ``History.best_val_loss`` record the best epoch (counted from 1)
    and its loss.

    Parameters
    ----------
    patience : int, default 10
        Epochs without improvement before stopping, >= 1.
    min_delta : float, default 0.0
        Smallest decrease of the validation loss that counts as an improvement, >= 0.
    restore_best : bool, default True
        Restore the best epoch's parameters when the fit ends.

    Examples
    --------
    >>> import numpy as np, fastbp
    >>> net = fastbp.MLP([2, 8, 1], ["tanh", "identity"], seed=0)
    >>> X = np.random.default_rng(0).normal(size=(64, 2)); Y = X[:, :1] * X[:, 1:]
    >>> h = net.fit(X, Y, epochs=50, validation_data=(X, Y), progress=False,
    ...             early_stopping=fastbp.EarlyStopping(patience=3))
    >>> h.best_epoch >= 1
    True
    """

    def __init__(self, patience: int = 10, min_delta: float = 0.0, restore_best: bool = True):
        if isinstance(patience, (bool, np.bool_)) or not isinstance(patience, numbers.Integral):
            raise TypeError(f"patience: expected a positive int, got {patience!r}")
        if patience < 1:
            raise ValueError(f"patience: expected a positive int, got {int(patience)}")
        if isinstance(min_delta, (bool, np.bool_)) or not isinstance(min_delta, numbers.Real):
            raise TypeError(f"min_delta: expected a float >= 0, got {min_delta!r}")
        if not (min_delta >= 0 and np.isfinite(min_delta)):
            raise ValueError(f"min_delta: expected a finite float >= 0, got {min_delta!r}")
        if not isinstance(restore_best, (bool, np.bool_)):
            raise TypeError(f"restore_best: expected a bool, got {restore_best!r}")
        self.patience = int(patience)
        self.min_delta = float(min_delta)
        self.restore_best = bool(restore_best)

    def __repr__(self) -> str:
        return (
            f"EarlyStopping(patience={self.patience}, min_delta={self.min_delta}, "
            f"restore_best={self.restore_best})"
        )


class _Watch:
    """One fit's early-stopping state: the best loss and epoch, a copy of the best theta."""

    def __init__(self, rule: EarlyStopping, theta: np.ndarray) -> None:
        self.rule = rule
        self.best = np.inf
        self.best_epoch = 0
        self.wait = 0
        self.saved = np.empty_like(theta) if rule.restore_best else None

    def update(self, epoch: int, val_loss: float, theta: np.ndarray) -> bool:
        """Record an epoch; True when training should stop."""
        if val_loss < self.best - self.rule.min_delta or self.best_epoch == 0:
            self.best = val_loss
            self.best_epoch = epoch
            self.wait = 0
            if self.saved is not None:
                np.copyto(self.saved, theta)
            return False
        self.wait += 1
        return self.wait >= self.rule.patience

    def restore(self, theta: np.ndarray) -> None:
        """Put the best epoch's parameters back (with ``restore_best``)."""
        if self.saved is not None and self.best_epoch > 0:
            np.copyto(theta, self.saved)
