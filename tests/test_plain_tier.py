"""The plain tier (fastbp._plain) against the tiled drivers, bit for bit, and the hand-over.

The plain tier runs a network's first calls while a helper process compiles the tiled drivers
(fastbp._warm, fastbp._dispatch); switching tiers mid-run is safe only if both give the same
bits, so every case here compares bytes, at shapes that reach every path of the tiles: full
32-sample tiles and remainders, the 8-way edge dot product (m_in >= 8) and its tail, k blocks
past 64 inputs, the single-sample path of a tiny network, every activation, both dtypes.
"""

import json

import numpy as np
import pytest
import reference
from helpers import rel_err, run_script, script_result

import fastbp
from fastbp import _dispatch, _jit, _plain, _warm, kernels
from fastbp.activations import ACTIVATIONS

NAMES = list(ACTIVATIONS)
# (sizes, batch): B < 32, = 32, 33, 64, 299; widths 1, 5, 31-33, 65, 129, 257, 784.
CASES = [
    ((784, 128, 10), 32),
    ((5, 7, 3), 9),
    ((40, 33, 2), 64),
    ((65, 129, 31), 33),
    ((300, 257, 4), 299),
    ((1, 33, 1), 1),
    ((33, 64, 64, 1), 64),
    ((20, 31, 3), 1),
    ((129, 65, 1), 31),
]


def _problem(sizes, batch, dtype, shift, rng, scale=1.0):
    acts = [NAMES[(shift + j) % len(NAMES)] for j in range(len(sizes) - 1)]
    net = fastbp.MLP(list(sizes), acts, dtype=dtype, seed=shift)
    X = (scale * rng.normal(size=(batch, sizes[0]))).astype(dtype)
    Y = rng.normal(size=(batch, sizes[-1])).astype(dtype)
    return net, acts, X, Y


def _both_tiers(net, X, Y, parallel=False):
    """(loss_and_grad, grad, loss, forward) from the tiled drivers and from the plain tier."""
    theta, sizes, codes = net.kernel_args()
    results = []
    for tier in ("tiled", "plain"):
        A, Z, tmp = kernels.make_workspace(net.sizes, X.shape[0], net.dtype)
        grad = np.empty_like(theta)
        out = np.empty((X.shape[0], net.sizes[-1]), dtype=net.dtype)
        args = (theta, sizes, codes, X, Y, A, Z, tmp, grad)
        if tier == "tiled":
            lag = _dispatch.tiled("loss_and_grad", parallel, theta.shape[0], X.shape[0])
            total = _dispatch.call(lag, parallel, *args)
            value = _dispatch.call(_dispatch.tiled("loss", parallel, 0), parallel, *args[:7])
            fwd = _dispatch.tiled("forward", parallel, 0)
            _dispatch.call(fwd, parallel, theta, sizes, codes, X, A, Z, out)
        else:
            total = _plain.plain_loss_and_grad(*args)
            value = _plain.plain_loss(*args[:7])
            _plain.plain_forward(theta, sizes, codes, X, A, Z, out)
        results.append((total, grad, value, out))
    return results


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shift", range(len(NAMES)))
@pytest.mark.parametrize("sizes,batch", CASES)
def test_plain_tier_gives_the_tiled_bits(sizes, batch, shift, dtype, rng):
    net, acts, X, Y = _problem(sizes, batch, dtype, shift, rng)
    (t1, g1, v1, o1), (t2, g2, v2, o2) = _both_tiers(net, X, Y)
    assert t1 == t2 and v1 == v2
    assert g1.tobytes() == g2.tobytes()
    assert o1.tobytes() == o2.tobytes()
    if dtype == np.float64:  # and both are right: the oracle, written from the equations
        ref_loss, ref_grad = reference.loss_and_grad(net.params, sizes, acts, X, Y)
        assert abs(t2 - ref_loss) <= 1e-12 * max(1.0, abs(ref_loss))
        assert rel_err(g2, ref_grad) <= 1e-12


def test_plain_tier_gives_the_threaded_bits(rng):
    """Against the threaded tiled driver too (a call past PARALLEL_MIN_WORK on 2 threads)."""
    net, _, X, Y = _problem((784, 256, 10), 256, np.float64, 1, rng)
    assert kernels.uses_threads(net.sizes, 256)
    (t1, g1, v1, o1), (t2, g2, v2, o2) = _both_tiers(net, X, Y, parallel=True)
    assert t1 == t2 and v1 == v2 and g1.tobytes() == g2.tobytes() and o1.tobytes() == o2.tobytes()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_plain_tier_reports_overflow_like_the_tiles(dtype, rng):
    """Inputs near the dtype's maximum: the same non-finite loss, and the same gradient bits
    (the overflow re-check recomputes the weight gradient without FMA in both tiers)."""
    huge = float(np.finfo(dtype).max) / 4
    for acts in (["relu", "identity"], ["identity", "identity"]):
        net = fastbp.MLP([3, 4, 2], acts, dtype=dtype, seed=2)
        X = np.full((5, 3), huge, dtype=dtype)
        X[1] *= -1
        Y = np.zeros((5, 2), dtype=dtype)
        (t1, g1, v1, o1), (t2, g2, v2, o2) = _both_tiers(net, X, Y)
        assert not (np.isfinite(t1) and np.isfinite(g1).all())  # the overflow paths run
        for p, q in ((t1, t2), (v1, v2)):
            assert p == q or (np.isnan(p) and np.isnan(q))
        assert g1.tobytes() == g2.tobytes() and o1.tobytes() == o2.tobytes()


