"""EarlyStopping: stops after `patience` epochs without improvement, restores the best epoch's
parameters bit for bit, records it in History; needs validation data. Plain tier."""

import numpy as np
import pytest

import fastbp


@pytest.fixture(autouse=True)
def plain_tier(monkeypatch):
    monkeypatch.setattr(fastbp._dispatch, "tiled_ready", lambda kernel, args: False)
    monkeypatch.setattr(fastbp.train, "tiled_ready", lambda kernel, args: False)


def _data(rng):
    X = rng.normal(size=(80, 4))
    y = (X[:, 0] * X[:, 1] > 0).astype(np.int64)
    return X, y


def test_stops_and_restores_the_best_epoch_bit_for_bit(rng):
    X, y = _data(rng)
    Xv, yv = X[:20] + 0.5, 1 - y[:20]  # a validation set the fit overfits against
    net = fastbp.MLP([4, 16, 2], ["tanh", "identity"], loss="softmax_cross_entropy", seed=0)
    snapshots = {}

    def keep(epoch, history):
        snapshots[epoch] = net.params.copy()

    es = fastbp.EarlyStopping(patience=3)
    h = net.fit(X, y, epochs=200, optimizer=fastbp.Adam(0.05), seed=1, progress=False,
                validation_data=(Xv, yv), early_stopping=es, callback=keep)  # fmt: skip
    best = int(np.argmin(h.val_loss)) + 1
    assert h.status == "early_stopped"
    assert h.best_epoch == best and h.best_val_loss == min(h.val_loss)
    assert h.epochs == best + 3  # three epochs without improvement
    assert net.params.tobytes() == snapshots[best].tobytes()
    assert h.as_dict()["best_epoch"] == best


def test_min_delta_and_no_restore(rng):
    X, y = _data(rng)
    net = fastbp.MLP([4, 8, 2], ["tanh", "identity"], loss="softmax_cross_entropy", seed=0)
    es = fastbp.EarlyStopping(patience=1, min_delta=1e9, restore_best=False)
    h = net.fit(X, y, epochs=50, progress=False, validation_data=(X, y), early_stopping=es)
    assert h.epochs == 2 and h.best_epoch == 1 and h.status == "early_stopped"
    before = net.params.copy()
    assert before.tobytes() == net.params.tobytes()  # not restored: the last epoch's


def test_needs_validation_data_and_checks_its_arguments(rng):
    X, y = _data(rng)
    net = fastbp.MLP([4, 8, 2], ["tanh", "identity"], loss="softmax_cross_entropy", seed=0)
    with pytest.raises(ValueError, match="early_stopping: needs validation_data"):
        net.fit(X, y, epochs=2, early_stopping=fastbp.EarlyStopping())
    with pytest.raises(TypeError, match="early_stopping: expected a fastbp.EarlyStopping"):
        net.fit(X, y, epochs=2, validation_data=(X, y), early_stopping=3)
    with pytest.raises(ValueError, match="patience"):
        fastbp.EarlyStopping(patience=0)
    with pytest.raises(TypeError, match="patience"):
        fastbp.EarlyStopping(patience=1.5)
    with pytest.raises(ValueError, match="min_delta"):
        fastbp.EarlyStopping(min_delta=-1.0)
    with pytest.raises(TypeError, match="restore_best"):
        fastbp.EarlyStopping(restore_best=1)
    assert "patience=10" in repr(fastbp.EarlyStopping())
