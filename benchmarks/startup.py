"""What a new user waits for: the first run of fastbp, cold and warm, beside PyTorch.

Run: ``python -m benchmarks.startup [--rounds 3] [--jobs first_grad,train] [--avx2]``.

Two jobs, each timed as a whole fresh process (wall clock, interpreter start included):

- ``first_grad``: import, ``MLP([784, 128, 10])`` (tanh, identity), one ``loss_and_grad`` of
  32 samples in float64; PyTorch: import, the same ``nn.Sequential`` in float64, one forward
  and ``backward()`` of ``0.5 * ||f(X) - Y||^2``.
- ``train``: ``python -m fastbp train`` (the README's main job: smooth_regression, 1000
  samples, [1, 32, 32, 1], Adam, 150 epochs of batch 16, validation loss per epoch);
  PyTorch: the same job written with ``torch.nn`` and ``torch.optim.Adam``.

fastbp runs "cold" (an empty ``NUMBA_CACHE_DIR``: what a user meets after installing) and
"warm" (the cache the cold run and its helper process left). After each cold run the script
waits for fastbp's helper processes (:mod:`fastbp._warm`, which compile the tiled kernels into
the cache in the background) to exit before it times anything else, so no run competes with
another's helper. Runs alternate fastbp and PyTorch; the table gives medians and the ratio
torch / fastbp of the medians (above 1: fastbp is faster). PyTorch is skipped when not
installed (``pip install torch==2.13.0``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

FASTBP_FIRST_GRAD = """
import numpy as np
import fastbp
rng = np.random.default_rng(0)
net = fastbp.MLP([784, 128, 10], ["tanh", "identity"], seed=0)
X = rng.normal(size=(32, 784))
Y = rng.normal(size=(32, 10))
loss, grad = net.loss_and_grad(X, Y)
assert np.isfinite(loss)
"""

TORCH_FIRST_GRAD = """
import numpy as np
import torch
rng = np.random.default_rng(0)
net = torch.nn.Sequential(
    torch.nn.Linear(784, 128), torch.nn.Tanh(), torch.nn.Linear(128, 10)
).double()
X = torch.from_numpy(rng.normal(size=(32, 784)))
Y = torch.from_numpy(rng.normal(size=(32, 10)))
loss = 0.5 * ((net(X) - Y) ** 2).sum()
loss.backward()
assert np.isfinite(float(loss.detach()))
"""

# fastbp train's default job (fastbp.cli_train.DEFAULTS["smooth_regression"]), in PyTorch: the
# data is generated as fastbp.datasets.smooth_regression does it, without importing fastbp.
TORCH_TRAIN = """
import numpy as np
import torch
rng = np.random.default_rng(0)
U = rng.normal(size=(1, 1)); U /= np.linalg.norm(U, axis=0, keepdims=True)
phase = rng.uniform(0.0, 2.0 * np.pi, size=1)
X = rng.uniform(-1.0, 1.0, size=(1000, 1)); Y = 0.5 + 0.4 * np.sin(np.pi * (X @ U) + phase)
X, Y = torch.from_numpy(X), torch.from_numpy(Y)
Xtr, Ytr, Xva, Yva = X[:800], Y[:800], X[800:], Y[800:]
torch.manual_seed(0)
net = torch.nn.Sequential(
    torch.nn.Linear(1, 32), torch.nn.Tanh(), torch.nn.Linear(32, 32), torch.nn.Tanh(),
    torch.nn.Linear(32, 1),
).double()
opt = torch.optim.Adam(net.parameters(), lr=0.01)
gen = torch.Generator().manual_seed(0)
for epoch in range(150):
    order = torch.randperm(800, generator=gen)
    for s in range(0, 800, 16):
        idx = order[s : s + 16]
        opt.zero_grad()
        loss = 0.5 * ((net(Xtr[idx]) - Ytr[idx]) ** 2).sum()
        (loss / len(idx)).backward()
        opt.step()
    with torch.no_grad():
        val = 0.5 * ((net(Xva) - Yva) ** 2).sum().item() / 200
print(f"validation loss {val:.4e}")
"""


def _helpers_running() -> bool:
    """Whether a fastbp._warm helper process runs (its command line names the module)."""
    out = subprocess.run(
        ["pgrep", "-f", "fastbp._warm import main"], capture_output=True, text=True, check=False
    )
    return bool(out.stdout.strip())


def _wait_for_helpers(limit: float = 900.0) -> float:
    """Block until no helper runs; returns the seconds waited."""
    t0 = time.perf_counter()
    while _helpers_running() and time.perf_counter() - t0 < limit:
        time.sleep(0.5)
    return time.perf_counter() - t0


def _timed(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def _fastbp_cmd(job: str) -> list[str]:
    if job == "train":
        return [sys.executable, "-m", "fastbp", "train", "--no-progress"]
    return [sys.executable, "-c", FASTBP_FIRST_GRAD]


def _torch_cmd(job: str) -> list[str]:
    return [sys.executable, "-c", TORCH_TRAIN if job == "train" else TORCH_FIRST_GRAD]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--jobs", default="first_grad,train")
    p.add_argument(
        "--avx2",
        action="store_true",
        help="hold everyone to AVX2 on an AVX-512 host: NUMBA_CPU_NAME=x86-64-v3 with an empty "
        "NUMBA_CPU_FEATURES for fastbp, ATEN_CPU_CAPABILITY=avx2 and OPENBLAS_CORETYPE=Haswell "
        "for PyTorch",
    )
    args = p.parse_args(argv)
    try:
        import torch  # noqa: F401

        have_torch = True
    except ImportError:
        have_torch = False
    base = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_", "FASTBP_"))}
    base["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), base.get("PYTHONPATH")]))
    torch_env = dict(base)
    if args.avx2:
        base.update(NUMBA_CPU_NAME="x86-64-v3", NUMBA_CPU_FEATURES="")
        torch_env.update(ATEN_CPU_CAPABILITY="avx2", OPENBLAS_CORETYPE="Haswell")
    rows = []
    for job in args.jobs.split(","):
        cold, warm, torch_t = [], [], []
        for _ in range(args.rounds):
            cache = tempfile.mkdtemp(prefix="fastbp-startup-")
            env = {**base, "NUMBA_CACHE_DIR": cache}
            try:
                _wait_for_helpers()
                cold.append(_timed(_fastbp_cmd(job), env))
                _wait_for_helpers()  # the helper fills the cache for the warm run
                if have_torch:
                    torch_t.append(_timed(_torch_cmd(job), torch_env))
                warm.append(_timed(_fastbp_cmd(job), env))
                _wait_for_helpers()
            finally:
                shutil.rmtree(cache, ignore_errors=True)
        med = {k: statistics.median(v) for k, v in (("cold", cold), ("warm", warm)) if v}
        if torch_t:
            med["torch"] = statistics.median(torch_t)
        rows.append((job, med, cold, warm, torch_t))
    print("| job | fastbp cold | fastbp warm | PyTorch | torch / cold | torch / warm |")
    print("|---|---|---|---|---|---|")
    for job, med, *_ in rows:
        t = med.get("torch")
        cold_ratio = f"{t / med['cold']:.2f}" if t else "-"
        warm_ratio = f"{t / med['warm']:.2f}" if t else "-"
        print(
            f"| {job} | {med['cold']:.2f} s | {med['warm']:.2f} s | "
            f"{f'{t:.2f} s' if t else '-'} | {cold_ratio} | {warm_ratio} |"
        )
    for job, _, cold, warm, torch_t in rows:
        print(f"{job}: cold {cold}, warm {warm}, torch {torch_t}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
