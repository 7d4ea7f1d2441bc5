"""retrain.config."""
