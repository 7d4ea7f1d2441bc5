"""retrain.storage."""
