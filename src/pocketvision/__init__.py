"""pocketvision: mobile image recognition with convolutional neural networks."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pocketvision.registry import ModelInfo, create_model, list_models, model_info

__version__ = "0.1.0"

__all__ = ["ModelInfo", "__version__", "create_model", "list_models", "model_info"]

_REGISTRY_NAMES = frozenset({"ModelInfo", "create_model", "list_models", "model_info"})


def __getattr__(name: str) -> Any:
    # Lazy (PEP 562): `import pocketvision.scratch` (NumPy only) must not pay for importing
    # torch. The package imports the model families (they register themselves with the
    # registry), so `from pocketvision import create_model` always sees the whole zoo.
    if name in _REGISTRY_NAMES:
        importlib.import_module("pocketvision.models")
        return getattr(importlib.import_module("pocketvision.registry"), name)
    if name == "models":
        return importlib.import_module("pocketvision.models")
    raise AttributeError(f"module 'pocketvision' has no attribute {name!r}")
