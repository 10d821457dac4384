"""Tests of the complexity study: the slope fit, the CSV table, the sweep and the CLI.

Timings themselves are never asserted (they depend on the machine); the tests check the numbers
the study derives from them and what the command writes.
"""

from __future__ import annotations

import csv
import sys

import numpy as np
import pytest

from fastbp import MLP
from fastbp.cli import main
from fastbp.complexity import (
    BACKPROP,
    FINITE_DIFFERENCE,
    Measurement,
    fit_cost_model,
    fit_loglog,
    fit_methods,
    network_sizes,
    read_csv,
    sweep,
    target_counts,
    time_call,
    write_csv,
)


@pytest.mark.parametrize("slope", [1.0, 2.0, 0.5])
def test_fit_recovers_an_exact_power_law(slope):
    n = np.geomspace(100, 1e5, 9)
    fit = fit_loglog(n, 3e-7 * n**slope)
    assert fit.slope == pytest.approx(slope, abs=1e-12)
    assert fit.prefactor == pytest.approx(3e-7, rel=1e-10)
    assert (fit.n_min, fit.n_max, fit.points) == (100, 100_000, 9)
    np.testing.assert_allclose(fit.predict(n), 3e-7 * n**slope, rtol=1e-10)


def test_fit_with_noise_is_close_to_the_true_slope(rng):
    n = np.geomspace(1e3, 1e5, 40)
    t = 2e-9 * n**2 * np.exp(rng.normal(0.0, 0.05, size=n.size))
    assert fit_loglog(n, t).slope == pytest.approx(2.0, abs=0.05)


def test_fit_is_least_squares_in_log_space():
    n = np.array([10.0, 100.0, 1000.0])
    t = np.array([1.0, 10.0, 1000.0])  # log10 t = 0, 1, 3 at log10 N = 1, 2, 3
    fit = fit_loglog(n, t)
    assert fit.slope == pytest.approx(1.5, abs=1e-12)  # least squares: (3 - 0) / 2
    assert np.log10(fit.prefactor) == pytest.approx(4.0 / 3.0 - 1.5 * 2.0, abs=1e-12)


@pytest.mark.parametrize(
    ("n", "t", "match"),
    [
        ([100, 100], [1.0, 2.0], "two distinct"),
        ([100], [1.0], "two distinct"),
        ([100, 200], [1.0], "shapes"),
        ([100, -200], [1.0, 2.0], "positive"),
        ([100, 200], [1.0, 0.0], "positive"),
        ([100, 200], [1.0, np.nan], "positive"),
    ],
)
def test_fit_rejects_bad_input(n, t, match):
    with pytest.raises(ValueError, match=match):
        fit_loglog(n, t)


@pytest.mark.parametrize("power", [0, 1])
def test_cost_model_recovers_its_terms(power):
    n = np.geomspace(100, 1e5, 8)
    t = n**power * (8e-6 + 3e-7 * np.sqrt(n) + 1.5e-8 * n)
    model = fit_cost_model(n, t, power)
    assert model.fixed == pytest.approx(8e-6, rel=1e-8)
    assert model.per_root == pytest.approx(3e-7, rel=1e-8)
    assert model.per_param == pytest.approx(1.5e-8, rel=1e-8)
    assert model.max_misfit < 1e-10
    np.testing.assert_allclose(model.predict(n), t, rtol=1e-9)
    assert sum(model.terms(1e4)) == pytest.approx(float(model.predict(1e4)), rel=1e-12)
    # The fixed and per-neuron terms are why a log-log slope over [1e3, 1e5] falls short:
    assert fit_loglog(n[n >= 1e3], t[n >= 1e3]).slope < power + 1 - 0.05


def test_cost_model_rejects_bad_input():
    with pytest.raises(ValueError, match="3 distinct"):
        fit_cost_model([1, 2, 2], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="power"):
        fit_cost_model([1, 2, 3], [1.0, 2.0, 3.0], power=2)


def _m(method, n, seconds):
    return Measurement(method, (n, n, n), n, 16, "float64", seconds, 1)


def test_fit_methods_filters_by_n_and_skips_thin_methods():
    rows = [_m(BACKPROP, n, 1e-6 * n) for n in (10, 100, 1000, 10000)]
    rows[0] = _m(BACKPROP, 10, 1.0)  # a fixed-cost outlier below min_n
    rows += [_m(FINITE_DIFFERENCE, n, 1e-9 * n**2) for n in (10, 100)]
    fits = fit_methods(rows, min_n=100)
    assert set(fits) == {BACKPROP}  # one finite-difference point at N >= 100: no slope
    assert fits[BACKPROP].slope == pytest.approx(1.0, abs=1e-12)
    assert fits[BACKPROP].points == 3
    all_fits = fit_methods(rows)
    assert all_fits[FINITE_DIFFERENCE].slope == pytest.approx(2.0, abs=1e-12)
    assert all_fits[BACKPROP].slope < 0.5  # the outlier flattens the whole-range fit


