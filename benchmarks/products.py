"""Each layer product of the sample-blocked gradient against 1-thread OpenBLAS on the same shape.

Usage (from the repository root)::

    python -m benchmarks.products                  # float64 and float32, the default shapes
    python -m benchmarks.products --dtype float32 --rounds 15

The three products of one block (:mod:`fastbp._kernels.blocked`): forward ``a = z W^T + b``
(``_forward_layer``), delta ``delta W`` (``_delta_layer``, with its h' epilogue) and weight
gradient ``dW += delta^T z`` (``_weight_layer``, with its packing and the bias sums), each
timed in interleaved rounds against NumPy's ``@`` on the same operands under
``threadpoolctl.threadpool_limits(1)`` (the GEMM ceiling of one core). The table gives GFLOP/s
(2 flops per multiply-add) and ``fraction = BLAS time / fastbp time`` (1.0: as fast as
OpenBLAS). The shapes are ``(block samples, inputs, outputs)`` of the networks in
:mod:`benchmarks.peers` with the block sizes the driver picks.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

#: (samples in the block, M^(l-1), M^l): the layers of the peers table at their block sizes.
SHAPES = [
    (96, 10, 64),  # [10, 64, 64, 1]
    (96, 64, 64),
    (32, 784, 128),  # [784, 128, 10]
    (32, 784, 512),  # [784, 512, 512, 10]
    (32, 512, 512),
    (32, 2048, 2048),  # [2048] * 3
    (64, 64, 64),  # [64] * 11
]


def _parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.products", description=__doc__)
    p.add_argument("--dtype", choices=["float64", "float32", "both"], default="both")
    p.add_argument("--rounds", type=int, default=11, help="interleaved rounds (11)")
    p.add_argument("--round-ms", type=float, default=10.0, help="time per round per impl (10)")
    return p.parse_args(argv)


def _timer(f, round_ms: float):
    f()
    t0 = time.perf_counter()
    f()
    once = max(time.perf_counter() - t0, 1e-7)
    n = max(1, int(round_ms * 1e-3 / once))

    def run() -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            f()
        return (time.perf_counter() - t0) / n

    return run


def measure(shape, dtype, rounds: int, round_ms: float) -> dict:
    """GFLOP/s of fastbp's and BLAS's three products on ``shape`` (medians over rounds)."""
    from fastbp._kernels import blocked
    from fastbp._kernels.simd import lanes

    nb, m_in, m_out = shape
    dt = np.dtype(dtype)
    rng = np.random.default_rng(0)
    NR = 2 * lanes(dt)
    W = rng.normal(size=(m_out, m_in)).astype(dt)
    b = rng.normal(size=m_out).astype(dt)
    theta = np.concatenate([W.ravel(), b])
    pad_out = -(-m_out // NR) * NR
    pad_in = -(-m_in // NR) * NR
    P = np.zeros(pad_out * (m_in + 1) + pad_in * m_out, dt)
    blocked._pack_forward(theta, 0, m_out * m_in, m_in, m_out, P, 0, NR)
    qd = pad_out * (m_in + 1)
    blocked._pack_delta(theta, 0, m_in, m_out, P, qd, NR)
    z = rng.normal(size=(nb, m_in)).astype(dt)
    d = rng.normal(size=(nb, m_out)).astype(dt)
    zf, df = z.ravel(), d.ravel()
    a = np.empty(nb * m_out, dt)
    h = np.ones(nb * m_in, dt)
    acc = np.empty(nb * m_in, dt)
    grad = np.zeros_like(theta)
    dp = np.empty(nb * m_out, dt)
    zp = np.empty(nb * pad_in, dt)
    n_tiled = nb - nb % blocked.MR

    def reset_h():
        h[:] = 1.0

    impls = {
        "forward": (
            lambda: blocked._forward_layer(
                theta, 0, m_out * m_in, P, 0, zf, 0, m_in, m_in, a, m_out, m_out, nb, n_tiled
            ),
            lambda: z @ W.T + b,
        ),
        "delta": (
            lambda: blocked._delta_layer(P, qd, df, m_out, m_out, h, acc, m_in, m_in, nb),
            lambda: d @ W,
        ),
        "weight": (
            lambda: blocked._weight_layer(
                df, m_out, m_out, zf, 0, m_in, m_in, nb, grad, 0, False, dp, zp
            ),
            lambda: d.T @ z,
        ),
    }
    flops = 2.0 * nb * m_in * m_out
    out = {}
    for name, (ours, blas) in impls.items():
        runs = [_timer(ours, round_ms), _timer(blas, round_ms)]
        times = [[], []]
        for _ in range(rounds):
            for i, run in enumerate(runs):
                times[i].append(run())
                if name == "delta":
                    reset_h()  # delta scales h in place: keep its values bounded
        t_ours, t_blas = (float(np.median(t)) for t in times)
        out[name] = (flops / t_ours / 1e9, flops / t_blas / 1e9, t_blas / t_ours)
    return out


def main(argv=None) -> None:
    args = _parse(argv)
    from threadpoolctl import threadpool_limits

    dtypes = ["float64", "float32"] if args.dtype == "both" else [args.dtype]
    print("| dtype | block, in, out | product | fastbp GFLOP/s | OpenBLAS GFLOP/s | fraction |")
    print("|---|---|---|---|---|---|")
    fractions = []
    with threadpool_limits(1):
        for dtype in dtypes:
            for shape in SHAPES:
                for name, (ours, blas, frac) in measure(
                    shape, dtype, args.rounds, args.round_ms
                ).items():
                    fractions.append(frac)
                    print(
                        f"| {dtype} | {shape} | {name} | {ours:.1f} | {blas:.1f} | {frac:.2f} |",
                        flush=True,
                    )
    geo = float(np.exp(np.mean(np.log(fractions))))
    print(f"\ngeometric mean of the fractions: {geo:.2f}")


if __name__ == "__main__":
    main()
