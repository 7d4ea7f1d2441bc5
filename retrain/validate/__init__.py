"""retrain.validate."""