def test_plain_tier_raises_the_drivers_messages():
    net = fastbp.MLP([3, 4, 2], "tanh")
    theta, sizes, codes = net.kernel_args()
    A, Z, tmp = kernels.make_workspace((3, 4, 2), 2, net.dtype)
    X = np.ones((2, 3))
    with pytest.raises(ValueError, match="Y must have shape"):
        _plain.plain_loss_and_grad(theta, sizes, codes, X, np.ones((2, 3)), A, Z, tmp, theta * 0)
    with pytest.raises(ValueError, match="grad must have the length"):
        _plain.plain_loss_and_grad(theta, sizes, codes, X, np.ones((2, 2)), A, Z, tmp, theta[:3])
    with pytest.raises(ValueError, match="workspace A or Z too short"):
        _plain.plain_loss(theta, sizes, codes, np.ones((99, 3)), np.ones((99, 2)), A, Z)
    X[1, 1] = np.nan
    with pytest.raises(ValueError, match="X: expected finite"):
        _plain.plain_loss(theta, sizes, codes, X, np.ones((2, 2)), A, Z)
    with pytest.raises(ValueError, match="Y: expected finite"):
        _plain.plain_loss(theta, sizes, codes, np.ones((2, 3)), np.full((2, 2), np.inf), A, Z)


def test_no_helper_process_falls_back_to_the_tiled_driver(monkeypatch, rng):
    """Where no helper can start, the call runs the tiled driver in-process (no plain tier)."""
    monkeypatch.setenv("FASTBP_BACKGROUND_COMPILE", "1")
    monkeypatch.setattr(_warm, "_STATE", {})
    monkeypatch.setattr(_dispatch, "cached", lambda kernel, args: False)

    def refuse(*args, **kwargs):
        raise OSError("no processes here")

    monkeypatch.setattr(_warm.subprocess, "Popen", refuse)
    net = fastbp.MLP([5, 7, 3], "tanh", seed=1)
    X = rng.normal(size=(9, 5))
    out = net.forward(X)
    assert net._ready == {("forward", False): kernels._forward_serial}
    assert not _warm.busy()
    A, Z, _ = kernels.make_workspace(net.sizes, 9, net.dtype)
    ref = np.empty_like(out)
    kernels._forward_serial(*net.kernel_args(), X, A, Z, ref)
    assert out.tobytes() == ref.tobytes()


HANDOVER = """
import json, sys, time
import numpy as np
import fastbp
from fastbp import _jit, _warm, kernels
rng = np.random.default_rng(3)
net = fastbp.MLP([40, 33, 2], ["softplus", "tanh"], seed=5)
X = rng.normal(size=(64, 40))
A, Z, _ = kernels.make_workspace(net.sizes, 64, net.dtype)
out = np.empty((64, 2))
args = (*net.kernel_args(), X, A, Z, out)
before = _jit.cached(kernels._forward_serial, args)
first = net.forward(X)
plain_first = not net._ready and not kernels._forward_serial.signatures
helper = _warm.busy()
t = time.time()
while _warm.busy() and time.time() - t < 600:
    time.sleep(0.2)
after = _jit.cached(kernels._forward_serial, args)
second = net.forward(X)
hits = sum(kernels._forward_serial.stats.cache_hits.values())
print("RESULT " + json.dumps({
    "before": before, "plain_first": plain_first, "helper": helper, "after": after,
    "tiled_second": net._ready == {("forward", False): kernels._forward_serial}, "cache_hits": hits,
    "same": first.tobytes() == second.tobytes(),
}))
"""


