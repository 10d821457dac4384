"""``fastbp gradcheck``: backpropagation against finite differences, agreement and time.

For each network size it builds a seeded network and a built-in data set, computes the gradient
by backpropagation (O(N)) and by finite differences (O(N^2)), and prints how well they agree and
how long each took, so the seed's complexity claim can be seen on the user's own machine.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from ._cli_types import fmt_time, positive_int
from ._cli_types import sizes as parse_sizes
from .activations import ACTIVATIONS
from .cli_input import non_negative_int
from .datasets import smooth_regression
from .gradcheck import check_grad, finite_difference_grad
from .network import MLP

__all__ = ["register", "run"]

DEFAULT_SIZES = ("4,8,1", "16,32,4", "32,64,64,8")


def register(sub) -> None:
    """Add the ``gradcheck`` sub-command to ``sub`` (an argparse sub-parsers object)."""
    p = sub.add_parser(
        "gradcheck",
        help="compare backpropagation with finite differences: agreement and time",
        description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--sizes",
        type=parse_sizes,
        action="append",
        metavar="M0,M1,...,ML",
        help="layer widths of one network; repeat the option for several networks "
        f"(default: {' '.join(DEFAULT_SIZES)})",
    )
    p.add_argument("--batch", type=positive_int, default=16, help="samples in the data set")
    p.add_argument(
        "--activation",
        default="sigmoid",
        choices=ACTIVATIONS,
        help="activation of every layer (the seed uses sigmoid everywhere)",
    )
    p.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    p.add_argument(
        "--seed", type=non_negative_int, default=0, help="seed of the network and the data"
    )
    p.add_argument(
        "--scheme",
        default="central",
        choices=("central", "forward"),
        help="finite-difference scheme: central, or forward (the seed's eq. 5)",
    )
    p.add_argument("--repeat", type=positive_int, default=50, help="backprop calls timed (median)")
    p.add_argument(
        "--fd-repeat", type=positive_int, default=3, help="finite-difference runs timed (median)"
    )
    p.set_defaults(func=run)


def _median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def run(args: argparse.Namespace) -> int:
    """Run ``fastbp gradcheck`` with parsed ``args``; prints a table and returns 0."""
    all_sizes = args.sizes or [parse_sizes(s) for s in DEFAULT_SIZES]
    dtype = np.dtype(args.dtype)
    print(
        f"fastbp gradcheck: {args.activation} network, {args.batch} samples, {dtype.name}, "
        f"{args.scheme} differences, seed {args.seed}"
    )
    header = (
        f"{'sizes':<22} {'N':>8} {'max rel err':>12}  {'worst at':<14} "
        f"{'backprop':>11} {'finite diff':>11} {'FD/BP':>9}"
    )
    print(header)
    print("-" * len(header))
    rows = []
    for sizes in all_sizes:
        net = MLP(sizes, args.activation, dtype=dtype, seed=args.seed)
        X, Y = smooth_regression(args.batch, sizes[0], sizes[-1], seed=args.seed)
        grad = np.empty(net.n_params, dtype=dtype)
        result = check_grad(net, X, Y, scheme=args.scheme)  # also compiles both paths
        t_bp = _median_time(lambda: net.loss_and_grad(X, Y, out=grad), args.repeat)  # noqa: B023
        t_fd = _median_time(
            lambda: finite_difference_grad(net, X, Y, scheme=args.scheme),  # noqa: B023
            args.fd_repeat,
        )
        rows.append((net.n_params, t_bp, t_fd))
        print(
            f"{','.join(map(str, sizes)):<22} {net.n_params:>8} {result.max_rel_error:>12.2e}  "
            f"{result.worst_param:<14} {fmt_time(t_bp):>11} {fmt_time(t_fd):>11} "
            f"{t_fd / t_bp:>8.0f}x"
        )
    if len(rows) >= 2 and rows[-1][0] != rows[0][0]:
        (n0, bp0, fd0), (n1, bp1, fd1) = rows[0], rows[-1]
        span = math.log(n1 / n0)
        print(
            f"\ntime grows as N^{math.log(bp1 / bp0) / span:.2f} for backpropagation and "
            f"N^{math.log(fd1 / fd0) / span:.2f} for finite differences between N={n0} and "
            f"N={n1}\n(the seed predicts 1 and 2; fixed per-call costs flatten the small end)"
        )
    return 0
