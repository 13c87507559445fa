"""Stage ``featurize``: backbone features computed once, shared by every frozen-backbone run."""

from lossbench.config import load_params
from lossbench.inference.runs import featurize
from lossbench.runtime import pick_device, set_threads
from lossbench.stage import run_stage


def main() -> str:
    params = load_params()
    set_threads(params.train.threads)
    return featurize(params, pick_device())


if __name__ == "__main__":
    run_stage("featurize", main)
