"""The threading, allocation and determinism guarantees of the squared loss, for every loss of the
table and with sample weights: the tiled drivers' loss-code signatures against the plain tier bit
for bit, 1 and 2 threads bitwise, no allocation per call, repeated calls identical.

The tiled drivers compile their loss-code signature (``loss_code, weights``) for tens of seconds
each, cold: the full check (:func:`test_tiled_loss_codes`) is marked slow and runs in one fresh
interpreter. The default run keeps the cheap checks: the squared loss passes no loss code (so it
compiles exactly its classic signatures), the loss kernels that both tiers share are the same
objects and allocate nothing, and loss and loss_and_grad agree bitwise and repeat bitwise on the
plain tier, for every loss with and without weights.
"""

import os

import numba
import numpy as np
import pytest
from helpers import run_script, script_result
from numba.core.runtime import _nrt_python as _nrt
from numba.core.runtime import rtsys

import fastbp
from fastbp import _dispatch, _plain
from fastbp._kernels import drivers
from fastbp._kernels import losses as klosses
from fastbp._kernels.layers import IDENTITY

NO_JIT = pytest.mark.skipif(
    os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0"),
    reason="NRT allocation counters need compiled code",
)

# One case per loss of the table and weight convention: (loss code, weighted).
CASES = [(0, True), (1, False), (1, True), (2, False), (2, True)]


def _targets(code, rng, B, m, dtype=np.float64):
    if code == klosses.SOFTMAX_CE:
        Y = rng.random(size=(B, m))
        return (Y / Y.sum(axis=1, keepdims=True)).astype(dtype)
    if code == klosses.SIGMOID_CE:
        return rng.random(size=(B, m)).astype(dtype)
    return rng.normal(size=(B, m)).astype(dtype)


# --------------------------------------------------------------------------------------------
# Default run: cheap.
# --------------------------------------------------------------------------------------------
def test_both_tiers_share_the_loss_kernels():
    """The plain tier and the tiled drivers call the same compiled loss pieces (one object each),
    so their bits at the output layer cannot drift apart (the layers are checked for the
    squared loss in tests/test_plain_tier.py)."""
    for name in ("loss_delta", "loss_sum", "output_delta", "residual_loss", "check_loss_arguments"):
        assert getattr(_plain, name) is getattr(drivers, name) is getattr(klosses, name), name


@pytest.fixture
def recorded(monkeypatch):
    """Argument counts of every driver call (plain tier) and of every training-kernel call."""
    calls = []

    def recorder(op, f):
        def record(*args):
            calls.append((op, len(args)))
            return f(*args)

        return record

    monkeypatch.setattr(_dispatch, "tiled_ready", lambda kernel, args: False)
    monkeypatch.setattr(fastbp.train, "tiled_ready", lambda kernel, args: False)
    for op, f in list(_dispatch.PLAIN.items()):
        monkeypatch.setitem(_dispatch.PLAIN, op, recorder(op, f))
    monkeypatch.setattr(
        fastbp.train, "plain_train_steps", recorder("train_steps", _plain.plain_train_steps)
    )
    return calls


@pytest.mark.parametrize("loss", fastbp.LOSSES)
def test_only_cross_entropy_or_weights_pass_a_loss_code(recorded, loss, rng):
    """The squared loss without weights calls every driver with its classic arguments (the
    signatures it compiled before the loss table); a cross-entropy loss, or weights, add the
    two (three for the training kernel) trailing ones."""
    # Past TINY_PARAMS (a tiny squared network takes its own single-sample kernels), the
    # shapes and types of tests/test_losses.py (the same plain-tier compiles).
    net = fastbp.MLP([40, 70, 12], ["tanh", "identity"], loss=loss, seed=0)
    X = rng.normal(size=(8, 40))
    Y = _targets(fastbp.LOSSES.index(loss), rng, 8, 12)
    val = (X, Y)
    net.forward(X), net.loss(X, Y), net.loss_and_grad(X, Y)
    net.fit(X, Y, epochs=1, batch_size=4, progress=False, validation_data=val)
    extended = loss != "squared"
    classic = {"forward": 7, "loss": 7, "loss_and_grad": 9, "train_steps": 23}
    for op, n in recorded:
        more = 0 if op == "forward" or not extended else (3 if op == "train_steps" else 2)
        assert n == classic[op] + more, (op, n)
    recorded.clear()
    net.loss(X, Y, sample_weight=np.ones(8)), net.loss_and_grad(X, Y, sample_weight=np.ones(8))
    net.fit(X, Y, epochs=1, batch_size=4, progress=False, sample_weight=np.ones(8))
    assert {(op, n - classic[op]) for op, n in recorded} == {
        ("loss", 2),
        ("loss_and_grad", 2),
        ("train_steps", 3),
    }


