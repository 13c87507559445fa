"""Stage ``weights``: data/weights.json — the content hash of every pretrained weights file the params read.

It runs first in every `dvc repro` / `dvc exp run` (always changed), so it also checks what would otherwise fail
only after training: the ``index.factory`` string against the trained embedding sizes and ``index.train_size``."""

from lossbench.config.params import load_params
from lossbench.core import paths
from lossbench.core.io import atomic_write_json
from lossbench.core.stage import run_stage
from lossbench.index.faiss_index import check_factory
from lossbench.models.weights import weights_record


def main() -> str:
    params = load_params()
    specs = params.loss_specs()
    check_factory(
        params.index.factory,
        {s.model.embed_dim for s in specs if s.trains} or {params.model.embed_dim},
        params.index.train_size,
    )
    record = weights_record([params.model, *(spec.model for spec in specs)])
    atomic_write_json(paths.WEIGHTS_RECORD, record)
    return f"{sum(len(files) for files in record.values())} weights file(s) recorded in {paths.WEIGHTS_RECORD}"


if __name__ == "__main__":
    run_stage("weights", main)
