"""The instruction-set tier of the register tiles, chosen once at import.

The register tiles (:mod:`fastbp._kernels.forward_tiles`, :mod:`fastbp._kernels.backward_tiles`)
come in one generated module per tier (``fastbp/_kernels/tiles_<tier>.py``, written by
``tools/gen_tiles.py``), each with tile shapes sized to that tier's vector registers:

============  =============================================  ===============================
tier          for                                            registers
============  =============================================  ===============================
``avx512``    AVX-512F (x86-64-v4: Skylake-X and later        32 zmm, 8 float64 each
              Xeons, Ice Lake, Zen 4 and 5)
``avx2``      AVX2 and FMA (x86-64-v3: Haswell to Raptor      16 ymm, 4 float64 each
              Lake, Zen 1 to 3)
``portable``  anything else (SSE2-only x86, aarch64 NEON,     16 or 32, 2 float64 each
              ppc64le)
============  =============================================  ===============================

The tier follows what Numba compiles for: ``NUMBA_CPU_NAME`` and ``NUMBA_CPU_FEATURES`` where
set, else the host's CPU as llvmlite reports it (the same rule as Numba's own code generator),
so compiling for another CPU (``NUMBA_CPU_NAME=x86-64-v3 NUMBA_CPU_FEATURES=``) also selects its
tiles. ``FASTBP_TIER=avx512|avx2|portable`` overrides the choice (tests, and measuring one
tier's shapes on another CPU: the shape and the instruction set are separate knobs, so the
``avx512`` shapes compiled for an AVX2 host run there). Every tier gives the same bits (each
output element is summed in the same order), so the tier changes speed only. Only the chosen
tier's module is imported and compiled, and the disk cache keeps each tier's code apart
(:mod:`fastbp._jit`).
"""

from __future__ import annotations

import os

__all__ = ["TIER", "TIERS", "host_tier", "tier_for"]

#: The tiers, fastest first.
TIERS = ("avx512", "avx2", "portable")

# CPU names whose default features include AVX-512F (LLVM's names, as NUMBA_CPU_NAME takes them).
_AVX512_NAMES = frozenset(
    """x86-64-v4 skylake-avx512 cascadelake cooperlake cannonlake icelake-client icelake-server
    tigerlake rocketlake sapphirerapids emeraldrapids graniterapids graniterapids-d diamondrapids
    znver4 znver5 knl knm""".split()
)
# ... and those with AVX2 and FMA but no AVX-512F.
_AVX2_NAMES = frozenset(
    """x86-64-v3 haswell broadwell skylake alderlake raptorlake meteorlake arrowlake arrowlake-s
    lunarlake pantherlake gracemont sierraforest grandridge clearwaterforest znver1 znver2
    znver3 bdver4""".split()
)


def tier_for(cpu_name: str, features: str) -> str:
    """The tier for code compiled for ``cpu_name`` with LLVM feature string ``features``.

    Parameters
    ----------
    cpu_name : str
        An LLVM CPU name (``"znver3"``, ``"x86-64-v3"``, ``"generic"``, ...).
    features : str
        LLVM's comma-separated feature flags (``"+avx2,+fma,-avx512f,..."``); where empty, the
        CPU name's own features decide.

    Returns
    -------
    str
        One of :data:`TIERS`.
    """
    flags = {f.strip() for f in features.split(",") if f.strip()}
    if flags:
        if "+avx512f" in flags:
            return "avx512"
        if "+avx2" in flags and "+fma" in flags:
            return "avx2"
        return "portable"
    name = cpu_name.strip().lower()
    if name in _AVX512_NAMES:
        return "avx512"
    if name in _AVX2_NAMES:
        return "avx2"
    return "portable"


def host_tier() -> str:
    """The tier of the code Numba compiles in this process (module notes), ignoring
    ``FASTBP_TIER``."""
    import llvmlite.binding as ll
    from numba.core import config

    name = config.CPU_NAME if config.CPU_NAME is not None else ll.get_host_cpu_name()
    if config.CPU_FEATURES is not None:
        features = config.CPU_FEATURES
    else:
        features = ll.get_host_cpu_features().flatten()
    return tier_for(name, features)


def _chosen() -> str:
    wanted = os.environ.get("FASTBP_TIER", "").strip().lower()
    if not wanted:
        return host_tier()
    if wanted not in TIERS:
        raise ValueError(f"FASTBP_TIER: expected one of {', '.join(TIERS)}, got {wanted!r}")
    return wanted


#: The tier whose tiles this process uses.
TIER: str = _chosen()
