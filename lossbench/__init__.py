"""lossbench: compare metric-learning losses for face and image retrieval as a DVC pipeline."""

__version__ = "0.1.0"
