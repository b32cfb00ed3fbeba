"""pocketvision: mobile image recognition with convolutional neural networks."""

from pocketvision import models as _models  # noqa: F401  (registers every family)
from pocketvision.registry import ModelInfo, create_model, list_models, model_info

__version__ = "0.1.0"

__all__ = ["ModelInfo", "__version__", "create_model", "list_models", "model_info"]
