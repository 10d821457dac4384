"""``fastbp complexity``: how the time of a gradient grows with the parameter count N.

Times backpropagation (O(N)) and central finite differences (O(N^2)), both compiled, on networks
of sizes [w, w, w] whose N is log-spaced over the requested range, for a fixed batch; finite
differences stop where one gradient would take too long. Fits the log-log slopes, prints the
table and writes it as CSV, and plots both curves with their fitted lines (PNG; needs
matplotlib, the ``plot`` extra, and is skipped with a note without it).
"""

from __future__ import annotations

import argparse
import sys

from ._cli_types import fmt_time, positive_float, positive_int
from .activations import ACTIVATIONS
from .cli_input import CLIError, input_file, non_negative_int, output_file
from .complexity import (
    BACKPROP,
    FINITE_DIFFERENCE,
    fit_cost_model,
    fit_methods,
    plot,
    read_csv,
    sweep,
    target_counts,
    write_csv,
)

__all__ = ["register", "run"]


def register(sub) -> None:
    """Add the ``complexity`` sub-command to ``sub`` (an argparse sub-parsers object)."""
    p = sub.add_parser(
        "complexity",
        help="time backpropagation and finite differences against N and fit the slopes",
        description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--min-n", type=positive_int, default=100, help="smallest parameter count")
    p.add_argument("--max-n", type=positive_int, default=100_000, help="largest parameter count")
    p.add_argument("--per-decade", type=positive_int, default=4, help="networks per decade of N")
    p.add_argument("--batch", type=positive_int, default=16, help="samples in the fixed batch")
    p.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    p.add_argument(
        "--seed", type=non_negative_int, default=0, help="seed of the networks and the data"
    )
    p.add_argument(
        "--activation",
        default="sigmoid",
        choices=ACTIVATIONS,
        help="activation of every layer (the seed uses sigmoid everywhere)",
    )
    p.add_argument(
        "--clock",
        default="wall",
        choices=("wall", "cpu"),
        help="wall: elapsed time; cpu: this process's CPU time, much less disturbed by other "
        "processes on a busy machine (the same for serial kernels on an idle one)",
    )
    p.add_argument(
        "--fd-max-seconds",
        type=positive_float,
        default=20.0,
        help="stop finite differences where one gradient is predicted to take longer",
    )
    p.add_argument(
        "--fd-max-n", type=positive_int, default=None, help="largest N for finite differences"
    )
    p.add_argument(
        "--min-time",
        type=positive_float,
        default=0.2,
        help="seconds of repeated timing per point (the fastest sample is kept)",
    )
    p.add_argument(
        "--fit-min-n",
        type=positive_int,
        default=1000,
        help="fit the slopes over N >= this (below it, fixed per-call costs dominate)",
    )
    p.add_argument("--csv", default="complexity.csv", help="where to write the table")
    p.add_argument("--plot", default="complexity.png", help="where to write the PNG plot")
    p.add_argument("--no-plot", action="store_true", help="do not plot")
    p.add_argument(
        "--from-csv",
        metavar="PATH",
        default=None,
        help="measure nothing: fit and plot the table in PATH (written by an earlier run)",
    )
    p.set_defaults(func=run)


def _fmt_sig(seconds: float) -> str:
    """Three significant digits in s, ms, us or ns."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if abs(seconds) >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds * 1e9:.3g} ns"


def _term(seconds: float) -> str:
    """`` + x`` or `` - x`` for a term of the cost model (a fit may make one negative)."""
    return f" {'-' if seconds < 0 else '+'} {_fmt_sig(abs(seconds))}"


def run(args: argparse.Namespace) -> int:
    """Run ``fastbp complexity`` with parsed ``args``; returns the exit code."""
    # Every path is checked before the sweep, so that a typo does not cost the measurements.
    if not args.no_plot:
        output_file(args.plot, "--plot")
    if args.from_csv is not None:
        input_file(args.from_csv)
        try:
            measurements = read_csv(args.from_csv)
        except ValueError as exc:
            raise CLIError(str(exc)) from None
        print(f"fastbp complexity: {len(measurements)} measurements read from {args.from_csv}")
    else:
        if args.min_n >= args.max_n:
            sys.stderr.write(
                f"fastbp complexity: error: --min-n ({args.min_n}) must be below --max-n "
                f"({args.max_n})\n"
            )
            return 2
        output_file(args.csv, "--csv")
        networks = target_counts(args.min_n, args.max_n, args.per_decade)
        print(
            f"fastbp complexity: {args.activation} networks [w, w, w], batch {args.batch}, "
            f"{args.dtype}, seed {args.seed}, {args.clock} clock; central finite differences "
            f"up to {args.fd_max_seconds:g} s each"
        )
        header = f"{'sizes':<16} {'N':>9} {'backprop':>11} {'finite diff':>11} {'FD/BP':>9}"
        print(header)
        print("-" * len(header))
        pending = {}

        def progress(m) -> None:
            # Backprop comes first for each network; print its row when FD is done or skipped.
            if m.method == BACKPROP:
                flush()
                pending[m.sizes] = m
            else:
                bp = pending.pop(m.sizes)
                _print_row(bp, m)

        def flush() -> None:
            for bp in pending.values():
                _print_row(bp, None)
            pending.clear()

        measurements = sweep(
            networks,
            args.batch,
            args.dtype,
            seed=args.seed,
            activation=args.activation,
            clock=args.clock,
            fd_max_n=args.fd_max_n,
            fd_max_seconds=args.fd_max_seconds,
            min_time=args.min_time,
            progress=progress,
        )
        flush()
        try:
            write_csv(measurements, args.csv)
        except OSError as exc:  # checked above; only a path that went away since
            raise CLIError(f"--csv {args.csv}: cannot write the file ({exc.strerror})") from None
        print(f"\ntable written to {args.csv}")

    fits = fit_methods(measurements, args.fit_min_n)
    fits_all = fit_methods(measurements)
    for method, name in ((BACKPROP, "backpropagation"), (FINITE_DIFFERENCE, "finite differences")):
        fit = fits.get(method)
        whole = fits_all.get(method)
        if fit is None and whole is None:
            print(f"{name}: too few points to fit a slope")
            continue
        text = f"{name}: time grows as N^{(fit or whole).slope:.2f}"
        if fit is not None:
            text += f" for N in [{fit.n_min}, {fit.n_max}] ({fit.points} points)"
            if whole is not None and whole.points > fit.points:
                text += f"; N^{whole.slope:.2f} over all {whole.points} points from N={whole.n_min}"
        else:
            text += f" over all {whole.points} points (none at N >= {args.fit_min_n})"
        print(text)
    for method, name, power in ((BACKPROP, "backprop", 0), (FINITE_DIFFERENCE, "finite diff", 1)):
        rows = [m for m in measurements if m.method == method]
        if len({m.n_params for m in rows}) < 3:
            continue
        model = fit_cost_model([m.n_params for m in rows], [m.seconds for m in rows], power)
        n_max = max(m.n_params for m in rows)
        shares = model.terms(n_max)
        per = " per coordinate" if power else ""
        print(
            f"{name} cost model{per}: {_fmt_sig(model.fixed)}{_term(model.per_root)} * sqrt(N)"
            f"{_term(model.per_param)} * N "
            f"(misfit <= {model.max_misfit:.0%}); at N={n_max} the N term is "
            f"{shares[2] / sum(shares):.0%} of the time"
        )
    bp = {m.n_params: m.seconds for m in measurements if m.method == BACKPROP}
    fd = [m for m in measurements if m.method == FINITE_DIFFERENCE and m.n_params in bp]
    if fd:
        last = max(fd, key=lambda m: m.n_params)
        ratio = last.seconds / bp[last.n_params]
        print(
            f"at N={last.n_params}: finite differences take {ratio:.0f}x the time of "
            "backpropagation"
        )
    print("(the seed predicts slopes 1 and 2; see the README for why measured ones deviate)")

    if args.no_plot:
        return 0
    plot_fits = {m: fits.get(m) or fits_all.get(m) for m in (BACKPROP, FINITE_DIFFERENCE)}
    try:
        plot(measurements, {k: v for k, v in plot_fits.items() if v is not None}, args.plot)
    except ImportError:
        print('plot skipped: matplotlib is not installed (pip install "fastbp[plot]")')
        return 0
    except OSError as exc:
        raise CLIError(f"--plot {args.plot}: cannot write the file ({exc.strerror})") from None
    print(f"plot written to {args.plot}")
    return 0


def _print_row(bp, fd) -> None:
    sizes = "-".join(map(str, bp.sizes))
    if fd is None:
        print(f"{sizes:<16} {bp.n_params:>9} {fmt_time(bp.seconds):>11} {'-':>11} {'-':>9}")
    else:
        print(
            f"{sizes:<16} {bp.n_params:>9} {fmt_time(bp.seconds):>11} "
            f"{fmt_time(fd.seconds):>11} {fd.seconds / bp.seconds:>8.0f}x"
        )