@pytest.mark.parametrize("code,weighted", CASES)
def test_loss_and_grad_agree_and_repeat_bitwise(code, weighted, monkeypatch, rng):
    """For every loss, with and without weights (one of them 0): loss equals loss_and_grad's
    loss bit for bit, and repeated calls give the same bits (plain tier)."""
    monkeypatch.setattr(_dispatch, "tiled_ready", lambda kernel, args: False)
    net = fastbp.MLP([40, 70, 12], ["tanh", "identity"], loss=fastbp.LOSSES[code], seed=1)
    X = rng.normal(size=(67, 40))
    Y = _targets(code, rng, 67, 12)
    w = None
    if weighted:
        w = rng.random(67) * 3
        w[5] = 0.0
    first = net.loss_and_grad(X, Y, sample_weight=w)
    again = net.loss_and_grad(X, Y, sample_weight=w)
    assert np.float64(first[0]).tobytes() == np.float64(again[0]).tobytes()
    assert first[1].tobytes() == again[1].tobytes()
    assert np.float64(net.loss(X, Y, sample_weight=w)).tobytes() == np.float64(first[0]).tobytes()


@numba.njit
def _loss_kernels_loop(codes, a, z, Y, w, none, labels, out, n):
    total = 0.0
    for _ in range(n):
        for code in range(klosses.N_LOSSES):
            klosses.check_loss_arguments(codes, a.shape[0], code, w)
            for weights in (w, none):
                total += klosses.loss_delta(code, a, z, Y, weights)
                total += klosses.loss_sum(code, z, Y, weights)
        total += klosses.one_hot(labels, out) + klosses.check_targets(1, out, 1e-9)[0]
    return total


@NO_JIT
def test_loss_kernels_allocate_nothing(rng):
    """Every loss's delta and sum (with and without weights), the argument checks, labels to
    one-hot and the target check, from compiled code: 11 passes allocate what 1 does, the
    boxing of the 8 array arguments. In this process: Numba's statistics switch (what
    NUMBA_NRT_STATS=1 sets at start-up) saves a fresh interpreter."""
    B, m = 33, 10
    args = (
        np.array([IDENTITY]), np.ones((B, m)), rng.normal(size=(B, m)), np.full((B, m), 0.1),
        rng.random(B), np.empty(0), np.arange(B) % m, np.empty((B, m)),
    )  # fmt: skip
    _loss_kernels_loop(*args, 1)
    was_on = _nrt.memsys_stats_enabled()
    _nrt.memsys_enable_stats()
    try:
        counts = {}
        for n in (1, 11):
            before = rtsys.get_allocation_stats()
            _loss_kernels_loop(*args, n)
            after = rtsys.get_allocation_stats()
            counts[n] = [after.alloc - before.alloc, after.mi_alloc - before.mi_alloc]
    finally:
        if not was_on:
            _nrt.memsys_disable_stats()
    assert counts[1] == counts[11] == [8, 8]


