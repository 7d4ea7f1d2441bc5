"""retrain.registry."""
