"""Evaluation of one run on the test split: metrics, the identity bootstrap."""