def test_target_counts_span_the_range_in_increasing_n():
    nets = target_counts(100, 100_000, per_decade=4)
    counts = [MLP(sizes).n_params for sizes in nets]
    assert counts == sorted(set(counts))
    assert len(counts) == 13
    assert counts[0] == pytest.approx(100, rel=0.3)
    assert counts[-1] == pytest.approx(100_000, rel=0.03)
    assert all(sizes == network_sizes(sizes[0]) for sizes in nets)
    assert [2 * w * (w + 1) for w, _, _ in nets] == counts
    with pytest.raises(ValueError, match="min_n < max_n"):
        target_counts(1000, 100)


def test_time_call_counts_its_calls():
    calls = []
    seconds, n = time_call(lambda: calls.append(1), min_time=0.01, max_samples=3)
    assert n == len(calls) >= 1
    assert seconds > 0
    calls.clear()
    # A slow call fills min_time at once; min_samples still forces more samples.
    seconds, n = time_call(lambda: calls.append(1), min_time=0.0, max_samples=5, min_samples=3)
    assert n == len(calls) == 3


def test_csv_round_trip(tmp_path):
    t_bp = 1.2345678901234567e-05
    rows = [
        Measurement(BACKPROP, (7, 7, 7), 112, 16, "float64", t_bp, 4096),
        Measurement(FINITE_DIFFERENCE, (7, 7, 7), 112, 16, "float64", 0.0031, 12),
    ]
    path = tmp_path / "c.csv"
    write_csv(rows, path)
    with open(path, newline="") as f:
        table = list(csv.reader(f))
    assert table[0] == ["method", "sizes", "n_params", "batch", "dtype", "seconds", "calls"]
    assert table[1] == ["backprop", "7-7-7", "112", "16", "float64", repr(t_bp), "4096"]
    assert read_csv(path) == rows


def test_read_csv_rejects_other_tables(tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="expected columns"):
        read_csv(path)


def test_sweep_stops_finite_differences_by_n_and_by_predicted_time():
    nets = [(2, 2, 2), (3, 3, 3), (4, 4, 4)]
    rows = sweep(nets, batch=4, fd_max_n=30, min_time=0.001)
    assert [(m.method, m.n_params) for m in rows] == [
        (BACKPROP, 12),
        (FINITE_DIFFERENCE, 12),
        (BACKPROP, 24),
        (FINITE_DIFFERENCE, 24),
        (BACKPROP, 40),
    ]
    # Any FD time predicted from the first point exceeds 1e-12 s: only the first point is timed.
    rows = sweep(nets, batch=4, fd_max_seconds=1e-12, min_time=0.001, activation="identity")
    assert [m.method for m in rows].count(FINITE_DIFFERENCE) == 1
    assert all(m.seconds > 0 and m.calls >= 1 and m.batch == 4 for m in rows)


def _run_cli(tmp_path, capsys, *extra):
    csv_path, png_path = tmp_path / "c.csv", tmp_path / "c.png"
    argv = ["complexity", "--min-n", "20", "--max-n", "300", "--per-decade", "3"]
    argv += ["--min-time", "0.001", "--fit-min-n", "50", "--batch", "2"]
    argv += ["--csv", str(csv_path), "--plot", str(png_path), *extra]
    assert main(argv) == 0
    return csv_path, png_path, capsys.readouterr().out


def test_cli_tiny_sweep_writes_the_table_and_fits(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    csv_path, png_path, out = _run_cli(tmp_path, capsys)
    rows = read_csv(csv_path)
    bp = [m for m in rows if m.method == BACKPROP]
    fd = [m for m in rows if m.method == FINITE_DIFFERENCE]
    assert [m.sizes for m in bp] == target_counts(20, 300, 3)
    assert [m.sizes for m in fd] == [m.sizes for m in bp]  # all fast enough for FD
    assert "backpropagation: time grows as N^" in out
    assert "finite differences: time grows as N^" in out
    assert "backprop cost model: " in out
    assert "finite diff cost model per coordinate: " in out
    assert f"at N={bp[-1].n_params}: finite differences take" in out
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Refitting the written table gives the same slopes without measuring again.
    assert main(["complexity", "--from-csv", str(csv_path), "--fit-min-n", "50", "--no-plot"]) == 0
    again = capsys.readouterr().out
    for line in out.splitlines():
        if "time grows as" in line:
            assert line in again


def test_cli_without_matplotlib_skips_the_plot(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    csv_path, png_path, out = _run_cli(tmp_path, capsys)
    assert "plot skipped: matplotlib is not installed" in out
    assert not png_path.exists()
    assert csv_path.exists()


def test_cli_rejects_an_empty_range(capsys):
    assert main(["complexity", "--min-n", "500", "--max-n", "500"]) == 2
    assert "--min-n (500) must be below --max-n (500)" in capsys.readouterr().err
