"""Runtime API: ``NewsClassifier`` (topics), ``HeadlineGenerator`` (headlines) and ``NewsAnalyzer``
(both, one call per article or list).

Imports are lazy so that ``import xinwen.inference`` stays cheap (no torch/transformers until a
class is used)."""
from __future__ import annotations

import importlib

_EXPORTS = {
    "NewsClassifier": ".topic.classifier",
    "Prediction": ".topic.classifier",
    "HeadlineGenerator": ".headline.generator",
    "NewsAnalyzer": ".analyzer",
    "Analysis": ".analyzer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
