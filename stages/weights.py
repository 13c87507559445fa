"""Stage ``weights``: data/weights.json — the content hash of every pretrained weights file the params read."""

from lossbench import paths
from lossbench.config import load_params
from lossbench.io import atomic_write_json
from lossbench.models.weights import weights_record
from lossbench.stage import run_stage


def main() -> str:
    params = load_params()
    record = weights_record([params.model, *(spec.model for spec in params.loss_specs())])
    atomic_write_json(paths.WEIGHTS_RECORD, record)
    return f"{sum(len(files) for files in record.values())} weights file(s) recorded in {paths.WEIGHTS_RECORD}"


if __name__ == "__main__":
    run_stage("weights", main)
