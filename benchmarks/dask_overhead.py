"""What one full-batch evaluation costs on Dask, against fastbp in one process.

Run: ``python -m benchmarks.dask_overhead [--rounds 5] [--only 10,64,64,4] [--max-rows 100000]
[--blocks-sweep]`` (needs the extra: ``pip install -e ".[dask]"``).

For each network and row count, the same data (float64, generated on the workers by
``dask.array.random`` and gathered once for the in-process baseline) are held three ways:

- ``local``: NumPy arrays in this process, one ``net.loss_and_grad(X, Y)`` (fastbp's own threads,
  all cores), and ``local-1`` the same on one thread;
- ``dask-1``: a ``LocalCluster`` of one worker process (one thread, ``NUMBA_NUM_THREADS=1``),
  one :func:`fastbp.dask.loss_and_grad` over persisted blocks;
- ``dask-2``: the same with two worker processes.

Both clusters stay up for the whole run and the four are timed in interleaved rounds (each
after a warm-up call); the table gives medians and the ratios dask / local (above 1: Dask is
slower; 10^6 rows take 3 rounds). ``--blocks-sweep`` times [10, 64, 64, 4] at 10^4 rows on two
workers for 2 to 256 blocks: the slope is the scheduler's time per block task (the cost model of
docs/scale-out.md). Default sizes: [10, 64, 64, 4] at 10^3, 10^5 and 10^6 rows, [784, 128, 10] at
10^3 and 10^5 (10^6 rows of 784 float64 is 6.3 GB per copy: past this machine's memory with
three copies).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time

NETWORKS = {"10,64,64,4": [10, 64, 64, 4], "784,128,10": [784, 128, 10]}
ROWS = {"10,64,64,4": (10**3, 10**5, 10**6), "784,128,10": (10**3, 10**5)}
BLOCK_ROWS = 250_000  # at most this many rows per block (4+ blocks at 10^6 rows)


def _blocks(rows: int, n_workers: int = 2) -> int:
    """Blocks for ``rows``: two per worker, more when a block would pass BLOCK_ROWS."""
    return max(2 * n_workers, math.ceil(rows / BLOCK_ROWS))


def _cluster(n_workers: int):
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=n_workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        env={"NUMBA_NUM_THREADS": "1", "FASTBP_BACKGROUND_COMPILE": "0"},
    )
    return cluster, Client(cluster, set_as_default=False)


def _data(sizes, rows, blocks, seed=0):
    import dask.array as da

    chunk = math.ceil(rows / blocks)
    rng = da.random.default_rng(seed)
    X = rng.standard_normal((rows, sizes[0]), chunks=(chunk, -1))
    Y = rng.standard_normal((rows, sizes[-1]), chunks=(chunk, -1))
    return X, Y


def _median_time(fn, rounds):
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


class _threads:
    """``numba.set_num_threads(n)`` for the duration of a ``with`` block."""

    def __init__(self, n):
        self.n = n

    def __enter__(self):
        import numba

        self.old = numba.get_num_threads()
        numba.set_num_threads(self.n)

    def __exit__(self, *exc):
        import numba

        numba.set_num_threads(self.old)


def _one_size(net, sizes, rows, blocks, clusters, rounds) -> dict:
    """Median ms per evaluation: "local" (all threads), "local-1" (one thread), 1 and 2
    (workers), timed in interleaved rounds."""
    import numpy as np

    import fastbp.dask as fd

    X, Y = _data(sizes, rows, blocks)
    data = {n: fd.Data(X, Y, client=c) for n, (_, c) in clusters.items()}
    Xl, Yl = np.ascontiguousarray(X.compute()), np.ascontiguousarray(Y.compute())
    grad = np.empty(net.n_params)

    def local_serial():
        with _threads(1):
            net.loss_and_grad(Xl, Yl, out=grad)

    calls = {
        "local": lambda: net.loss_and_grad(Xl, Yl, out=grad),
        "local-1": local_serial,
        1: lambda: fd.loss_and_grad(net, data[1]),
        2: lambda: fd.loss_and_grad(net, data[2]),
    }
    times = {k: [] for k in calls}
    for call in calls.values():  # warm-up: workspaces, first graph
        call()
    for _ in range(rounds):  # interleaved
        for k, call in calls.items():
            times[k] += _median_time(call, 1)
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", choices=sorted(NETWORKS), default=None)
    parser.add_argument("--max-rows", type=int, default=10**6)
    parser.add_argument("--blocks-sweep", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("FASTBP_BACKGROUND_COMPILE", "0")

    import fastbp
    import fastbp.dask as fd

    clusters = {n: _cluster(n) for n in (1, 2)}
    try:
        print(f"fastbp {fastbp.__version__}, {os.cpu_count()} CPUs, rounds {args.rounds}")
        print(
            "| network | rows | blocks | local ms | local 1 thread ms | dask-1 ms | dask-2 ms "
            "| dask-1 / local-1 | dask-2 / local-1 | dask-2 / local |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for key, sizes in NETWORKS.items():
            if args.only and key != args.only:
                continue
            net = fastbp.MLP(sizes, ["tanh"] * (len(sizes) - 2) + ["identity"], seed=0)
            for _, client in clusters.values():
                fd.warm_up(client, net)
            for rows in ROWS[key]:
                if rows > args.max_rows:
                    continue
                blocks = _blocks(rows)
                rounds = args.rounds if rows <= 10**5 else min(args.rounds, 3)
                med = _one_size(net, sizes, rows, blocks, clusters, rounds)
                one = med["local-1"]
                print(
                    f"| [{key}] | {rows:.0e} | {blocks} | {med['local']:.2f} | {one:.2f} | "
                    f"{med[1]:.2f} | {med[2]:.2f} | {med[1] / one:.2f} | {med[2] / one:.2f} | "
                    f"{med[2] / med['local']:.2f} |",
                    flush=True,
                )
        if args.blocks_sweep:
            sizes = NETWORKS["10,64,64,4"]
            net = fastbp.MLP(sizes, ["tanh", "tanh", "identity"], seed=0)
            client = clusters[2][1]
            print("\n| blocks (10^4 rows, [10,64,64,4], 2 workers) | ms per evaluation |")
            print("|---:|---:|")
            for blocks in (2, 8, 32, 128, 256):
                data = fd.Data(*_data(sizes, 10**4, blocks), client=client)
                fd.loss_and_grad(net, data)
                ms = statistics.median(
                    _median_time(lambda d=data: fd.loss_and_grad(net, d), args.rounds)
                )
                print(f"| {blocks} | {ms * 1e3:.2f} |", flush=True)
    finally:
        for cluster, client in clusters.values():
            client.close()
            cluster.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