def test_first_call_runs_plain_then_hands_over(tmp_path):
    """A fresh process with an empty cache: the first call runs on the plain tier while a
    helper process compiles the tiled driver into the cache; the next call after the helper
    exits loads the tiled driver from there (not compiled in this process), same bits."""
    out = run_script(
        HANDOVER,
        NUMBA_CACHE_DIR=str(tmp_path / "cache"),
        FASTBP_BACKGROUND_COMPILE="1",
    )
    assert script_result(out) == {
        "before": False,
        "plain_first": True,
        "helper": True,
        "after": True,
        "tiled_second": True,
        "cache_hits": 1,
        "same": True,
    }


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "make_opt", [lambda: fastbp.Adam(0.01), lambda: fastbp.SGD(0.05, momentum=0.5)]
)
def test_fit_on_the_plain_tier_gives_the_tiled_bits(make_opt, dtype, monkeypatch, rng):
    """Mini-batch fit, validation included, all on the plain tier (no helper ever finishes)
    against the compiled training kernel: the same parameters, losses and optimiser state."""
    from fastbp import train

    X = rng.normal(size=(70, 5)).astype(dtype)
    Y = rng.normal(size=(70, 2)).astype(dtype)
    nets = []
    for plain in (False, True):
        if plain:
            monkeypatch.setenv("FASTBP_BACKGROUND_COMPILE", "1")
            monkeypatch.setattr(_dispatch, "cached", lambda kernel, args: False)
            monkeypatch.setattr(_warm, "_STATE", {})
            monkeypatch.setattr(_warm, "request", lambda kernel, args: "queued")
            monkeypatch.setattr(_warm, "state", lambda kernel, args: None)
            monkeypatch.setattr(_plain, "plain_train_steps", _counting(_plain.plain_train_steps))
            monkeypatch.setattr(train, "plain_train_steps", _plain.plain_train_steps)
        net = fastbp.MLP([5, 33, 2], ["tanh", "identity"], dtype=dtype, seed=3)
        opt = make_opt()
        net.fit(X, Y, epochs=3, batch_size=8, seed=1, progress=False, optimizer=opt,
                validation_data=(X[:20], Y[:20]))  # fmt: skip
        nets.append((net, opt))
        if plain:
            assert _plain.plain_train_steps.calls > 0 and not net._ready
    (a, opt_a), (b, opt_b) = nets
    assert a.params.tobytes() == b.params.tobytes()
    assert a.history.loss == b.history.loss and a.history.val_loss == b.history.val_loss


def _counting(f):
    def counted(*args):
        counted.calls += 1
        return f(*args)

    counted.calls = 0
    return counted


QUEUE_AT_EXIT = """
import numpy as np
from fastbp import _warm
from fastbp._kernels import checks as _checks
for dtype in (np.float64, np.float32):
    _warm.request(_checks._max_abs, (np.zeros(3, dtype),))
assert _warm.busy()
"""

CACHED_LATER = """
import json, time
import numpy as np
from fastbp import _jit
from fastbp._kernels import checks as _checks
t = time.time()
found = []
while time.time() - t < 300:
    found = [_jit.cached(_checks._max_abs, (np.zeros(3, d),)) for d in (np.float64, np.float32)]
    if all(found):
        break
    time.sleep(0.2)
print("RESULT " + json.dumps(found))
"""


def test_requests_still_queued_at_exit_are_compiled_for_the_next_run(tmp_path):
    """A process that exits while one helper runs and another request waits hands the queue to
    a last helper: both signatures end up in the cache for the next process."""
    cache = str(tmp_path / "cache")
    run_script(QUEUE_AT_EXIT, NUMBA_CACHE_DIR=cache, FASTBP_BACKGROUND_COMPILE="1")
    out = run_script(CACHED_LATER, NUMBA_CACHE_DIR=cache, FASTBP_BACKGROUND_COMPILE="0")
    assert script_result(out) == [True, True]


def test_no_python_to_start_runs_the_tiled_driver(monkeypatch, rng):
    """An embedded interpreter (no sys.executable) starts no helper: the tiled driver runs."""
    monkeypatch.setenv("FASTBP_BACKGROUND_COMPILE", "1")
    monkeypatch.setattr(_warm, "_STATE", {})
    monkeypatch.setattr(_dispatch, "cached", lambda kernel, args: False)
    monkeypatch.setattr(_warm.sys, "executable", "")
    net = fastbp.MLP([5, 7, 3], "tanh", seed=1)
    net.loss(rng.normal(size=(9, 5)), rng.normal(size=(9, 3)))
    assert net._ready == {("loss", False): kernels._loss_serial}
    assert not _warm.busy()


@_jit.kernel
def _with_defaults(x, code=0, w=None):
    if w is None:
        return x[0]
    return x[0] * code


def test_a_helper_compiles_the_signature_of_a_call_that_omits_defaults():
    """A kernel with trailing defaults (as the loss drivers' ``loss_code=0, weights=None``) is
    compiled by the helper for the signature the call takes, the omitted defaults folded in:
    afterwards the hand-over check finds it and the call compiles nothing. (A signature of the
    given arguments alone is rejected by Numba's compile, which killed the helper, so every
    tiled driver then compiled in-process.)"""
    x = np.zeros(3)
    key = json.loads(json.dumps(_warm._spec(_with_defaults, (x,))))
    assert not _jit.cached(_with_defaults, (x,))
    _warm.compile_keys([key])
    assert len(_with_defaults.overloads) == 1
    assert _jit.cached(_with_defaults, (x,))
    _with_defaults(x)
    assert len(_with_defaults.overloads) == 1
