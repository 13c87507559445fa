"""Embedding extraction: every evaluated image embedded once, and the embedding sets on disk."""
