"""The instruction-set tiers of the register tiles (fastbp._tiers, tools/gen_tiles.py).

- the committed tier modules are the generator's output, byte for byte, and the shapes in its
  table are what the loops unroll (pure Python: no compile);
- the tier follows the CPU name and features Numba compiles for, FASTBP_TIER overrides it, a
  bad value is a clear error, and each tier has its own disk-cache files;
- (slow) every tier's shapes, compiled for this host, give the default tier's bits at
  production shapes (tails in every dimension, both dtypes, 1 and 2 threads), and the AVX-512
  tier compiles for x86-64-v4 (compiled, not run: this host may lack AVX-512).
"""

import importlib
import importlib.util
import re
from pathlib import Path

import pytest
from helpers import run_script, script_result

from fastbp import _dispatch, _jit, _tiers, kernels
from fastbp._kernels import backward_tiles, forward_tiles

ROOT = Path(__file__).resolve().parent.parent
GEN = ROOT / "tools" / "gen_tiles.py"


@pytest.fixture(scope="module")
def gen():
    """tools/gen_tiles.py as a module (the repository's, not an installed copy)."""
    spec = importlib.util.spec_from_file_location("gen_tiles", GEN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("tier", _tiers.TIERS)
def test_committed_module_is_the_generators_output(gen, tier):
    path = ROOT / "fastbp" / "_kernels" / f"tiles_{tier}.py"
    assert path.read_text(encoding="utf-8") == gen.module_source(tier), (
        f"{path.name} is stale: run python tools/gen_tiles.py"
    )


def test_generator_tiers_are_the_packages(gen):
    assert tuple(gen.TIERS) == _tiers.TIERS
    assert gen.main(["--check"]) == 0


@pytest.mark.parametrize("tier", _tiers.TIERS)
def test_shapes_drive_the_unrolled_tiles(gen, tier):
    """Each tile has exactly its shape's accumulators: c{r}_{j} for r < rows, j < lanes."""
    s = gen.TIERS[tier]
    text = gen.module_source(tier)
    funcs = re.split(r"\n@kernel", text)

    def accumulators(name):
        body = next(f for f in funcs if re.search(rf"def {name}\(", f))
        return {(int(r), int(j)) for r, j in re.findall(r"\bc(\d+)_(\d+) = fma\(", body)}

    def grid(rows, cols):
        return {(r, j) for r in range(rows) for j in range(cols)}

    assert accumulators("forward_rows") == grid(s["ROWS"], s["LANES"])
    assert accumulators("delta_columns") == grid(s["DELTA_SAMPLES"], s["COLS"])
    assert accumulators("weight_gradient_rows") == grid(s["WG_ROWS"], s["WG_COLS"])


def test_generator_rejects_misaligned_shapes(gen):
    bad = {**gen.TIERS["avx2"], "LANES": 12}  # does not divide the sample span
    with pytest.raises(ValueError, match="LANES"):
        gen.check_shape("test", bad)
    bad = {**gen.TIERS["avx2"], "WG_COLS": 12}
    with pytest.raises(ValueError, match="WG_COLS"):
        gen.check_shape("test", bad)


@pytest.mark.parametrize(
    ("cpu", "features", "tier"),
    [
        ("znver3", "+64bit,+avx,+avx2,+fma,-avx512f,-avx512bw", "avx2"),
        ("znver4", "+avx2,+fma,+avx512f,+avx512bw", "avx512"),
        ("haswell", "+avx2,-fma", "portable"),  # AVX2 without FMA: not the v3 level
        ("x86-64-v4", "", "avx512"),  # NUMBA_CPU_FEATURES empty: the name's own features
        ("x86-64-v3", "", "avx2"),
        ("Skylake-AVX512", "", "avx512"),
        ("generic", "", "portable"),
        ("x86-64", "", "portable"),
        ("neoverse-v1", "+neon,+sve,+fp-armv8", "portable"),
        ("apple-m1", "", "portable"),
    ],
)
def test_tier_for(cpu, features, tier):
    assert _tiers.tier_for(cpu, features) == tier


def test_the_tiles_are_the_chosen_tiers():
    module = importlib.import_module(f"fastbp._kernels.tiles_{_tiers.TIER}")
    assert forward_tiles.TIER == backward_tiles.TIER == _tiers.TIER
    assert forward_tiles.forward_rows is module.forward_rows
    assert backward_tiles.delta_columns is module.delta_columns
    assert (forward_tiles.LANES, backward_tiles.COLS) == (module.LANES, module.COLS)


def test_each_tier_has_its_own_cache_files():
    if _jit.CACHE_DIR is None:
        pytest.skip("no disk cache in this process")
    f = forward_tiles.forward_rows.py_func
    locator = _jit._PackageLocator(f, f.__code__.co_filename)
    assert locator.get_disambiguator().endswith(f"-{_tiers.TIER}")


IMPORT = """
import json
import sys
import fastbp, fastbp.kernels
from fastbp import _dispatch
from fastbp._kernels import backward_tiles, forward_tiles
tiles = sorted(m for m in sys.modules if ".tiles_" in m)
print("RESULT " + json.dumps([forward_tiles.TIER, forward_tiles.LANES, backward_tiles.COLS, tiles,
                              _dispatch.THREAD_MIN_WORK]))
"""


@pytest.mark.parametrize("tier", _tiers.TIERS)
def test_override(gen, tier):
    # FASTBP_THREAD_MIN_WORK empty: the tier's own threshold (the suite sets the kernels').
    got = script_result(run_script(IMPORT, FASTBP_TIER=tier.upper(), FASTBP_THREAD_MIN_WORK=""))
    s = gen.TIERS[tier]
    # Only the chosen tier's module is imported (so only it is ever compiled).
    assert got[:4] == [tier, s["LANES"], s["COLS"], [f"fastbp._kernels.tiles_{tier}"]]
    assert got[4] == _dispatch.THREAD_MIN_WORK_BY_TIER[tier]


def test_thread_threshold(monkeypatch):
    """When a call goes threaded: its largest layer product against THREAD_MIN_WORK."""
    # The suite's own setting (tests/conftest.py): the kernels' per-layer threshold.
    assert _dispatch.THREAD_MIN_WORK == kernels.PARALLEL_MIN_WORK
    for tier, work in _dispatch.THREAD_MIN_WORK_BY_TIER.items():
        assert work >= kernels.PARALLEL_MIN_WORK, tier
    # [10, 64, 64, 1] at B = 442 (1.8e6 multiply-adds in its largest layer) stays on one thread
    # on AVX2, where two threads made it 1.7x slower (docs/perf-log.md, "Issue 14").
    assert 442 * 64 * 64 < _dispatch.THREAD_MIN_WORK_BY_TIER["avx2"]
    monkeypatch.setattr(_dispatch, "THREAD_MIN_WORK", 1000)
    monkeypatch.setattr(_dispatch.numba, "get_num_threads", lambda: 2)
    assert _dispatch.threaded((10, 10, 10), 10)  # 1000 multiply-adds
    assert not _dispatch.threaded((10, 10, 10), 9)
    assert _dispatch.threaded((10, 10, 1, 10), 10)  # the largest layer decides, not the sum
    monkeypatch.setattr(_dispatch.numba, "get_num_threads", lambda: 1)
    assert not _dispatch.threaded((10, 10, 10), 10**6)


def test_thread_threshold_from_the_environment(monkeypatch):
    monkeypatch.setenv("FASTBP_THREAD_MIN_WORK", "123456789")
    assert _dispatch._thread_min_work() == 123456789
    monkeypatch.setenv("FASTBP_THREAD_MIN_WORK", "1")  # never below the kernels' own
    assert _dispatch._thread_min_work() == kernels.PARALLEL_MIN_WORK
    monkeypatch.setenv("FASTBP_THREAD_MIN_WORK", "")
    assert _dispatch._thread_min_work() == _dispatch.THREAD_MIN_WORK_BY_TIER[_tiers.TIER]
    monkeypatch.setenv("FASTBP_THREAD_MIN_WORK", "lots")
    with pytest.raises(ValueError, match="FASTBP_THREAD_MIN_WORK: expected an integer"):
        _dispatch._thread_min_work()


def test_bad_override_is_a_clear_error():
    import os
    import subprocess
    import sys

    env = {**os.environ, "FASTBP_TIER": "sse9"}
    proc = subprocess.run(
        [sys.executable, "-c", "import fastbp"], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode != 0
    assert "FASTBP_TIER: expected one of avx512, avx2, portable, got 'sse9'" in proc.stderr


# Production shapes with tails in every dimension (widths past and between the tiles of every
# tier, batches that do not fill a span, odd rows), both dtypes, the single-sample path, and
# thread splits of every kind (as tests/test_threads_bitwise.py).
BITS = """
import hashlib, json
import numba
import numpy as np
import fastbp
from fastbp import kernels
from fastbp._kernels import forward_tiles

cases = [
    ((2, 16, 1), 1, "tanh", "float64"),
    ((784, 128, 10), 1, "sigmoid", "float32"),
    ((37, 45, 29, 3), 5, "relu", "float64"),
    ((130, 257, 129, 3), 41, "softplus", "float32"),
    ((301, 203, 37), 67, "tanh", "float64"),
    ((784, 128, 10), 256, "sigmoid", "float64"),
    ((300, 130, 5), 299, "tanh", "float32"),
    ((64, 65, 63), 299, "leaky_relu", "float64"),
    ((64, 520, 130), 128, "sigmoid", "float32"),
    ((10, 64, 64, 1), 442, "tanh", "float64"),
]
rng = np.random.default_rng(7)
out = {"tier": forward_tiles.TIER}
for sizes, batch, act, dtype in cases:
    net = fastbp.MLP(sizes, act, dtype=dtype, seed=3)
    X = rng.standard_normal((batch, sizes[0])).astype(dtype)
    Y = rng.standard_normal((batch, sizes[-1])).astype(dtype)
    for nt in (1, 2):
        numba.set_num_threads(nt)
        loss, grad = net.loss_and_grad(X, Y)
        f = net.forward(X)
        digest = hashlib.sha256(grad.tobytes() + f.tobytes() + np.float64(loss).tobytes())
        out[f"{sizes}-{batch}-{dtype}-{nt}"] = digest.hexdigest()
print("RESULT " + json.dumps(out))
"""


@pytest.mark.slow
def test_every_tier_gives_the_same_bits():
    results = {
        t: script_result(run_script(BITS, FASTBP_TIER=t, NUMBA_NUM_THREADS="2", timeout=3600))
        for t in _tiers.TIERS
    }
    assert [r.pop("tier") for r in results.values()] == list(_tiers.TIERS)
    first = results[_tiers.TIERS[0]]
    for tier, res in results.items():
        differ = sorted(k for k in first if first[k] != res[k])
        assert not differ, f"{tier} differs from {_tiers.TIERS[0]} at {differ}"


COMPILE_V4 = """
import json
from numba import types
from fastbp._kernels import backward_tiles, forward_tiles
assert forward_tiles.TIER == "avx512", forward_tiles.TIER
f8, i8, b1 = types.float64, types.int64, types.boolean
v, m = types.float64[::1], types.float64[:, ::1]
forward_tiles.forward_rows_gradient.compile((v, i8, i8, i8, m, m, m, m, m, i8, i8, i8, b1))
backward_tiles.delta_columns.compile((v, i8, m, i8, m, m, v, i8, i8))
asm = forward_tiles.forward_rows_gradient.inspect_asm()
print("RESULT " + json.dumps(sum("zmm" in a for a in asm.values())))
"""


@pytest.mark.slow
def test_avx512_tier_compiles_for_x86_64_v4():
    """Compiled for x86-64-v4 (never run here): the tier selected by the CPU name alone."""
    out = run_script(
        COMPILE_V4, NUMBA_CPU_NAME="x86-64-v4", NUMBA_CPU_FEATURES="", FASTBP_DISABLE_CACHE="1"
    )
    assert script_result(out) == 1  # one signature, and its code uses zmm registers
