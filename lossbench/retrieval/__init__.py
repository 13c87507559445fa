"""FAISS index build / save / load / search over gallery embeddings."""

from lossbench.retrieval.index import build_index, describe, load_index, save_index, search

__all__ = ["build_index", "describe", "load_index", "save_index", "search"]
