"""Stage ``weights``: data/weights.json — the content hash of every pretrained weights file the params read.

It runs right after preprocess whenever its params, the processed data or its code change (the stages that load
the weights check the files against this record, see ``lossbench.models.weights.verify_weights``), so it also
refuses, before any training, what would otherwise fail only later: batches larger than the train split, and an ``index.factory``
that cannot index the trained embedding sizes, its ``index.train_size`` or the test gallery preprocess recorded."""

import json

from lossbench.config.params import load_params
from lossbench.core import paths
from lossbench.core.io import atomic_write_json
from lossbench.core.stage import run_stage
from lossbench.data.checks import check_batches_fit
from lossbench.data.store import load_processed
from lossbench.index.faiss_index import check_factory
from lossbench.models.weights import weights_record


def main() -> str:
    params = load_params()
    specs = params.loss_specs()
    dims = {s.model.embed_dim for s in specs if s.trains} or {params.model.embed_dim}
    check_factory(params.index.factory, dims, params.index.train_size)  # from the params alone
    _, manifest = load_processed(paths.PROCESSED)
    check_batches_fit(manifest, [(s.name, s.train.ids_per_batch) for s in specs if s.trains])
    report = json.loads(paths.DATA_REPORT.read_text(encoding="utf-8"))
    check_factory(params.index.factory, dims, None, gallery_size=int(report["images_per_role"]["test"]["gallery"]))
    record = weights_record([params.model, *(spec.model for spec in specs)])
    atomic_write_json(paths.WEIGHTS_RECORD, record)
    return f"{sum(len(files) for files in record.values())} weights file(s) recorded in {paths.WEIGHTS_RECORD}"


if __name__ == "__main__":
    run_stage("weights", main)
