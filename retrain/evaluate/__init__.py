"""retrain.evaluate."""
