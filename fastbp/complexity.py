"""The complexity study: time of backpropagation and of finite differences against N.

Backpropagation computes the whole gradient in a constant number of passes over the network, so
its cost grows like the parameter count N (for a fixed batch). Finite differences evaluate the
loss once (forward scheme) or twice (central scheme) per parameter, each evaluation costing
O(N), so they grow like N^2. :func:`sweep` times both, compiled alike, over a family of networks
whose N spans several decades; :func:`fit_loglog` fits the exponent, :func:`fit_cost_model`
splits the time into fixed, per-neuron and per-parameter costs (which explains why a measured
exponent falls short of 1 or 2), :func:`write_csv` and :func:`plot` record the result.
``fastbp complexity`` runs the whole study.
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .gradcheck import finite_difference_grad
from .network import MLP

__all__ = [
    "BACKPROP",
    "CLOCKS",
    "CostModel",
    "FINITE_DIFFERENCE",
    "Fit",
    "Measurement",
    "fit_cost_model",
    "fit_loglog",
    "fit_methods",
    "network_sizes",
    "plot",
    "read_csv",
    "sweep",
    "target_counts",
    "time_call",
    "write_csv",
]

BACKPROP = "backprop"
FINITE_DIFFERENCE = "finite_difference"
_CSV_FIELDS = ("method", "sizes", "n_params", "batch", "dtype", "seconds", "calls")


@dataclass(frozen=True)
class Measurement:
    """One timed gradient computation.

    Attributes
    ----------
    method : str
        ``"backprop"`` or ``"finite_difference"`` (central).
    sizes : tuple of int
        The layer widths of the network.
    n_params : int
        Its parameter count N.
    batch : int
        Samples in the batch.
    dtype : str
        ``"float64"`` or ``"float32"``.
    seconds : float
        Time of one gradient: the fastest of the timed samples, divided by the calls per sample.
    calls : int
        How many gradients were computed in the timed samples.
    """

    method: str
    sizes: tuple[int, ...]
    n_params: int
    batch: int
    dtype: str
    seconds: float
    calls: int


@dataclass(frozen=True)
class Fit:
    """A least-squares line through ``(log N, log t)``: ``t = prefactor * N ** slope``.

    Attributes
    ----------
    slope : float
        The fitted exponent.
    prefactor : float
        Seconds at N = 1 on the fitted line.
    n_min, n_max : int
        The range of N the fit used.
    points : int
        How many measurements it used.
    """

    slope: float
    prefactor: float
    n_min: int
    n_max: int
    points: int

    def predict(self, n_params) -> np.ndarray:
        """Seconds on the fitted line at ``n_params`` (scalar or array)."""
        return self.prefactor * np.asarray(n_params, dtype=np.float64) ** self.slope


def fit_loglog(n_params: Sequence[float], seconds: Sequence[float]) -> Fit:
    """Least-squares fit of ``log t = log c + slope * log N``.

    Parameters
    ----------
    n_params : sequence of float, shape (k,)
        Parameter counts, positive, at least two distinct values.
    seconds : sequence of float, shape (k,)
        Times, positive.

    Returns
    -------
    Fit
    """
    n = np.asarray(n_params, dtype=np.float64)
    t = np.asarray(seconds, dtype=np.float64)
    if n.ndim != 1 or n.shape != t.shape:
        raise ValueError(
            f"n_params and seconds: expected equal 1-D shapes, got {n.shape}, {t.shape}"
        )
    if not (np.all(np.isfinite(n)) and np.all(n > 0) and np.all(np.isfinite(t)) and np.all(t > 0)):
        raise ValueError("n_params and seconds: expected positive finite values")
    if np.unique(n).size < 2:
        raise ValueError("n_params: a slope needs at least two distinct parameter counts")
    x, y = np.log(n), np.log(t)
    xm, ym = x.mean(), y.mean()
    slope = float(np.sum((x - xm) * (y - ym)) / np.sum((x - xm) ** 2))
    return Fit(slope, float(math.exp(ym - slope * xm)), int(n.min()), int(n.max()), int(n.size))


@dataclass(frozen=True)
class CostModel:
    """A three-term cost model ``t = N**power * (fixed + per_root * sqrt(N) + per_param * N)``.

    For backpropagation (``power=0``) on the study's networks [w, w, w] the terms are a fixed
    per-call cost (argument checks, dispatch), a cost per neuron (``w`` is about
    ``sqrt(N / 2)``: activations, their derivatives and loop overheads per row) and a cost per
    parameter (the multiply-adds). Finite differences (``power=1``) pay the same per coordinate.

    Attributes
    ----------
    power : int
        0 or 1.
    fixed, per_root, per_param : float
        Seconds per call, per ``sqrt(N)`` and per parameter (times ``N**power``).
    max_misfit : float
        ``max |model / t - 1|`` over the fitted points.
    """

    power: int
    fixed: float
    per_root: float
    per_param: float
    max_misfit: float

    def terms(self, n_params: float) -> tuple[float, float, float]:
        """The three terms at ``n_params``, in seconds (they sum to the model's time)."""
        scale = float(n_params) ** self.power
        return (
            scale * self.fixed,
            scale * self.per_root * math.sqrt(n_params),
            scale * self.per_param * n_params,
        )

    def predict(self, n_params) -> np.ndarray:
        """Seconds predicted at ``n_params`` (scalar or array)."""
        n = np.asarray(n_params, dtype=np.float64)
        return n**self.power * (self.fixed + self.per_root * np.sqrt(n) + self.per_param * n)


def fit_cost_model(
    n_params: Sequence[float], seconds: Sequence[float], power: int = 0
) -> CostModel:
    """Fit :class:`CostModel` by least squares on the relative error.

    Parameters
    ----------
    n_params : sequence of float, shape (k,)
        Parameter counts (at least three distinct values).
    seconds : sequence of float, shape (k,)
        Positive times.
    power : {0, 1}
        0 for backpropagation, 1 for finite differences (one evaluation per coordinate).

    Returns
    -------
    CostModel
    """
    n = np.asarray(n_params, dtype=np.float64)
    t = np.asarray(seconds, dtype=np.float64)
    if n.ndim != 1 or n.shape != t.shape or np.unique(n).size < 3:
        raise ValueError("n_params and seconds: expected equal 1-D shapes with 3 distinct N")
    if not (np.all(n > 0) and np.all(t > 0) and np.all(np.isfinite(t))):
        raise ValueError("n_params and seconds: expected positive finite values")
    if power not in (0, 1):
        raise ValueError(f"power: expected 0 or 1, got {power!r}")
    basis = n[:, None] ** power * np.stack([np.ones_like(n), np.sqrt(n), n], axis=1)
    coef, *_ = np.linalg.lstsq(basis / t[:, None], np.ones_like(t), rcond=None)
    misfit = float(np.max(np.abs(basis @ coef / t - 1.0)))
    return CostModel(power, float(coef[0]), float(coef[1]), float(coef[2]), misfit)


def fit_methods(measurements: Sequence[Measurement], min_n: int = 1) -> dict[str, Fit]:
    """:func:`fit_loglog` per method over the measurements with ``n_params >= min_n``.

    A method with fewer than two distinct N in that range is left out of the result.
    """
    fits = {}
    for method in (BACKPROP, FINITE_DIFFERENCE):
        rows = [m for m in measurements if m.method == method and m.n_params >= min_n]
        if len({m.n_params for m in rows}) >= 2:
            fits[method] = fit_loglog([m.n_params for m in rows], [m.seconds for m in rows])
    return fits


def network_sizes(width: int) -> tuple[int, int, int]:
    """The study's network family: ``width`` inputs, one hidden layer and ``width`` outputs.

    ``N = 2 * width * (width + 1)``; every layer is as wide as the others, so one forward pass
    costs about N multiply-adds per sample at every size.
    """
    return (width, width, width)


def target_counts(min_n: float, max_n: float, per_decade: int = 4) -> list[tuple[int, ...]]:
    """Networks of the family :func:`network_sizes` with N log-spaced from ``min_n`` to
    ``max_n`` (about ``per_decade`` per decade; duplicates removed).

    Returns
    -------
    list of tuple of int
        Layer widths, in increasing N.
    """
    if not (1 <= min_n < max_n):
        raise ValueError(f"expected 1 <= min_n < max_n, got {min_n}, {max_n}")
    if per_decade < 1:
        raise ValueError(f"per_decade: expected a positive int, got {per_decade}")
    count = max(2, round(math.log10(max_n / min_n) * per_decade) + 1)
    widths = []
    for n in np.geomspace(min_n, max_n, count):
        # Solve 2 w (w + 1) = n for the width w.
        w = max(1, round((-1.0 + math.sqrt(1.0 + 2.0 * n)) / 2.0))
        if w not in widths:
            widths.append(w)
    return [network_sizes(w) for w in widths]


#: The clocks :func:`sweep` can time with: elapsed time, or this process's CPU time.
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def time_call(
    fn: Callable[[], object],
    min_time: float = 0.2,
    max_samples: int = 5,
    min_samples: int = 1,
    timer: Callable[[], float] = time.perf_counter,
):
    """Best time of one call of ``fn``, timeit-style.

    Calls are grouped so that one sample lasts at least ``min_time / max_samples`` seconds; samples
    are taken until ``min_time`` seconds have passed and at least ``min_samples`` were taken (at
    most ``max_samples``). The fastest sample is the least disturbed by other processes. ``timer``
    is the clock (e.g. ``time.process_time`` for CPU time).

    Returns
    -------
    seconds : float
        Time per call of the fastest sample.
    calls : int
        Calls made in all samples.
    """
    target = min_time / max_samples
    number, calls = 1, 0
    while True:
        t0 = timer()
        for _ in range(number):
            fn()
        elapsed = timer() - t0
        calls += number
        if elapsed >= target or number >= 1_000_000:
            break
        number = min(
            1_000_000, max(2 * number, math.ceil(number * 1.2 * target / max(elapsed, 1e-9)))
        )
    best, total = elapsed / number, elapsed
    for k in range(1, max_samples):
        if total >= min_time and k >= min_samples:
            break
        t0 = timer()
        for _ in range(number):
            fn()
        elapsed = timer() - t0
        calls += number
        total += elapsed
        best = min(best, elapsed / number)
    return best, calls


def sweep(
    networks: Sequence[Sequence[int]],
    batch: int = 16,
    dtype="float64",
    *,
    seed: int = 0,
    activation: str = "sigmoid",
    clock: str = "wall",
    fd_max_n: int | None = None,
    fd_max_seconds: float = 20.0,
    min_time: float = 0.2,
    progress: Callable[[Measurement], None] | None = None,
) -> list[Measurement]:
    """Time backpropagation and central finite differences on each network.

    Both are compiled (``MLP.loss_and_grad`` into a preallocated gradient, and
    :func:`fastbp.finite_difference_grad`), and warmed up before timing, so the comparison is of
    algorithms, not of interpreters or compilers.

    Parameters
    ----------
    networks : sequence of sequence of int
        Layer widths of each network, in increasing N (e.g. :func:`target_counts`).
    batch : int
        Samples in the (fixed) batch.
    dtype : str or numpy dtype
        float64 or float32.
    seed : int
        Seed of the networks and the data.
    activation : str
        Activation of every layer (a name in :data:`fastbp.ACTIVATIONS`).
    clock : {"wall", "cpu"}
        ``"wall"`` times elapsed time; ``"cpu"`` this process's CPU time (all its threads), which
        other processes on a busy machine disturb much less. The two agree for serial kernels on
        an idle machine.
    fd_max_n : int, optional
        Largest N timed by finite differences (default: no limit but time).
    fd_max_seconds : float
        Finite differences stop at the first network where one gradient is predicted (from the
        previous one, as N^2) to take longer than this. Each point is timed at least twice.
    min_time : float
        Seconds of timing per backpropagation point (see :func:`time_call`).
    progress : callable, optional
        Called with each :class:`Measurement` as soon as it is made.

    Returns
    -------
    list of Measurement
    """
    if clock not in CLOCKS:
        raise ValueError(f"clock: expected one of {sorted(CLOCKS)}, got {clock!r}")
    timer = CLOCKS[clock]
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    results: list[Measurement] = []
    fd_last: Measurement | None = None
    fd_on = True

    def record(m: Measurement) -> None:
        results.append(m)
        if progress is not None:
            progress(m)

    for sizes in networks:
        sizes = tuple(int(s) for s in sizes)
        net = MLP(sizes, activation, dtype=dtype, seed=seed)
        X = rng.uniform(-1.0, 1.0, size=(batch, sizes[0])).astype(dtype)
        Y = rng.uniform(0.1, 0.9, size=(batch, sizes[-1])).astype(dtype)
        grad = np.empty_like(net.params)
        net.loss_and_grad(X, Y, out=grad)  # compile or load, and grow the workspace
        # Many short samples: their minimum is robust against other processes on the machine.
        seconds, calls = time_call(
            lambda: net.loss_and_grad(X, Y, out=grad),  # noqa: B023
            min_time,
            max_samples=20,
            timer=timer,
        )
        record(Measurement(BACKPROP, sizes, net.n_params, batch, dtype.name, seconds, calls))

        if fd_on and fd_max_n is not None and net.n_params > fd_max_n:
            fd_on = False
        if fd_on and fd_last is not None:
            predicted = fd_last.seconds * (net.n_params / fd_last.n_params) ** 2
            fd_on = predicted <= fd_max_seconds
        if not fd_on:
            continue
        if fd_last is None:
            finite_difference_grad(net, X, Y)  # compile or load before the first timing
        # At least two samples: a single long one is easily slowed by other processes.
        seconds, calls = time_call(
            lambda: finite_difference_grad(net, X, Y),  # noqa: B023
            min(min_time, fd_max_seconds),
            max_samples=3,
            min_samples=2,
            timer=timer,
        )
        fd_last = Measurement(
            FINITE_DIFFERENCE, sizes, net.n_params, batch, dtype.name, seconds, calls
        )
        record(fd_last)
    return results


def write_csv(measurements: Sequence[Measurement], path) -> None:
    """Write the measurements as CSV, one row each, columns ``method, sizes, n_params, batch,
    dtype, seconds, calls`` (``sizes`` joined by ``-``)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(_CSV_FIELDS)
        for m in measurements:
            writer.writerow(
                (
                    m.method,
                    "-".join(map(str, m.sizes)),
                    m.n_params,
                    m.batch,
                    m.dtype,
                    repr(float(m.seconds)),
                    m.calls,
                )
            )


def _positive_int(cell: str) -> int:
    value = int(cell)
    if value < 1:
        raise ValueError(cell)
    return value


def _sizes(cell: str) -> tuple[int, ...]:
    sizes = tuple(_positive_int(s) for s in cell.split("-"))
    if len(sizes) < 2:
        raise ValueError(cell)
    return sizes


def _seconds(cell: str) -> float:
    value = float(cell)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(cell)
    return value


def _one_of(*names: str):
    def parse(cell: str) -> str:
        if cell not in names:
            raise ValueError(cell)
        return cell

    return parse


#: Per column of the CSV: how to read a cell, and what that expects (for the error message).
_CSV_READERS = (
    (_one_of(BACKPROP, FINITE_DIFFERENCE), f"{BACKPROP} or {FINITE_DIFFERENCE}"),
    (_sizes, "layer widths joined by '-', such as 8-8-8"),
    (_positive_int, "a positive int"),
    (_positive_int, "a positive int"),
    (_one_of("float64", "float32"), "float64 or float32"),
    (_seconds, "a finite number of seconds >= 0"),
    (_positive_int, "a positive int"),
)


def read_csv(path) -> list[Measurement]:
    """Read measurements written by :func:`write_csv`.

    Parameters
    ----------
    path : str or os.PathLike
        A CSV file written by :func:`write_csv`.

    Returns
    -------
    list of Measurement
        One per row, in the file's order.

    Raises
    ------
    ValueError
        When the file is not such a table: the message names the file, the row (1-based line
        number) and the column (1-based, with its name) and what was expected.
    OSError
        When the file cannot be read.
    """
    with open(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        row = data.count(b"\n", 0, exc.start) + 1
        raise ValueError(
            f"{path}: row {row}: expected UTF-8 text, found the byte 0x{data[exc.start]:02x}"
        ) from None
    reader = csv.reader(text.splitlines(keepends=True))
    header = next(reader, None)
    if tuple(header or ()) != _CSV_FIELDS:
        found = ",".join(header) if header else "an empty file"
        raise ValueError(f"{path}: row 1: expected columns {','.join(_CSV_FIELDS)}, found {found}")
    measurements = []
    for cells in reader:
        row = reader.line_num
        if not cells:
            continue
        if len(cells) != len(_CSV_FIELDS):
            raise ValueError(
                f"{path}: row {row}: expected {len(_CSV_FIELDS)} columns "
                f"({','.join(_CSV_FIELDS)}), found {len(cells)}"
            )
        values = []
        for column, (cell, name, (parse, expected)) in enumerate(
            zip(cells, _CSV_FIELDS, _CSV_READERS), start=1
        ):
            try:
                values.append(parse(cell.strip()))
            except ValueError:
                raise ValueError(
                    f"{path}: row {row}, column {column} ({name}): expected {expected}, "
                    f"found {cell!r}"
                ) from None
        measurements.append(Measurement(*values))
    return measurements


def plot(measurements: Sequence[Measurement], fits: dict[str, Fit], path) -> None:
    """Log-log plot of both curves and their fitted lines, saved to ``path`` (PNG).

    Needs matplotlib (the ``plot`` extra); raises ``ImportError`` without it.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    styles = {
        BACKPROP: ("backpropagation", "tab:blue", "o"),
        FINITE_DIFFERENCE: ("central finite differences", "tab:red", "s"),
    }
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
    try:
        for method, (label, color, marker) in styles.items():
            rows = [m for m in measurements if m.method == method]
            if not rows:
                continue
            n = np.array([m.n_params for m in rows], dtype=np.float64)
            t = np.array([m.seconds for m in rows])
            fit = fits.get(method)
            if fit is not None:
                label += f"\nslope {fit.slope:.2f} (fit over N = {fit.n_min}..{fit.n_max})"
            ax.loglog(n, t, marker=marker, linestyle="none", color=color, label=label)
            if fit is not None:
                line = np.geomspace(fit.n_min, fit.n_max, 50)
                ax.loglog(line, fit.predict(line), color=color, linestyle="--", linewidth=1)
        first = measurements[0] if measurements else None
        title = "gradient time against parameter count N"
        if first is not None:
            title += f" (batch {first.batch}, {first.dtype})"
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("parameters N")
        ax.set_ylabel("seconds per gradient")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
        fig.tight_layout()
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
