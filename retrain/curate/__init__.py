"""retrain.curate."""
