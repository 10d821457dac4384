"""``fastbp compile``: fills the disk cache with the tiled kernels and says what it did."""

import re

import numpy as np

import fastbp
from fastbp import _jit, cli, cli_compile, kernels


def test_compile_fills_the_cache_and_reports(monkeypatch, capsys):
    """One group (the serial drivers, float64), through the real command: afterwards the tiled
    gradient driver of that signature runs without compiling (in the cache or this process)."""
    groups = cli_compile._groups
    monkeypatch.setattr(
        cli_compile, "_groups", lambda dtype: [g for g in groups(dtype) if "(serial)" in g[0]][:1]
    )
    monkeypatch.setenv("FASTBP_BACKGROUND_COMPILE", "1")  # the command turns it off itself
    assert cli.main(["compile", "--dtype", "float64"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("fastbp compile: kernels for float64 into ")
    assert re.fullmatch(
        r"  float64  forward, loss, loss_and_grad \(serial\): \d+ compiled, \d+ from the cache, "
        r"\d+\.\d s",
        out[1],
    )
    assert re.fullmatch(r"done: \d+ kernels compiled, \d+ loaded from the cache, \d+\.\d s", out[2])
    net = fastbp.MLP(cli_compile._SMALL, "tanh")
    X, Y = np.zeros((8, net.sizes[0])), np.zeros((8, net.sizes[-1]))
    A, Z, tmp = kernels.make_workspace(net.sizes, 8, net.dtype)
    args = (*net.kernel_args(), X, Y, A, Z, tmp, np.empty(net.n_params))
    assert _jit.cached(kernels._loss_and_grad_large, args)


def test_compile_groups_cover_every_tier(monkeypatch):
    """Serial groups always; the threaded ones where Numba has more than one thread."""
    import numba

    names = [name for name, _ in cli_compile._groups("float32")]
    assert sum("(serial)" in n for n in names) == 4 and "(tiny network)" in names[0]
    assert sum("(threaded)" in n for n in names) == (4 if numba.get_num_threads() > 1 else 0)
    monkeypatch.setattr(numba, "get_num_threads", lambda: 1)
    assert not any("(threaded)" in n for n, _ in cli_compile._groups("float32"))
