"""Stage ``featurize``: backbone features computed once, shared by every frozen-backbone loss."""

from lossbench.config import load_params
from lossbench.stage import run_stage
from lossbench.training.run import featurize


def main() -> str:
    return featurize(load_params())


if __name__ == "__main__":
    run_stage("featurize", main)
