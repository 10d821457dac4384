"""ONNX export of fastbp networks (needs ``pip install "fastbp[onnx]"``)."""

from __future__ import annotations

try:
    import onnx  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    from ._extras import missing_extra

    raise missing_extra("onnx", exc) from exc

__all__: list[str] = []
