"""retrain: scheduled retraining for fine-tuned language models.

The package imports nothing at start-up: validation worker processes import only what they use.
"""

__version__ = "0.1.0"
