"""Backbone features: the encoders and the feature cache of frozen-backbone runs (featurize)."""
