"""Stage ``featurize``: backbone features computed once, shared by every frozen-backbone run."""

from lossbench.config.params import load_params
from lossbench.core.runtime import pick_device, set_threads
from lossbench.core.stage import run_stage
from lossbench.features.runs import featurize
from lossbench.models.weights import verify_weights


def main() -> str:
    params = load_params()
    set_threads(params.threads)
    verify_weights([params.model, *(spec.model for spec in params.loss_specs())])
    return featurize(params, pick_device())


if __name__ == "__main__":
    run_stage("featurize", main)
