"""Inference: encoders over images or cached features, checkpoints, the feature cache and embedding extraction."""
