"""One training epoch: fastbp ``fit`` against the same loop in NumPy and in PyTorch.

Run it from the repository root::

    OPENBLAS_NUM_THREADS=1 python benchmarks/train_epoch.py   # [784,128,10], 10,000 samples
    python benchmarks/train_epoch.py --batch 1 128 --rounds 5

Every contender runs one epoch of mini-batch SGD (mean gradient of the batch, learning rate
0.01, no momentum) over the same data, in the same sample order, on the same sigmoid network
in float64 with the same initial parameters: forward, backward and parameter update for every
batch. NumPy and PyTorch are the loops a user would write (PyTorch: ``nn.Linear`` layers,
``loss.backward()``, ``torch.optim.SGD.step()``, ``zero_grad()``; NumPy: matrix products and an
outer-product gradient per batch). Rounds are interleaved (fastbp, NumPy, PyTorch, fastbp, ...)
and the medians are reported with the ratios, so the machine's noise hits everyone alike.
fastbp (Numba) and PyTorch run with ``--threads`` threads (default 1); NumPy's BLAS uses its own
default unless ``OPENBLAS_NUM_THREADS`` is set (the README's run sets it to 1). PyTorch is skipped
when not installed (``pip install torch==2.13.0``). After the timings each contender's
parameters after one epoch are compared with fastbp's, to show the loops do the same work.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import fastbp

LR = 0.01


def make_problem(sizes, n, seed):
    rng = np.random.default_rng(seed)
    X = rng.uniform(0.0, 1.0, size=(n, sizes[0]))
    Y = np.zeros((n, sizes[-1]))
    Y[np.arange(n), rng.integers(0, sizes[-1], size=n)] = 1.0
    order = rng.permutation(n)
    return X[order], Y[order]  # pre-shuffled: every contender then runs shuffle=False


def fastbp_epoch(net, X, Y, batch):
    net.fit(X, Y, epochs=1, batch_size=batch, optimizer=fastbp.SGD(LR), shuffle=False,
            progress=False)  # fmt: skip


def numpy_epoch(params, X, Y, batch):
    """Per-batch forward, backward and in-place SGD update with NumPy (sigmoid layers)."""
    Ws, bs = params
    n = X.shape[0]
    for start in range(0, n, batch):
        x = X[start : start + batch]
        y = Y[start : start + batch]
        zs = [x]
        for W, b in zip(Ws, bs):
            zs.append(1.0 / (1.0 + np.exp(-(zs[-1] @ W.T + b))))
        out = zs[-1]
        delta = (out - y) * out * (1.0 - out)
        scale = LR / x.shape[0]
        for layer in range(len(Ws) - 1, -1, -1):
            z_in = zs[layer]
            dW = delta.T @ z_in
            db = delta.sum(axis=0)
            if layer > 0:
                delta = (delta @ Ws[layer]) * z_in * (1.0 - z_in)
            Ws[layer] -= scale * dW
            bs[layer] -= scale * db


def torch_setup(net, threads):
    import torch

    torch.set_num_threads(threads)
    layers = []
    for W, b in zip(net.weights, net.biases):
        lin = torch.nn.Linear(W.shape[1], W.shape[0], dtype=torch.float64)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(W))
            lin.bias.copy_(torch.from_numpy(b))
        layers += [lin, torch.nn.Sigmoid()]
    model = torch.nn.Sequential(*layers)
    return model, torch.optim.SGD(model.parameters(), lr=LR)


def torch_epoch(model, opt, Xt, Yt, batch):
    n = Xt.shape[0]
    for start in range(0, n, batch):
        x = Xt[start : start + batch]
        y = Yt[start : start + batch]
        opt.zero_grad()
        out = model(x)
        loss = 0.5 * ((out - y) ** 2).sum() / x.shape[0]
        loss.backward()
        opt.step()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="784,128,10")
    p.add_argument("--samples", type=int, default=10_000)
    p.add_argument("--batch", type=int, nargs="+", default=[1, 128])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1, help="threads of fastbp and of PyTorch")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    import numba

    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    X, Y = make_problem(sizes, args.samples, args.seed)
    try:
        import torch
    except ImportError:
        torch = None
    print(
        f"one epoch of SGD, sizes {sizes}, {args.samples} samples, float64, sigmoid, "
        f"lr {LR}; medians of {args.rounds} interleaved rounds"
        + f"; {numba.get_num_threads()} thread(s)"
        + (f"; torch {torch.__version__}" if torch else "")
    )
    print(f"{'batch':>6} {'fastbp':>10} {'numpy':>10} {'torch':>10} {'numpy/fastbp':>13} "
          f"{'torch/fastbp':>13} {'max |dtheta| np, torch':>24}")  # fmt: skip
    for batch in args.batch:
        base = fastbp.MLP(sizes, seed=args.seed)
        times = {"fastbp": [], "numpy": [], "torch": []}
        nets = {}
        for r in range(args.rounds + 1):  # round 0 warms up (compile, caches) and is dropped
            net = base.copy()
            t0 = time.perf_counter()
            fastbp_epoch(net, X, Y, batch)
            t_fb = time.perf_counter() - t0
            Ws = [W.copy() for W in base.weights]
            bs = [b.copy() for b in base.biases]
            t0 = time.perf_counter()
            numpy_epoch((Ws, bs), X, Y, batch)
            t_np = time.perf_counter() - t0
            if torch is not None:
                model, opt = torch_setup(base, args.threads)
                Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)
                t0 = time.perf_counter()
                torch_epoch(model, opt, Xt, Yt, batch)
                t_th = time.perf_counter() - t0
            if r:
                times["fastbp"].append(t_fb)
                times["numpy"].append(t_np)
                if torch is not None:
                    times["torch"].append(t_th)
            nets = {"fastbp": net, "numpy": (Ws, bs)}
            if torch is not None:
                nets["torch"] = model
        med = {k: float(np.median(v)) if v else float("nan") for k, v in times.items()}
        theta = nets["fastbp"].params
        flat_np = np.concatenate([np.concatenate([W.ravel(), b]) for W, b in zip(*nets["numpy"])])
        d_np = np.abs(flat_np - theta).max()
        d_th = float("nan")
        if torch is not None:
            flat = np.concatenate([p.detach().numpy().ravel() for p in nets["torch"].parameters()])
            d_th = np.abs(flat - theta).max()
        print(
            f"{batch:>6} {med['fastbp']:>9.3f}s {med['numpy']:>9.3f}s {med['torch']:>9.3f}s "
            f"{med['numpy'] / med['fastbp']:>12.1f}x {med['torch'] / med['fastbp']:>12.1f}x "
            f"{d_np:>12.1e} {d_th:>10.1e}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
