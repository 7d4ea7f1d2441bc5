"""retrain: scheduled retraining for fine-tuned language models."""

from retrain.exceptions import RetrainError
from retrain.settings import Settings, get_settings, load_settings

__all__ = ["RetrainError", "Settings", "get_settings", "load_settings"]
__version__ = "0.1.0"
