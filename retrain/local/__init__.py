"""retrain.local."""
