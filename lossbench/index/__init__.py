"""FAISS indexes: build, train, search, save."""
