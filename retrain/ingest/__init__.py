"""retrain.ingest."""
