"""retrain.promote."""