# --------------------------------------------------------------------------------------------
# Slow: the tiled drivers' loss-code signatures.
# --------------------------------------------------------------------------------------------
TILED_SCRIPT = """
import hashlib, json
import numba
import numpy as np
from numba.core.runtime import rtsys
import fastbp
from fastbp import _dispatch, _plain, kernels

CASES = CASES_
TARGETS = TARGETS_

def digest(*arrays):
    return hashlib.sha256(b"".join(np.ascontiguousarray(a).tobytes() for a in arrays)).hexdigest()

@numba.njit
def loop(theta, sizes, codes, X, Y, A, Z, tmp, grad, code, w, n):
    total = 0.0
    for _ in range(n):
        total += kernels.loss_and_grad(theta, sizes, codes, X, Y, A, Z, tmp, grad, code, w)
        total += kernels.loss(theta, sizes, codes, X, Y, A, Z, code, w)
    return total

rng = np.random.default_rng(4)
out = {}
# (sizes, batch): serial twin for larger networks (2 sample tiles and a tail); threaded.
for sizes, B in (((40, 70, 12), 67), ((784, 128, 10), 256)):
    net = fastbp.MLP(sizes, ["tanh", "identity"], seed=2)
    theta, s, c = net.kernel_args()
    X = rng.normal(size=(B, sizes[0]))
    A, Z, tmp = kernels.make_workspace(sizes, B)
    grad = np.empty_like(theta)
    parallel = kernels.uses_threads(sizes, B)
    for code, weighted in CASES:
        Y = TARGETS(code, rng, B, sizes[-1])
        w = rng.random(B) * 3 if weighted else np.empty(0)
        if weighted:
            w[1] = 0.0
        args = (theta, s, c, X, Y, A, Z, tmp, grad, code, w)
        res = {"parallel": bool(parallel)}
        value = _plain.plain_loss_and_grad(*args)
        plain_loss = _plain.plain_loss(*args[:7], code, w)
        res["plain"] = digest(grad, np.float64(value), np.float64(plain_loss))
        lag = _dispatch.tiled("loss_and_grad", parallel, theta.shape[0], X.shape[0])
        lo = _dispatch.tiled("loss", parallel, 0)
        for nt in ((1, 2, 1) if parallel else (1,)):
            numba.set_num_threads(nt)
            value = lag(*args)
            res.setdefault("tiled", []).append(
                digest(grad, np.float64(value), np.float64(lo(*args[:7], code, w)))
            )
        numba.set_num_threads(2)
        if parallel:
            loop(*args, 1)
            counts = {}
            for n in (1, 11):
                before = rtsys.get_allocation_stats()
                loop(*args, n)
                after = rtsys.get_allocation_stats()
                counts[n] = [after.alloc - before.alloc, after.mi_alloc - before.mi_alloc]
            res["alloc"] = counts
        out[f"{sizes} {code} {weighted}"] = res

# The training kernel's loss-code signature (tiled, serial) against the plain tier's steps.
fits = []
for tier in ("tiled", "plain"):
    if tier == "plain":
        _dispatch.tiled_ready = lambda kernel, args: False
        fastbp.train.tiled_ready = lambda kernel, args: False
    net = fastbp.MLP([20, 33, 5], ["tanh", "identity"], loss="softmax_cross_entropy", seed=0)
    Xf = np.random.default_rng(1).normal(size=(50, 20))
    yf = np.arange(50) % 5
    wf = np.random.default_rng(2).random(50)
    h = net.fit(Xf, yf, epochs=2, batch_size=16, progress=False, sample_weight=wf, seed=0,
                validation_data=(Xf, yf))
    fits.append(digest(net.params, np.array(h.loss), np.array(h.val_loss)))
out["fit"] = fits
print("RESULT " + json.dumps(out))
"""

TARGETS_SOURCE = """
def _targets(code, rng, B, m):
    if code == 1:
        Y = rng.random(size=(B, m))
        return Y / Y.sum(axis=1, keepdims=True)
    if code == 2:
        return rng.random(size=(B, m))
    return rng.normal(size=(B, m))
"""


@pytest.fixture(scope="module")
def tiled():
    script = TARGETS_SOURCE + TILED_SCRIPT.replace("CASES_", repr(CASES)).replace(
        "TARGETS_", "_targets"
    )
    env = {"NUMBA_NUM_THREADS": "2", "NUMBA_NRT_STATS": "1", "FASTBP_BACKGROUND_COMPILE": "0"}
    return script_result(run_script(script, timeout=2400, **env))


@NO_JIT
@pytest.mark.slow
def test_tiled_loss_codes(tiled):
    """Every loss and weight convention: the tiled serial and threaded drivers (loss-code
    signature) give the plain tier's bits; 1, 2 and 1 threads give the same bits; 11 threaded
    calls from compiled code allocate what 1 does (the boxing of the 10 array arguments); the
    training kernel's loss-code signature trains to the plain tier's parameters bit for bit."""
    assert any(res["parallel"] for key, res in tiled.items() if key != "fit")
    for key, res in tiled.items():
        if key == "fit":
            continue
        assert set(res["tiled"]) == {res["plain"]}, key
        if res["parallel"]:
            assert len(res["tiled"]) == 3
            assert res["alloc"]["1"] == res["alloc"]["11"] == [10, 10], key
    assert tiled["fit"][0] == tiled["fit"][1]
