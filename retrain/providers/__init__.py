"""retrain.providers."""
