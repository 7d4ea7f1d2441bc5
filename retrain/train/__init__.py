"""retrain.train."""
