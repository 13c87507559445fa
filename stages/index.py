"""Stage ``index@<loss>-<seed>``: a FAISS index (``index.factory``) over one run's test gallery embeddings."""

import time

from lossbench import paths
from lossbench.config import load_params
from lossbench.embedding_sets import load_embeddings
from lossbench.io import atomic_write_json
from lossbench.faiss_index import build_index, describe, save_index
from lossbench.stage import run_arguments, run_stage


def main() -> str:
    loss, seed = run_arguments("index")
    cfg = load_params().index
    gallery, _ = load_embeddings(paths.embeddings_dir(loss, seed), "gallery")
    start = time.perf_counter()
    index = build_index(gallery, cfg.factory, threads=cfg.threads, ef_search=cfg.ef_search, nprobe=cfg.nprobe)
    seconds = time.perf_counter() - start
    path = paths.index_path(loss, seed)
    save_index(index, path)
    info = {**describe(index), "factory": cfg.factory, "build_seconds": round(seconds, 4)}
    atomic_write_json(path.with_suffix(".json"), info)
    return f"{loss} seed {seed}: {info['type']} ({cfg.factory}) of {info['ntotal']} x {info['dim']}, {info['bytes'] / 1e6:.2f} MB, built in {seconds:.3f}s"


if __name__ == "__main__":
    run_stage("index", main)
