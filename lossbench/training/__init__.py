"""Training: one loop for every loss, early stopping, checkpoints with resume, the feature cache."""
