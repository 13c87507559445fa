"""Stage ``featurize``: backbone features computed once, shared by every frozen-backbone run."""

from lossbench.config.params import load_params
from lossbench.core import paths
from lossbench.core.runtime import pick_device, set_threads
from lossbench.core.stage import run_stage
from lossbench.data.checks import check_batches_fit
from lossbench.data.store import load_processed
from lossbench.features.runs import featurize


def main() -> str:
    params = load_params()
    _, manifest = load_processed(paths.PROCESSED)  # before the expensive backbone pass: batches must fit the split
    check_batches_fit(manifest, [(s.name, s.train.ids_per_batch) for s in params.loss_specs() if s.trains])
    set_threads(params.train.threads)
    return featurize(params, pick_device())


if __name__ == "__main__":
    run_stage("featurize", main)
