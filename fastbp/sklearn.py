"""scikit-learn estimators over fastbp networks (needs ``pip install "fastbp[sklearn]"``)."""

from __future__ import annotations

try:
    import sklearn  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    from ._extras import missing_extra

    raise missing_extra("sklearn", exc) from exc

__all__: list[str] = []
